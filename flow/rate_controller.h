// RateController: sets the rate of main-bus events per second the gateway lets
// reach Kill Bill, so that Kill Bill's bus is fed no faster than it drains,
// without anyone tuning a number per install. Its unit is the bus event: what
// each job costs in events is declared by the job (dispatch/job.h, Cost), so
// tagged registrations, untagged creates and reads all meet the same budget.
//
// ---------------------------------------------------------------------------------------
// The problem
// ---------------------------------------------------------------------------------------
// Kill Bill's API accepts ~30 creations/s but its bus drains only ~25 events/s;
// each creation posts one event. The only view of the bus is GET
// /1.0/healthcheck, which prints a queue's growth in entries/ms x 100 (0.51
// = 5.1 entries/s) only when above 0.1 (1 entry/s). The number is the OLS slope
// over the last 60 polls of an exponentially smoothed (alpha 0.3) backlog: a
// step change of the excess shows up after a few seconds at a few percent of
// its size and reaches its full size only after ~60 polls. Subtracting the
// number from the current rate therefore cuts too little at first and too much
// later, and a controller that keeps cutting while the (lagging) number is
// positive overshoots down.
//
// ---------------------------------------------------------------------------------------
// The algorithm: a model observer of the healthcheck
// ---------------------------------------------------------------------------------------
// The controller knows the one unknown input of that number: it sent the calls
// itself. It records the bus events it caused between polls (each successful
// call reports the events it posted) and, for a candidate drain d (events/s),
// replays Kill
// Bill's computation exactly: backlog B += events - d*dt (floored at 0),
// smoothing 0.3, OLS over 60 poll timestamps. That gives the growth number Kill
// Bill *would* print, g(d), decreasing in d. Then, at every poll:
//
//  1. Growing (number > 0.1): fit the drain. Two hypotheses families: a
//  constant drain over
//     the history, or the drain known before this episode until a change point
//     c (every 2nd poll of the last 60), then a lower drain. Both keep the
//     drains earlier episodes settled on where they apply: a fit within a
//     low phase charges the traffic before the drop to the drain before it
//     (charged to the low drain, a pre-drop minute once made a backlog
//     estimate of ~600 entries for an empty bus, and held the rate near its
//     floor for 90 s after the drain had returned). For each,
//     bisection finds the drain that reproduces the latest number; the residual
//     against the last 30 polls (printed numbers, and "not growing" as g <= 1
//     entry/s) scores it. Among the hypotheses within `fit_tolerance` of the
//     best residual the one with the HIGHEST drain wins (the least cut the
//     evidence allows: a small number could be a small old excess or a large
//     fresh drop, and only further polls can tell them apart). This follows a
//     25 -> 12 drop in ~15 s and does not overshoot down: a number already
//     explained by a past excess that was since cut away does not lower the
//     estimate again, so no cool-down is needed on this signal. A single poll
//     cuts the rate by at most `max_cut_per_poll`, and sets it to the target
//     (below) up or down, so the rate climbs back as soon as the model has
//     paid the backlog down rather than when the lagging number clears. The
//     backlog estimate is the winning hypothesis's (old drain before its change
//     point). `fit_tolerance` must cover real-world jitter (rounding, a poll a
//     little off Kill Bill's sample): too tight, late change points with too
//     low a drain win (a recorded live run, replayed in rate_controller_test,
//     fell to 7.3 instead of 12 events/s at 0.01).
//  2. Not growing: Kill Bill says g <= 1 entry/s; the drain d_lb with
//     g(d_lb) = 1 is then a lower bound of the drain, computed under the last
//     fit's hypothesis while its change point is in the history (a constant
//     drain over a history spanning a drop would have to carry the pre-drop
//     traffic and overstates it). The estimate is raised to it (this is how a
//     probe learns that capacity went up).
//  3. Target = drain * (1 - headroom) -
//     min(backlog/backlog_drain_time, 0.5 * drain) where backlog is the
//     model's estimate: a short extra dip after an overshoot empties the bus
//     quickly, which brings the regression back under 0.1 sooner.
//
// Rate moves (Tick, time-scaled, only while demand is waiting: queue non-empty
// or bucket dry):
//  * Before the first growth episode nothing is known: additive ramp
//  `increase_step_per_s`
//    (events/s per second) from `initial` (5 -> 23 events/s in ~20 s at the
//    default 1.0).
//  * Drain known: set to the target, up (while demand waits) or down. The
//    target is the model's own safe rate, so climbing back to it after a dip
//    that paid the backlog down needs no ramp (a ramp there cost ~1 s per
//    call/s of goodput); the additive ramp is only for the blind phases.
//  * Probing: after `probe_wait` without growth, step to drain + `probe_excess`
//  events/s
//    (must exceed the 1 entry/s print threshold, or a real excess would stay
//    invisible) and hold. If Kill Bill stays green while the model says it
//    should print growth, the lower bound rises: capacity increased, the blind
//    ramp resumes. If it prints growth, the probe failed: cut to target and
//    double `probe_wait` (up to `max_probe_wait`), so a stable Kill Bill is
//    probed ever more rarely (each failed probe costs ~10-20 "growing" polls
//    because the regression lags). A large drop resets `probe_wait`.
//  * Climb probes (healthcheck only; on in adaptive mode, no setting), after
//    a capacity drop (a growth episode, begun with the drain known, whose fit
//    fell below 80 % of the drain before it), for 10 minutes after the drop,
//    instead of the slow probe above while the pre-drop drain is more than
//    1.25 x the one known now: they find the pre-drop drain again within
//    about a minute of its return, whoever else polls the healthcheck.
//    Kill Bill's window is 60 samples of ALL callers: 60 s when the gateway
//    polls alone at 1 Hz, shorter (L < 60 s) when Kubernetes probes or an
//    operator's poller sample it too, and the gateway cannot see them. A
//    forecast over the gateway's own polls alone (an earlier attempt) reads a
//    shorter window's silence as capacity; so a probe is judged against
//    every window length L in {20, 25, ..., 60} s still in play, with the
//    drain known now (the base) as the hypothesis:
//     - Burst at the pre-drop drain's target (the last known good rate),
//       then HOLD at the base's target: were the drain still the base, the
//       bus holds a plateau of the bump's height c; if it came back, the
//       bump drains away (or never forms). A step of height c gives Kill
//       Bill's regression a slope 6 c p (1 - p) / L in a window of length L
//       with a share p of it after the step: a held plateau prints for every
//       L <= 60 s at some point, earlier and stronger the shorter L is.
//     - The gateway knows what it posted: at each poll it replays Kill
//       Bill's computation over the base's backlog for each L (60 samples
//       L/60 apart, smoothing 0.3, OLS), the number P_L Kill Bill would
//       print were the drain still the base. The burst stops at the first
//       poll from which holding would make P_L >= 1.4 entries/s within 25 s
//       for every L in play (the bus held at most 119 entries in the
//       fake-clock sweep alone, 130 with kubelet probes: more when the fall
//       of the previous probe or of the drop's payback, still in the window,
//       masks the new rise with its negative slope), or at 250 entries or
//       30 s.
//     - Verdict. Kill Bill prints during the probe, and some L in play
//       forecasts >= 0.6 entries/s: the drain is still the base. The bump is
//       paid back at `min` at once, until what was posted since the probe
//       began is paid at the base's target (so a base a little too high
//       still leaves nothing behind); its prints are absorbed while it is in
//       Kill Bill's window (the drain is not refitted to the probe's own
//       bump); the window lengths the print contradicts leave play (those
//       forecasting < 0.6 now or >= 1.3 at an earlier silent poll), their
//       neighbours on the grid stay (Kill Bill's L lies between grid
//       points). Every L in play has had a poll with P_L >= 1.3 and Kill
//       Bill printed nothing: the capacity is back; the drain becomes the
//       pre-drop one and the rate its target at once (no blind ramp). The
//       same verdict holds while a bump that printed is paid back (window
//       lengths covered afresh from the print on): a drain that returns
//       just after a probe found it low is found then, not a probe cycle
//       later. Nothing decisive within 25 s of hold: pay back, no verdict.
//       A print no L in play explains is news (a further drop): the growth
//       path.
//     - The first probe waits 20 s after the drop's episode stops printing
//       (a fit still too high shows first; at 10 s the fake-clock sweep
//       started probes on a fit of 18.7 for a 12 events/s Kill Bill), the
//       next ones 10 s after the last print. While a probe's bump may be in
//       Kill Bill's window the quiet path's drain lower bound (which assumes a
//       60 s window) is not applied.
//     - The base may be a little below the truth (the drop's fit ranged
//       11.1-12.5 for a 12 events/s Kill Bill in the fake-clock sweep), and
//       then the held plateau drains faster than forecast: judged against the
//       base itself, Kill Bill stayed silent where the forecast printed, and a
//       Kill Bill whose drain crept from 12 to 12.4 events/s after the drop
//       was read as the pre-drop 25 (a unit test). So the verdict "back", and
//       the burst's size, are judged against a drain 8 % above the base (the
//       rest still against the base): a drain up to ~5 % above the base (more
//       with other pollers) stays "still low". Known limit: the verdict is
//       binary. A partial recovery well above the base (12 -> 14 events/s, say)
//       reads as the pre-drop drain back; the rate goes there and the growth
//       path cuts it again when Kill Bill prints. A base a little ABOVE the
//       truth errs the other way: Kill Bill still pays back, unseen by the
//       model, what the last probe left, and that fall early in its window
//       masks the new bump's rise (a 12.4 base for a 12 events/s Kill Bill
//       was read as back). So every forecast that can make the verdict "back"
//       must hold for the base too: the verdict and the burst take the lower
//       of the two forecasts.
//     - Window lengths are ruled out against a base; when a growth episode
//       has since moved the drain known by more than 8 %, the next probe
//       puts every length back in play (a 14.4 base for a 12 events/s Kill
//       Bill had ruled out its real ~50 s window).
//     - After the verdict the model takes the base as having held until the
//       latest time the drain could have come back (the bump, drained from
//       then at the pre-drop drain less the rate, just gone now), and for a
//       minute a print that this model explains (Kill Bill's number still
//       shows the bump's rise, ~1.1 entries/s for 6 polls) is not a drop: read
//       as one, it cut the rate to ~13 events/s and cost a probe cycle. A print
//       above it is news, for the growth path.
//    Cost: the healthcheck can only say "still low" by printing growth, so
//    each probe that finds the drain still low costs ~10-15 growing polls,
//    one probe every ~35-50 s while the drain stays low (healthy share of
//    a long low phase 0.62-0.71 in the fake-clock sweep, 0.71-0.80 with the
//    first probe at 30 s and a 40 s hold horizon, ~0.9 without probes).
//    Replicas (share < 1) do not climb-probe: each scales its own events by
//    its share, so it would read its own burst as N times its size and the
//    others' bursts as nothing.
//  * Fast signals, for what the bus number does not see (API saturation): the
//  Kill Bill
//    latency EWMA above `latency_tolerance` x a learned baseline (the lowest
//    recent EWMA, drifting up with a `baseline_half_life` so a permanent shift
//    is eventually accepted), or an error share above `error_rate_threshold` in
//    the last tick, cut the rate multiplicatively by `fast_backoff`, then hold
//    `fast_cooldown` before the same signal may cut again (the first cut needs
//    time to show).
//  * Always clamped to [min, max].
//
// ---------------------------------------------------------------------------------------
// The direct signal: Kill Bill's bus counters (GET /1.0/metrics)
// ---------------------------------------------------------------------------------------
// When Kill Bill serves its metrics (the killbill-metrics bundle, installed by
// default), the health monitor reads two counters each poll: bus events posted
// and dispatched since Kill Bill started (OnBusCounters). posted - dispatched
// IS the backlog, and while a backlog exists the dispatch rate IS the bus's
// capacity: nothing is inferred from a lagging regression. The rate is then a
// proportional controller on the backlog:
//
//   rate = drain + (target_backlog - backlog) / backlog_drain_time - foreign
//
// (the correction bounded to [-drain/2, +target_backlog/backlog_drain_time]),
// where `drain` is the dispatch rate measured over the last 5 s of polls that
// began and ended with a backlog (>= 3 entries: the bus was busy throughout),
// and `foreign` the events others posted (posted minus the gateway's own,
// scaled to all replicas by the rate share), averaged over the same 5 s. A
// small standing backlog (`target_backlog`, 10 entries = 0.4 s at 25/s) keeps
// the bus busy, so its capacity is measured continuously and an increase shows
// as a faster dispatch within a poll or two; Kill Bill's healthcheck sees a
// flat backlog and prints no growth. Step by step the backlog error shrinks by
// 1 - poll_interval / backlog_drain_time (0.8), so a capacity drop is
// followed within a few polls.
//
// When the bus is idle (<= 2 entries), demand is waiting and the rate is the
// binding limit, the rate is raised to at least the last measured capacity
// (the last known good rate, also after an outage) and then by `climb_per_s`
// (20 %/s); before the first measurement it doubles every second (10 -> 25
// events/s in ~2 s). An overshoot shows as a backlog at the
// next poll, whose drain measurement then sets the rate; it costs a few
// entries, not a minute of growth.
//
// The healthcheck inference (above) stays the fallback and keeps its history
// warm. The controller uses it instead when the counters are absent (404, or
// every section empty), unreadable or older than 3 s (the source switches
// back when they return), or when they contradict what Kill Bill says: the
// gateway's own writes do not show in `posted` (>= 20 own events in 10 s, less
// than half of them counted), or the healthcheck prints growth (> 1 entry/s)
// for 20 consecutive polls while the counters' backlog stayed within a
// 10-entry range over the last minute (such a number needs the backlog to
// rise by tens of entries within Kill Bill's window; comparing slopes instead
// would flag the healthcheck's lag, and the shorter window other pollers give
// it, as contradictions). A contradiction keeps the counters out for 5
// minutes. source() says which signal is in use.
//
// Static mode keeps `initial` (clamped) and ignores every signal: the baseline
// for benchmarks and the fallback when the model's assumptions do not hold.
//
// Kill Bill's window. Its 60 samples are of ALL callers' healthcheck calls,
// so someone else polling as often as the gateway halves it to 30 s, and a
// growth model that replays a 60 s window then misreads every episode (a
// drop's fit settled at 16.6 events/s for a 12 events/s Kill Bill, and a
// climb probe's print was then read as a further drop, the rate held near
// its floor for a minute). The replay therefore takes a number of others'
// calls per gateway poll (samples between the gateway's, at mid-interval),
// and the model learns which of two windows it faces, 60 s (0 calls) or 30 s
// (1): every third growth poll (every ninth after ten judgements) it fits
// both and adds each fit's residual to a score decaying by 0.95; the other
// window replaces the one in use when its score falls below 0.6 of it, after
// four judgements. Only these two: on a recorded live drop with the gateway
// alone, a 48 s window fitted better (score ratio 0.48) and its fit fell to
// 7.7 events/s for a 12 events/s Kill Bill, while a 30 s window scores 3 x
// worse there than 60 s and 0.02-0.1 x when it is the truth. A poller every
// 5 s (a ~50 s window) stays read as 60 s: the drop's fit then sits ~20 %
// high (14.4 for 12 events/s), and the first climb probe's print is news
// whose refit corrects it. The window in use is
// Snapshot::healthcheck_window_s and logged when it changes. Cost: the
// judgements roughly double a growth poll's replays while they are frequent.
//
// Assumptions and known limits: the gateway causes the bus events it counts;
// other producers look like lost drain (safe, conservative), but several
// gateway replicas polling one Kill Bill each attribute the whole growth to
// themselves and together cut N times too much, and their polls shorten Kill
// Bill's window (60 polls of all callers): coordinate them (one poller, shared
// estimate) before running replicas. The model assumes Kill Bill's window is
// full (it has been polled for a minute).
//
// Each replay runs Kill Bill's own growth computation
// (killbill_client/queue_growth.h) over the modelled backlog, so the model and
// killbill-sim share one implementation of it. Cost: a growth poll runs ~30
// hypotheses x 40 bisection steps x a replay of the history (150 polls), a few
// ms on the health thread; other polls ~40 replays.
//
// Thread-safety: all methods are safe to call concurrently (internal
// absl::Mutex). The owner applies rate() to its token bucket after each Tick.
// ---------------------------------------------------------------------------------------
#pragma once

