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
                         FlowOptions options)
    : clock_(clock),
      metrics_(metrics),
      options_(std::move(options)),
      queue_(clock, options_.queue),
      bus_bucket_(clock, options_.rate.initial, options_.rate.burst),
      api_bucket_(clock, options_.api_calls_per_s, options_.rate.burst),
      breaker_(clock, options_.breaker),
      controller_(clock, options_.rate),
      retry_budget_(clock, options_.retry),
      gate_(clock,
            CallGate::Parts{&bus_bucket_, &api_bucket_, &breaker_, &controller_,
                            &retry_budget_, metrics},
            options_.retry) {
  bus_bucket_.SetRate(controller_.rate());
  metrics_->queue_capacity().Set(static_cast<double>(options_.queue.capacity));
  metrics_->rate_limit().Set(controller_.rate());
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
  const Cost cost = job.cost;
  if (!cost_measured_.load(std::memory_order_acquire)) {
    queue_.SetDrainPrior(Pace(bus_bucket_.rate(), api_bucket_.rate(),
                              cost.bus_events, cost.calls));
  }
  flow::Admission admission = queue_.Admit(std::move(job));
  if (!admission.admitted) {
    Reject(job, admission);  // Admit() moves from `job` only when it admits it.
    return false;
  }
  metrics_->admissions().Increment();
  absl::MutexLock lock(&mu_);
  ++admitted_;
  admitted_cost_ += cost;
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

void FlowControl::AnswerDropped(flow::AdmissionQueue<Job>::Dropped& dropped) {
  if (!dropped.expired.empty()) {
    // Shed: these can no longer finish before their deadline even if started
    // now. Telling the caller so (with a pushback) beats letting it time out.
    const Clock::Duration pushback =
        std::clamp(queue_.PredictedWait(), options_.queue.min_retry_pushback,
                   options_.queue.max_retry_pushback);
    for (Job& job : dropped.expired) {
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

void FlowControl::SyncBreakerToQueue() {
  if (!breaker_changed_.exchange(false, std::memory_order_acq_rel)) return;
  const bool open = breaker_.state() == flow::CircuitBreaker::State::kOpen;
  queue_.SetBreakerOpen(open, clock_->Now() + breaker_.TimeUntilNextProbe());
}

FlowControl::Next FlowControl::TryStartNext() {
  Next next;
  std::optional<CallGate::Ticket> ticket;
  CallGate::Refusal refusal = CallGate::Refusal::kNone;
  Cost head;
  auto popped = queue_.Pop([&](const Job& job) {
    head = job.cost;
    ticket = gate_.TryTake(job.cost, &refusal);
    return ticket.has_value();
  });
  SyncBreakerToQueue();
  AnswerDropped(popped.dropped);
  metrics_->queue_depth().Set(static_cast<double>(queue_.size()));
  if (popped.job) {
    next.started.emplace(Started{std::move(*popped.job), *ticket});
  } else if (refusal == CallGate::Refusal::kNoTokens) {
    bucket_ran_dry_.store(true, std::memory_order_relaxed);
    next.retry_in = gate_.TimeUntilAffordable(head);
  } else if (refusal == CallGate::Refusal::kBreaker) {
    next.retry_in = std::max<Clock::Duration>(breaker_.TimeUntilNextProbe(),
                                              std::chrono::milliseconds(1));
  }
  return next;
}

void FlowControl::Run(Started& started) {
  Job& job = started.job;
  metrics_->queue_wait().Observe(ToSeconds(clock_->Now() - job.admitted));
  const CallGate::Outcome outcome = gate_.Run(job, started.ticket);
  if (outcome.calls > 0) queue_.ObserveLatency(outcome.total);
}

void FlowControl::Tick() {
  uint64_t admitted;
  Cost cost;
  {
    absl::MutexLock lock(&mu_);
    admitted = admitted_;
    cost = admitted_cost_;
  }
  if (admitted > admitted_at_tick_) {
    const double jobs = static_cast<double>(admitted - admitted_at_tick_);
    calls_per_job_ = (cost.calls - cost_at_tick_.calls) / jobs;
    events_per_job_ = (cost.bus_events - cost_at_tick_.bus_events) / jobs;
    cost_measured_.store(true, std::memory_order_release);
  }
  admitted_at_tick_ = admitted;
  cost_at_tick_ = cost;
  const bool demand =
      queue_.size() > 0 ||
      bucket_ran_dry_.exchange(false, std::memory_order_relaxed);
  const double rate =
      controller_.Tick(demand) * rate_share_.load(std::memory_order_relaxed);
  bus_bucket_.SetRate(rate);
  const double api_rate =
      options_.api_calls_per_s * rate_share_.load(std::memory_order_relaxed);
  api_bucket_.SetRate(api_rate);
  breaker_.Tick();
  SyncBreakerToQueue();
  // The pace the buckets allow, in jobs/s: the tighter of the two budgets for
  // the jobs being admitted. The drain prior until drain is measured, and what
  // Sweep() predicts queued jobs against.
  if (cost_measured_.load(std::memory_order_acquire)) {
    queue_.SetDrainPrior(Pace(rate, api_rate, events_per_job_, calls_per_job_));
  }
  auto dropped = queue_.Sweep(options_.adjust_interval);
  AnswerDropped(dropped);
  metrics_->rate_limit().Set(rate);
  metrics_->drain_estimate().Set(controller_.snapshot().drain_estimate);
  metrics_->queue_depth().Set(static_cast<double>(queue_.size()));
}

void FlowControl::SetRateShare(double fraction) {
  rate_share_.store(std::clamp(fraction, 1e-3, 1.0), std::memory_order_relaxed);
  controller_.SetShare(fraction);
}

void FlowControl::StopAdmitting() { queue_.Shutdown(); }

void FlowControl::AnswerAllQueued() {
  for (Job& job : queue_.DrainAll()) {
    metrics_->RecordDrop(metrics::DropReason::kShutdown);
    job.answer(absl::UnavailableError(
                   "rejected: shutting_down; the gateway is stopping"),
               flow::RejectReasonName(flow::RejectReason::kShuttingDown),
               options_.queue.min_retry_pushback);
  }
  metrics_->queue_depth().Set(0);
}

}  // namespace bg::dispatch
