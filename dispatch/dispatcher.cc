#include "dispatch/dispatcher.h"

#include <algorithm>
#include <optional>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "spdlog/spdlog.h"

namespace bg::dispatch {
namespace {

// Kill Bill answers that say it is struggling (as opposed to "your request was
// wrong").
bool IsKillBillFailure(const absl::Status& s) {
  return absl::IsUnavailable(s) || absl::IsInternal(s) || absl::IsUnknown(s);
}

CircuitBreaker::Health ToBreakerHealth(
    const absl::StatusOr<killbill::HealthReport>& report,
    double growth_threshold) {
  CircuitBreaker::Health h;
  h.reachable = report.ok();
  if (!report.ok()) return h;
  for (const auto& check : report->checks) {
    if (!check.healthy &&
        !absl::EndsWith(check.name, "KillbillQueuesHealthcheck")) {
      h.healthy_except_queues = false;
    }
  }
  for (const auto& [queue, growth] : report->queue_growth)
    h.growth = std::max(h.growth, growth);
  h.queues_growing = h.growth > growth_threshold;
  return h;
}

}  // namespace

// What a running job sees of the dispatcher: tokens beyond the prepaid ones,
// retries, and the bookkeeping of every Kill Bill call it makes.
class Dispatcher::Calls final : public KillBillCalls {
 public:
  Calls(Dispatcher* d, Running& running)
      : d_(d), deadline_(running.job.deadline), prepaid_(running.prepaid) {}

  absl::Status Admit(KillBillEndpoint endpoint) override {
    if (prepaid_ > 0) {
      --prepaid_;
    } else {
      // An unforeseen call (lookup after 409, retry): wait for its token on
      // this worker, but never past the deadline.
      while (!d_->bucket_.TryAcquire(1)) {
        const Clock::Duration wait = d_->bucket_.TimeUntilAvailable(1);
        if (d_->clock_->Now() + wait >= deadline_) {
          return absl::DeadlineExceededError(
              "no Kill Bill capacity left before the call's deadline");
        }
        std::this_thread::sleep_for(wait);
      }
    }
    if (d_->clock_->Now() >= deadline_) {
      return absl::DeadlineExceededError(
          "deadline passed before the Kill Bill call");
    }
    d_->retry_budget_.RecordCall();
    return absl::OkStatus();
  }

  void Record(KillBillEndpoint endpoint, const absl::Status& status,
              Clock::Duration latency) override {
    d_->metrics_->RecordKillBillCall(endpoint, status.code(),
                                     ToSeconds(latency));
    const bool failed = IsKillBillFailure(status);
    d_->controller_.RecordOutcome(latency, failed);
    // Each account Kill Bill creates posts one event on its bus.
    if (endpoint == KillBillEndpoint::kCreateAccount && status.ok()) {
      d_->controller_.RecordCalls(
          static_cast<int>(d_->options_.rate.calls_per_bus_event));
    }
    ++calls_made_;
    failed_ = failed_ || failed;
    slowest_ = std::max(slowest_, latency);
    total_ += latency;
  }

  bool MayRetry(Clock::Duration* backoff) override {
    if (!policy_) policy_.emplace(d_->options_.retry, d_->NextRetrySeed());
    std::optional<Clock::Duration> delay = policy_->NextDelay();
    if (!delay) return false;
    if (!d_->retry_budget_.TryAcquireRetry()) {
      d_->metrics_->retries_denied().Increment();
      return false;
    }
    d_->metrics_->retries().Increment();
    *backoff = *delay;
    return true;
  }

  Clock::TimePoint deadline() const override { return deadline_; }
  Clock* clock() const override { return d_->clock_; }

  int calls_made() const { return calls_made_; }
  bool failed() const { return failed_; }
  Clock::Duration slowest() const { return slowest_; }
  Clock::Duration total() const { return total_; }

