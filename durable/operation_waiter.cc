#include "durable/operation_waiter.h"

#include <algorithm>
#include <unordered_map>

#include "absl/strings/str_cat.h"
#include "absl/time/time.h"

namespace bg::durable {

OperationWaiter::OperationWaiter(Clock* clock, PgSessionOptions session,
                                 Clock::Duration poll_interval, int max_waiters,
                                 std::function<bool()> ready)
    : clock_(clock),
      session_options_(std::move(session)),
      poll_interval_(poll_interval),
      max_waiters_(max_waiters),
      ready_(std::move(ready)),
      thread_([this] { Loop(); }) {}

OperationWaiter::~OperationWaiter() { Shutdown(); }

void OperationWaiter::Wait(int64_t id, Clock::TimePoint wait_until,
                           std::function<bool()> cancelled, Done done) {
  {
    absl::MutexLock lock(&mu_);
    if (!stopping_ && static_cast<int>(waiters_.size()) < max_waiters_) {
      waiters_.push_back(
          Waiter{id, wait_until, std::move(cancelled), std::move(done)});
      poke_ = true;
      cv_.Signal();
      return;
    }
  }
  done(absl::ResourceExhaustedError(
      "rejected: too many GetOperation calls waiting"));
}

void OperationWaiter::Notify() {
  absl::MutexLock lock(&mu_);
  poke_ = true;
  cv_.Signal();
}

void OperationWaiter::Shutdown() {
  {
    absl::MutexLock lock(&mu_);
    if (stopping_) return;
    stopping_ = true;
    cv_.Signal();
  }
  thread_.join();
  std::vector<Waiter> left;
  {
    absl::MutexLock lock(&mu_);
    left.swap(waiters_);
  }
  for (Waiter& w : left)
    w.done(absl::UnavailableError("rejected: shutting_down"));
}

void OperationWaiter::Loop() {
  PgSession session(clock_, session_options_);
  OperationStore store(&session);
  constexpr size_t kChunk = 1000;
  for (;;) {
    std::vector<Waiter> round;
    {
      absl::MutexLock lock(&mu_);
      Clock::TimePoint wake = clock_->Now() + poll_interval_;
      for (const Waiter& w : waiters_) wake = std::min(wake, w.wait_until);
      while (!stopping_ && !poke_ && clock_->Now() < wake) {
        cv_.WaitWithTimeout(
            &mu_,
            absl::FromChrono(std::chrono::nanoseconds(wake - clock_->Now())));
      }
      if (stopping_) return;
      poke_ = false;
      round.swap(waiters_);
    }
    if (round.empty()) continue;
    std::vector<int64_t> ids;
    for (const Waiter& w : round) ids.push_back(w.id);
    std::sort(ids.begin(), ids.end());
    ids.erase(std::unique(ids.begin(), ids.end()), ids.end());
    std::unordered_map<int64_t, OperationRecord> found;
    absl::Status read =
        ready_() ? absl::OkStatus()
                 : absl::UnavailableError("database schema is not ready yet");
    for (size_t i = 0; read.ok() && i < ids.size(); i += kChunk) {
      std::vector<int64_t> chunk(
          ids.begin() + i, ids.begin() + std::min(ids.size(), i + kChunk));
      auto got = store.GetMany(chunk);
      if (!got.ok()) {
        read = got.status();
        break;
      }
      for (OperationRecord& op : *got) found[op.id] = std::move(op);
    }
    const Clock::TimePoint now = clock_->Now();
    std::vector<Waiter> keep;
    for (Waiter& w : round) {
      if (w.cancelled && w.cancelled()) {
        w.done(absl::CancelledError("caller cancelled"));
        continue;
      }
      if (!read.ok()) {
        if (now >= w.wait_until) {
          w.done(absl::UnavailableError(
              absl::StrCat("database_unavailable: cannot read the operation: ",
                           read.message())));
        } else {
          keep.push_back(std::move(w));
        }
        continue;
      }
      auto it = found.find(w.id);
      if (it == found.end()) {
        w.done(absl::NotFoundError(
            absl::StrCat("operation_id: no operation ", w.id,
                         " (unknown, or deleted after retention)")));
      } else if (it->second.finished() || now >= w.wait_until) {
        w.done(it->second);
      } else {
        keep.push_back(std::move(w));
      }
    }
    absl::MutexLock lock(&mu_);
    for (Waiter& w : keep) waiters_.push_back(std::move(w));
  }
}

}  // namespace bg::durable
