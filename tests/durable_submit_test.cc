// The database behind durable submissions misbehaving (issue 13, defects 8, 9
// and the shutdown part of 11), against a real PostgreSQL:
//   * a backend that stops answering (SIGSTOP: the kernel still acknowledges,
//     so only the session's own timeout can notice) ends the statement with
//     UNAVAILABLE, outcome unknown, within statement_timeout + margin;
//   * a submission whose connection is lost after the batch was sent is
//     answered UNAVAILABLE outcome_unknown (it may have been committed), not
//     "not accepted";
//   * a submission whose caller's deadline passed while it waited is not
//     written, and says so;
//   * during shutdown a submission is UNAVAILABLE shutting_down, not
//     RESOURCE_EXHAUSTED;
//   * while the operation waiter's read hangs on a frozen backend, every
//     GetOperation wait is still answered (UNAVAILABLE) by its wait deadline
//     plus the read grace, not when the read gives up.
#include <signal.h>

#include <chrono>
#include <future>
#include <memory>
#include <string>
#include <thread>

#include "absl/cleanup/cleanup.h"
#include "durable/durable_metrics.h"
#include "durable/operation_store.h"
#include "durable/operation_waiter.h"
#include "durable/pg_session.h"
#include "durable/submit_batcher.h"
#include "gtest/gtest.h"
#include "prometheus/registry.h"
#include "tests/pg_fixture.h"

namespace bg::durable {
namespace {

using namespace std::chrono_literals;

class DurableSubmitTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    if (testing::PgFixture::SkipReason()) return;
    pg_ = new testing::PgFixture();
    start_error_ = new std::string(pg_->Start());
  }
  static void TearDownTestSuite() {
    delete pg_;
    pg_ = nullptr;
  }
  void SetUp() override {
    if (auto skip = testing::PgFixture::SkipReason()) GTEST_SKIP() << *skip;
    ASSERT_EQ(*start_error_, "");
    static int n = 0;
    options_.url = pg_->CreateDatabase("submit_" + std::to_string(++n));
    ASSERT_FALSE(options_.url.empty());
    options_.statement_timeout = 1s;
    options_.answer_margin = 1s;
    PgSession session(SteadyClock::Instance(), options_);
    ASSERT_TRUE(OperationStore(&session).Migrate().ok());
  }

  // One submission through a batcher; its answer.
  absl::StatusOr<OperationRecord> SubmitOne(SubmitBatcher& batcher,
                                            const std::string& key,
                                            Clock::TimePoint deadline) {
    std::promise<absl::StatusOr<OperationRecord>> answer;
    auto got = answer.get_future();
    batcher.Submit(Submission{key, "request"}, deadline,
                   [&answer](absl::StatusOr<OperationRecord> r) {
                     answer.set_value(std::move(r));
                   });
    if (got.wait_for(20s) != std::future_status::ready) {
      return absl::DeadlineExceededError("test: no answer within 20 s");
    }
    return got.get();
  }

  int64_t Rows(const std::string& key) {
    PgSession session(SteadyClock::Instance(), options_);
    auto r = session.Exec(
        "SELECT count(*) FROM operations WHERE external_key "
        "= $1",
        {PgParam::Text(key)});
    return r.ok() ? r->Int(0, 0) : -1;
  }

  static testing::PgFixture* pg_;
  static std::string* start_error_;
  PgSessionOptions options_;
  prometheus::Registry registry_;
  DurableMetrics metrics_{registry_};
};

testing::PgFixture* DurableSubmitTest::pg_ = nullptr;
std::string* DurableSubmitTest::start_error_ = nullptr;