#include <cstdint>
#include <deque>
#include <optional>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "common/clock.h"
#include "flow/circuit_breaker.h"
#include "killbill_client/types.h"

namespace bg::flow {

class RateController {
 public:
  enum class Mode { kStatic, kAdaptive };
  // Which Kill Bill signal adaptive mode may use. kAuto: the bus counters of
  // GET /1.0/metrics when Kill Bill serves them, else the healthcheck;
  // kHealthcheck: the healthcheck only (the counters are not read).
  enum class Signal { kAuto, kHealthcheck };
  // The signal in use (a metric label).
  enum class Source { kStatic, kHealthcheck, kMetrics };
  static const char* SourceName(Source s);

  // Maps 1:1 to the `rate.*` YAML keys. Rates are main-bus events per second.
  struct Options {
    // kStatic: always `initial`. kAdaptive: the algorithm above.
    Mode mode = Mode::kAdaptive;
    // Starting rate. Low is safe on a Kill Bill of unknown size, high reaches
    // full speed sooner.
    double initial = 10.0;
    // Floor: the rate never goes below it, so the controller keeps learning and
    // a breaker probe is never starved. Too high defeats protection of a very
    // sick Kill Bill.
    double min = 1.0;
    // Ceiling: never exceed it, whatever the signals say (also the bound of a
    // blind ramp).
    double max = 50.0;
    // Token bucket size (tokens = bus events): how many may leave at once
    // after a pause. Larger absorbs bursts, smaller smooths Kill Bill's load.
    double burst = 10.0;
    // Additive increase, events/s per second, while ramping blind (drain
    // unknown). 1.0 reaches 90 % of 25 events/s from 5 in ~20 s; larger ramps
    // faster but overshoots more (the bus signal lags).
    double increase_step_per_s = 1.0;
    // Share of the estimated drain left unused, so the bus backlog shrinks
    // rather than hovers. Larger: healthier bus, less goodput.
    double headroom = 0.05;
    // Backlog (model estimate) is drained over about this long by an extra dip,
    // capped at half the drain. Shorter empties the bus sooner after an
    // overshoot (fewer "growing" polls) at the cost of a deeper, shorter
    // goodput dip.
    Clock::Duration backlog_drain_time = std::chrono::seconds(5);
    // Excess over the estimated drain while probing, bus events/s. Must exceed
    // 1 (the healthcheck prints growth only above 1 entry/s); larger decides
    // sooner but a failed probe then leaves a larger backlog.
    double probe_excess = 1.5;
    // Quiet time (no growth) before the first probe above the estimate, doubled
    // after each failed probe up to max_probe_wait. Shorter finds added
    // capacity sooner; every failed probe costs some "growing" polls. 0
    // disables probing (a stable Kill Bill stays green, but added capacity is
    // never found until the next growth episode).
    Clock::Duration probe_wait = std::chrono::seconds(120);
    Clock::Duration max_probe_wait = std::chrono::seconds(900);
    // Largest share of the rate one growth poll may cut.
    double max_cut_per_poll = 0.5;
    // Residual slack (entries/s squared, mean) within which the higher drain
    // wins the fit. It must cover what the model cannot know: the printed
    // number's 0.01 rounding and a poll landing a little before or after
    // Kill Bill's sample (a number rising 0.02 per poll, off by one poll, is
    // 0.2 entries/s). At 0.01, tuned on a fake clock with no jitter, a real
    // run's fits preferred late change points with too low a drain (7 instead
    // of 12 events/s after a 25 -> 12 drop); 0.1 converges to 12 from above.
    double fit_tolerance = 0.1;
    // Adaptive: whether Kill Bill's bus counters may be used (see above).
    Signal signal = Signal::kAuto;
    // Bus counters: the backlog (entries) the controller holds the bus at, so
    // that its capacity is always being measured. Larger measures more surely
    // and delays each bus event a little more (10 = 0.4 s at 25 events/s).
    double target_backlog = 10;
    // Bus counters: growth per second of the rate while the bus is idle and
    // demand waits (0.2 = +20 %/s). Larger finds capacity sooner; an
    // overshoot costs about (climb x rate x one poll) entries.
    double climb_per_s = 0.2;
    // Latency EWMA above latency_tolerance x baseline is "rising latency".
    double latency_tolerance = 2.0;
    // Weight of each latency sample in the EWMA.
    double latency_ewma_alpha = 0.1;
    // Half-life with which the latency baseline drifts up towards the current
    // EWMA.
    Clock::Duration baseline_half_life = std::chrono::minutes(5);
    // Error share of the calls since the last tick that counts as "failing"
    // (needs >= 10 calls).
    double error_rate_threshold = 0.2;
    // Multiplicative cut on a fast signal, and the hold before that signal may
    // cut again.
    double fast_backoff = 0.8;
    Clock::Duration fast_cooldown = std::chrono::seconds(10);
  };

