#include "dispatch/flow_control.h"

#include <algorithm>
#include <chrono>
#include <string>
#include <utility>

#include "absl/strings/str_cat.h"
#include "spdlog/spdlog.h"

namespace bg::dispatch {
namespace {

int64_t Millis(Clock::Duration d) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(d).count();
}

}  // namespace

FlowControl::FlowControl(Clock* clock, metrics::GatewayMetrics* metrics,
                         FlowOptions options,
                         flow::MemoryGuard::Process process)
    : clock_(clock),
      metrics_(metrics),
      options_(std::move(options)),
      lanes_{Lane(clock, options_.queue), Lane(clock, options_.queue)},
      bus_bucket_(clock, options_.rate.initial, options_.rate.burst),
      api_bucket_(clock, options_.api_calls_per_s, options_.rate.burst),
      breaker_(clock, options_.breaker),
      controller_(clock, options_.rate),
      retry_budget_(clock, options_.retry),
      memory_(clock, options_.memory, std::move(process)),
      gate_(clock,
            CallGate::Parts{&bus_bucket_, &api_bucket_, &breaker_, &controller_,
                            &retry_budget_, metrics},
            options_.retry) {
  bus_bucket_.SetRate(controller_.rate());
  metrics_->queue_capacity().Set(
      static_cast<double>(2 * options_.queue.capacity));
  metrics_->rate_limit().Set(controller_.rate());
  metrics_->resident_memory_limit().Set(
      static_cast<double>(memory_.bound_bytes()));
  breaker_.SetTransitionCallback([this](flow::CircuitBreaker::State from,
                                        flow::CircuitBreaker::State to,
                                        flow::CircuitBreaker::Reason why) {
    // Runs on whichever thread caused the transition, possibly under the
    // queue's lock: only metrics and a flag here; Tick/TryStartNext tell the
    // queue.
    metrics_->RecordBreakerTransition(static_cast<int>(to));
    breaker_changed_.store(true, std::memory_order_release);
    spdlog::warn("circuit breaker {} -> {} ({})",
                 flow::CircuitBreaker::StateName(from),
                 flow::CircuitBreaker::StateName(to),
                 flow::CircuitBreaker::ReasonName(why));
  });
}

double FlowControl::Pace(double bus, double api, double events, double calls) {
  double pace = api / std::max(calls, 1e-9);
  if (events > 0) pace = std::min(pace, bus / events);
  return pace;
}

bool FlowControl::Submit(Job job) {
  job.admitted = clock_->Now();
  // A breaker the health monitor opened since the last tick refuses this job
  // now (breaker_open, at once) instead of queueing it until its deadline.
  SyncBreakerToQueues();
  const Cost cost = job.cost;
  Lane& lane = lanes_[LaneOf(cost)];
  // Before the queue: a call the process has no memory for is not held.
  if (!memory_.Admit()) {
    RejectForMemory(job, lane);
    return false;
  }
  if (!lane.cost_measured.load(std::memory_order_acquire)) {
    lane.queue.SetDrainPrior(Pace(
        controller_.PacingRate() * rate_share_.load(std::memory_order_relaxed),
        api_bucket_.rate(), cost.bus_events, cost.calls));
  }
  flow::Admission admission = lane.queue.Admit(std::move(job));
  if (!admission.admitted) {
    Reject(job, admission);  // Admit() moves from `job` only when it admits it.
    return false;
  }
  metrics_->admissions().Increment();
  absl::MutexLock lock(&mu_);
  ++lane.admitted;
  lane.admitted_cost += cost;
  return true;
}

void FlowControl::Reject(Job& job, const flow::Admission& admission) {
  metrics_->RecordRejection(admission.reason);
  const char* reason = flow::RejectReasonName(admission.reason);
  const std::string message =
      absl::StrCat("rejected: ", reason, "; retry in ",
                   Millis(admission.retry_after), " ms");
  const bool overloaded =
      admission.reason == flow::RejectReason::kQueueFull ||
      admission.reason == flow::RejectReason::kDeadlineUnmeetable;
  job.answer(overloaded ? absl::ResourceExhaustedError(message)
                        : absl::UnavailableError(message),
             reason, admission.retry_after);
}

