// AccountOperations::CreateAccount when Kill Bill's answer to a create is lost
// (issue 13, item 11): a scripted Kill Bill (an httplib server on loopback)
// that holds its answer to chosen creates past the client's timeout, as if the
// answer were lost after the account was made, then says 409 and finds the
// account by key.
//   * a retry that meets 409 after an unanswered attempt: `created` is true
//     (the proto's definition), the account is the one found;
//   * every attempt unanswered, the account there: the call looks it up
//     before failing and succeeds;
//   * 409 then no account under the key: retryable UNAVAILABLE, never a final
//     NOT_FOUND while the account may exist;
//   * 409 at the first attempt: `created` is false.
// The held answers are released at the end through a condition variable; the
// test never sleeps.
#include <httplib.h>

#include <atomic>
#include <condition_variable>
#include <mutex>
#include <string>
#include <thread>

#include "common/clock.h"
#include "dispatch/job.h"
#include "gtest/gtest.h"
#include "killbill_client/killbill_client.h"
#include "service/account_operations.h"

namespace bg::service {
namespace {

namespace v1 = billing::v1;
using dispatch::KillBillCalls;
using dispatch::KillBillEndpoint;
using namespace std::chrono_literals;

constexpr char kId[] = "0b8e1b5e-3c1f-4a6b-9a57-0e6cf1c1e2a4";

// Calls are always admitted; `retries` retries are allowed, at once.
class OpenCalls : public KillBillCalls {
 public:
  explicit OpenCalls(int retries) : retries_(retries) {}
  absl::Status Admit(KillBillEndpoint, dispatch::Cost) override {
    return absl::OkStatus();
  }
  void Record(KillBillEndpoint, const absl::Status&, Clock::Duration) override {
  }
  bool MayRetry(Clock::Duration* backoff) override {
    *backoff = Clock::Duration::zero();
    return retries_-- > 0;
  }
  Clock::TimePoint deadline() const override { return clock_.Now() + 60s; }
  Clock* clock() const override { return &clock_; }

 private:
  int retries_;
  mutable FakeClock clock_;
};

// Kill Bill as scripted: the first `unanswered` creates are held until the end
// (the client times out), later ones answer 409 (code 3000); the lookup by key
// finds the account when `account_exists`.
class ScriptedKillBill {
 public:
  ScriptedKillBill(int unanswered, bool account_exists)
      : unanswered_(unanswered), account_exists_(account_exists) {
    server_.Post("/1.0/kb/accounts", [this](const httplib::Request&,
                                            httplib::Response& res) {
      if (creates_++ < unanswered_) {
        std::unique_lock<std::mutex> lock(mu_);
        cv_.wait(lock, [this] { return released_; });
        return;  // Its client gave up long ago.
      }
      res.status = 409;
      res.set_content(R"({"code":3000,"message":"account exists"})",
                      "application/json");
    });
    server_.Get("/1.0/kb/accounts",
                [this](const httplib::Request& req, httplib::Response& res) {
                  if (!account_exists_) {
                    res.status = 404;
                    res.set_content(R"({"code":3003,"message":"no account"})",
                                    "application/json");
                    return;
                  }
                  res.set_content(std::string(R"({"accountId":")") + kId +
                                      R"(","externalKey":")" +
                                      req.get_param_value("externalKey") +
                                      R"(","name":"n","currency":"USD"})",
                                  "application/json");
                });
    port_ = server_.bind_to_any_port("127.0.0.1");
    thread_ = std::thread([this] { server_.listen_after_bind(); });
  }
  ~ScriptedKillBill() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      released_ = true;
    }
    cv_.notify_all();
    server_.stop();
    thread_.join();
  }
  int port() const { return port_; }
  int creates() const { return creates_; }

 private:
  const int unanswered_;
  const bool account_exists_;
  std::atomic<int> creates_{0};
  std::mutex mu_;
  std::condition_variable cv_;
  bool released_ = false;
  httplib::Server server_;
  std::thread thread_;
  int port_ = 0;
};

absl::StatusOr<v1::CreateAccountResponse> Create(const ScriptedKillBill& kb,
                                                 int retries) {
  killbill::ClientOptions options;
  options.url = "http://127.0.0.1:" + std::to_string(kb.port());
  options.request_timeout = 300ms;
  auto client = killbill::KillBillClient::Create(options);
  EXPECT_TRUE(client.ok()) << client.status();
  AccountOperations ops(client->get());
  v1::CreateAccountRequest request;
  request.set_external_key("lost-answer");
  request.set_name("Lost Answer");
  OpenCalls calls(retries);
  return ops.CreateAccount(request, calls);
}

TEST(AccountCreated, ARetryThatMeets409AfterAnUnansweredAttemptIsCreated) {
  ScriptedKillBill kb(/*unanswered=*/1, /*account_exists=*/true);
  auto result = Create(kb, /*retries=*/1);
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_EQ(result->account_id(), kId);
  EXPECT_TRUE(result->created());
  EXPECT_EQ(kb.creates(), 2);
}

TEST(AccountCreated, EveryAttemptUnansweredLooksUpBeforeFailing) {
  ScriptedKillBill kb(/*unanswered=*/2, /*account_exists=*/true);
  auto result = Create(kb, /*retries=*/1);
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_EQ(result->account_id(), kId);
  EXPECT_TRUE(result->created());
}

TEST(AccountCreated, EveryAttemptUnansweredAndNoAccountKeepsTheError) {
  ScriptedKillBill kb(/*unanswered=*/2, /*account_exists=*/false);
  auto result = Create(kb, /*retries=*/1);
  EXPECT_TRUE(absl::IsUnavailable(result.status())) << result.status();
}

TEST(AccountCreated, TakenButNotFoundIsRetryableNeverFinal) {
  ScriptedKillBill kb(/*unanswered=*/0, /*account_exists=*/false);
  auto result = Create(kb, /*retries=*/0);
  EXPECT_TRUE(absl::IsUnavailable(result.status())) << result.status();
}

TEST(AccountCreated, TakenAtTheFirstAttemptIsNotCreated) {
  ScriptedKillBill kb(/*unanswered=*/0, /*account_exists=*/true);
  auto result = Create(kb, /*retries=*/1);
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_FALSE(result->created());
  EXPECT_EQ(kb.creates(), 1);
}

}  // namespace
}  // namespace bg::service
