#include "flow/rate_controller.h"

#include <algorithm>
#include <cmath>
#include <iterator>
#include <vector>

#include "killbill_client/queue_growth.h"

namespace bg::flow {
namespace {
// Kill Bill's queue healthcheck: its window, and the growth it prints above.
constexpr size_t kWindow = 60;
constexpr double kPrintThreshold = 1.0;  // entries/s; the printed 0.1
// Model horizon and fit spans, in polls.
constexpr size_t kHistory = 150;
constexpr size_t kScoreSpan = 30;
constexpr size_t kChangeSpan = 60;
constexpr size_t kChangeStep = 2;
constexpr int kBisectionSteps = 40;
// Kill Bill's window as the growth model assumes it (see the header):
// others' healthcheck calls per gateway poll (60 and 30 s windows at 1 Hz),
// judged every kWindowEvery growth polls for the first
// kWindowEarlyEvaluations judgements, then every kWindowEveryLater; a
// candidate replaces the one in use when its decaying residual score is below
// kWindowSwitch of it, after kWindowMinEvaluations judgements.
constexpr double kForeignPerPoll[] = {0, 1.0};
constexpr int kWindowCount = static_cast<int>(std::size(kForeignPerPoll));
constexpr int kWindowEvery = 3;
constexpr int kWindowEveryLater = 9;
constexpr int kWindowEarlyEvaluations = 10;
constexpr double kWindowDecay = 0.95;
constexpr double kWindowSwitch = 0.6;
constexpr int kWindowMinEvaluations = 4;
// A drop below this share of the episode's starting estimate counts as a
// capacity drop.
constexpr double kDropShare = 0.8;
// Most of the drain the backlog dip may take.
constexpr double kMaxDipShare = 0.5;
// Bus counters (see the header). Backlog at or below which the bus is idle;
// at the start of an interval, at or above which it was busy throughout.
constexpr double kIdleBacklog = 2;
constexpr double kBusyBacklog = 3;
// Span of the drain and foreign-traffic averages, and of the consistency
// check of `posted` against the gateway's own events.
constexpr auto kDrainSpan = std::chrono::seconds(5);
constexpr auto kCheckSpan = std::chrono::seconds(10);
constexpr double kMinOwnEvents = 20;
// Counters older than this are stale.
constexpr auto kStaleAfter = std::chrono::seconds(3);
// Healthcheck polls printing growth in a row while the counters' backlog
// stayed within kFlatRange entries over kFlatSpan, and how long the counters
// are then kept out.
constexpr int kContradictedPolls = 20;
constexpr double kFlatRange = 10;
constexpr auto kFlatSpan = std::chrono::seconds(60);
constexpr auto kDistrustFor = std::chrono::minutes(5);
// Climb probes (see the header): Kill Bill window lengths judged (s), the
// forecast number (entries/s) that makes a poll decisive for one, the least
// that still explains a print, the longest hold and burst, the largest bump,
// the quiet time before a probe, how long after a drop probes go on, and the
// backlog model's resolution.
constexpr double kClimbWindows[] = {20, 25, 30, 35, 40, 45, 50, 55, 60};
constexpr int kClimbWindowCount = static_cast<int>(std::size(kClimbWindows));
constexpr uint32_t kAllClimbWindows = (1u << kClimbWindowCount) - 1;
constexpr double kClimbDecide = 1.3;
constexpr double kClimbBaseMargin = 0.08;
constexpr double kClimbExplains = 0.6;
constexpr double kClimbHoldMax = 25;  // s
constexpr auto kClimbBurstMax = std::chrono::seconds(30);
constexpr double kClimbBumpMax = 250;  // entries
constexpr auto kClimbWait = std::chrono::seconds(10);
constexpr auto kClimbFirstWait = std::chrono::seconds(20);
constexpr auto kClimbFor = std::chrono::minutes(10);
constexpr double kFineS = 0.1;
// Samples smoothed before Kill Bill's window (0.7^20 < 0.001).
constexpr int kWarmSamples = 20;

// What Kill Bill would print at `t_s` (seconds on `series`' grid, which holds
// the backlog every kFineS s from 0) for a window of 60 samples spread evenly
// over `window_s`: smoothing 0.3 from kWarmSamples before the window, OLS
// slope in entries/s.
double WindowNumber(const std::vector<double>& series, double t_s,
                    double window_s) {
  const int n = static_cast<int>(kWindow);
  const double spacing = window_s / n;
  auto at = [&series](double t) {
    const double x =
        std::clamp(t / kFineS, 0.0, static_cast<double>(series.size() - 1));
    const size_t i = static_cast<size_t>(x);
    const double f = x - static_cast<double>(i);
    return i + 1 < series.size() ? series[i] * (1 - f) + series[i + 1] * f
                                 : series[i];
  };
  double s = 0;
  double sx = 0, sy = 0, sxx = 0, sxy = 0;
  for (int j = n - 1 + kWarmSamples; j >= 0; --j) {
    const double t = t_s - j * spacing;
    const double y = at(t);
    s = j == n - 1 + kWarmSamples ? y : 0.3 * y + 0.7 * s;
    if (j < n) {
      const double x = -j * spacing;
      sx += x;
      sy += s;
      sxx += x * x;
      sxy += x * s;
    }
  }
  const double den = n * sxx - sx * sx;
  return den > 0 ? (n * sxy - sx * sy) / den : 0;
}
}  // namespace

const char* RateController::SourceName(Source s) {
  switch (s) {
    case Source::kStatic:
      return "static";
    case Source::kHealthcheck:
      return "healthcheck";
    case Source::kMetrics:
      return "metrics";
  }
  return "healthcheck";
}

RateController::RateController(Clock* clock, Options options)
    : clock_(clock),
      start_(clock->Now()),
      opt_(std::move(options)),
      rate_(std::clamp(opt_.initial, opt_.min, opt_.max)),
      drain_(rate_),
      probe_wait_(opt_.probe_wait),
      last_growth_(start_),
      last_tick_(start_),
      last_latency_cut_(start_ - opt_.fast_cooldown),
      last_error_cut_(start_ - opt_.fast_cooldown),
      source_(opt_.mode == Mode::kStatic ? Source::kStatic
                                         : Source::kHealthcheck),
      distrust_until_(start_) {
  // Kill Bill has been polled before we came: a full window of quiet samples.
  for (size_t i = 0; i < kWindow; ++i) {
    history_.push_back(
        Sample{-1000.0 * static_cast<double>(kWindow - i), 0, -1});
  }
}

double RateController::MsSinceStart(Clock::TimePoint t) const {
  return std::chrono::duration<double, std::milli>(t - start_).count();
}

void RateController::SetRateLocked(double r) {
  r = std::clamp(r, opt_.min, opt_.max);
  rate_ = r;
}

void RateController::RecordBusEvents(double n) {
  absl::MutexLock lock(&mu_);
  // Every replica's share of the rate is the same: all of them together
  // posted about n / share_.
  events_since_poll_ += n / share_;
  if (CountersAllowed()) own_since_counters_ += n / share_;
}

void RateController::SetShare(double share) {
  absl::MutexLock lock(&mu_);
  share_ = std::clamp(share, 1e-3, 1.0);
}

void RateController::UseSource(Source s, const char* why) {
  if (s == source_ || source_ == Source::kStatic) return;
  source_why_ = why;
  if (s == Source::kHealthcheck && measured_drain_ > 0) {
    // The healthcheck model starts from what the counters measured.
    drain_ = measured_drain_;
    known_ = true;
    settled_.clear();
    change_t_ms_ = -1;
    backlog_ = std::max(0.0, bus_backlog_);
    last_growth_ = clock_->Now();
  }
  source_ = s;
}

void RateController::Distrust(Clock::TimePoint now, const char* why) {
  distrust_until_ = now + kDistrustFor;
  contradicted_polls_ = 0;
  UseSource(Source::kHealthcheck, why);
}

void RateController::OnBusCounters(
    const std::optional<killbill::BusCounters>& counters) {
  absl::MutexLock lock(&mu_);
  if (!CountersAllowed()) return;
  const Clock::TimePoint now = clock_->Now();
  const double own = own_since_counters_;
  own_since_counters_ = 0;
  counters_ever_read_ = true;
  if (!counters || !counters->present) {
    have_counters_ = false;
    backlog_history_.clear();
    intervals_.clear();
    bus_backlog_ = -1;
    UseSource(Source::kHealthcheck, counters ? "Kill Bill serves no metrics"
                                             : "GET /1.0/metrics failed");
    return;
  }
  const killbill::BusCounters& c = *counters;
  const bool reset =
      c.posted < counters_.posted || c.dispatched < counters_.dispatched;
  const double dt = ToSeconds(now - counters_at_);
  // Entries dispatched beyond those posted since the counters started: a
  // backlog Kill Bill found in its database when it (re)started. While it
  // grows the bus is busy with entries no counter shows; once it stops
  // growing it is the offset that makes posted - dispatched the backlog.
  const double deficit = static_cast<double>(c.dispatched - c.posted);
  if (!have_counters_ || reset || dt <= 0) {
    // The first reading, or Kill Bill restarted (counters start at 0): a
    // baseline.
    have_counters_ = true;
    uncounted_ = std::max(0.0, deficit);
    counters_ = c;
    counters_at_ = now;
    bus_backlog_ = std::max(0.0, -deficit + uncounted_);
    intervals_.clear();
    backlog_history_.clear();
    return;
  }
  const bool draining_uncounted = deficit > uncounted_;
  uncounted_ = std::max(uncounted_, deficit);
  const double backlog = std::max(0.0, uncounted_ - deficit);
  const double prev_backlog = bus_backlog_;
  intervals_.push_back(
      Interval{now, dt, static_cast<double>(c.posted - counters_.posted),
               static_cast<double>(c.dispatched - counters_.dispatched), own,
               draining_uncounted ||
                   (prev_backlog >= kBusyBacklog && backlog >= kBusyBacklog)});
  while (!intervals_.empty() && intervals_.front().end <= now - kCheckSpan) {
    intervals_.pop_front();
  }
  counters_ = c;
  counters_at_ = now;
  bus_backlog_ = backlog;
  backlog_history_.emplace_back(now, backlog);
  while (backlog_history_.front().first < now - kFlatSpan) {
    backlog_history_.pop_front();
  }

  // Do the counters see the gateway's own writes?
  double own_sum = 0, posted_sum = 0;
  for (const Interval& iv : intervals_) {
    own_sum += iv.own;
    posted_sum += iv.posted;
  }
  if (own_sum >= kMinOwnEvents && posted_sum < 0.5 * own_sum) {
    Distrust(now, "the posted counter misses the gateway's own writes");
  }
  if (now < distrust_until_) return;
  UseSource(Source::kMetrics, "Kill Bill's bus counters are readable");

  // The drain: measured while the bus was busy, else at least what it
  // dispatched.
  double busy_dt = 0, busy_dispatched = 0, span_dt = 0, foreign = 0;
  for (const Interval& iv : intervals_) {
    if (iv.end <= now - kDrainSpan) continue;
    span_dt += iv.dt_s;
    foreign += iv.posted - iv.own;
    if (iv.busy) {
      busy_dt += iv.dt_s;
      busy_dispatched += iv.dispatched;
    }
  }
  foreign_ = span_dt > 0 ? std::max(0.0, foreign / span_dt) : 0;
  const Interval& last = intervals_.back();
  double drain = last.dispatched / last.dt_s;
  if (busy_dt > 0) {
    drain = busy_dispatched / busy_dt;
    measured_drain_ = drain;
  }
  drain_ = drain;
  known_ = busy_dt > 0;
  backlog_ = backlog;
  bus_idle_ = backlog <= kIdleBacklog && !draining_uncounted;
  if (bus_idle_) return;  // Tick climbs while demand waits
  const double t = std::max(ToSeconds(opt_.backlog_drain_time), 1e-3);
  // An uncounted backlog of unknown size is paid down as fast as allowed.
  const double correction =
      draining_uncounted
          ? -kMaxDipShare * drain
          : std::clamp((opt_.target_backlog - backlog) / t,
                       -kMaxDipShare * drain, opt_.target_backlog / t);
  SetRateLocked(drain + correction - foreign_);
}

void RateController::RecordOutcome(Clock::Duration latency, bool failed) {
  absl::MutexLock lock(&mu_);
  const double s = ToSeconds(latency);
  if (latency_ewma_s_ < 0) {
    latency_ewma_s_ = s;
    latency_baseline_s_ = s;
  } else {
    latency_ewma_s_ += opt_.latency_ewma_alpha * (s - latency_ewma_s_);
    latency_baseline_s_ = std::min(latency_baseline_s_, latency_ewma_s_);
  }
  ++calls_since_tick_;
  if (failed) ++failures_since_tick_;
}

void RateController::Predict(double d_old, double d_new, size_t change,
                             size_t from, double foreign,
                             std::vector<double>* out) const {
  const size_t n = history_.size();
  out->assign(n, 0.0);
  // Kill Bill's own computation (smoothing, regression over its window), fed
  // the modelled backlog; the unrounded slope is what the fit compares.
  // Others' healthcheck calls (`foreign` per gateway poll) add samples
  // between the gateway's, at the middle of a poll interval, so Kill Bill's
  // 60 samples span 60 / (1 + foreign) polls.
  killbill::QueueGrowthDetector detector;
  double backlog = 0;
  double owed = 0;
  size_t settled = 0;
  for (size_t k = 0; k < n; ++k) {
    const Sample& smp = history_[k];
    const double dt_s =
        k == 0 ? 1.0 : (smp.t_ms - history_[k - 1].t_ms) / 1000.0;
    const double d =
        k >= change ? d_new : DrainBefore(smp.t_ms, d_old, &settled);
    const double next = std::max(0.0, backlog + smp.events - d * dt_s);
    if (k > 0 && foreign > 0) {
      owed += foreign;
      const int m = static_cast<int>(owed + 1e-9);
      owed -= m;
      for (int j = 0; j < m; ++j) {
        const double f = (j + 0.5) / m;
        detector.Sample(std::llround(history_[k - 1].t_ms +
                                     f * (smp.t_ms - history_[k - 1].t_ms)),
                        std::max(0.0, backlog + f * (smp.events - d * dt_s)));
      }
    }
    backlog = next;
    const killbill::QueueGrowthDetector::Result r =
        detector.Sample(std::llround(smp.t_ms), backlog);
    if (k >= from) (*out)[k] = r.raw_slope_per_s;
  }
}

double RateController::SolveDrain(double d_old, size_t change, bool two_segment,
                                  double target, double foreign) const {
  const size_t last = history_.size() - 1;
  double lo = 0, hi = d_old;
  if (!two_segment) {
    // Above the largest arrival rate the backlog stays empty and the number is
    // 0.
    for (size_t k = 1; k < history_.size(); ++k) {
      const double dt = (history_[k].t_ms - history_[k - 1].t_ms) / 1000.0;
      if (dt > 0) hi = std::max(hi, history_[k].events / dt);
    }
    hi += 1;
  }
  std::vector<double> out;
  for (int i = 0; i < kBisectionSteps; ++i) {
    const double mid = (lo + hi) / 2;
    Predict(two_segment ? d_old : mid, mid, change, last, foreign, &out);
    if (out[last] > target) {
      lo = mid;
    } else {
      hi = mid;
    }
  }
  return (lo + hi) / 2;
}

RateController::Fit RateController::Score(double d_old, double d_new,
                                          size_t change, double foreign) const {
  const size_t n = history_.size();
  const size_t from = n - std::min(n, kScoreSpan);
  std::vector<double> out;
  Predict(d_old, d_new, change, from, foreign, &out);
  double sum = 0;
  for (size_t k = from; k < n; ++k) {
    const double g = history_[k].growth;
    const double e =
        g >= 0 ? out[k] - g : std::max(0.0, out[k] - kPrintThreshold);
    sum += e * e;
  }
  return Fit{sum / static_cast<double>(n - from), d_new};
}

RateController::Hypothesis RateController::FitGrowth(double foreign) const {
  const size_t n = history_.size();
  const double g = history_.back().growth;
  std::vector<Fit> fits;
  std::vector<Hypothesis> hypotheses;
  // One drain since the drains settled earlier (the whole history if none).
  const size_t since = SettledEnd();
  const double constant =
      SolveDrain(0, since, /*two_segment=*/false, g, foreign);
  fits.push_back(Score(constant, constant, since, foreign));
  hypotheses.push_back({constant, constant, since, 0});
  const size_t first = n > kChangeSpan ? n - kChangeSpan : 0;
  for (size_t c = first; c + 2 <= n; c += kChangeStep) {
    const double d =
        SolveDrain(episode_base_, c, /*two_segment=*/true, g, foreign);
    fits.push_back(Score(episode_base_, d, c, foreign));
    hypotheses.push_back({episode_base_, d, c, 0});
  }
  double best = fits[0].residual;
  for (const Fit& f : fits) best = std::min(best, f.residual);
  size_t chosen = 0;
  double drain = -1;
  for (size_t i = 0; i < fits.size(); ++i) {
    if (fits[i].residual <= best + opt_.fit_tolerance &&
        fits[i].drain > drain) {
      drain = fits[i].drain;
      chosen = i;
    }
  }
  hypotheses[chosen].residual = best;
  return hypotheses[chosen];
}

RateController::Hypothesis RateController::FitGrowthLearningTheWindow() {
  static_assert(sizeof(window_score_) / sizeof(window_score_[0]) ==
                kWindowCount);
  // Every few growth polls, how well each window length explains the
  // episode so far; scores decay so that pollers who come or go are
  // followed. The window moves only on clear evidence.
  const int every = window_evaluations_ < kWindowEarlyEvaluations
                        ? kWindowEvery
                        : kWindowEveryLater;
  if (++window_polls_ % static_cast<uint64_t>(every) != 0) {
    return FitGrowth(kForeignPerPoll[window_]);
  }
  Hypothesis fits[kWindowCount];
  for (int i = 0; i < kWindowCount; ++i) {
    fits[i] = FitGrowth(kForeignPerPoll[i]);
    window_score_[i] = kWindowDecay * window_score_[i] + fits[i].residual;
  }
  ++window_evaluations_;
  int best = window_;
  for (int i = 0; i < kWindowCount; ++i) {
    if (window_score_[i] < window_score_[best]) best = i;
  }
  if (best != window_ && window_evaluations_ >= kWindowMinEvaluations &&
      window_score_[best] < kWindowSwitch * window_score_[window_]) {
    window_ = best;
  }
  return fits[window_];
}

double RateController::ModelBacklog(const Hypothesis& h) const {
  double backlog = 0;
  size_t settled = 0;
  for (size_t k = 1; k < history_.size(); ++k) {
    const double dt = (history_[k].t_ms - history_[k - 1].t_ms) / 1000.0;
    const double d = k >= h.change
                         ? h.d_new
                         : DrainBefore(history_[k].t_ms, h.d_old, &settled);
    backlog = std::max(0.0, backlog + history_[k].events - d * dt);
  }
  return backlog;
}

double RateController::DrainBefore(double t_ms, double d_old,
                                   size_t* next) const {
  while (*next < settled_.size() && settled_[*next].first <= t_ms) ++*next;
  return *next < settled_.size() ? settled_[*next].second : d_old;
}

size_t RateController::SettledEnd() const {
  return settled_.empty() ? 0 : IndexOf(settled_.back().first);
}

void RateController::Settle(double t_ms, double d) {
  while (!settled_.empty() && settled_.back().first >= t_ms) {
    settled_.pop_back();
  }
  settled_.emplace_back(t_ms, d);
  // Entries that end at or before the oldest poll apply to none.
  while (!settled_.empty() && settled_.front().first <= history_.front().t_ms) {
    settled_.pop_front();
  }
}

size_t RateController::IndexOf(double t_ms) const {
  if (t_ms < 0) return 0;
  size_t k = 0;
  while (k < history_.size() && history_[k].t_ms < t_ms) ++k;
  return k >= history_.size() ? 0 : k;
}

std::vector<double> RateController::BaseBacklog(double base) const {
  // (Not over a drain settled earlier: the base holds since then at most.)
  const size_t change = std::max(IndexOf(climb_change_t_ms_), SettledEnd());
  const double t0 = history_.front().t_ms / 1000;
  const double t_last = history_.back().t_ms / 1000;
  std::vector<double> series;
  series.reserve(static_cast<size_t>((t_last - t0) / kFineS) + 2);
  double backlog = 0;
  series.push_back(backlog);
  size_t k = 1;
  size_t settled = 0;
  double t = t0;
  // The past: each poll interval's events spread evenly over it.
  for (t += kFineS; t <= t_last + 1e-9 && k < history_.size(); t += kFineS) {
    while (k + 1 < history_.size() && history_[k].t_ms / 1000 < t - 1e-9) ++k;
    const double dt =
        std::max((history_[k].t_ms - history_[k - 1].t_ms) / 1000, 1e-3);
    const double d =
        k >= change ? base
                    : DrainBefore(history_[k].t_ms, climb_d_old_, &settled);
    backlog = std::max(0.0, backlog + (history_[k].events / dt - d) * kFineS);
    series.push_back(backlog);
  }
  return series;
}

void RateController::ExtendBaseBacklog(std::vector<double>* series,
                                       double after, double horizon_s,
                                       double base) const {
  // The rate in force until the owner's next Tick applies a new one (ticks
  // are evenly spaced), then `after`.
  double backlog = series->back();
  const double interval = std::max(ToSeconds(tick_interval_), 0.0);
  const double since = ToSeconds(clock_->Now() - last_tick_);
  const double until =
      interval > 0 ? std::clamp(interval - since, 0.0, interval) : 0;
  for (double f = kFineS; f <= horizon_s + 1e-9; f += kFineS) {
    const double r = f <= until + 1e-9 ? rate_ : after;
    backlog = std::max(0.0, backlog + (r - base) * kFineS);
    series->push_back(backlog);
  }
}

double RateController::ProbeExcess() const {
  // What the gateway posted since the probe began beyond the base's target:
  // what is left of the bump were the drain only that target (the base may
  // be a little high; the bump is paid back for it too).
  double posted = 0;
  for (const Sample& smp : history_) {
    if (smp.t_ms > climb_start_t_ms_) posted += smp.events;
  }
  const double elapsed_s = (history_.back().t_ms - climb_start_t_ms_) / 1000;
  return posted - climb_base_ * (1 - opt_.headroom) * elapsed_s;
}

void RateController::ClimbBack(Clock::TimePoint now) {
  // The base held (the last fit's change point, and its old drain, before
  // it) until the drain came back: at the latest when the bus, were the
  // bump (backlog_, as the base forecasts it) drained since at the pre-drop
  // drain less the rate now, would just be empty. Kill Bill's number shows
  // that bump's rise for a while yet, and a fit that took the base as
  // holding only until the probe began read that print as a drop (back at
  // ~13 events/s, and one more probe cycle).
  if (change_t_ms_ >= 0) Settle(change_t_ms_, change_d_old_);
  const double drained_s = backlog_ / std::max(climb_to_ - rate_, 1.0);
  Settle(std::max(climb_start_t_ms_, history_.back().t_ms - 1000 * drained_s),
         climb_base_);
  drain_ = climb_to_;
  known_ = true;
  climb_to_ = 0;
  climbed_back_ = now;
  climb_ = Climb::kNone;
  change_t_ms_ = -1;
  backlog_ = 0;
  growing_ = false;
  probing_ = false;
  probe_wait_ = opt_.probe_wait;
  last_growth_ = now;
  SetRateLocked(TargetLocked());
}

bool RateController::ClimbPoll(double growth, Clock::TimePoint now) {
  if (climb_ == Climb::kAfter && now - bump_paid_ >= kFlatSpan) {
    // The bump has left every window: an ordinary poll again.
    climb_ = Climb::kNone;
    return false;
  }
  const double t0 = history_.front().t_ms / 1000;
  const double t_now = history_.back().t_ms / 1000 - t0;
  const std::vector<double> past = BaseBacklog(climb_base_);
  // The verdict "back" and the burst's size are judged against a drain a
  // little above the base AND the base (the lower forecast): a base somewhat
  // below the truth, or above it, must not read as capacity back.
  const double high_base = climb_base_ * (1 + kClimbBaseMargin);
  const std::vector<double> high = BaseBacklog(high_base);
  const double base_backlog = past.back();
  // What Kill Bill would print at `t_s` for window length i, the lower of
  // two forecasts (the burst's look ahead).
  auto lower = [](const std::vector<double>& a, const std::vector<double>& b,
                  double t_s, int i) {
    return std::min(WindowNumber(a, t_s, kClimbWindows[i]),
                    WindowNumber(b, t_s, kClimbWindows[i]));
  };
  double numbers[kClimbWindowCount];
  uint32_t decisive = 0;  // window lengths this poll's silence would cover
  double explains = 0;
  for (int i = 0; i < kClimbWindowCount; ++i) {
    numbers[i] = WindowNumber(past, t_now, kClimbWindows[i]);
    if (std::min(WindowNumber(high, t_now, kClimbWindows[i]), numbers[i]) >=
        kClimbDecide)
      decisive |= 1u << i;
    if (climb_windows_ & (1u << i)) explains = std::max(explains, numbers[i]);
  }
  const bool printed = growth >= 0;
  if (printed && explains < kClimbExplains) {
    // No window length in play explains this print: not the probe's bump.
    climb_ = Climb::kNone;
    return false;
  }
  drain_ = climb_base_;
  backlog_ = base_backlog;
  if (printed) {
    last_growth_ = now;
    growing_ = climb_ == Climb::kPayback;
  } else {
    growing_ = false;
  }
  const double hold = climb_base_ * (1 - opt_.headroom);
  switch (climb_) {
    case Climb::kBurst:
    case Climb::kHold: {
      if (printed) {
        // Still the base: pay the bump back. Window lengths that forecast no
        // print now, or a print at an earlier quiet poll, are out of play.
        ++climb_failures_;
        uint32_t keep = climb_windows_ & ~climb_covered_;
        for (int i = 0; i < kClimbWindowCount; ++i) {
          if (numbers[i] < kClimbExplains) keep &= ~(1u << i);
        }
        // Kill Bill's window lies between grid points: keep each survivor's
        // neighbours in play, so the lengths in play bracket it.
        keep |= ((keep << 1) | (keep >> 1)) & kAllClimbWindows;
        climb_windows_ = keep != 0 ? keep : kAllClimbWindows;
        climb_covered_ = 0;
        climb_ = Climb::kPayback;
        growing_ = true;
        SetRateLocked(opt_.min);
        return true;
      }
      climb_covered_ |= decisive;
      if ((climb_windows_ & ~climb_covered_) == 0) {
        ClimbBack(now);
        return true;
      }
      if (climb_ == Climb::kHold) {
        if (ToSeconds(now - hold_started_) > kClimbHoldMax) {
          climb_ = Climb::kPayback;  // nothing decisive: no verdict
          SetRateLocked(opt_.min);
        }
        return true;
      }
      // The burst: stop once holding from the next Tick on would make every
      // window length in play decisive within kClimbHoldMax.
      bool enough = base_backlog >= kClimbBumpMax ||
                    now - climb_started_ >= kClimbBurstMax;
      if (!enough) {
        std::vector<double> ahead = high;
        ExtendBaseBacklog(&ahead, hold, kClimbHoldMax + 1, high_base);
        std::vector<double> ahead_base = past;
        ExtendBaseBacklog(&ahead_base, hold, kClimbHoldMax + 1, climb_base_);
        const double step_s = std::max(
            (history_.back().t_ms - history_[history_.size() - 2].t_ms) / 1000,
            0.1);
        uint32_t covered = climb_covered_;
        for (double f = step_s; f <= kClimbHoldMax; f += step_s) {
          for (int i = 0; i < kClimbWindowCount; ++i) {
            if (lower(ahead, ahead_base, t_now + f, i) >= kClimbDecide + 0.1)
              covered |= 1u << i;
          }
        }
        enough = (climb_windows_ & ~covered) == 0;
      }
      if (enough) {
        climb_ = Climb::kHold;
        hold_started_ = now;
        SetRateLocked(hold);
      }
      return true;
    }
    case Climb::kPayback:
      // Kill Bill silent where the base and a drain 8 % above it both
      // print: the verdict "back" is as good while the bump is paid back as
      // during the hold (a drain that returns just after a probe found it low
      // is found here, not a whole probe cycle later).
      if (!printed) {
        climb_covered_ |= decisive;
        if ((climb_windows_ & ~climb_covered_) == 0) {
          ClimbBack(now);
          return true;
        }
      }
      if (base_backlog <= 0.5 && ProbeExcess() <= 0.5) {
        climb_ = Climb::kAfter;
        bump_paid_ = now;
        SetRateLocked(TargetLocked());
      }
      return true;
    case Climb::kAfter:
    case Climb::kNone:
      return true;
  }
  return true;
}

double RateController::TargetLocked() const {
  const double dip =
      std::min(backlog_ / std::max(ToSeconds(opt_.backlog_drain_time), 1e-3),
               kMaxDipShare * drain_);
  return std::max(opt_.min, drain_ * (1 - opt_.headroom) - dip);
}

void RateController::OnHealth(const CircuitBreaker::Health& health) {
  absl::MutexLock lock(&mu_);
  if (!health.reachable) {
    // No sample taken; the calls count into the next one. A climb probe
    // cannot be judged blind: its bump is paid back.
    if (climb_ == Climb::kBurst || climb_ == Climb::kHold) {
      climb_ = Climb::kPayback;
      SetRateLocked(opt_.min);
    }
    return;
  }
  const Clock::TimePoint now = clock_->Now();
  const double t_ms = MsSinceStart(now);
  if (t_ms <= history_.back().t_ms)
    return;  // two polls at one instant: keep the first
  const double growth =
      health.queues_growing && health.growth > 0 ? health.growth * 10 : -1;
  history_.push_back(Sample{t_ms, events_since_poll_, growth});
  events_since_poll_ = 0;
  while (history_.size() > kHistory) history_.pop_front();
  if (opt_.mode == Mode::kStatic) return;
  if (source_ == Source::kMetrics) {
    // The counters rule; the healthcheck only checks them.
    double low = 1e18, high = -1e18;
    for (const auto& [t, b] : backlog_history_) {
      low = std::min(low, b);
      high = std::max(high, b);
    }
    const bool minute_seen = !backlog_history_.empty() &&
                             backlog_history_.front().first <=
                                 now - kFlatSpan + std::chrono::seconds(1);
    if (growth > kPrintThreshold && minute_seen && high - low < kFlatRange) {
      if (++contradicted_polls_ >= kContradictedPolls) {
        Distrust(now, "the healthcheck prints growth the counters do not show");
      }
    } else {
      contradicted_polls_ = 0;
    }
    if (source_ == Source::kMetrics) return;
  }

  if (climb_ != Climb::kNone && ClimbPoll(growth, now)) return;
  if (growth >= 0 && climbed_back_ && now - *climbed_back_ < kFlatSpan) {
    // Just after a climb probe's verdict "back", Kill Bill's number still
    // shows the rise of the probe's bump: a print the drain now known
    // explains (held at the base until the bus emptied) is not a drop.
    std::vector<double> out;
    double expected = 0;
    for (double foreign : kForeignPerPoll) {
      Predict(drain_, drain_, SettledEnd(), history_.size() - 1, foreign, &out);
      expected = std::max(expected, out.back());
    }
    if (growth <= expected + kClimbExplains) {
      last_growth_ = now;
      return;
    }
    climbed_back_.reset();  // news: the growth path
  }
  if (growth >= 0) {
    if (!growing_) {  // a new growth episode
      // The last episode's change point holds: its old drain until then.
      if (change_t_ms_ >= 0) Settle(change_t_ms_, change_d_old_);
      episode_base_ = drain_;
      episode_known_ = known_;
      if (known_ && probing_) {
        probe_wait_ = std::min(probe_wait_ * 2, opt_.max_probe_wait);
      }
    }
    const Hypothesis h = FitGrowthLearningTheWindow();
    const double d = h.d_new;
    if (!known_ || d < kDropShare * episode_base_)
      probe_wait_ = opt_.probe_wait;
    if (episode_known_ && d < kDropShare * episode_base_) {
      // A capacity drop: climb probes will look for the drain before it.
      if (now >= climb_until_ || climb_to_ <= 0) {
        climb_to_ = 0;
        climb_windows_ = kAllClimbWindows;
      }
      climb_to_ = std::max(climb_to_, episode_base_);
      climb_probes_since_drop_ = 0;
      climb_until_ = now + kClimbFor;
    }
    drain_ = d;
    known_ = true;
    probing_ = false;
    growing_ = true;
    last_growth_ = now;
    // The backlog the winning hypothesis implies (the old drain before its
    // change point): replaying the whole history at the new, lower drain would
    // invent a backlog out of events the old drain had long carried away.
    backlog_ = ModelBacklog(h);
    const bool two_segment = h.change > 0 && h.d_new != h.d_old;
    change_t_ms_ = two_segment ? history_[h.change].t_ms : -1;
    change_d_old_ = h.d_old;
    // The rate goes to the model's target, down (at most max_cut_per_poll) or
    // up: once the dip has paid the modelled backlog, holding it until Kill
    // Bill's lagging number stops printing growth (tens of seconds) would only
    // waste capacity the fit says is there.
    const double next =
        std::max(rate_ * (1 - opt_.max_cut_per_poll), TargetLocked());
    if (next < rate_) ++growth_cuts_;
    SetRateLocked(next);
    return;
  }
  growing_ = false;
  // Kill Bill prints no growth: under the last fit's hypothesis (the old drain
  // before its change point, if that is still in the history) the drain from
  // then on is at least the one that would print exactly the threshold. A
  // constant-drain bound over a history that spans a drop would have to carry
  // the pre-drop traffic too, and so overstates today's drain.
  const size_t change = IndexOf(change_t_ms_);
  // Not while a climb probe's bump may be in Kill Bill's window: the bound
  // assumes a 60 s window of the gateway's polls, and a shorter one (other
  // pollers) that has already forgotten the bump would read as capacity.
  const bool bump_in_window =
      climb_probes_ > 0 &&
      now - bump_paid_ < kFlatSpan + std::chrono::seconds(5);
  const double lower_bound =
      bump_in_window ? 0
      : change > 0   ? SolveDrain(change_d_old_, change, /*two_segment=*/true,
                                  kPrintThreshold, kForeignPerPoll[window_])
                     : SolveDrain(0, SettledEnd(), /*two_segment=*/false,
                                  kPrintThreshold, kForeignPerPoll[window_]);
  if (lower_bound > drain_) {
    if (known_ && probing_ && lower_bound > probe_base_ + 1.0) {
      // Kill Bill absorbed the probe: capacity went up. Ramp again until it
      // shows.
      probe_wait_ = opt_.probe_wait;
      known_ = false;
      probing_ = false;
    }
    drain_ = lower_bound;
  }
  // Quiet poll: carry the estimate forward over the last interval.
  const Sample& last = history_.back();
  const double dt = (last.t_ms - history_[history_.size() - 2].t_ms) / 1000.0;
  backlog_ = std::max(0.0, backlog_ + last.events - drain_ * dt);
}

double RateController::Tick(bool demand_waiting) {
  absl::MutexLock lock(&mu_);
  const Clock::TimePoint now = clock_->Now();
  const double dt = std::max(0.0, ToSeconds(now - last_tick_));
  if (now > last_tick_) tick_interval_ = now - last_tick_;
  last_tick_ = now;
  if (opt_.mode == Mode::kStatic) {
    calls_since_tick_ = failures_since_tick_ = 0;
    return rate_;
  }

  // Fast signals.
  if (latency_ewma_s_ > latency_baseline_s_ && latency_baseline_s_ >= 0) {
    const double half_life = std::max(ToSeconds(opt_.baseline_half_life), 1e-3);
    latency_baseline_s_ += (latency_ewma_s_ - latency_baseline_s_) *
                           (1 - std::exp2(-dt / half_life));
  }
  const bool latency_high =
      latency_baseline_s_ > 0 &&
      latency_ewma_s_ > opt_.latency_tolerance * latency_baseline_s_;
  const bool errors_high =
      calls_since_tick_ >= 10 &&
      static_cast<double>(failures_since_tick_) >
          opt_.error_rate_threshold * static_cast<double>(calls_since_tick_);
  calls_since_tick_ = failures_since_tick_ = 0;
  if (latency_high && now - last_latency_cut_ >= opt_.fast_cooldown) {
    last_latency_cut_ = now;
    ++fast_cuts_;
    SetRateLocked(rate_ * opt_.fast_backoff);
  }
  if (errors_high && now - last_error_cut_ >= opt_.fast_cooldown) {
    last_error_cut_ = now;
    ++fast_cuts_;
    SetRateLocked(rate_ * opt_.fast_backoff);
  }
  if (source_ == Source::kMetrics && now - counters_at_ > kStaleAfter) {
    UseSource(Source::kHealthcheck, "Kill Bill's bus counters are stale");
  }
  if (latency_high || errors_high) return rate_;
  if (source_ == Source::kMetrics) {
    // Idle bus, demand waiting: at least the last measured capacity, then up.
    if (bus_idle_ && demand_waiting) {
      // Before any measurement nothing bounds the guess: double per second
      // (an overshoot shows as a backlog at the next reading).
      const double climb = measured_drain_ > 0 ? opt_.climb_per_s : 1.0;
      SetRateLocked(std::max(rate_, measured_drain_) * (1 + climb * dt));
    }
    return rate_;
  }
  if (growing_) return rate_;

  const double step = opt_.increase_step_per_s * dt;
  // Climb probes (see the header); replicas do not climb-probe.
  // (Something to climb to: a drain well above the one known now.)
  const bool climb_window =
      climb_to_ > drain_ / kDropShare && now < climb_until_ && share_ >= 1.0;
  switch (climb_) {
    case Climb::kBurst:
      SetRateLocked(climb_to_ * (1 - opt_.headroom));
      return rate_;
    case Climb::kHold:
      SetRateLocked(climb_base_ * (1 - opt_.headroom));
      return rate_;
    case Climb::kPayback:
      SetRateLocked(opt_.min);
      return rate_;
    case Climb::kAfter:
    case Climb::kNone:
      break;
  }
  if (climb_window && known_ && demand_waiting && backlog_ <= 1 &&
      now - last_growth_ >=
          (climb_probes_since_drop_ == 0 ? kClimbFirstWait : kClimbWait)) {
    ++climb_probes_since_drop_;
    climb_ = Climb::kBurst;
    // Window lengths were ruled out against the last probe's base; a growth
    // episode that has since moved the drain known puts them back in play.
    if (std::abs(drain_ - climb_base_) > kClimbBaseMargin * climb_base_) {
      climb_windows_ = kAllClimbWindows;
    }
    climb_base_ = drain_;
    climb_change_t_ms_ = change_t_ms_;
    climb_d_old_ = change_t_ms_ >= 0 ? change_d_old_ : drain_;
    climb_started_ = now;
    climb_start_t_ms_ = history_.back().t_ms;
    climb_covered_ = 0;
    ++climb_probes_;
    probing_ = false;
    SetRateLocked(climb_to_ * (1 - opt_.headroom));
    return rate_;
  }
  const double target = TargetLocked();
  if (!known_) {
    if (demand_waiting) SetRateLocked(rate_ + step);
  } else if (rate_ < target) {
    if (demand_waiting) SetRateLocked(target);  // the model's safe rate
  } else if (rate_ > target && !probing_) {
    SetRateLocked(target);
  } else if (demand_waiting && opt_.probe_wait > Clock::Duration::zero() &&
             !climb_window && climb_ == Climb::kNone &&
             now - last_growth_ >= probe_wait_) {
    if (!probing_) probe_base_ = drain_;
    probing_ = true;
    const double cap = drain_ + opt_.probe_excess;
    SetRateLocked(std::max(rate_, std::min(rate_ + step, cap)));
  }
  return rate_;
}

double RateController::rate() const {
  absl::MutexLock lock(&mu_);
  return rate_;
}

double RateController::PacingRate() const {
  absl::MutexLock lock(&mu_);
  // In use, or about to be: not read yet, or a baseline taken (the source
  // switches at the second reading), and not distrusted.
  const bool counters_may_rule =
      CountersAllowed() && clock_->Now() >= distrust_until_ &&
      (source_ == Source::kMetrics || have_counters_ || !counters_ever_read_);
  if (counters_may_rule && measured_drain_ <= 0) return opt_.max;
  // On the counters the rate dips below the drain only to pay a backlog down
  // (at most kMaxDipShare of the drain, for seconds); the pace the queue can
  // count on over a deadline is the drain. Pacing at the dip shed, in S4, a
  // third of a spike the next 25 s would have served.
  if (source_ == Source::kMetrics && measured_drain_ > 0) {
    return std::clamp(std::max(rate_, measured_drain_ - foreign_), opt_.min,
                      opt_.max);
  }
  // A climb probe's payback dip lasts seconds, like the counters' dip.
  if (source_ == Source::kHealthcheck && climb_ != Climb::kNone &&
      climb_ != Climb::kAfter) {
    return std::clamp(std::max(rate_, climb_base_ * (1 - opt_.headroom)),
                      opt_.min, opt_.max);
  }
  return rate_;
}

RateController::Options RateController::options() const {
  absl::MutexLock lock(&mu_);
  return opt_;
}

void RateController::SetOptions(const Options& options) {
  absl::MutexLock lock(&mu_);
  const Mode mode = opt_.mode;
  const Signal signal = opt_.signal;
  opt_ = options;
  opt_.mode = mode;
  opt_.signal = signal;
  probe_wait_ = std::min(probe_wait_, opt_.max_probe_wait);
  SetRateLocked(opt_.mode == Mode::kStatic ? opt_.initial : rate_);
}

RateController::Source RateController::source() const {
  absl::MutexLock lock(&mu_);
  return source_;
}

RateController::Snapshot RateController::snapshot() const {
  absl::MutexLock lock(&mu_);
  Snapshot s;
  s.rate = rate_;
  s.drain_estimate = drain_;
  s.drain_known = known_;
  s.probing = probing_;
  s.climb_to = climb_to_;
  s.climbing = climb_ == Climb::kBurst || climb_ == Climb::kHold ||
               climb_ == Climb::kPayback;
  s.climb_probes = climb_probes_;
  s.climb_failures = climb_failures_;
  for (int i = 0; i < kClimbWindowCount; ++i)
    s.climb_windows += (climb_windows_ >> i) & 1;
  s.healthcheck_window_s = 60 / (1 + kForeignPerPoll[window_]);
  s.backlog_estimate = backlog_;
  s.last_poll_events = history_.back().events;
  s.probe_wait = probe_wait_;
  s.latency_ewma_s = std::max(latency_ewma_s_, 0.0);
  s.latency_baseline_s = std::max(latency_baseline_s_, 0.0);
  s.growth_cuts = growth_cuts_;
  s.fast_cuts = fast_cuts_;
  s.source = source_;
  s.source_why = source_why_;
  s.bus_backlog = bus_backlog_;
  s.foreign_events_per_s = foreign_;
  return s;
}

}  // namespace bg::flow
