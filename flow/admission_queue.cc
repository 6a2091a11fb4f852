#include "flow/admission_queue.h"

#include <cmath>

namespace bg::flow {
namespace {
// Rounded, not truncated: 0.3 s must be 300 ms, not 299.999999 ms.
Clock::Duration RoundSeconds(double s) {
  return std::chrono::round<Clock::Duration>(std::chrono::duration<double>(s));
}
}  // namespace

const char* RejectReasonName(RejectReason reason) {
  switch (reason) {
    case RejectReason::kQueueFull:
      return "queue_full";
    case RejectReason::kDeadlineUnmeetable:
      return "deadline_unmeetable";
    case RejectReason::kBreakerOpen:
      return "breaker_open";
    case RejectReason::kShuttingDown:
      return "shutting_down";
  }
  return "unknown";
}

AdmissionPolicy::AdmissionPolicy(Clock* clock, const AdmissionOptions& options,
                                 uint64_t pushback_seed)
    : opt_(options),
      drain_(clock, options.drain, options.initial_drain_per_s),
      latency_s_(ToSeconds(options.initial_latency)),
      pushback_(clock, RetryPushback::Options{options.min_retry_pushback,
                                              options.max_retry_pushback,
                                              /*jitter=*/0.2, pushback_seed}) {}

Clock::Duration AdmissionPolicy::Pushback(Clock::Duration earliest,
                                          uint64_t identity) {
  // While the breaker is open nothing drains: the herd is spread over the
  // turns the rate will serve once the probe succeeds (the drain prior).
  return pushback_.Next(
      earliest, breaker_open_ ? drain_.prior() : drain_.PerSecond(), identity);
}

Clock::Duration AdmissionPolicy::PredictedWait(size_t ahead) {
  return RoundSeconds(static_cast<double>(ahead) / drain_.PerSecond()) +
         expected_latency();
}

Admission AdmissionPolicy::Decide(Clock::TimePoint now,
                                  Clock::TimePoint deadline, size_t ahead,
                                  bool shutting_down, uint64_t identity) {
  Admission a;
  if (shutting_down) {
    a.reason = RejectReason::kShuttingDown;
    a.retry_after = opt_.min_retry_pushback;
    return a;
  }
  if (breaker_open_) {
    a.reason = RejectReason::kBreakerOpen;
    a.retry_after = Pushback(next_probe_at_ - now, identity);
    return a;
  }
  const double drain = drain_.PerSecond();
  a.predicted_wait = PredictedWait(ahead);
  // A caller at its turn takes the place the book kept for it; anyone else
  // leaves room for the places the book has promised (the header comment).
  const RetryPushback::Standing standing = pushback_.StandingOf(identity);
  // A request without a key cannot be told apart from a returning caller:
  // first come, first served, as it always was.
  const size_t kept = identity == 0 || standing == RetryPushback::Standing::kDue
                          ? 0
                          : pushback_.Promised(ahead, drain);
  const Clock::Duration padded =
      RoundSeconds(opt_.wait_safety_factor * static_cast<double>(ahead + kept) /
                   drain) +
      expected_latency();
  if (now + padded + opt_.deadline_margin <= deadline) {
    a.admitted = true;
    if (standing != RetryPushback::Standing::kNewcomer) {
      pushback_.Forget(identity);
    }
    return a;
  }
  a.reason = RejectReason::kDeadlineUnmeetable;
  const double budget_s =
      ToSeconds(deadline - now - opt_.deadline_margin) - latency_s_;
  // Positions that would still fit this deadline budget; wait until the queue
  // is that short.
  const double fits =
      budget_s < 0 ? 0 : std::floor(budget_s * drain / opt_.wait_safety_factor);
  const double excess = std::max(1.0, static_cast<double>(ahead) - fits);
  a.retry_after = Pushback(RoundSeconds(excess / drain), identity);
  return a;
}

void AdmissionPolicy::SetBreakerOpen(bool open, Clock::TimePoint next_probe_at,
                                     size_t queued) {
  breaker_open_ = open;
  next_probe_at_ = next_probe_at;
  drain_.SetBusy(queued > 0 && !open);
}

void AdmissionPolicy::ObserveLatency(Clock::Duration latency) {
  latency_s_ += opt_.latency_ewma_alpha * (ToSeconds(latency) - latency_s_);
}

Clock::Duration AdmissionPolicy::expected_latency() const {
  return RoundSeconds(latency_s_);
}

}  // namespace bg::flow
