#include "durable/submit_batcher.h"

#include <algorithm>

#include "absl/strings/cord.h"
#include "absl/strings/str_cat.h"
#include "spdlog/spdlog.h"

namespace bg::durable {

SubmitBatcher::SubmitBatcher(Clock* clock, PgSessionOptions session,
                             Options options, DurableMetrics* metrics,
                             std::function<bool()> ready)
    : clock_(clock),
      session_options_(std::move(session)),
      options_(options),
      metrics_(metrics),
      ready_(std::move(ready)) {
  for (int i = 0; i < options_.writers; ++i)
    writers_.emplace_back([this, i] { WriterLoop(i); });
}

SubmitBatcher::~SubmitBatcher() { Shutdown(); }

namespace {

absl::Status WithReason(absl::Status status, absl::string_view reason) {
  status.SetPayload(kSubmitReasonPayload, absl::Cord(reason));
  return status;
}

}  // namespace

void SubmitBatcher::Submit(Submission submission, Clock::TimePoint deadline,
                           Done done) {
  bool stopping;
  {
    absl::MutexLock lock(&mu_);
    stopping = stopping_;
    if (!stopping &&
        static_cast<int>(queue_.size()) < options_.queue_capacity) {
      queue_.push_back(
          Pending{std::move(submission), deadline, std::move(done)});
      return;
    }
  }
  if (stopping) {
    metrics_->unavailable().Increment();
    done(WithReason(absl::UnavailableError(
                        "rejected: shutting_down; the submission was not "
                        "accepted (another replica, or this one restarted, "
                        "takes it)"),
                    kReasonShuttingDown));
    return;
  }
  metrics_->overloaded().Increment();
  done(WithReason(
      absl::ResourceExhaustedError("rejected: database_overloaded; durable "
                                   "submissions are arriving faster than the "
                                   "database commits them"),
      kReasonDatabaseOverloaded));
}

void SubmitBatcher::Shutdown() {
  std::deque<Pending> left;
  {
    absl::MutexLock lock(&mu_);
    if (stopping_) return;
    stopping_ = true;
  }
  for (std::thread& t : writers_) t.join();
  {
    absl::MutexLock lock(&mu_);
    left.swap(queue_);
  }
  for (Pending& p : left) {
    p.done(WithReason(
        absl::UnavailableError(
            "rejected: shutting_down; the submission was not accepted"),
        kReasonShuttingDown));
  }
}

void SubmitBatcher::WriterLoop(int index) {
  PgSession session(clock_, session_options_);
  OperationStore store(&session);
  bool failing = false;
  for (;;) {
    std::vector<Pending> batch;
    {
      absl::MutexLock lock(&mu_);
      auto has_work = [this]() ABSL_SHARED_LOCKS_REQUIRED(mu_) {
        return stopping_ || !queue_.empty();
      };
      mu_.Await(absl::Condition(&has_work));
      if (stopping_) return;
      while (!queue_.empty() &&
             static_cast<int>(batch.size()) < options_.batch) {
        batch.push_back(std::move(queue_.front()));
        queue_.pop_front();
      }
    }
    // Whose caller has given up is not written: the answer "not accepted" is
    // then true.
    const Clock::TimePoint now = clock_->Now();
    auto late = std::stable_partition(
        batch.begin(), batch.end(),
        [now](const Pending& p) { return p.deadline > now; });
    for (auto it = late; it != batch.end(); ++it) {
      it->done(absl::DeadlineExceededError(
          "the call's deadline passed before the submission's turn to be "
          "written; it was not accepted"));
    }
    batch.erase(late, batch.end());
    if (batch.empty()) continue;
    absl::StatusOr<std::vector<OperationRecord>> written =
        absl::UnavailableError("database schema is not ready yet");
    if (ready_()) {
      std::vector<Submission> submissions;
      submissions.reserve(batch.size());
      for (Pending& p : batch) submissions.push_back(p.submission);
      const Clock::TimePoint start = clock_->Now();
      written = store.SubmitBatch(submissions);
      if (!written.ok() && absl::IsAborted(written.status())) {
        written = store.SubmitBatch(
            submissions);  // One retry for a serialization hiccup.
      }
      metrics_->submit_commit().Observe(ToSeconds(clock_->Now() - start));
      metrics_->database_up().Set(
          written.ok() || !absl::IsUnavailable(written.status()) ? 1 : 0);
    }
    if (!written.ok()) {
      const absl::Status& s = written.status();
      if (!failing) {  // Once per episode: an outage must not flood the log.
        spdlog::warn(
            "durable submit writer {}: submissions refused until the database "
            "is "
            "back: {}",
            index, std::string(s.message()));
      }
      failing = true;
      absl::Status answer;
      if (s.GetPayload(kOutcomeUnknownPayload)) {
        // Sent, then no answer: the row may be committed and would then run.
        answer = WithReason(
            absl::UnavailableError(absl::StrCat(
                "rejected: outcome_unknown; the database connection was lost "
                "after the submission was sent, so it may have been "
                "accepted: resubmit it with the same external_key (safe: "
                "idempotent) to learn its operation: ",
                s.message())),
            kReasonOutcomeUnknown);
      } else if (absl::IsUnavailable(s)) {
        answer = absl::UnavailableError(
            absl::StrCat("rejected: database_unavailable; the submission was "
                         "not accepted: ",
                         s.message()));
      } else {
        answer = absl::InternalError(
            absl::StrCat("submission not accepted: ", s.message()));
      }
      for (Pending& p : batch) {
        (absl::IsUnavailable(s) ? metrics_->unavailable()
                                : metrics_->submit_errors())
            .Increment();
        p.done(answer);
      }
      continue;
    }
    if (failing)
      spdlog::info("durable submit writer {}: accepting again", index);
    failing = false;
    for (size_t i = 0; i < batch.size(); ++i) {
      OperationRecord& op = (*written)[i];
      // A new row has updated_at == created_at and attempts == 0 and is
      // PENDING; anything else existed already. (Exactness does not matter: the
      // metric only.)
      const bool is_new = op.state == OperationState::kPending &&
                          op.attempts == 0 &&
                          op.updated_at_ms == op.created_at_ms;
      (is_new ? metrics_->accepted() : metrics_->existing()).Increment();
      batch[i].done(std::move(op));
    }
  }
}

}  // namespace bg::durable
