#include "bench/killbill_sim/probe_model.h"

#include <algorithm>

namespace bg::sim {

const char* ProbeModel::PhaseName(Phase phase) {
  switch (phase) {
    case Phase::kReady:
      return "ready";
    case Phase::kUnready:
      return "unready";
    case Phase::kDown:
      return "down";
    case Phase::kStarting:
      return "starting";
  }
  return "?";
}

ProbeModel::ProbeModel(const ProbeOptions& options, Clock::TimePoint now)
    : options_(options), next_probe_(now + options.period) {}

ProbeModel::Transition ProbeModel::Configure(const ProbeOptions& options,
                                             Clock::TimePoint now) {
  Transition t = Advance(now);
  const bool was_enabled = options_.enabled;
  options_ = options;
  if (!options_.enabled) {
    if (phase_ == Phase::kDown) t.process_up = true;
    EnterService(now, &t);
    readiness_failures_ = liveness_failures_ = 0;
  } else if (!was_enabled) {
    next_probe_ = now + options_.period;
  }
  return t;
}

ProbeModel::Transition ProbeModel::Advance(Clock::TimePoint now) {
  Transition t;
  if (phase_ == Phase::kDown && now >= down_until_) {
    phase_ = Phase::kStarting;
    t.process_up = true;
  }
  return t;
}

bool ProbeModel::ProbeDue(Clock::TimePoint now) const {
  return options_.enabled && now >= next_probe_;
}

Clock::TimePoint ProbeModel::NextEvent() const {
  if (!options_.enabled) return Clock::TimePoint::max();
  if (phase_ == Phase::kDown) return std::min(next_probe_, down_until_);
  return next_probe_;
}

ProbeModel::Transition ProbeModel::RecordProbe(Clock::TimePoint now,
                                               bool readiness_ok,
                                               bool liveness_ok) {
  Transition t = Advance(now);
  if (!options_.enabled) return t;
  // The next round one period after this one was due (no drift), but never in
  // the past (a late caller does not get a burst of rounds).
  next_probe_ += options_.period;
  if (next_probe_ <= now) next_probe_ = now + options_.period;
  if (phase_ == Phase::kDown) readiness_ok = liveness_ok = false;
  probe_calls_ += 2;
  probe_failures_ += (readiness_ok ? 0 : 1) + (liveness_ok ? 0 : 1);
  readiness_failures_ = readiness_ok ? 0 : readiness_failures_ + 1;
  liveness_failures_ = liveness_ok ? 0 : liveness_failures_ + 1;

  if (liveness_failures_ >= options_.failure_threshold) {
    // The kubelet kills the container and starts it again.
    LeaveService(now, &t);
    phase_ = Phase::kDown;
    down_until_ = now + options_.restart_time;
    next_probe_ = now + options_.initial_delay;
    readiness_failures_ = liveness_failures_ = 0;
    ++restarts_;
    t.restarted = true;
    restart_times_.push_back(now);
    if (restart_times_.size() > kHistory) restart_times_.pop_front();
    // A zero restart_time: the process is up again at once.
    Transition after = Advance(now);
    t.process_up = after.process_up;
    return t;
  }
  if (phase_ == Phase::kReady) {
    if (readiness_failures_ >= options_.failure_threshold) {
      LeaveService(now, &t);
      phase_ = Phase::kUnready;
    }
  } else if (phase_ != Phase::kDown && readiness_ok) {
    EnterService(now, &t);
  }
  return t;
}

void ProbeModel::LeaveService(Clock::TimePoint now, Transition* t) {
  if (phase_ != Phase::kReady) return;
  t->left_service = true;
  ++unready_periods_;
  unready_since_ = now;
  unready_intervals_.emplace_back(now, Clock::TimePoint::max());
  if (unready_intervals_.size() > kHistory) unready_intervals_.pop_front();
}

void ProbeModel::EnterService(Clock::TimePoint now, Transition* t) {
  if (phase_ == Phase::kReady) return;
  phase_ = Phase::kReady;
  t->ready = true;
  unready_closed_ += now - unready_since_;
  if (!unready_intervals_.empty() &&
      unready_intervals_.back().second == Clock::TimePoint::max()) {
    unready_intervals_.back().second = now;
  }
}

Clock::Duration ProbeModel::UnreadyTime(Clock::TimePoint now) const {
  Clock::Duration total = unready_closed_;
  if (phase_ != Phase::kReady && now > unready_since_) {
    total += now - unready_since_;
  }
  return total;
}

}  // namespace bg::sim