void FlowControl::RejectForMemory(Job& job, Lane& lane) {
  metrics_->RecordMemoryRejection();
  const Clock::Duration pushback = lane.queue.ShedPushback(job);
  job.answer(absl::ResourceExhaustedError(
                 absl::StrCat("rejected: ", metrics::kMemoryRejectReason,
                              "; the gateway is at its memory bound, retry in ",
                              Millis(pushback), " ms")),
             metrics::kMemoryRejectReason, pushback);
}

void FlowControl::AnswerDropped(Lane& lane,
                                flow::AdmissionQueue<Job>::Dropped& dropped) {
  if (!dropped.expired.empty()) {
    // Shed: these can no longer finish before their deadline even if started
    // now. Telling the caller so (with a pushback) beats letting it time out;
    // each gets its own turn in the queue's pushback book, as a rejected
    // caller does, so the shed do not all come back together.
    for (Job& job : dropped.expired) {
      const Clock::Duration pushback = lane.queue.ShedPushback(job);
      metrics_->RecordDrop(metrics::DropReason::kDeadline);
      job.answer(
          absl::ResourceExhaustedError(absl::StrCat(
              "rejected: deadline_unmeetable; shed from the queue, retry in ",
              Millis(pushback), " ms")),
          flow::RejectReasonName(flow::RejectReason::kDeadlineUnmeetable),
          pushback);
    }
  }
  for (Job& job : dropped.cancelled) {
    metrics_->RecordDrop(metrics::DropReason::kCancelled);
    job.answer(absl::CancelledError("caller cancelled while queued"), nullptr,
               {});
  }
}

void FlowControl::SyncBreakerToQueues() {
  if (!breaker_changed_.exchange(false, std::memory_order_acq_rel)) return;
  const bool open = breaker_.state() == flow::CircuitBreaker::State::kOpen;
  const Clock::TimePoint next_probe =
      clock_->Now() + breaker_.TimeUntilNextProbe();
  for (Lane& lane : lanes_) lane.queue.SetBreakerOpen(open, next_probe);
}

void FlowControl::PublishDepth() {
  metrics_->queue_depth().Set(static_cast<double>(queued()));
}

FlowControl::Next FlowControl::TryStartNext() {
  Next next;
  // API calls the head write will need once its bus tokens come: reads leave
  // them in the bucket.
  int api_reserve = 0;
  for (const LaneIndex index : {kWrites, kReads}) {
    Lane& lane = lanes_[index];
    std::optional<CallGate::Ticket> ticket;
    CallGate::Refusal refusal = CallGate::Refusal::kNone;
    Cost head;
    bool had_head = false;
    auto popped = lane.queue.Pop([&](const Job& job) {
      had_head = true;
      head = job.cost;
      ticket =
          gate_.TryTake(job.cost, &refusal, index == kReads ? api_reserve : 0);
      return ticket.has_value();
    });
    SyncBreakerToQueues();
    AnswerDropped(lane, popped.dropped);
    if (popped.job) {
      next.started.emplace(Started{std::move(*popped.job), *ticket});
      next.retry_in = Clock::Duration::zero();
      break;
    }
    if (!had_head) continue;
    Clock::Duration retry_in{0};
    if (refusal == CallGate::Refusal::kNoBusTokens ||
        refusal == CallGate::Refusal::kNoApiTokens) {
      if (index == kWrites && refusal == CallGate::Refusal::kNoBusTokens) {
        bucket_ran_dry_.store(true, std::memory_order_relaxed);
        api_reserve = head.calls;
      }
      retry_in =
          gate_.TimeUntilAffordable(head, index == kReads ? api_reserve : 0);
    } else if (refusal == CallGate::Refusal::kBreaker) {
      retry_in = std::max<Clock::Duration>(breaker_.TimeUntilNextProbe(),
                                           std::chrono::milliseconds(1));
    }
    if (next.retry_in == Clock::Duration::zero() || retry_in < next.retry_in) {
      next.retry_in = retry_in;
    }
    // The head write waits for API tokens (or the breaker): a read must not
    // take them first.
    if (index == kWrites && refusal != CallGate::Refusal::kNoBusTokens) break;
  }
  PublishDepth();
  return next;
}

void FlowControl::Run(Started& started) {
  Job& job = started.job;
  metrics_->queue_wait().Observe(ToSeconds(clock_->Now() - job.admitted));
  const CallGate::Outcome outcome = gate_.Run(job, started.ticket);
  if (outcome.calls > 0) {
    lanes_[LaneOf(job.cost)].queue.ObserveLatency(outcome.total);
  }
}