  // Observable state for metrics and tests.
  struct Snapshot {
    double rate = 0;
    double drain_estimate = 0;  // bus events/s (0 before any estimate)
    bool drain_known = false;   // a growth episode has calibrated the estimate
    bool probing = false;
    // Healthcheck climb probes: the drain known before the last drop, looked
    // for by them (0: none); a probe in flight (burst, hold or payback);
    // probes started and found the drain still low; Kill Bill window lengths
    // still in play (of 9).
    double climb_to = 0;
    bool climbing = false;
    uint64_t climb_probes = 0;
    uint64_t climb_failures = 0;
    int climb_windows = 0;
    // The length of Kill Bill's healthcheck window the growth model assumes
    // at 1 Hz polling: 60 s alone, shorter when others' healthcheck calls
    // share its 60 samples (learnt from growth episodes).
    double healthcheck_window_s = 60;
    double backlog_estimate = 0;  // bus entries
    double last_poll_events = 0;  // bus events caused between the last polls
    Clock::Duration probe_wait{0};
    double latency_ewma_s = 0;
    double latency_baseline_s = 0;
    uint64_t growth_cuts = 0;
    uint64_t fast_cuts = 0;
    Source source = Source::kHealthcheck;
    const char* source_why = "";  // why the last switch of source happened
    // From the bus counters: the backlog (entries; < 0 before any reading)
    // and the events/s posted by others than the gateway.
    double bus_backlog = -1;
    double foreign_events_per_s = 0;
  };