TEST_F(DurableSubmitTest, AFrozenBackendEndsTheStatementWithOutcomeUnknown) {
  PgSession session(SteadyClock::Instance(), options_);
  auto pid = session.Exec("SELECT pg_backend_pid()");
  ASSERT_TRUE(pid.ok()) << pid.status();
  const pid_t backend = static_cast<pid_t>(pid->Int(0, 0));
  ASSERT_EQ(kill(backend, SIGSTOP), 0);
  auto result = std::async(std::launch::async,
                           [&] { return session.Exec("SELECT 1").status(); });
  const bool answered = result.wait_for(10s) == std::future_status::ready;
  kill(backend, SIGCONT);  // Whatever happened, so the session can end.
  ASSERT_TRUE(answered) << "the session waited on a frozen database for "
                           "more than 10 s (statement_timeout 1 s)";
  const absl::Status status = result.get();
  EXPECT_TRUE(absl::IsUnavailable(status)) << status;
  EXPECT_TRUE(status.GetPayload(kOutcomeUnknownPayload).has_value()) << status;
  // The session reconnects afterwards.
  absl::StatusOr<PgResult> again = absl::UnavailableError("not tried");
  for (const auto until = std::chrono::steady_clock::now() + 10s;
       !again.ok() && std::chrono::steady_clock::now() < until;) {
    again = session.Exec("SELECT 1");
  }
  EXPECT_TRUE(again.ok()) << again.status();
}

TEST_F(DurableSubmitTest, AConnectionLostAfterTheBatchWasSentIsOutcomeUnknown) {
  // Another session holds the table, so the batch's INSERT waits on the lock;
  // then its backend is terminated: the client cannot know whether it
  // committed.
  PgSession holder(SteadyClock::Instance(), options_);
  ASSERT_TRUE(holder.Exec("BEGIN").ok());
  ASSERT_TRUE(
      holder.Exec("LOCK TABLE operations IN ACCESS EXCLUSIVE MODE").ok());
  SubmitBatcher batcher(SteadyClock::Instance(), options_,
                        SubmitBatcher::Options{8, 1, 100}, &metrics_,
                        [] { return true; });
  auto answer = std::async(std::launch::async, [&] {
    return SubmitOne(batcher, "lost-ack",
                     std::chrono::steady_clock::now() + 60s);
  });
  PgSession admin(SteadyClock::Instance(), options_);
  int64_t terminated = 0;
  for (const auto until = std::chrono::steady_clock::now() + 10s;
       terminated == 0 && std::chrono::steady_clock::now() < until;) {
    auto r = admin.Exec(
        "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
        "WHERE wait_event_type = 'Lock' AND query LIKE '%INSERT INTO "
        "operations%'");
    if (r.ok()) terminated = r->Int(0, 0);
  }
  ASSERT_EQ(terminated, 1) << "the batch never waited on the lock";
  ASSERT_EQ(answer.wait_for(20s), std::future_status::ready);
  absl::StatusOr<OperationRecord> result = answer.get();
  ASSERT_FALSE(result.ok());
  EXPECT_TRUE(absl::IsUnavailable(result.status())) << result.status();
  EXPECT_EQ(result.status().GetPayload(kSubmitReasonPayload),
            absl::Cord(kReasonOutcomeUnknown))
      << result.status();
  EXPECT_NE(result.status().message().find("resubmit"), absl::string_view::npos)
      << result.status();
  ASSERT_TRUE(holder.Exec("ROLLBACK").ok());
  // Resubmitting tells which: here the INSERT was rolled back with its
  // backend, so the resubmission creates the operation.
  auto again =
      SubmitOne(batcher, "lost-ack", std::chrono::steady_clock::now() + 60s);
  EXPECT_TRUE(again.ok()) << again.status();
  EXPECT_EQ(Rows("lost-ack"), 1);
}

TEST_F(DurableSubmitTest, ASubmissionPastItsDeadlineIsNotWritten) {
  SubmitBatcher batcher(SteadyClock::Instance(), options_,
                        SubmitBatcher::Options{8, 1, 100}, &metrics_,
                        [] { return true; });
  auto result =
      SubmitOne(batcher, "too-late", std::chrono::steady_clock::now() - 1ms);
  EXPECT_TRUE(absl::IsDeadlineExceeded(result.status())) << result.status();
  EXPECT_EQ(Rows("too-late"), 0);
}

TEST_F(DurableSubmitTest, DuringShutdownASubmissionIsShuttingDown) {
  SubmitBatcher batcher(SteadyClock::Instance(), options_,
                        SubmitBatcher::Options{8, 1, 100}, &metrics_,
                        [] { return true; });
  batcher.Shutdown();
  auto result = SubmitOne(batcher, "after-shutdown",
                          std::chrono::steady_clock::now() + 10s);
  EXPECT_TRUE(absl::IsUnavailable(result.status())) << result.status();
  EXPECT_EQ(result.status().GetPayload(kSubmitReasonPayload),
            absl::Cord(kReasonShuttingDown));
  EXPECT_EQ(Rows("after-shutdown"), 0);
}

