// Durable operations end to end, with killbill-sim, billing-gateway and
// PostgreSQL as real processes on loopback:
//   * CrashWhileDraining (the crash test): 2,000 asynchronous creates
//   accepted, the
//     gateway SIGKILLed three times while draining and restarted; in the end
//     every operation SUCCEEDED and the sim holds exactly 2,000 accounts for
//     those keys, none twice
//     (/sim/stats accounts_created, one distinct account per operation,
//     GetAccount lookups of a sample), and repeated submissions return the same
//     operations.
//   * DatabaseOutage: PostgreSQL stopped: SubmitCreateAccount answers
//   UNAVAILABLE
//     (database_unavailable), synchronous CreateAccount still works; PostgreSQL
//     back: the gateway reconnects by itself and accepts again.
//   * NoDatabase: without database.url the asynchronous API answers
//   FAILED_PRECONDITION.
#include <iostream>
#include <map>
#include <set>

#include "durable/operation_store.h"
#include "durable/pg_session.h"
#include "tests/durable_harness.h"
#include "tests/pg_fixture.h"

namespace bg::testing {
namespace {

class DurableEndToEnd : public ::testing::Test {
 protected:
  void SetUp() override {
    if (auto missing = PgFixture::MissingBinaries()) GTEST_SKIP() << *missing;
    ASSERT_EQ(pg_.Start(), "");
    // Fast sim: the test is about durability, not Kill Bill's capacity.
    sim_ = Sim::Start({"--capacity", "2000", "--base_latency_ms", "1",
                       "--bus_drain", "5000", "--queue_healthcheck=false"});
    ASSERT_NE(sim_.port, 0) << "sim did not start";
    config_path_ = TestFile("gateway.yaml");
  }

  std::string Config(const std::string& rate, bool with_database = true) const {
    std::string yaml =
        "server:\n  listen: 127.0.0.1:0\n  shutdown_grace: 1s\n"
        "metrics:\n  listen: 127.0.0.1:0\n"
        "logging:\n  level: warn\n"
        "killbill:\n  url: http://127.0.0.1:" +
        std::to_string(sim_.port) +
        "\n  max_connections: 32\n"
        "concurrency:\n  max_in_flight: 32\n"
        "rate:\n  mode: static\n  initial: " +
        rate + "\n  max: " + rate + "\n  burst: 10\n";
    if (with_database) {
      yaml += "database:\n  url: \"" + pg_.Url() +
              "\"\n  lease: 2s\n  poll_interval: 50ms\n"
              "  claim_batch: 64\n  max_outstanding: 128\n  "
              "heartbeat_interval: 200ms\n"
              "  heartbeat_timeout: 1s\n  retry_initial_backoff: 100ms\n"
              "  retry_max_backoff: 1s\n";
    }
    return yaml;
  }

