#include "dispatch/call_gate.h"

#include <algorithm>
#include <cmath>
#include <random>
#include <utility>

namespace bg::dispatch {
namespace {

uint64_t OsSeed() {
  std::random_device rd;
  return (static_cast<uint64_t>(rd()) << 32) ^ rd();
}

}  // namespace

bool CallGate::IsKillBillFailure(const absl::Status& s) {
  return absl::IsUnavailable(s) || absl::IsInternal(s) || absl::IsUnknown(s);
}

// The KillBillCalls of one running job.
class CallGate::JobCalls final : public KillBillCalls {
 public:
  JobCalls(CallGate* gate, Clock::TimePoint deadline, Cost prepaid)
      : gate_(gate), deadline_(deadline), prepaid_(prepaid) {}

  absl::Status Admit(KillBillEndpoint endpoint, Cost cost) override {
    const Parts& p = gate_->parts_;
    if (gate_->cut_.load(std::memory_order_acquire)) {
      return absl::UnavailableError(
          "not sent: the gateway is shutting down and its grace is over");
    }
    // What the prepaid tokens do not cover, taken now or waited for.
    const int use_bus = std::min(cost.bus_events, prepaid_.bus_events);
    const int use_api = std::min(cost.calls, prepaid_.calls);
    prepaid_.bus_events -= use_bus;
    prepaid_.calls -= use_api;
    const Cost need =
        gate_->Capped(Cost{cost.calls - use_api, cost.bus_events - use_bus});
    for (;;) {
      if (p.bus->TryAcquire(need.bus_events)) {
        if (p.api->TryAcquire(need.calls)) break;
        p.bus->Refund(need.bus_events);
      }
      const Clock::Duration wait = gate_->TimeUntilAffordable(need);
      const Clock::TimePoint now = gate_->clock_->Now();
      if (wait == Clock::Duration::max() || now + wait >= deadline_) {
        return absl::DeadlineExceededError(
            "no Kill Bill capacity left before the call's deadline");
      }
      gate_->clock_->SleepUntil(now + wait);
    }
    if (gate_->clock_->Now() >= deadline_) {
      p.bus->Refund(need.bus_events);
      p.api->Refund(need.calls);
      return absl::DeadlineExceededError(
          "deadline passed before the Kill Bill call");
    }
    // The retry budget is credited by first attempts only: one per job.
    if (!deposited_) {
      deposited_ = true;
      p.retry_budget->RecordCall();
    }
    current_ = cost;
    p.metrics->in_flight().Increment();
    return absl::OkStatus();
  }

  void Record(KillBillEndpoint endpoint, const absl::Status& status,
              Clock::Duration latency) override {
    const Parts& p = gate_->parts_;
    p.metrics->in_flight().Decrement();
    p.metrics->RecordKillBillCall(endpoint, status.code(), ToSeconds(latency));
    const bool failed = IsKillBillFailure(status);
    p.controller->RecordOutcome(latency, failed);
    if (status.ok() && current_.bus_events > 0) {
      p.controller->RecordBusEvents(current_.bus_events);
    }
    ++outcome_.calls;
    outcome_.failed = outcome_.failed || failed;
    outcome_.slowest = std::max(outcome_.slowest, latency);
    outcome_.total += latency;
  }

  bool MayRetry(Clock::Duration* backoff) override {
    const Parts& p = gate_->parts_;
    if (gate_->cut_.load(std::memory_order_acquire)) return false;
    if (!policy_) policy_.emplace(gate_->retry_, gate_->NextSeed());
    std::optional<Clock::Duration> delay = policy_->NextDelay();
    if (!delay) return false;
    if (!p.retry_budget->TryAcquireRetry()) {
      p.metrics->retries_denied().Increment();
      return false;
    }
    p.metrics->retries().Increment();
    *backoff = *delay;
    return true;
  }

  Clock::TimePoint deadline() const override { return deadline_; }
  Clock* clock() const override { return gate_->clock_; }

  const Outcome& outcome() const { return outcome_; }
  const Cost& unspent() const { return prepaid_; }

 private:
  CallGate* const gate_;
  const Clock::TimePoint deadline_;
  Cost prepaid_;
  Cost current_;
  bool deposited_ = false;
  std::optional<flow::RetryPolicy> policy_;
  Outcome outcome_;
};

CallGate::CallGate(Clock* clock, Parts parts, flow::RetryOptions retry)
    : clock_(clock),
      parts_(parts),
      retry_(std::move(retry)),
      seed_base_(OsSeed()) {}

uint64_t CallGate::NextSeed() {
  return seed_base_ ^ ((seeds_.fetch_add(1, std::memory_order_relaxed) + 1) *
                       0x9E3779B97F4A7C15ull);
}

Cost CallGate::Capped(const Cost& cost) const {
  return Cost{
      std::min(cost.calls, static_cast<int>(std::floor(parts_.api->burst()))),
      std::min(cost.bus_events,
               static_cast<int>(std::floor(parts_.bus->burst())))};
}

Clock::Duration CallGate::TimeUntilAffordable(const Cost& cost,
                                              int api_reserve) {
  const Cost c = Capped(cost);
  const double reserve = std::clamp<double>(
      api_reserve, 0, std::max(0.0, parts_.api->burst() - c.calls));
  return std::max(parts_.bus->TimeUntilAvailable(c.bus_events),
                  parts_.api->TimeUntilAvailable(c.calls + reserve));
}

std::optional<CallGate::Ticket> CallGate::TryTake(const Cost& cost,
                                                  Refusal* why,
                                                  int api_reserve) {
  const Cost c = Capped(cost);
  const double reserve = std::clamp<double>(
      api_reserve, 0, std::max(0.0, parts_.api->burst() - c.calls));
  if (!parts_.bus->TryAcquire(c.bus_events)) {
    *why = Refusal::kNoBusTokens;
    return std::nullopt;
  }
  if (!parts_.api->TryAcquire(c.calls + reserve)) {
    parts_.bus->Refund(c.bus_events);
    *why = Refusal::kNoApiTokens;
    return std::nullopt;
  }
  parts_.api->Refund(reserve);
  Ticket ticket{parts_.breaker->Allow(), c};
  if (!ticket.permit.allowed) {
    parts_.bus->Refund(c.bus_events);
    parts_.api->Refund(c.calls);
    *why = Refusal::kBreaker;
    return std::nullopt;
  }
  *why = Refusal::kNone;
  return ticket;
}

CallGate::Outcome CallGate::Run(Job& job, Ticket ticket) {
  JobCalls calls(this, job.deadline, ticket.prepaid);
  job.run(calls);
  const Outcome& outcome = calls.outcome();
  if (outcome.calls == 0) {
    parts_.breaker->Release(ticket.permit);
  } else if (outcome.failed) {
    parts_.breaker->OnFailure(ticket.permit, outcome.slowest);
  } else {
    parts_.breaker->OnSuccess(ticket.permit, outcome.slowest);
  }
  parts_.bus->Refund(calls.unspent().bus_events);
  parts_.api->Refund(calls.unspent().calls);
  return outcome;
}

}  // namespace bg::dispatch
