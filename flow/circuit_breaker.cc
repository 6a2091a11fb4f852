#include "flow/circuit_breaker.h"

#include <algorithm>
#include <utility>

namespace bg::flow {

CircuitBreaker::CircuitBreaker(Clock* clock, Options options)
    : clock_(clock),
      opt_(std::move(options)),
      outcomes_(opt_.window),
      open_duration_(opt_.open_duration) {}

void CircuitBreaker::SetTransitionCallback(TransitionCallback cb) {
  callback_ = std::move(cb);
}

void CircuitBreaker::SetOptions(const Options& options) {
  absl::MutexLock lock(&mu_);
  if (options.window != opt_.window) {
    outcomes_ = WindowedCounter<Outcomes>(options.window);
  }
  opt_ = options;
  open_duration_ =
      std::clamp(open_duration_, opt_.open_duration,
                 std::max(opt_.open_duration, opt_.max_open_duration));
}

CircuitBreaker::Options CircuitBreaker::options() const {
  absl::MutexLock lock(&mu_);
  return opt_;
}

const char* CircuitBreaker::StateName(State s) {
  switch (s) {
    case State::kClosed:
      return "closed";
    case State::kOpen:
      return "open";
    case State::kHalfOpen:
      return "half_open";
  }
  return "unknown";
}

const char* CircuitBreaker::ReasonName(Reason r) {
  switch (r) {
    case Reason::kFailureRate:
      return "failure_rate";
    case Reason::kSlowCallRate:
      return "slow_call_rate";
    case Reason::kHealth:
      return "health";
    case Reason::kOpenElapsed:
      return "open_elapsed";
    case Reason::kProbeFailed:
      return "probe_failed";
    case Reason::kProbeTimeout:
      return "probe_timeout";
    case Reason::kProbesSucceeded:
      return "probes_succeeded";
    case Reason::kHealthRecovered:
      return "health_recovered";
  }
  return "unknown";
}

void CircuitBreaker::Notify(const std::vector<Transition>& ts) {
  if (!callback_) return;
  for (const Transition& t : ts) callback_(t.from, t.to, t.why);
}

void CircuitBreaker::TransitionLocked(State to, Reason why,
                                      Clock::TimePoint now,
                                      std::vector<Transition>* out) {
  const State from = state_;
  state_ = to;
  ++epoch_;
  ++transitions_[static_cast<int>(to)];
  out->push_back({from, to, why});
  switch (to) {
    case State::kOpen:
      if (from == State::kClosed) {
        open_duration_ = opt_.open_duration;
      } else if (why == Reason::kProbeFailed || why == Reason::kProbeTimeout) {
        open_duration_ = std::min(open_duration_ * 2, opt_.max_open_duration);
      }  // kHealth from half-open: probes were fine, keep the duration.
      open_until_ = now + open_duration_;
      break;
    case State::kHalfOpen:
      probes_issued_ = 0;
      probes_succeeded_ = 0;
      outstanding_probes_.clear();
      break;
    case State::kClosed:
      open_duration_ = opt_.open_duration;
      outcomes_.Clear();
      break;
  }
}

void CircuitBreaker::AdvanceLocked(Clock::TimePoint now,
                                   std::vector<Transition>* out) {
  if (state_ == State::kOpen && now >= open_until_) {
    TransitionLocked(State::kHalfOpen, Reason::kOpenElapsed, now, out);
  }
  if (state_ == State::kHalfOpen) {
    for (Clock::TimePoint issued : outstanding_probes_) {
      if (now - issued >= opt_.probe_timeout) {
        TransitionLocked(State::kOpen, Reason::kProbeTimeout, now, out);
        return;
      }
    }
  }
}

bool CircuitBreaker::HealthGreenLocked() const { return !health_red_; }

CircuitBreaker::Permit CircuitBreaker::Allow() {
  std::vector<Transition> ts;
  Permit p;
  {
    absl::MutexLock lock(&mu_);
    const Clock::TimePoint now = clock_->Now();
    AdvanceLocked(now, &ts);
    p.epoch = epoch_;
    p.issued_at = now;
    if (state_ == State::kClosed) {
      p.allowed = true;
    } else if (state_ == State::kHalfOpen &&
               probes_issued_ < opt_.half_open_probes) {
      ++probes_issued_;
      outstanding_probes_.push_back(now);
      p.allowed = true;
      p.is_probe = true;
    }
  }
  Notify(ts);
  return p;
}

void CircuitBreaker::OnResult(const Permit& permit, Clock::Duration latency,
                              bool success) {
  std::vector<Transition> ts;
  {
    absl::MutexLock lock(&mu_);
    const Clock::TimePoint now = clock_->Now();
    AdvanceLocked(now, &ts);
    const bool slow = latency >= opt_.slow_call_threshold;
    if (permit.epoch != epoch_) {
      // Admitted in an earlier state: no say in this one.
    } else if (state_ == State::kClosed) {
      outcomes_.Add(now, {1, success ? 0 : 1, slow ? 1 : 0});
      const Outcomes sum = outcomes_.Sum(now);
      const int64_t calls = sum.calls;
      if (calls >= opt_.min_calls && calls > 0) {
        if (sum.failures >= opt_.failure_rate_threshold * calls) {
          TransitionLocked(State::kOpen, Reason::kFailureRate, now, &ts);
        } else if (sum.slow >= opt_.slow_call_rate_threshold * calls) {
          TransitionLocked(State::kOpen, Reason::kSlowCallRate, now, &ts);
        }
      }
    } else if (state_ == State::kHalfOpen && permit.is_probe) {
      auto it = std::find(outstanding_probes_.begin(),
                          outstanding_probes_.end(), permit.issued_at);
      if (it != outstanding_probes_.end()) outstanding_probes_.erase(it);
      if (!success || slow) {
        TransitionLocked(State::kOpen, Reason::kProbeFailed, now, &ts);
      } else if (++probes_succeeded_ >= opt_.half_open_probes) {
        if (HealthGreenLocked()) {
          TransitionLocked(State::kClosed, Reason::kProbesSucceeded, now, &ts);
        } else {
          TransitionLocked(State::kOpen, Reason::kHealth, now, &ts);
        }
      }
    }
  }
  Notify(ts);
}

void CircuitBreaker::OnSuccess(const Permit& permit, Clock::Duration latency) {
  OnResult(permit, latency, /*success=*/true);
}

void CircuitBreaker::OnFailure(const Permit& permit, Clock::Duration latency) {
  OnResult(permit, latency, /*success=*/false);
}

void CircuitBreaker::Release(const Permit& permit) {
  if (!permit.allowed || !permit.is_probe) return;
  absl::MutexLock lock(&mu_);
  if (permit.epoch != epoch_ || state_ != State::kHalfOpen) return;
  auto it = std::find(outstanding_probes_.begin(), outstanding_probes_.end(),
                      permit.issued_at);
  if (it == outstanding_probes_.end()) return;
  outstanding_probes_.erase(it);
  --probes_issued_;
}

void CircuitBreaker::OnHealth(const Health& h) {
  std::vector<Transition> ts;
  {
    absl::MutexLock lock(&mu_);
    const Clock::TimePoint now = clock_->Now();
    AdvanceLocked(now, &ts);
    const bool down = !h.reachable || !h.healthy_except_queues;
    const bool runaway = opt_.growth_open_threshold > 0 && h.queues_growing &&
                         h.growth >= opt_.growth_open_threshold;
    health_failures_ = down ? health_failures_ + 1 : 0;
    const bool was_red = health_red_;
    health_red_ = down || runaway;
    // Kill Bill says it is back (red -> green): probe now rather than wait out
    // an open period that repeated trips may have stretched to a minute. The
    // probes still decide.
    if (state_ == State::kOpen && was_red && !health_red_) {
      TransitionLocked(State::kHalfOpen, Reason::kHealthRecovered, now, &ts);
    }
    if (state_ == State::kClosed &&
        (runaway ||
         (down && health_failures_ >= opt_.health_failures_to_open))) {
      TransitionLocked(State::kOpen, Reason::kHealth, now, &ts);
    }
  }
  Notify(ts);
}

void CircuitBreaker::Tick() {
  std::vector<Transition> ts;
  {
    absl::MutexLock lock(&mu_);
    AdvanceLocked(clock_->Now(), &ts);
  }
  Notify(ts);
}

CircuitBreaker::State CircuitBreaker::state() {
  std::vector<Transition> ts;
  State s;
  {
    absl::MutexLock lock(&mu_);
    AdvanceLocked(clock_->Now(), &ts);
    s = state_;
  }
  Notify(ts);
  return s;
}

Clock::Duration CircuitBreaker::TimeUntilNextProbe() {
  std::vector<Transition> ts;
  Clock::Duration d = Clock::Duration::zero();
  {
    absl::MutexLock lock(&mu_);
    const Clock::TimePoint now = clock_->Now();
    AdvanceLocked(now, &ts);
    if (state_ == State::kOpen) {
      d = open_until_ - now;
    } else if (state_ == State::kHalfOpen &&
               probes_issued_ >= opt_.half_open_probes &&
               !outstanding_probes_.empty()) {
      // Worst case: the oldest probe hangs until its timeout and reopens the
      // breaker.
      d = outstanding_probes_.front() + opt_.probe_timeout - now;
    }
  }
  Notify(ts);
  return d;
}

uint64_t CircuitBreaker::transitions(State to) const {
  absl::MutexLock lock(&mu_);
  return transitions_[static_cast<int>(to)];
}

Clock::Duration CircuitBreaker::current_open_duration() const {
  absl::MutexLock lock(&mu_);
  return open_duration_;
}

}  // namespace bg::flow