  PgFixture pg_;
  Sim sim_;
  std::string config_path_;
};

TEST_F(DurableEndToEnd, CrashWhileDraining) {
  constexpr int kOps = 2000;
  const std::string prefix = "crash-";
  // 150 calls/s: draining takes ~13 s, long enough to be killed three times on
  // the way.
  Gateway gateway = Gateway::Start(config_path_, Config("150"));
  ASSERT_TRUE(gateway.ok()) << gateway.process->output();

  int failures = 0;
  const auto accept_start = std::chrono::steady_clock::now();
  std::vector<std::string> ids =
      SubmitAll(gateway.stub.get(), prefix, kOps, 32, &failures);
  const double accept_s = std::chrono::duration<double>(
                              std::chrono::steady_clock::now() - accept_start)
                              .count();
  ASSERT_EQ(failures, 0);
  std::cout << "accepted " << kOps << " submissions in " << accept_s << " s\n";
  std::set<std::string> distinct(ids.begin(), ids.end());
  ASSERT_EQ(distinct.size(), static_cast<size_t>(kOps));

  // Three SIGKILLs while draining: each after a further ~400 operations have
  // finished.
  for (int kill = 1; kill <= 3; ++kill) {
    v1::Operation op;
    ASSERT_TRUE(WaitFinished(gateway.stub.get(), ids[kill * 400], 60s, &op));
    const uint64_t created = sim_.Stats()["accounts_created"].get<uint64_t>();
    std::cout << "kill " << kill << ": sim has " << created << " accounts\n";
    EXPECT_LT(created, static_cast<uint64_t>(kOps))
        << "finished before kill " << kill;
    gateway.Kill();
    gateway = Gateway::Start(config_path_, Config("150"));
    ASSERT_TRUE(gateway.ok()) << gateway.process->output();
  }

  // Every operation ends SUCCEEDED, each with its own account.
  std::set<std::string> accounts;
  std::map<int, std::string> account_of;
  int created_true = 0;
  for (int i = 0; i < kOps; ++i) {
    v1::Operation op;
    ASSERT_TRUE(WaitFinished(gateway.stub.get(), ids[i], 90s, &op))
        << "operation " << ids[i];
    ASSERT_EQ(op.state(), v1::OPERATION_STATE_SUCCEEDED) << op.DebugString();
    EXPECT_EQ(op.external_key(), prefix + std::to_string(i));
    accounts.insert(op.account_id());
    account_of[i] = op.account_id();
    created_true += op.created() ? 1 : 0;
  }
  EXPECT_EQ(accounts.size(), static_cast<size_t>(kOps))
      << "two operations share an account";

  const nlohmann::json stats = sim_.Stats();
  std::cout << "sim: accounts_created " << stats["accounts_created"]
            << ", conflicts_409 " << stats["conflicts_409"]
            << "; operations with created=true " << created_true << "\n";
  EXPECT_EQ(stats["accounts_created"].get<int>(), kOps);
  EXPECT_EQ(stats["accounts_total"].get<int>(), kOps);
  // An operation that did not create its account itself (created=false) met a
  // 409: the account was made by an attempt lost in a crash, and found by key,
  // not made twice.
  EXPECT_LE(kOps - created_true, stats["conflicts_409"].get<int>());

  // Lookups of a sample agree with the operations.
  for (int i = 0; i < kOps; i += 97) {
    v1::GetAccountRequest req;
    req.set_external_key(prefix + std::to_string(i));
    v1::Account account;
    grpc::Status s = gateway.stub->GetAccount(Context().get(), req, &account);
    ASSERT_TRUE(s.ok()) << s.error_message();
    EXPECT_EQ(account.account_id(), account_of[i]);
  }
  // A repeated submission returns the same (finished) operation and creates
  // nothing.
  for (int i = 0; i < kOps; i += 250) {
    v1::Operation op;
    grpc::Status s = gateway.stub->SubmitCreateAccount(
        Context().get(), CreateRequest(prefix + std::to_string(i)), &op);
    ASSERT_TRUE(s.ok()) << s.error_message();
    EXPECT_EQ(op.operation_id(), ids[i]);
    EXPECT_EQ(op.state(), v1::OPERATION_STATE_SUCCEEDED);
  }
  EXPECT_EQ(sim_.Stats()["accounts_created"].get<int>(), kOps);
  EXPECT_GT(gateway.Metric("billing_gateway_durable_claims_total"), 0);
  EXPECT_EQ(gateway.process->Terminate(20s), std::optional<int>(0));
}

TEST_F(DurableEndToEnd, DatabaseOutage) {
  Gateway gateway = Gateway::Start(config_path_, Config("100"));
  ASSERT_TRUE(gateway.ok()) << gateway.process->output();
  v1::Operation op;
  grpc::Status s = gateway.stub->SubmitCreateAccount(
      Context().get(), CreateRequest("outage-0"), &op);
  ASSERT_TRUE(s.ok()) << s.error_message();

  pg_.Stop();
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + 10s);
  s = gateway.stub->SubmitCreateAccount(&ctx, CreateRequest("outage-1"), &op);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::UNAVAILABLE) << s.error_message();
  auto reason =
      ctx.GetServerTrailingMetadata().find("billing-gateway-reject-reason");
  ASSERT_NE(reason, ctx.GetServerTrailingMetadata().end());
  EXPECT_EQ(std::string(reason->second.data(), reason->second.size()),
            "database_unavailable");
  // Synchronous calls do not need the database.
  v1::CreateAccountResponse sync;
  s = gateway.stub->CreateAccount(Context().get(), CreateRequest("outage-sync"),
                                  &sync);
  EXPECT_TRUE(s.ok()) << s.error_message();
  EXPECT_TRUE(sync.created());

  ASSERT_EQ(pg_.StartServer(), "");
  // Reconnects by itself (backoff at most 5 s): a submission is accepted again.
  bool accepted = WaitUntil(
      [&] {
        return gateway.stub
            ->SubmitCreateAccount(Context().get(), CreateRequest("outage-1"),
                                  &op)
            .ok();
      },
      30s, 100ms);
  ASSERT_TRUE(accepted);
  ASSERT_TRUE(WaitFinished(gateway.stub.get(), op.operation_id(), 30s, &op));
  EXPECT_EQ(op.state(), v1::OPERATION_STATE_SUCCEEDED);
  EXPECT_TRUE(op.created());
}

TEST_F(DurableEndToEnd, NoDatabaseMeansNoAsynchronousApi) {
  Gateway gateway =
      Gateway::Start(config_path_, Config("100", /*with_database=*/false));
  ASSERT_TRUE(gateway.ok()) << gateway.process->output();
  v1::Operation op;
  grpc::Status s = gateway.stub->SubmitCreateAccount(
      Context().get(), CreateRequest("nodb-1"), &op);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_NE(s.error_message().find("database.url"), std::string::npos)
      << s.error_message();
  v1::GetOperationRequest get;
  get.set_operation_id("1");
  s = gateway.stub->GetOperation(Context().get(), get, &op);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  v1::CreateAccountResponse sync;
  EXPECT_TRUE(
      gateway.stub
          ->CreateAccount(Context().get(), CreateRequest("nodb-1"), &sync)
          .ok());
}

