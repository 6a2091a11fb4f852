#include "bench/killbill_sim/sim_faults.h"

#include <algorithm>
#include <optional>

namespace bg::sim {

const char* OutageModeName(OutageMode mode) {
  switch (mode) {
    case OutageMode::kRefuse:
      return "refuse";
    case OutageMode::k503:
      return "503";
    case OutageMode::kNone:
      break;
  }
  return "";
}

FaultRequest FaultRequest::Clear() {
  FaultRequest r;
  r.clear = true;
  return r;
}

FaultRequest FaultRequest::RefuseOutage(double seconds) {
  FaultRequest r;
  r.outage = OutageMode::kRefuse;
  r.outage_seconds = seconds;
  return r;
}

FaultRequest FaultRequest::Outage503(double seconds) {
  FaultRequest r;
  r.outage = OutageMode::k503;
  r.outage_seconds = seconds;
  return r;
}

FaultRequest FaultRequest::Stall(double seconds) {
  FaultRequest r;
  r.stall_seconds = seconds;
  return r;
}

FaultRequest FaultRequest::ErrorRate(double p) {
  FaultRequest r;
  r.error_rate = p;
  return r;
}

FaultRequest FaultRequest::GarbageRate(double p) {
  FaultRequest r;
  r.garbage_rate = p;
  return r;
}

FaultRequest FaultRequest::ResetRate(double p) {
  FaultRequest r;
  r.reset_rate = p;
  return r;
}

FaultRequest FaultRequest::HoldCreated(double seconds) {
  FaultRequest r;
  r.hold_created_seconds = seconds;
  return r;
}

absl::Status SimFaults::Apply(const FaultRequest& request,
                              Clock::TimePoint now) {
  if (request.outage == OutageMode::kRefuse && !(request.outage_seconds > 0)) {
    return absl::InvalidArgumentError(
        "outage \"refuse\" needs outage_seconds > 0 (/sim/ is unreachable "
        "meanwhile)");
  }
  if (request.outage_seconds < 0 || request.stall_seconds < 0 ||
      !(request.hold_created_seconds >= 0)) {
    return absl::InvalidArgumentError("durations must be >= 0");
  }
  auto out_of_range = [](const std::optional<double>& rate) {
    return rate.has_value() && !(*rate >= 0 && *rate <= 1);
  };
  if (out_of_range(request.error_rate)) {
    return absl::InvalidArgumentError("error_rate not in [0,1]");
  }
  if (out_of_range(request.garbage_rate)) {
    return absl::InvalidArgumentError("garbage_rate not in [0,1]");
  }
  if (out_of_range(request.reset_rate)) {
    return absl::InvalidArgumentError("reset_rate not in [0,1]");
  }

  if (request.clear) {
    outage_ = OutageMode::kNone;
    stall_until_ = Clock::TimePoint();
    hold_created_until_ = Clock::TimePoint();
    error_rate_ = garbage_rate_ = reset_rate_ = 0;
  }
  error_rate_ = request.error_rate.value_or(error_rate_);
  garbage_rate_ = request.garbage_rate.value_or(garbage_rate_);
  reset_rate_ = request.reset_rate.value_or(reset_rate_);
  if (request.stall_seconds > 0) {
    stall_until_ = now + FromSeconds(request.stall_seconds);
  }
  if (request.hold_created_seconds > 0) {
    hold_created_until_ = now + FromSeconds(request.hold_created_seconds);
  }
  if (request.outage != OutageMode::kNone) {
    outage_ = request.outage;
    outage_until_ = request.outage_seconds > 0
                        ? now + FromSeconds(request.outage_seconds)
                        : Clock::TimePoint::max();
  }
  return absl::OkStatus();
}

bool SimFaults::RefuseOutageActive(Clock::TimePoint now) const {
  return outage_ == OutageMode::kRefuse && now < outage_until_;
}

void SimFaults::EndRefuseOutage() {
  if (outage_ == OutageMode::kRefuse) outage_ = OutageMode::kNone;
}

bool SimFaults::Outage503Active(Clock::TimePoint now) const {
  return outage_ == OutageMode::k503 && now < outage_until_;
}

void SimFaults::Held(const std::string& key) {
  ++holding_now_;
  ++held_total_;
  if (held_keys_.size() < kMaxHeldKeys) held_keys_.emplace(key, HeldKey{});
}

void SimFaults::Conflict(const std::string& key) {
  auto it = held_keys_.find(key);
  if (it != held_keys_.end()) ++it->second.conflicts_after;
}

SimFaults::Draw SimFaults::DrawForCall() {
  std::uniform_real_distribution<double> draw(0.0, 1.0);
  if (error_rate_ > 0 && draw(rng_) < error_rate_) return Draw::kError500;
  if (garbage_rate_ > 0 && draw(rng_) < garbage_rate_) return Draw::kGarbage;
  if (reset_rate_ > 0 && draw(rng_) < reset_rate_) return Draw::kReset;
  return Draw::kNone;
}

FaultState SimFaults::State(Clock::TimePoint now) const {
  auto remaining = [now](Clock::TimePoint until) {
    return until == Clock::TimePoint::max()
               ? -1.0
               : std::max(0.0, ToSeconds(until - now));
  };
  FaultState state;
  const bool outage = outage_ != OutageMode::kNone && now < outage_until_;
  state.outage = outage ? outage_ : OutageMode::kNone;
  state.outage_remaining_s = outage ? remaining(outage_until_) : 0.0;
  state.stall_remaining_s = now < stall_until_ ? remaining(stall_until_) : 0.0;
  state.error_rate = error_rate_;
  state.garbage_rate = garbage_rate_;
  state.reset_rate = reset_rate_;
  state.hold_created_remaining_s =
      now < hold_created_until_ ? remaining(hold_created_until_) : 0.0;
  state.holding_now = holding_now_;
  state.held_total = held_total_;
  state.held_keys = held_keys_;
  return state;
}

}  // namespace bg::sim
