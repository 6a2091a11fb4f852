#include "gateway/dispatcher.h"

#include <utility>

#include "absl/strings/str_cat.h"

namespace bg::gateway {

// The per-job view a running job gets of the dispatcher.
class Dispatcher::Calls final : public KillBillCalls {
 public:
  Calls(Dispatcher* d, const Job& job) : d_(d), deadline_(job.deadline) {}

  absl::Status Admit(KillBillEndpoint endpoint) override {
    if (d_->clock_->Now() >= deadline_) {
      return absl::DeadlineExceededError("deadline passed before the Kill Bill call");
    }
    return absl::OkStatus();
  }
  void Record(KillBillEndpoint endpoint, const absl::Status& status,
              Clock::Duration latency) override {
    d_->metrics_->RecordKillBillCall(endpoint, status.code(), ToSeconds(latency));
  }
  bool MayRetry(int attempt, Clock::Duration* backoff) override { return false; }
  Clock::TimePoint deadline() const override { return deadline_; }
  Clock* clock() const override { return d_->clock_; }

 private:
  Dispatcher* const d_;
  const Clock::TimePoint deadline_;
};

Dispatcher::Dispatcher(Clock* clock, GatewayMetrics* metrics, DispatcherOptions options)
    : clock_(clock), metrics_(metrics), options_(options) {
  metrics_->queue_capacity().Set(options_.queue_capacity);
  for (int i = 0; i < options_.max_in_flight; ++i) workers_.emplace_back([this] { WorkerLoop(); });
}

Dispatcher::~Dispatcher() { Shutdown(Clock::Duration::zero()); }

void Dispatcher::Submit(Job job) {
  job.admitted = clock_->Now();
  const char* reason = nullptr;
  {
    absl::MutexLock lock(&mu_);
    if (!accepting_) {
      reason = RejectReasonName(RejectReason::kShuttingDown);
      metrics_->RecordRejection(RejectReason::kShuttingDown);
    } else if (static_cast<int>(queue_.size()) >= options_.queue_capacity) {
      reason = RejectReasonName(RejectReason::kQueueFull);
      metrics_->RecordRejection(RejectReason::kQueueFull);
    } else {
      queue_.push_back(std::move(job));
      metrics_->admissions().Increment();
      metrics_->queue_depth().Set(queue_.size());
      return;
    }
  }
  job.answer(absl::UnavailableError(absl::StrCat("rejected: ", reason)), reason,
             std::chrono::seconds(1));
}

void Dispatcher::Drop(Job& job, DropReason reason) {
  metrics_->RecordDrop(reason);
  switch (reason) {
    case DropReason::kDeadline:
      job.answer(absl::DeadlineExceededError("deadline passed while queued"), nullptr, {});
      break;
    case DropReason::kCancelled:
      job.answer(absl::CancelledError("caller cancelled while queued"), nullptr, {});
      break;
    case DropReason::kShutdown:
      job.answer(absl::UnavailableError("gateway shutting down"),
                 RejectReasonName(RejectReason::kShuttingDown), std::chrono::seconds(1));
      break;
  }
}

void Dispatcher::WorkerLoop() {
  for (;;) {
    Job job;
    {
      absl::MutexLock lock(&mu_);
      mu_.Await(absl::Condition(
          +[](Dispatcher* d) ABSL_EXCLUSIVE_LOCKS_REQUIRED(d->mu_) {
            return d->stopping_ || !d->queue_.empty();
          },
          this));
      if (queue_.empty()) return;  // stopping_ and nothing left.
      job = std::move(queue_.front());
      queue_.pop_front();
      metrics_->queue_depth().Set(queue_.size());
    }
    const Clock::TimePoint now = clock_->Now();
    if (job.cancelled && job.cancelled()) {
      Drop(job, DropReason::kCancelled);
      continue;
    }
    if (now >= job.deadline) {
      Drop(job, DropReason::kDeadline);
      continue;
    }
    metrics_->queue_wait().Observe(ToSeconds(now - job.admitted));
    metrics_->in_flight().Increment();
    Calls calls(this, job);
    job.run(calls);
    metrics_->in_flight().Decrement();
  }
}

void Dispatcher::Shutdown(Clock::Duration grace) {
  const Clock::TimePoint give_up = clock_->Now() + grace;
  std::deque<Job> leftover;
  {
    absl::MutexLock lock(&mu_);
    if (workers_.empty()) return;
    accepting_ = false;
    // Workers keep draining meanwhile; wait in small steps so a fake clock cannot wedge us.
    while (!queue_.empty() && clock_->Now() < give_up) {
      mu_.AwaitWithTimeout(absl::Condition(
                               +[](Dispatcher* d) ABSL_EXCLUSIVE_LOCKS_REQUIRED(d->mu_) {
                                 return d->queue_.empty();
                               },
                               this),
                           absl::Milliseconds(50));
    }
    leftover.swap(queue_);
    stopping_ = true;
    metrics_->queue_depth().Set(0);
  }
  for (Job& job : leftover) Drop(job, DropReason::kShutdown);
  for (std::thread& t : workers_) t.join();
  workers_.clear();
}

}  // namespace bg::gateway