TEST_F(DurableEndToEnd, GetOperationValidatesAndWaitsWithinTheDeadline) {
  Gateway gateway = Gateway::Start(config_path_, Config("100"));
  ASSERT_TRUE(gateway.ok()) << gateway.process->output();
  v1::GetOperationRequest get;
  v1::Operation op;
  get.set_operation_id("not-a-number");
  EXPECT_EQ(gateway.stub->GetOperation(Context().get(), get, &op).error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);
  get.set_operation_id("999999");
  EXPECT_EQ(gateway.stub->GetOperation(Context().get(), get, &op).error_code(),
            grpc::StatusCode::NOT_FOUND);
  v1::CreateAccountRequest bad = CreateRequest("bad key with spaces");
  EXPECT_EQ(
      gateway.stub->SubmitCreateAccount(Context().get(), bad, &op).error_code(),
      grpc::StatusCode::INVALID_ARGUMENT);
  ASSERT_TRUE(
      gateway.stub
          ->SubmitCreateAccount(Context().get(), CreateRequest("wait-1"), &op)
          .ok());
  EXPECT_EQ(op.state(), v1::OPERATION_STATE_PENDING);
  EXPECT_GT(op.create_time_ms(), 0);
  // A wait longer than the call's deadline answers with the state before the
  // deadline.
  get.set_operation_id(op.operation_id());
  get.set_wait_timeout_ms(600000);
  grpc::Status s = gateway.stub->GetOperation(Context(3s).get(), get, &op);
  ASSERT_TRUE(s.ok()) << s.error_message();
  EXPECT_EQ(op.state(), v1::OPERATION_STATE_SUCCEEDED);
  EXPECT_EQ(op.account_id().size(), 36u);
}

TEST_F(DurableEndToEnd,
       SubmittedSubscriptionsRunOnceAndShareNoKeyWithAccounts) {
  Gateway gateway = Gateway::Start(config_path_, Config("100"));
  ASSERT_TRUE(gateway.ok()) << gateway.process->output();
  // The instance id equals an account's external key: the two kinds of
  // operation do not collide on it.
  v1::Operation account_op;
  ASSERT_TRUE(gateway.stub
                  ->SubmitCreateAccount(
                      Context().get(), CreateRequest("shared-key"), &account_op)
                  .ok());
  ASSERT_TRUE(WaitFinished(gateway.stub.get(), account_op.operation_id(), 20s,
                           &account_op));
  ASSERT_EQ(account_op.state(), v1::OPERATION_STATE_SUCCEEDED);
  EXPECT_EQ(account_op.kind(), v1::OPERATION_KIND_CREATE_ACCOUNT);

  v1::CreateSubscriptionRequest sub;
  sub.mutable_account()->set_external_key("shared-key");
  sub.set_plan_name("basic-monthly");
  sub.set_instance_id("shared-key");
  v1::Operation first, repeat;
  ASSERT_TRUE(
      gateway.stub->SubmitCreateSubscription(Context().get(), sub, &first)
          .ok());
  EXPECT_NE(first.operation_id(), account_op.operation_id());
  EXPECT_EQ(first.kind(), v1::OPERATION_KIND_CREATE_SUBSCRIPTION);
  EXPECT_EQ(first.instance_id(), "shared-key");
  EXPECT_EQ(first.external_key(), "shared-key");
  ASSERT_TRUE(
      gateway.stub->SubmitCreateSubscription(Context().get(), sub, &repeat)
          .ok());
  EXPECT_EQ(repeat.operation_id(), first.operation_id());

  v1::Operation done;
  ASSERT_TRUE(
      WaitFinished(gateway.stub.get(), first.operation_id(), 20s, &done));
  ASSERT_EQ(done.state(), v1::OPERATION_STATE_SUCCEEDED)
      << done.error().message();
  EXPECT_TRUE(done.created());
  EXPECT_EQ(done.account_id(), account_op.account_id());
  EXPECT_EQ(done.subscription_id().size(), 36u);
  EXPECT_EQ(sim_.Stats().value("subscriptions_total", 0), 1);

  // A submission Kill Bill refuses ends FAILED with the documented error.
  sub.set_instance_id("no-plan");
  sub.set_plan_name("platinum-monthly");
  v1::Operation bad;
  ASSERT_TRUE(
      gateway.stub->SubmitCreateSubscription(Context().get(), sub, &bad).ok());
  ASSERT_TRUE(WaitFinished(gateway.stub.get(), bad.operation_id(), 20s, &bad));
  EXPECT_EQ(bad.state(), v1::OPERATION_STATE_FAILED);
  EXPECT_EQ(bad.error().code(),
            static_cast<int>(grpc::StatusCode::INVALID_ARGUMENT));
  EXPECT_EQ(bad.error().message().rfind("plan_name:", 0), 0u)
      << bad.error().message();
}

}  // namespace
}  // namespace bg::testing