  RateController(Clock* clock, Options options);
  RateController(const RateController&) = delete;
  RateController& operator=(const RateController&) = delete;

  // A Kill Bill call succeeded and posted `n` main-bus events. Only successes
  // count: a call that failed (409, timeout) may or may not have posted, and
  // undercounting errs on the safe side (the drain looks lower), while
  // overcounting would overstate the drain.
  void RecordBusEvents(double n);
  // A Kill Bill call finished: its latency, and whether it failed for a reason
  // that says Kill Bill is struggling (5xx, timeout; not 4xx).
  void RecordOutcome(Clock::Duration latency, bool failed);
  // One healthcheck poll (unreachable polls carry no sample).
  void OnHealth(const CircuitBreaker::Health& health);
  // One GET /1.0/metrics poll: the bus counters, or nullopt when the read
  // failed. Call right before OnHealth in the same poll.
  void OnBusCounters(const std::optional<killbill::BusCounters>& counters);
  // This replica's share of the rate (FlowControl::SetRateShare): its own bus
  // events, divided by it, estimate all replicas' events.
  void SetShare(double share);
  // Time-driven moves; call every 100 ms - 1 s. `demand_waiting`: jobs are
  // queued or the bucket ran dry since the last tick. Returns the rate.
  double Tick(bool demand_waiting);

