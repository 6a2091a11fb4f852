#include "durable/operation_waiter.h"

#include <algorithm>
#include <utility>

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
      reader_([this] { ReaderLoop(); }),
      thread_([this] { Loop(); }) {}

OperationWaiter::~OperationWaiter() { Shutdown(); }

void OperationWaiter::Wait(int64_t id, Clock::TimePoint wait_until,
                           std::function<bool()> cancelled, Done done,
                           std::optional<Clock::TimePoint> answer_by) {
  {
    absl::MutexLock lock(&mu_);
    if (!stopping_ && static_cast<int>(waiters_.size()) < max_waiters_) {
      Waiter w{
          id, wait_until,
          std::max(wait_until, answer_by.value_or(wait_until + kReadGrace)),
          std::move(cancelled), std::move(done)};
      w.first_read = reads_started_ + 1;
      waiters_.push_back(std::move(w));
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
    reader_cv_.Signal();
  }
  thread_.join();
  reader_.join();  // after the read in flight, if any
  std::vector<Waiter> left;
  {
    absl::MutexLock lock(&mu_);
    left.swap(waiters_);
  }
  for (Waiter& w : left)
    w.done(absl::UnavailableError("rejected: shutting_down"));
}

void OperationWaiter::ReaderLoop() {
  PgSession session(clock_, session_options_);
  OperationStore store(&session);
  constexpr size_t kChunk = 1000;
  for (;;) {
    std::vector<int64_t> ids;
    Read read;
    {
      absl::MutexLock lock(&mu_);
      while (!stopping_ && !asked_.has_value()) reader_cv_.Wait(&mu_);
      if (stopping_) return;
      ids = std::move(*asked_);
      asked_.reset();
      read.number = reads_started_;
    }
    read.status =
        ready_() ? absl::OkStatus()
                 : absl::UnavailableError("database schema is not ready yet");
    for (size_t i = 0; read.status.ok() && i < ids.size(); i += kChunk) {
      std::vector<int64_t> chunk(
          ids.begin() + i, ids.begin() + std::min(ids.size(), i + kChunk));
      auto got = store.GetMany(chunk);
      if (!got.ok()) {
        read.status = got.status();
        break;
      }
      for (OperationRecord& op : *got) read.found[op.id] = std::move(op);
    }
    absl::MutexLock lock(&mu_);
    done_read_ = std::move(read);
    in_flight_ = false;
    cv_.Signal();
  }
}

void OperationWaiter::Answer(std::vector<Waiter>& waiters,
                             const std::optional<Read>& read,
                             Clock::TimePoint now) {
  std::vector<Waiter> keep;
  for (Waiter& w : waiters) {
    if (w.cancelled && w.cancelled()) {
      w.done(absl::CancelledError("caller cancelled"));
      continue;
    }
    if (!read.has_value() || read->number < w.first_read) {
      // No read has come back for it yet.
      if (now >= w.answer_by) {
        w.done(absl::UnavailableError(
            "database_unavailable: the database did not answer by the wait "
            "deadline"));
      } else {
        keep.push_back(std::move(w));
      }
      continue;
    }
    if (!read->status.ok()) {
      if (now >= w.wait_until) {
        w.done(absl::UnavailableError(
            absl::StrCat("database_unavailable: cannot read the operation: ",
                         read->status.message())));
      } else {
        keep.push_back(std::move(w));
      }
      continue;
    }
    auto it = read->found.find(w.id);
    if (it == read->found.end()) {
      w.done(absl::NotFoundError(
          absl::StrCat("operation_id: no operation ", w.id,
                       " (unknown, or deleted after retention)")));
    } else if (it->second.finished() || now >= w.wait_until) {
      w.done(it->second);
    } else {
      keep.push_back(std::move(w));
    }
  }
  waiters.swap(keep);
}

void OperationWaiter::Loop() {
  Clock::TimePoint next_round = clock_->Now();
  bool read_wanted = false;
  for (;;) {
    std::vector<Waiter> round;
    std::optional<Read> read;
    {
      absl::MutexLock lock(&mu_);
      for (;;) {
        if (stopping_) return;
        if (poke_ || done_read_.has_value()) break;
        const Clock::TimePoint now = clock_->Now();
        // Far enough to mean "until poked" (a read in flight pokes back).
        Clock::TimePoint wake = now + std::chrono::hours(1);
        if (!waiters_.empty() && !in_flight_) wake = next_round;
        for (const Waiter& w : waiters_) {
          wake = std::min(wake, w.answer_by);
          if (!w.final_read_asked) wake = std::min(wake, w.wait_until);
        }
        if (now >= wake) break;
        cv_.WaitWithTimeout(
            &mu_, absl::FromChrono(std::chrono::nanoseconds(wake - now)));
      }
      read_wanted = read_wanted || poke_;
      poke_ = false;
      read = std::move(done_read_);
      done_read_.reset();
      round.swap(waiters_);
    }
    const Clock::TimePoint now = clock_->Now();
    Answer(round, read, now);
    absl::MutexLock lock(&mu_);
    for (Waiter& w : waiters_) round.push_back(std::move(w));
    waiters_.swap(round);
    if (waiters_.empty()) {
      read_wanted = false;
      continue;
    }
    if (now >= next_round) read_wanted = true;
    for (Waiter& w : waiters_) {
      // Past its wait_until: its final answer comes from a read started now.
      if (!w.final_read_asked && now >= w.wait_until) {
        w.final_read_asked = true;
        w.first_read = reads_started_ + 1;
        read_wanted = true;
      }
      // One that arrived during the read in flight waits for the next one.
      if (w.first_read > reads_started_) read_wanted = true;
    }
    if (!read_wanted || in_flight_) continue;
    std::vector<int64_t> ids;
    for (const Waiter& w : waiters_) ids.push_back(w.id);
    std::sort(ids.begin(), ids.end());
    ids.erase(std::unique(ids.begin(), ids.end()), ids.end());
    ++reads_started_;
    asked_ = std::move(ids);
    in_flight_ = true;
    read_wanted = false;
    next_round = now + poll_interval_;
    reader_cv_.Signal();
  }
}

}  // namespace bg::durable
