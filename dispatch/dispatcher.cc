#include "dispatch/dispatcher.h"

#include <algorithm>
#include <utility>

#include "absl/time/time.h"

namespace bg::dispatch {

Dispatcher::Dispatcher(Clock* clock, FlowControl* flow,
                       DispatcherOptions options)
    : clock_(clock), flow_(flow), options_(options) {
  scheduler_ = std::thread([this] { SchedulerLoop(); });
  for (int i = 0; i < options_.max_in_flight; ++i) {
    workers_.emplace_back([this] { WorkerLoop(); });
  }
}

Dispatcher::~Dispatcher() { Shutdown(Clock::Duration::zero(), {}); }

void Dispatcher::Submit(Job job) {
  if (!flow_->Submit(std::move(job))) return;
  absl::MutexLock lock(&mu_);
  ++submitted_;
  cv_.SignalAll();
}

void Dispatcher::WaitFor(Clock::Duration d) {
  if (d <= Clock::Duration::zero()) return;
  cv_.WaitWithTimeout(&mu_, absl::FromChrono(std::chrono::nanoseconds(d)));
}

void Dispatcher::SchedulerLoop() {
  const Clock::Duration tick_every = flow_->options().adjust_interval;
  Clock::TimePoint next_tick = clock_->Now();
  for (;;) {
    uint64_t seen;
    {
      absl::MutexLock lock(&mu_);
      while (!stop_scheduler_ && in_flight_ >= options_.max_in_flight &&
             clock_->Now() < next_tick) {
        WaitFor(next_tick - clock_->Now());
      }
      if (stop_scheduler_) return;
      seen = submitted_;
    }
    if (clock_->Now() >= next_tick) {
      flow_->Tick();
      next_tick = clock_->Now() + tick_every;
    }
    {
      absl::MutexLock lock(&mu_);
      if (in_flight_ >= options_.max_in_flight) continue;
    }
    FlowControl::Next next = flow_->TryStartNext();
    absl::MutexLock lock(&mu_);
    if (next.started) {
      ++in_flight_;
      ready_.push_back(std::move(*next.started));
      cv_.SignalAll();
      continue;
    }
    if (submitted_ != seen) continue;  // A job arrived while we looked.
    Clock::Duration wait = next_tick - clock_->Now();
    if (next.retry_in > Clock::Duration::zero()) {
      wait = std::min(wait, next.retry_in);
    }
    WaitFor(wait);
  }
}

void Dispatcher::WorkerLoop() {
  for (;;) {
    FlowControl::Started started;
    {
      absl::MutexLock lock(&mu_);
      while (ready_.empty() && !stop_workers_) cv_.Wait(&mu_);
      if (ready_.empty()) return;  // Stopping and nothing left to run.
      started = std::move(ready_.front());
      ready_.pop_front();
    }
    flow_->Run(started);
    absl::MutexLock lock(&mu_);
    --in_flight_;
    cv_.SignalAll();
  }
}

void Dispatcher::Shutdown(Clock::Duration grace,
                          const std::function<void()>& cut_calls) {
  if (shut_down_) return;
  shut_down_ = true;
  flow_->StopAdmitting();  // New calls get shutting_down from here on.
  const Clock::TimePoint give_up = clock_->Now() + grace;
  {
    absl::MutexLock lock(&mu_);
    while (flow_->queued() > 0 && clock_->Now() < give_up) {
      WaitFor(std::min<Clock::Duration>(give_up - clock_->Now(),
                                        std::chrono::milliseconds(50)));
    }
    stop_scheduler_ = true;
    cv_.SignalAll();
  }
  scheduler_.join();
  // The scheduler is gone, so nothing can be started any more: answer what is
  // still queued, then let the workers finish what was handed to them.
  flow_->AnswerAllQueued();
  {
    absl::MutexLock lock(&mu_);
    const Clock::TimePoint cut_at = give_up + options_.finish_after_grace;
    while (in_flight_ > 0 && clock_->Now() < cut_at) {
      WaitFor(std::min<Clock::Duration>(cut_at - clock_->Now(),
                                        std::chrono::milliseconds(50)));
    }
    if (in_flight_ > 0) {
      // Past the grace: what still runs ends with the call it is making,
      // and that call is cut too, so shutdown is bounded whatever Kill Bill
      // does.
      flow_->CutInFlight();
      if (cut_calls) cut_calls();
    }
    stop_workers_ = true;
    cv_.SignalAll();
  }
  for (std::thread& t : workers_) t.join();
}

}  // namespace bg::dispatch