  double rate() const;
  // The rate to predict queue waits against (admission, shedding): rate(),
  // except while the bus counters are (or may yet be) in use: before a drain
  // is measured `max`, since the counters find the drain within seconds of
  // the first demand, and a spike arriving first would otherwise be refused
  // at the initial guess (the queue sheds what the measured pace then cannot
  // serve, each with an explicit answer); once measured, at least the drain
  // less foreign traffic, since a rate below it is a payback of a few seconds,
  // not the pace of the next deadline.
  double PacingRate() const;
  Source source() const;
  Snapshot snapshot() const;
  Options options() const;

  // Replaces the options from now on (a configuration reload), except `mode`
  // and `signal`, which stay as constructed (the health monitor chose what to
  // poll for them). What was learnt (drain estimate, history, latency
  // baseline) is kept. The rate is brought within the new [min, max]; in
  // static mode it becomes the new `initial` (clamped).
  void SetOptions(const Options& options);

 private:
  struct Sample {
    double t_ms;    // poll time, ms since construction
    double events;  // bus events caused since the previous poll
    double growth;  // printed growth in entries/s; < 0 = not growing
  };
  struct Fit {
    double residual;
    double drain;
  };

  // Replays Kill Bill's number for drain `d_old` before history index `change`
  // (the drains settled earlier, `settled_`, where they apply) and `d_new`
  // from it on; fills `out` (entries/s, unrounded) from index `from`.
  void Predict(double d_old, double d_new, size_t change, size_t from,
               double foreign, std::vector<double>* out) const
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  double SolveDrain(double d_old, size_t change, bool two_segment,
                    double target, double foreign) const
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  Fit Score(double d_old, double d_new, size_t change, double foreign) const
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // The chosen hypothesis: drain before and from `change` (a history index).
  struct Hypothesis {
    double d_old;
    double d_new;
    size_t change;
    double residual;  // the best fit's, whichever was chosen
  };
  // `foreign`: others' healthcheck calls per gateway poll (Predict).
  Hypothesis FitGrowth(double foreign) const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // FitGrowth for Kill Bill's window as learnt, every few growth polls
  // judging both windows first (see "Kill Bill's window").
  Hypothesis FitGrowthLearningTheWindow() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // The drain at poll time `t_ms`, before the change point of a hypothesis
  // whose drain there is `d_old`: the settled drain where one applies.
  // `next` walks `settled_` (start at 0, call with `t_ms` ascending).
  double DrainBefore(double t_ms, double d_old, size_t* next) const
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // The history index from which no settled drain applies (0: none does).
  size_t SettledEnd() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Records that the drain was `d` until `t_ms` (after the step before it).
  void Settle(double t_ms, double d) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // The history index from which `t_ms` on applies, or 0 when it is not
  // within the history (or < 0).
  size_t IndexOf(double t_ms) const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Climb probes. The bus backlog were the drain `base` from the probe's
  // change point on (its old drain before it), every kFineS seconds from the
  // oldest poll in the history to the last.
  std::vector<double> BaseBacklog(double base) const
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // `series` (a BaseBacklog of `base`) continued for `horizon_s`: the rate
  // in force until the owner's next Tick, then `after`.
  void ExtendBaseBacklog(std::vector<double>* series, double after,
                         double horizon_s, double base) const
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // One poll of a climb probe (`growth` as printed, < 0: not growing); true
  // when the poll is fully handled.
  bool ClimbPoll(double growth, Clock::TimePoint now)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Bus events posted since the probe's first poll interval beyond the base's
  // target over the same time (the bump were the drain only that target).
  double ProbeExcess() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // The drain is back: the pre-drop drain and its target.
  void ClimbBack(Clock::TimePoint now) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Bus backlog now under hypothesis `h`, replayed over the history.
  double ModelBacklog(const Hypothesis& h) const
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  double TargetLocked() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Makes `s` the signal in use; seeds the healthcheck model from the counters
  // when falling back to it.
  void UseSource(Source s, const char* why) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // The counters are kept out for a while: they contradict Kill Bill.
  void Distrust(Clock::TimePoint now, const char* why)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void SetRateLocked(double r) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  double MsSinceStart(Clock::TimePoint t) const;
  // Adaptive on rate.signal auto: the bus counters may be used at all.
  bool CountersAllowed() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return opt_.mode == Mode::kAdaptive && opt_.signal == Signal::kAuto;
  }