TEST_F(DurableSubmitTest, AGetOperationIsAnsweredByItsDeadlineWhileAReadHangs) {
  SubmitBatcher batcher(SteadyClock::Instance(), options_,
                        SubmitBatcher::Options{8, 1, 100}, &metrics_,
                        [] { return true; });
  absl::StatusOr<OperationRecord> op =
      SubmitOne(batcher, "waited", std::chrono::steady_clock::now() + 60s);
  ASSERT_TRUE(op.ok()) << op.status();
  // The waiter's own session gives up on a read only after 10 s.
  PgSessionOptions waiter_options = options_;
  waiter_options.application_name = "bg-waiter-under-test";
  waiter_options.statement_timeout = 5s;
  waiter_options.answer_margin = 5s;
  OperationWaiter waiter(SteadyClock::Instance(), waiter_options,
                         /*poll_interval=*/50ms, /*max_waiters=*/100,
                         [] { return true; });
  using Answer = std::future<absl::StatusOr<OperationRecord>>;
  auto wait = [&waiter, id = op->id](Clock::TimePoint wait_until) {
    auto answer =
        std::make_shared<std::promise<absl::StatusOr<OperationRecord>>>();
    Answer got = answer->get_future();
    waiter.Wait(id, wait_until, nullptr,
                [answer](absl::StatusOr<OperationRecord> r) {
                  answer->set_value(std::move(r));
                });
    return got;
  };
  // A first wait connects the waiter's session.
  Answer first = wait(std::chrono::steady_clock::now());
  ASSERT_EQ(first.wait_for(10s), std::future_status::ready);
  ASSERT_TRUE(first.get().ok());
  PgSession admin(SteadyClock::Instance(), options_);
  auto pid = admin.Exec(
      "SELECT pid FROM pg_stat_activity WHERE application_name = "
      "'bg-waiter-under-test'");
  ASSERT_TRUE(pid.ok()) << pid.status();
  ASSERT_EQ(pid->rows(), 1);
  const pid_t backend = static_cast<pid_t>(pid->Int(0, 0));
  ASSERT_EQ(kill(backend, SIGSTOP), 0);
  auto resume = absl::MakeCleanup([backend] { kill(backend, SIGCONT); });
  // The first wait's read hangs; the second arrives while it is in flight.
  const auto start = std::chrono::steady_clock::now();
  const auto until_a = start + 300ms;
  const auto until_b = start + 600ms;
  Answer a = wait(until_a);
  Answer b = wait(until_b);
  // Answered by wait_until + OperationWaiter::kReadGrace (1 s), with 1 s of
  // slack for a loaded machine: long before the read gives up (10 s).
  ASSERT_EQ(a.wait_until(until_a + 2s), std::future_status::ready)
      << "not answered while the read hangs";
  ASSERT_EQ(b.wait_until(until_b + 2s), std::future_status::ready)
      << "not answered while the read hangs";
  const absl::StatusOr<OperationRecord> got_a = a.get();
  const absl::StatusOr<OperationRecord> got_b = b.get();
  EXPECT_TRUE(absl::IsUnavailable(got_a.status())) << got_a.status();
  EXPECT_TRUE(absl::IsUnavailable(got_b.status())) << got_b.status();
  EXPECT_GE(std::chrono::steady_clock::now(), until_a)
      << "answered before its wait deadline";
  std::move(resume).Invoke();
  // Once the backend answers again, so does the waiter.
  absl::StatusOr<OperationRecord> again = absl::UnavailableError("not tried");
  for (const auto until = std::chrono::steady_clock::now() + 30s;
       !again.ok() && std::chrono::steady_clock::now() < until;) {
    Answer c = wait(std::chrono::steady_clock::now());
    ASSERT_EQ(c.wait_for(20s), std::future_status::ready);
    again = c.get();
  }
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_EQ(again->id, op->id);
}

}  // namespace
}  // namespace bg::durable