 private:
  Dispatcher* const d_;
  const Clock::TimePoint deadline_;
  int prepaid_;
  std::optional<RetryPolicy> policy_;
  int calls_made_ = 0;
  bool failed_ = false;
  Clock::Duration slowest_{0};
  Clock::Duration total_{0};
};

Dispatcher::Dispatcher(Clock* clock, GatewayMetrics* metrics,
                       DispatcherOptions options, HealthProbe health_probe)
    : clock_(clock),
      metrics_(metrics),
      options_(std::move(options)),
      health_probe_(std::move(health_probe)),
      queue_(clock, options_.queue),
      bucket_(clock, options_.rate.initial, options_.rate.burst),
      breaker_(clock, options_.breaker),
      // The bucket's rate is set at each tick: the controller's rate times this
      // replica's share of it.
      controller_(clock, options_.rate, /*bucket=*/nullptr),
      retry_budget_(clock, options_.retry) {
  metrics_->queue_capacity().Set(static_cast<double>(options_.queue.capacity));
  metrics_->rate_limit().Set(controller_.rate());
  breaker_.SetTransitionCallback([this](CircuitBreaker::State from,
                                        CircuitBreaker::State to,
                                        CircuitBreaker::Reason why) {
    // Runs on whichever thread caused the transition, possibly under the
    // queue's lock: only metrics and a flag here; the scheduler tells the
    // queue.
    metrics_->RecordBreakerTransition(static_cast<int>(to));
    breaker_changed_.store(true, std::memory_order_release);
    spdlog::warn("circuit breaker {} -> {} ({})",
                 CircuitBreaker::StateName(from), CircuitBreaker::StateName(to),
                 CircuitBreaker::ReasonName(why));
  });
  scheduler_ = std::thread([this] { SchedulerLoop(); });
  if (health_probe_) health_ = std::thread([this] { HealthLoop(); });
  for (int i = 0; i < options_.max_in_flight; ++i)
    workers_.emplace_back([this] { WorkerLoop(); });
}

Dispatcher::~Dispatcher() { Shutdown(Clock::Duration::zero()); }

uint64_t Dispatcher::NextRetrySeed() {
  absl::MutexLock lock(&mu_);
  return ++retry_seed_ * 0x9E3779B97F4A7C15ull;
}

void Dispatcher::Submit(Job job) {
  job.admitted = clock_->Now();
  const int calls = job.expected_calls;
  Admission admission = queue_.Admit(std::move(job));
  if (!admission.admitted) {
    Reject(job, admission);  // Admit() moves from `job` only when it admits it.
    return;
  }
  metrics_->admissions().Increment();
  absl::MutexLock lock(&mu_);
  ++submitted_;
  submitted_calls_ += static_cast<uint64_t>(std::max(calls, 1));
  cv_.SignalAll();
}

void Dispatcher::Reject(Job& job, const Admission& admission) {
  metrics_->RecordRejection(admission.reason);
  const char* reason = RejectReasonName(admission.reason);
  const auto pushback_ms =
      std::chrono::duration_cast<std::chrono::milliseconds>(
          admission.retry_after)
          .count();
  const std::string message =
      absl::StrCat("rejected: ", reason, "; retry in ", pushback_ms, " ms");
  const bool overloaded = admission.reason == RejectReason::kQueueFull ||
                          admission.reason == RejectReason::kDeadlineUnmeetable;
  job.answer(overloaded ? absl::ResourceExhaustedError(message)
                        : absl::UnavailableError(message),
             reason, admission.retry_after);
}

void Dispatcher::AnswerDropped(AdmissionQueue<Job>::Dropped& dropped) {
  if (!dropped.expired.empty()) {
    // Shed: these can no longer finish before their deadline even if started
    // now. Telling the caller so (with a pushback) beats letting it time out.
    const Clock::Duration pushback =
        std::clamp(queue_.PredictedWait(), options_.queue.min_retry_pushback,
                   options_.queue.max_retry_pushback);
    const auto ms =
        std::chrono::duration_cast<std::chrono::milliseconds>(pushback).count();
    for (Job& job : dropped.expired) {
      metrics_->RecordDrop(DropReason::kDeadline);
      job.answer(
          absl::ResourceExhaustedError(absl::StrCat(
              "rejected: deadline_unmeetable; shed from the queue, retry in ",
              ms, " ms")),
          RejectReasonName(RejectReason::kDeadlineUnmeetable), pushback);
    }
  }
  for (Job& job : dropped.cancelled) {
    metrics_->RecordDrop(DropReason::kCancelled);
    job.answer(absl::CancelledError("caller cancelled while queued"), nullptr,
               {});
  }
}

void Dispatcher::SyncBreakerToQueue() {
  if (!breaker_changed_.exchange(false, std::memory_order_acq_rel)) return;
  const bool open = breaker_.state() == CircuitBreaker::State::kOpen;
  queue_.SetBreakerOpen(open, clock_->Now() + breaker_.TimeUntilNextProbe());
}

void Dispatcher::Tick() {
  bool ran_dry;
  uint64_t jobs, calls;
  {
    absl::MutexLock lock(&mu_);
    ran_dry = std::exchange(bucket_ran_dry_, false);
    jobs = submitted_;
    calls = submitted_calls_;
  }
  if (jobs > jobs_at_tick_) {
    calls_per_job_ = static_cast<double>(calls - calls_at_tick_) /
                     static_cast<double>(jobs - jobs_at_tick_);
  }
  jobs_at_tick_ = jobs;
  calls_at_tick_ = calls;
  const double rate = controller_.Tick(queue_.size() > 0 || ran_dry) *
                      rate_share_.load(std::memory_order_relaxed);
  bucket_.SetRate(rate);
  breaker_.Tick();
  SyncBreakerToQueue();
  // The pace the bucket allows, in jobs/s: the drain prior until drain is
  // measured, and what Sweep() predicts queued jobs against.
  queue_.SetDrainPrior(rate / calls_per_job_);
  auto dropped = queue_.Sweep(options_.adjust_interval);
  AnswerDropped(dropped);
  metrics_->rate_limit().Set(rate);
  metrics_->drain_estimate().Set(controller_.snapshot().drain_estimate);
  metrics_->queue_depth().Set(static_cast<double>(queue_.size()));
}

void Dispatcher::SetRateShare(double fraction) {
  rate_share_.store(std::clamp(fraction, 1e-3, 1.0), std::memory_order_relaxed);
}

void Dispatcher::WaitFor(Clock::Duration d) {
  if (d <= Clock::Duration::zero()) return;
  cv_.WaitWithTimeout(&mu_, absl::FromChrono(std::chrono::nanoseconds(d)));
}

void Dispatcher::SchedulerLoop() {
  Clock::TimePoint next_tick = clock_->Now();
  for (;;) {
    uint64_t seen;
    {
      absl::MutexLock lock(&mu_);
      while (!stopping_ && in_flight_ >= options_.max_in_flight &&
             clock_->Now() < next_tick) {
        WaitFor(next_tick - clock_->Now());
      }
      if (stopping_) return;
      seen = submitted_;
    }
    if (clock_->Now() >= next_tick) {
      Tick();
      next_tick = clock_->Now() + options_.adjust_interval;
    }
    {
      absl::MutexLock lock(&mu_);
      if (in_flight_ >= options_.max_in_flight) continue;
    }

    Running running;
    bool starved = false;
    double cost = 0;
    auto popped = queue_.Pop([&](const Job& job) {
      cost = std::min<double>(job.expected_calls, bucket_.burst());
      if (!bucket_.TryAcquire(cost)) {
        starved = true;
        return false;
      }
      running.permit = breaker_.Allow();
      if (!running.permit.allowed) {
        bucket_.Refund(cost);
        return false;
      }
      return true;
    });
    SyncBreakerToQueue();
    AnswerDropped(popped.dropped);
    metrics_->queue_depth().Set(static_cast<double>(queue_.size()));

    absl::MutexLock lock(&mu_);
    if (popped.job) {
      running.job = std::move(*popped.job);
      running.prepaid = static_cast<int>(cost);
      ++in_flight_;
      ready_.push_back(std::move(running));
      cv_.SignalAll();
      continue;
    }
    if (starved) bucket_ran_dry_ = true;
    if (submitted_ != seen)
      continue;  // A job arrived while we looked: look again.
    Clock::Duration wait = next_tick - clock_->Now();
    if (starved) {
      wait = std::min(
          wait, bucket_.TimeUntilAvailable(std::min(2.0, bucket_.burst())));
    } else if (queue_.size() > 0) {
      wait = std::min(wait,
                      std::max<Clock::Duration>(breaker_.TimeUntilNextProbe(),
                                                std::chrono::milliseconds(1)));
    }
    WaitFor(wait);
  }
}

void Dispatcher::WorkerLoop() {
  for (;;) {
    Running running;
    {
      absl::MutexLock lock(&mu_);
      while (ready_.empty() && !stopping_) cv_.Wait(&mu_);
      if (ready_.empty()) return;  // Stopping and nothing left to run.
      running = std::move(ready_.front());
      ready_.pop_front();
    }
    RunJob(running);
    absl::MutexLock lock(&mu_);
    --in_flight_;
    cv_.SignalAll();
  }
}

void Dispatcher::RunJob(Running& running) {
  Job& job = running.job;
  metrics_->queue_wait().Observe(ToSeconds(clock_->Now() - job.admitted));
  metrics_->in_flight().Increment();
  Calls calls(this, running);
  job.run(calls);
  metrics_->in_flight().Decrement();
  if (calls.calls_made() > 0) {
    if (calls.failed()) {
      breaker_.OnFailure(running.permit, calls.slowest());
    } else {
      breaker_.OnSuccess(running.permit, calls.slowest());
    }
    queue_.ObserveLatency(calls.total());
  }
}

void Dispatcher::HealthLoop() {
  absl::MutexLock lock(&mu_);
  while (!stopping_) {
    mu_.Unlock();
    const absl::StatusOr<killbill::HealthReport> report = health_probe_();
    const CircuitBreaker::Health health =
        ToBreakerHealth(report, options_.queue_growth_threshold);
    breaker_.OnHealth(health);
    controller_.OnHealth(health);
    if (spdlog::should_log(spdlog::level::debug)) {
      const RateController::Snapshot c = controller_.snapshot();
      spdlog::debug(
          "health poll: growth {:.2f}, bus events since last poll {:.1f}; "
          "rate {:.2f} calls/s, drain estimate {:.2f} events/s{}, backlog "
          "estimate {:.1f}{}",
          health.queues_growing ? health.growth : 0.0, c.last_poll_events,
          c.rate, c.drain_estimate, c.drain_known ? "" : " (lower bound)",
          c.backlog_estimate, c.probing ? ", probing" : "");
    }
    metrics_->killbill_healthy().Set(report.ok() && report->healthy ? 1 : 0);
    if (report.ok()) {
      for (const auto& [queue, growing] : report->queue_growing) {
        auto it = report->queue_growth.find(queue);
        metrics_->SetQueueGrowth(
            queue, it == report->queue_growth.end() ? 0 : it->second);
      }
    } else {
      spdlog::warn("Kill Bill healthcheck failed: {}",
                   std::string(report.status().message()));
    }
    mu_.Lock();
    const Clock::TimePoint next = clock_->Now() + options_.health_poll_interval;
    while (!stopping_ && clock_->Now() < next) WaitFor(next - clock_->Now());
  }
}

void Dispatcher::Shutdown(Clock::Duration grace) {
  if (shut_down_) return;
  shut_down_ = true;
  queue_.Shutdown();  // New calls are refused with shutting_down from here on.
  const Clock::TimePoint give_up = clock_->Now() + grace;
  {
    absl::MutexLock lock(&mu_);
    while (queue_.size() > 0 && clock_->Now() < give_up) {
      WaitFor(std::min<Clock::Duration>(give_up - clock_->Now(),
                                        std::chrono::milliseconds(50)));
    }
  }
  for (Job& job : queue_.DrainAll()) {
    metrics_->RecordDrop(DropReason::kShutdown);
    job.answer(absl::UnavailableError(
                   "rejected: shutting_down; the gateway is stopping"),
               RejectReasonName(RejectReason::kShuttingDown),
               options_.queue.min_retry_pushback);
  }
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
    cv_.SignalAll();
  }
  scheduler_.join();
  if (health_.joinable()) health_.join();
  for (std::thread& t : workers_)
    t.join();  // Workers finish what was handed to them.
  metrics_->queue_depth().Set(0);
}

}  // namespace bg::dispatch