  Clock* const clock_;
  const Clock::TimePoint start_;

  mutable absl::Mutex mu_;
  Options opt_ ABSL_GUARDED_BY(mu_);
  double rate_ ABSL_GUARDED_BY(mu_);
  std::deque<Sample> history_ ABSL_GUARDED_BY(mu_);
  double events_since_poll_ ABSL_GUARDED_BY(mu_) = 0;
  double drain_ ABSL_GUARDED_BY(mu_) = 0;  // events/s
  bool known_ ABSL_GUARDED_BY(mu_) = false;
  bool growing_ ABSL_GUARDED_BY(mu_) = false;  // latest sample printed growth
  double episode_base_ ABSL_GUARDED_BY(mu_) = 0;
  // The drain was known (calibrated) when the episode began: only then can a
  // lower fit be a capacity drop rather than the first calibration.
  bool episode_known_ ABSL_GUARDED_BY(mu_) = false;
  // Poll time (ms since start) from which the last fit's lower drain applies,
  // with the drain before it; < 0 when the fit was a constant drain.
  double change_t_ms_ ABSL_GUARDED_BY(mu_) = -1;
  double change_d_old_ ABSL_GUARDED_BY(mu_) = 0;
  // The drains earlier episodes settled on, before the current one's old
  // drain: (t_ms, d) = the drain was d until t_ms (from the previous entry's
  // t_ms), oldest first. A fit within a low phase then charges the traffic
  // before the drop to the drain before it, not to the low one (which
  // invented a backlog of ~600 entries from a pre-drop minute, and held the
  // rate near its floor for 90 s after the drain had returned).
  std::deque<std::pair<double, double>> settled_ ABSL_GUARDED_BY(mu_);
  bool probing_ ABSL_GUARDED_BY(mu_) = false;
  double probe_base_ ABSL_GUARDED_BY(mu_) = 0;
  // Climb probes (healthcheck, after a drop): the drain before the drop and
  // until when to look for it; the probe's phase (kAfter: its bump is still
  // in Kill Bill's window, its prints are absorbed), the drain it tests
  // (the base) with the drop's change point (ms; < 0: none) and old drain;
  // when its burst and hold began and its bump was paid back; window
  // lengths in play and those the probe has covered (bit i: kClimbWindows[i]).
  enum class Climb { kNone, kBurst, kHold, kPayback, kAfter };
  double climb_to_ ABSL_GUARDED_BY(mu_) = 0;
  Clock::TimePoint climb_until_ ABSL_GUARDED_BY(mu_);
  Climb climb_ ABSL_GUARDED_BY(mu_) = Climb::kNone;
  double climb_base_ ABSL_GUARDED_BY(mu_) = 0;
  double climb_change_t_ms_ ABSL_GUARDED_BY(mu_) = -1;
  double climb_d_old_ ABSL_GUARDED_BY(mu_) = 0;
  Clock::TimePoint climb_started_ ABSL_GUARDED_BY(mu_);
  double climb_start_t_ms_ ABSL_GUARDED_BY(mu_) = 0;  // the poll before it
  Clock::TimePoint hold_started_ ABSL_GUARDED_BY(mu_);
  Clock::TimePoint bump_paid_ ABSL_GUARDED_BY(mu_);
  // The last verdict "back" (prints its bump explains are absorbed for a
  // minute after it).
  std::optional<Clock::TimePoint> climbed_back_ ABSL_GUARDED_BY(mu_);
  uint32_t climb_windows_ ABSL_GUARDED_BY(mu_) = 0;
  uint32_t climb_covered_ ABSL_GUARDED_BY(mu_) = 0;
  // Kill Bill's window the growth model assumes (index into the candidates,
  // see FitGrowthLearningTheWindow), and the evidence for each candidate.
  int window_ ABSL_GUARDED_BY(mu_) = 0;
  double window_score_[2] ABSL_GUARDED_BY(mu_) = {0, 0};
  uint64_t window_polls_ ABSL_GUARDED_BY(mu_) = 0;
  int window_evaluations_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t climb_probes_ ABSL_GUARDED_BY(mu_) = 0;
  int climb_probes_since_drop_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t climb_failures_ ABSL_GUARDED_BY(mu_) = 0;
  Clock::Duration tick_interval_ ABSL_GUARDED_BY(mu_){0};
  Clock::Duration probe_wait_ ABSL_GUARDED_BY(mu_);
  Clock::TimePoint last_growth_ ABSL_GUARDED_BY(mu_);
  double backlog_ ABSL_GUARDED_BY(mu_) = 0;
  Clock::TimePoint last_tick_ ABSL_GUARDED_BY(mu_);
  // Fast signals.
  double latency_ewma_s_ ABSL_GUARDED_BY(mu_) = -1;
  double latency_baseline_s_ ABSL_GUARDED_BY(mu_) = -1;
  int64_t calls_since_tick_ ABSL_GUARDED_BY(mu_) = 0;
  int64_t failures_since_tick_ ABSL_GUARDED_BY(mu_) = 0;
  Clock::TimePoint last_latency_cut_ ABSL_GUARDED_BY(mu_);
  Clock::TimePoint last_error_cut_ ABSL_GUARDED_BY(mu_);
  uint64_t growth_cuts_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t fast_cuts_ ABSL_GUARDED_BY(mu_) = 0;
  // Bus counters.
  struct Interval {
    Clock::TimePoint end;
    double dt_s;
    double posted;
    double dispatched;
    double own;  // the gateway's events (all replicas, estimated)
    bool busy;   // a backlog at both ends: dispatched/dt_s is the capacity
  };
  double share_ ABSL_GUARDED_BY(mu_) = 1.0;
  Source source_ ABSL_GUARDED_BY(mu_);
  const char* source_why_ ABSL_GUARDED_BY(mu_) = "";
  bool have_counters_ ABSL_GUARDED_BY(mu_) = false;
  bool counters_ever_read_ ABSL_GUARDED_BY(mu_) = false;
  killbill::BusCounters counters_ ABSL_GUARDED_BY(mu_);
  Clock::TimePoint counters_at_ ABSL_GUARDED_BY(mu_);
  double own_since_counters_ ABSL_GUARDED_BY(mu_) = 0;
  std::deque<Interval> intervals_ ABSL_GUARDED_BY(mu_);
  double bus_backlog_ ABSL_GUARDED_BY(mu_) = -1;
  // The largest dispatched - posted seen since the counters started.
  double uncounted_ ABSL_GUARDED_BY(mu_) = 0;
  double measured_drain_ ABSL_GUARDED_BY(mu_) = 0;  // last busy measurement
  double foreign_ ABSL_GUARDED_BY(mu_) = 0;
  bool bus_idle_ ABSL_GUARDED_BY(mu_) = false;
  Clock::TimePoint distrust_until_ ABSL_GUARDED_BY(mu_);
  int contradicted_polls_ ABSL_GUARDED_BY(mu_) = 0;
  // The counters' backlog over the last minute (time, entries), to check
  // what the healthcheck prints against it.
  std::deque<std::pair<Clock::TimePoint, double>> backlog_history_
      ABSL_GUARDED_BY(mu_);
};

}  // namespace bg::flow
