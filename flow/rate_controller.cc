#include "flow/rate_controller.h"

#include <algorithm>
#include <cmath>
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
// A drop below this share of the episode's starting estimate counts as a
// capacity drop.
constexpr double kDropShare = 0.8;
// Most of the drain the backlog dip may take.
constexpr double kMaxDipShare = 0.5;
}  // namespace

RateController::RateController(Clock* clock, Options options)
    : clock_(clock),
      opt_(std::move(options)),
      start_(clock->Now()),
      rate_(std::clamp(opt_.initial, opt_.min, opt_.max)),
      drain_(rate_),
      probe_wait_(opt_.probe_wait),
      last_growth_(start_),
      last_tick_(start_),
      last_latency_cut_(start_ - opt_.fast_cooldown),
      last_error_cut_(start_ - opt_.fast_cooldown) {
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
  events_since_poll_ += n;
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
                             size_t from, std::vector<double>* out) const {
  const size_t n = history_.size();
  out->assign(n, 0.0);
  // Kill Bill's own computation (smoothing, regression over its window), fed
  // the modelled backlog; the unrounded slope is what the fit compares.
  killbill::QueueGrowthDetector detector;
  double backlog = 0;
  for (size_t k = 0; k < n; ++k) {
    const Sample& smp = history_[k];
    const double dt_s =
        k == 0 ? 1.0 : (smp.t_ms - history_[k - 1].t_ms) / 1000.0;
    const double d = k >= change ? d_new : d_old;
    backlog = std::max(0.0, backlog + smp.events - d * dt_s);
    const killbill::QueueGrowthDetector::Result r =
        detector.Sample(std::llround(smp.t_ms), backlog);
    if (k >= from) (*out)[k] = r.raw_slope_per_s;
  }
}

double RateController::SolveDrain(double d_old, size_t change, bool two_segment,
                                  double target) const {
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
    Predict(two_segment ? d_old : mid, mid, change, last, &out);
    if (out[last] > target) {
      lo = mid;
    } else {
      hi = mid;
    }
  }
  return (lo + hi) / 2;
}

RateController::Fit RateController::Score(double d_old, double d_new,
                                          size_t change) const {
  const size_t n = history_.size();
  const size_t from = n - std::min(n, kScoreSpan);
  std::vector<double> out;
  Predict(d_old, d_new, change, from, &out);
  double sum = 0;
  for (size_t k = from; k < n; ++k) {
    const double g = history_[k].growth;
    const double e =
        g >= 0 ? out[k] - g : std::max(0.0, out[k] - kPrintThreshold);
    sum += e * e;
  }
  return Fit{sum / static_cast<double>(n - from), d_new};
}

RateController::Hypothesis RateController::FitGrowth() const {
  const size_t n = history_.size();
  const double g = history_.back().growth;
  std::vector<Fit> fits;
  std::vector<Hypothesis> hypotheses;
  const double constant = SolveDrain(0, 0, /*two_segment=*/false, g);
  fits.push_back(Score(constant, constant, 0));
  hypotheses.push_back({constant, constant, 0});
  const size_t first = n > kChangeSpan ? n - kChangeSpan : 0;
  for (size_t c = first; c + 2 <= n; c += kChangeStep) {
    const double d = SolveDrain(episode_base_, c, /*two_segment=*/true, g);
    fits.push_back(Score(episode_base_, d, c));
    hypotheses.push_back({episode_base_, d, c});
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
  return hypotheses[chosen];
}

double RateController::ModelBacklog(const Hypothesis& h) const {
  double backlog = 0;
  for (size_t k = 1; k < history_.size(); ++k) {
    const double dt = (history_[k].t_ms - history_[k - 1].t_ms) / 1000.0;
    const double d = k >= h.change ? h.d_new : h.d_old;
    backlog = std::max(0.0, backlog + history_[k].events - d * dt);
  }
  return backlog;
}

double RateController::TargetLocked() const {
  const double dip =
      std::min(backlog_ / std::max(ToSeconds(opt_.backlog_drain_time), 1e-3),
               kMaxDipShare * drain_);
  return std::max(opt_.min, drain_ * (1 - opt_.headroom) - dip);
}

void RateController::OnHealth(const CircuitBreaker::Health& health) {
  absl::MutexLock lock(&mu_);
  if (!health.reachable)
    return;  // no sample taken; the calls count into the next one
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

  if (growth >= 0) {
    if (!growing_) {  // a new growth episode
      episode_base_ = drain_;
      if (known_ && probing_) {
        probe_wait_ = std::min(probe_wait_ * 2, opt_.max_probe_wait);
      }
    }
    const Hypothesis h = FitGrowth();
    const double d = h.d_new;
    if (!known_ || d < kDropShare * episode_base_)
      probe_wait_ = opt_.probe_wait;
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
  size_t change = 0;
  if (change_t_ms_ >= 0) {
    while (change < history_.size() && history_[change].t_ms < change_t_ms_)
      ++change;
    if (change == 0 || change >= history_.size()) change = 0;
  }
  const double lower_bound =
      change > 0 ? SolveDrain(change_d_old_, change, /*two_segment=*/true,
                              kPrintThreshold)
                 : SolveDrain(0, 0, /*two_segment=*/false, kPrintThreshold);
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
  if (latency_high || errors_high || growing_) return rate_;

  const double step = opt_.increase_step_per_s * dt;
  const double target = TargetLocked();
  if (!known_) {
    if (demand_waiting) SetRateLocked(rate_ + step);
  } else if (rate_ < target) {
    if (demand_waiting) SetRateLocked(target);  // the model's safe rate
  } else if (rate_ > target && !probing_) {
    SetRateLocked(target);
  } else if (demand_waiting && opt_.probe_wait > Clock::Duration::zero() &&
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

RateController::Snapshot RateController::snapshot() const {
  absl::MutexLock lock(&mu_);
  Snapshot s;
  s.rate = rate_;
  s.drain_estimate = drain_;
  s.drain_known = known_;
  s.probing = probing_;
  s.backlog_estimate = backlog_;
  s.last_poll_events = history_.back().events;
  s.probe_wait = probe_wait_;
  s.latency_ewma_s = std::max(latency_ewma_s_, 0.0);
  s.latency_baseline_s = std::max(latency_baseline_s_, 0.0);
  s.growth_cuts = growth_cuts_;
  s.fast_cuts = fast_cuts_;
  return s;
}

}  // namespace bg::flow