void FlowControl::Tick() {
  for (const LaneIndex index : {kWrites, kReads}) {
    Lane& lane = lanes_[index];
    uint64_t admitted;
    Cost cost;
    {
      absl::MutexLock lock(&mu_);
      admitted = lane.admitted;
      cost = lane.admitted_cost;
    }
    if (admitted > lane.admitted_at_tick) {
      const double jobs = static_cast<double>(admitted - lane.admitted_at_tick);
      lane.calls_per_job = (cost.calls - lane.cost_at_tick.calls) / jobs;
      lane.events_per_job =
          (cost.bus_events - lane.cost_at_tick.bus_events) / jobs;
      lane.cost_measured.store(true, std::memory_order_release);
    }
    lane.admitted_at_tick = admitted;
    lane.cost_at_tick = cost;
  }
  // Demand on the bus budget: writes queued, or the head write found the bus
  // bucket dry. Queued reads are no reason to raise the bus rate.
  const bool demand =
      lanes_[kWrites].queue.size() > 0 ||
      bucket_ran_dry_.exchange(false, std::memory_order_relaxed);
  const double share = rate_share_.load(std::memory_order_relaxed);
  const double rate = controller_.Tick(demand) * share;
  bus_bucket_.SetRate(rate);
  const double api_rate =
      api_calls_per_s_.load(std::memory_order_relaxed) * share;
  api_bucket_.SetRate(api_rate);
  breaker_.Tick();
  SyncBreakerToQueues();
  for (Lane& lane : lanes_) {
    // The pace the buckets allow, in jobs/s: the tighter of the two budgets
    // for the jobs being admitted. The drain prior until drain is measured,
    // and what Sweep() predicts queued jobs against.
    if (lane.cost_measured.load(std::memory_order_acquire)) {
      lane.queue.SetDrainPrior(Pace(controller_.PacingRate() * share, api_rate,
                                    lane.events_per_job, lane.calls_per_job));
    }
    auto dropped = lane.queue.Sweep(options_.adjust_interval);
    AnswerDropped(lane, dropped);
  }
  metrics_->rate_limit().Set(rate);
  metrics_->drain_estimate().Set(controller_.snapshot().drain_estimate);
  metrics_->resident_memory().Set(static_cast<double>(memory_.Resident()));
  PublishDepth();
}

void FlowControl::SetRateShare(double fraction) {
  rate_share_.store(std::clamp(fraction, 1e-3, 1.0), std::memory_order_relaxed);
  controller_.SetShare(fraction);
}

void FlowControl::Reconfigure(const FlowOptions& options) {
  memory_.SetBound(options.memory.max_resident_mb);
  metrics_->resident_memory_limit().Set(
      static_cast<double>(memory_.bound_bytes()));
  for (Lane& lane : lanes_) lane.queue.SetCapacity(options.queue.capacity);
  metrics_->queue_capacity().Set(
      static_cast<double>(2 * options.queue.capacity));
  breaker_.SetOptions(options.breaker);
  controller_.SetOptions(options.rate);
  bus_bucket_.SetBurst(options.rate.burst);
  api_bucket_.SetBurst(options.rate.burst);
  api_calls_per_s_.store(options.api_calls_per_s, std::memory_order_relaxed);
  // The new limits apply now, not at the next tick.
  const double share = rate_share_.load(std::memory_order_relaxed);
  bus_bucket_.SetRate(controller_.rate() * share);
  api_bucket_.SetRate(options.api_calls_per_s * share);
  metrics_->rate_limit().Set(controller_.rate() * share);
}

void FlowControl::StopAdmitting() {
  for (Lane& lane : lanes_) lane.queue.Shutdown();
}

void FlowControl::AnswerAllQueued() {
  for (Lane& lane : lanes_) {
    for (Job& job : lane.queue.DrainAll()) {
      metrics_->RecordDrop(metrics::DropReason::kShutdown);
      job.answer(absl::UnavailableError(
                     "rejected: shutting_down; the gateway is stopping"),
                 flow::RejectReasonName(flow::RejectReason::kShuttingDown),
                 options_.queue.min_retry_pushback);
    }
  }
  metrics_->queue_depth().Set(0);
}

}  // namespace bg::dispatch
