#include "durable/durable_worker.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "spdlog/spdlog.h"

namespace bg::durable {

namespace v1 = billing::v1;

namespace {
Outcome MakeOutcome(int64_t id, int attempts, Outcome::Kind kind) {
  Outcome o;
  o.id = id;
  o.attempts = attempts;
  o.kind = kind;
  return o;
}
}  // namespace

bool IsRetryable(const absl::Status& status) {
  switch (status.code()) {
    case absl::StatusCode::kUnavailable:        // Kill Bill down, breaker open,
                                                // shutting down
    case absl::StatusCode::kDeadlineExceeded:   // no capacity before the
                                                // attempt's deadline
    case absl::StatusCode::kResourceExhausted:  // admission queue full
    case absl::StatusCode::kAborted:
    case absl::StatusCode::kCancelled:
    case absl::StatusCode::kInternal:  // Kill Bill 5xx
    case absl::StatusCode::kUnknown:
    // A gateway misconfiguration (credentials) must not fail accepted work for
    // good.
    case absl::StatusCode::kUnauthenticated:
    case absl::StatusCode::kPermissionDenied:
      return true;
    default:  // Kill Bill refused the request itself (4xx): trying again cannot
              // help.
      return false;
  }
}

DurableWorker::DurableWorker(Clock* clock, PgSessionOptions session,
                             WorkerOptions options, Executor executor,
                             DurableMetrics* metrics,
                             std::function<bool()> ready,
                             std::function<void()> on_finished)
    : clock_(clock),
      session_options_(std::move(session)),
      options_(std::move(options)),
      executor_(std::move(executor)),
      metrics_(metrics),
      ready_(std::move(ready)),
      on_finished_(std::move(on_finished)) {}

DurableWorker::~DurableWorker() { Shutdown(Clock::Duration(0)); }

void DurableWorker::Start() {
  thread_ = std::thread([this] { Loop(); });
}

void DurableWorker::StopClaiming() {
  absl::MutexLock lock(&mu_);
  claiming_ = false;
}

int DurableWorker::outstanding() const {
  absl::MutexLock lock(&mu_);
  return outstanding_;
}

void DurableWorker::Shutdown(Clock::Duration grace) {
  const Clock::TimePoint give_up = clock_->Now() + grace;
  {
    absl::MutexLock lock(&mu_);
    if (stopping_) return;
    claiming_ = false;
    while (outstanding_ > 0 && clock_->Now() < give_up) {
      cv_.WaitWithTimeout(&mu_, absl::Milliseconds(20));
    }
    stopping_ = true;
    cv_.SignalAll();
  }
  if (thread_.joinable()) thread_.join();
}

Clock::Duration DurableWorker::RetryBackoff(int attempts) {
  Clock::Duration d = options_.retry_initial_backoff;
  for (int i = 1; i < attempts && d < options_.retry_max_backoff; ++i) d *= 2;
  d = std::min(d, options_.retry_max_backoff);
  absl::MutexLock lock(&mu_);
  jitter_ ^= jitter_ << 13;
  jitter_ ^= jitter_ >> 7;
  jitter_ ^= jitter_ << 17;
  const double f = 0.5 + 0.5 * static_cast<double>(jitter_ % 1000) / 1000.0;
  return std::chrono::duration_cast<Clock::Duration>(d * f);
}

void DurableWorker::Complete(Outcome outcome) {
  absl::MutexLock lock(&mu_);
  done_.push_back(std::move(outcome));
  cv_.SignalAll();
}

template <typename Request, typename Work, typename Fill>
void DurableWorker::Submit(const ClaimedOperation& op, dispatch::Method method,
                           std::shared_ptr<const Request> request,
                           dispatch::Cost cost, Work work, Fill fill) {
  dispatch::Job job;
  job.method = method;
  job.cost = cost;
  job.deadline = clock_->Now() + options_.attempt_deadline;
  job.cancelled = [] { return false; };
  const int64_t id = op.id;
  const int attempts = op.attempts;
  job.run = [this, request, id, attempts, work,
             fill](dispatch::KillBillCalls& calls) {
    auto result = work(*request, calls);
    Outcome o = MakeOutcome(id, attempts, Outcome::Kind::kSucceeded);
    if (result.ok()) {
      fill(*result, o);
    } else {
      const absl::Status& s = result.status();
      o.error_code = static_cast<int>(s.code());
      o.error_message = std::string(s.message());
      o.killbill_code = executor_.killbill_code(s);
      if (IsRetryable(s) && attempts < options_.max_attempts) {
        o.kind = Outcome::Kind::kRetry;
        o.backoff = RetryBackoff(attempts);
      } else {
        o.kind = Outcome::Kind::kFailed;
      }
    }
    Complete(std::move(o));
  };
  job.answer = [this, id, attempts](const absl::Status& status,
                                    const char* reason,
                                    Clock::Duration pushback) {
    // Refused or dropped unrun (queue full, breaker open, shutting down): not
    // an attempt.
    Outcome o = MakeOutcome(id, attempts, Outcome::Kind::kRelease);
    o.error_code = static_cast<int>(status.code());
    o.error_message = std::string(status.message());
    o.backoff = std::clamp<Clock::Duration>(
        pushback, std::chrono::milliseconds(50), std::chrono::seconds(30));
    Complete(std::move(o));
  };
  executor_.submit(std::move(job));
}

void DurableWorker::Dispatch(ClaimedOperation op) {
  auto unreadable = [&] {
    Outcome o = MakeOutcome(op.id, op.attempts, Outcome::Kind::kFailed);
    o.error_code = static_cast<int>(absl::StatusCode::kInternal);
    o.error_message = "stored request cannot be parsed";
    Complete(std::move(o));
  };
  if (op.kind == OperationKind::kCreateSubscription) {
    auto request = std::make_shared<v1::CreateSubscriptionRequest>();
    if (!request->ParseFromString(op.request)) return unreadable();
    Submit(op, dispatch::Method::kCreateSubscription,
           std::shared_ptr<const v1::CreateSubscriptionRequest>(request),
           executor_.subscription_cost_of(*request),
           executor_.create_subscription,
           [attempts = op.attempts](const v1::CreateSubscriptionResponse& r,
                                    Outcome& o) {
             o.account_id = r.subscription().account_id();
             o.subscription_id = r.subscription().subscription_id();
             o.created = r.created() || attempts > 1;
           });
    return;
  }
  auto request = std::make_shared<v1::CreateAccountRequest>();
  if (!request->ParseFromString(op.request)) return unreadable();
  Submit(
      op, dispatch::Method::kCreateAccount,
      std::shared_ptr<const v1::CreateAccountRequest>(request),
      executor_.cost_of(*request), executor_.create_account,
      [attempts = op.attempts](const v1::CreateAccountResponse& r, Outcome& o) {
        o.account_id = r.account_id();
        // Operation.created: an earlier attempt may have made it.
        o.created = r.created() || attempts > 1;
      });
}

void DurableWorker::Loop() {
  PgSession session(clock_, session_options_);
  OperationStore store(&session);
  std::vector<Outcome> unwritten;
  bool claim_failing = false;
  Clock::TimePoint next_claim = clock_->Now();
  Clock::TimePoint next_renew = clock_->Now() + options_.lease / 3;
  for (;;) {
    bool stopping, claiming;
    int outstanding;
    {
      absl::MutexLock lock(&mu_);
      for (Outcome& o : done_) unwritten.push_back(std::move(o));
      done_.clear();
      stopping = stopping_;
      claiming = claiming_;
      outstanding = outstanding_;
    }
    // 1. Outcomes.
    if (!unwritten.empty()) {
      auto applied = store.Finish(options_.owner, unwritten);
      if (applied.ok()) {
        int succeeded = 0, failed = 0, retried = 0, released = 0;
        for (const Outcome& o : unwritten) {
          switch (o.kind) {
            case Outcome::Kind::kSucceeded:
              ++succeeded;
              break;
            case Outcome::Kind::kFailed:
              ++failed;
              break;
            case Outcome::Kind::kRetry:
              ++retried;
              break;
            case Outcome::Kind::kRelease:
              ++released;
              break;
          }
        }
        metrics_->succeeded().Increment(succeeded);
        metrics_->failed().Increment(failed);
        metrics_->retried().Increment(retried);
        metrics_->released().Increment(released);
        metrics_->lease_lost().Increment(static_cast<double>(unwritten.size()) -
                                         *applied);
        metrics_->database_up().Set(1);
        const int n = static_cast<int>(unwritten.size());
        unwritten.clear();
        {
          absl::MutexLock lock(&mu_);
          outstanding_ -= n;
          outstanding = outstanding_;
          cv_.SignalAll();
        }
        if (on_finished_) on_finished_();
      } else {
        metrics_->database_up().Set(absl::IsUnavailable(applied.status()) ? 0
                                                                          : 1);
        spdlog::warn("durable worker: cannot record {} outcomes (kept): {}",
                     unwritten.size(), std::string(applied.status().message()));
      }
    }
    if (stopping) return;
    const Clock::TimePoint now = clock_->Now();
    // 3. Leases.
    if (now >= next_renew) {
      next_renew = now + options_.lease / 3;
      if (outstanding > 0) {
        auto renewed = store.RenewLeases(options_.owner, options_.lease);
        if (!renewed.ok()) {
          spdlog::warn("durable worker: cannot renew leases: {}",
                       std::string(renewed.status().message()));
        }
      }
    }
    // 2. Claims.
    bool claimed_any = false;
    if (claiming && ready_() && unwritten.empty() && now >= next_claim &&
        outstanding < options_.max_outstanding) {
      const int want = std::min(options_.claim_batch,
                                options_.max_outstanding - outstanding);
      auto claimed = store.Claim(options_.owner, want, options_.lease,
                                 options_.max_attempts);
      if (!claimed.ok()) {
        metrics_->database_up().Set(absl::IsUnavailable(claimed.status()) ? 0
                                                                          : 1);
        if (!claim_failing) {  // Once per episode, not every poll.
          spdlog::warn("durable worker: cannot claim (retrying): {}",
                       std::string(claimed.status().message()));
        }
        claim_failing = true;
        next_claim = now + options_.poll_interval;
      } else if (claimed->empty()) {
        if (claim_failing) spdlog::info("durable worker: claiming again");
        claim_failing = false;
        next_claim = now + options_.poll_interval;
      } else {
        if (claim_failing) spdlog::info("durable worker: claiming again");
        claim_failing = false;
        claimed_any = true;
        metrics_->claims().Increment(static_cast<double>(claimed->size()));
        {
          absl::MutexLock lock(&mu_);
          outstanding_ += static_cast<int>(claimed->size());
        }
        for (ClaimedOperation& op : *claimed) {
          if (op.lease_expired) {
            metrics_->lease_expiries().Increment();
            spdlog::info(
                "durable worker: took over operation {} (lease expired, "
                "attempt {})",
                op.id, op.attempts);
          }
          Dispatch(std::move(op));
        }
      }
    }
    if (claimed_any) continue;
    // Sleep until an outcome arrives, a claim or renewal is due, or shutdown.
    absl::MutexLock lock(&mu_);
    Clock::TimePoint wake = next_renew;
    if (claiming_ && outstanding_ < options_.max_outstanding)
      wake = std::min(wake, next_claim);
    if (!unwritten.empty())
      wake = std::min(wake, clock_->Now() + options_.poll_interval);
    while (done_.empty() && !stopping_ && clock_->Now() < wake) {
      cv_.WaitWithTimeout(
          &mu_,
          absl::FromChrono(std::chrono::nanoseconds(wake - clock_->Now())));
    }
  }
}

}  // namespace bg::durable
