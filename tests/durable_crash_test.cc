// Durable operations end to end, with killbill-sim, billing-gateway and
// PostgreSQL as real processes on loopback:
//   * CrashWhileDraining (the crash test): 2,000 asynchronous creates
//     accepted, the gateway SIGKILLed three times while draining and
//     restarted, each time while the sim held back the 201s of accounts it had
//     committed (the hold_created fault): the window between Kill Bill's commit
//     and the gateway's outcome commit. In the end every operation SUCCEEDED
//     with the account the sim holds for its key (asked of the sim); every
//     held key's operation met a 409 after the restart and says created=true;
//     no other key was POSTed twice (conflicts_409 = the held keys' 409s);
//     repeated submissions return the same operations.
//   * SigtermWithOperationsInFlightLosesNone: SIGTERM with creates held inside
//     Kill Bill: exit 0, every operation finished or claimable, then finished
//     by the next gateway (...EndsInTheGrace: and within the grace).
//   * KilledAfterKillBillCommittedSaysCreated: created = true for an
//     operation whose account a killed attempt made.
//   * OperationIdAndWaitTimeoutEdgesAreRefused, SameKeySyncAndAsyncAtOnce...:
//     inputs at the edges of the asynchronous API.
//   * DatabaseOutage: PostgreSQL stopped: SubmitCreateAccount answers
//   UNAVAILABLE
//     (database_unavailable), synchronous CreateAccount still works; PostgreSQL
//     back: the gateway reconnects by itself and accepts again.
//   * NoDatabase: without database.url the asynchronous API answers
//   FAILED_PRECONDITION.
#include <condition_variable>
#include <iostream>
#include <map>
#include <mutex>
#include <set>
#include <thread>
#include <vector>

#include "durable/operation_store.h"
#include "durable/pg_session.h"
#include "tests/durable_harness.h"
#include "tests/pg_fixture.h"

namespace bg::testing {
namespace {

class DurableEndToEnd : public ::testing::Test {
 protected:
  void SetUp() override {
    if (auto skip = PgFixture::SkipReason()) GTEST_SKIP() << *skip;
    ASSERT_EQ(pg_.Start(), "");
    // Fast sim: the test is about durability, not Kill Bill's capacity.
    sim_ = Sim::Ample();
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
              "\"\n  lease: 6s\n  poll_interval: 50ms\n"
              "  claim_batch: 64\n  max_outstanding: 128\n  "
              "heartbeat_interval: 200ms\n"
              "  heartbeat_timeout: 1s\n  retry_initial_backoff: 100ms\n"
              "  retry_max_backoff: 1s\n";
    }
    return yaml;
  }

  // The SIGTERM scenario of the tests below; returns seconds to exit.
  double SigtermWithOperationsInFlight();

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

  // Three SIGKILLs while draining, each after a further ~400 operations have
  // finished, and each inside the dangerous window: the sim holds back the
  // 201 of every account it creates (hold_created), so the gateway is killed
  // after Kill Bill committed those accounts and before it could record the
  // outcome. Before restarting, the test waits until nothing but held calls
  // is left in the sim, so every account the dead gateway made is a held one.
  for (int kill = 1; kill <= 3; ++kill) {
    v1::Operation op;
    ASSERT_TRUE(WaitFinished(gateway.stub.get(), ids[kill * 400], 60s, &op));
    const uint64_t created = sim_.Stats()["accounts_created"].get<uint64_t>();
    EXPECT_LT(created, static_cast<uint64_t>(kOps))
        << "finished before kill " << kill;
    const uint64_t held_before =
        sim_.Stats()["faults"]["held_total"].get<uint64_t>();
    ASSERT_TRUE(sim_.Faults({{"hold_created_seconds", 120}}));
    ASSERT_TRUE(WaitUntil(
        [&] {
          return sim_.Stats()["faults"]["held_total"].get<uint64_t>() >=
                 held_before + 8;
        },
        20s, 10ms))
        << "no account creation reached the sim to be held";
    gateway.Kill();
    ASSERT_TRUE(WaitUntil(
        [&] {
          const nlohmann::json s = sim_.Stats();
          return s["in_flight"].get<int>() ==
                 s["faults"]["holding_now"].get<int>();
        },
        20s, 10ms))
        << "calls of the killed gateway still running in the sim";
    std::cout << "kill " << kill << ": sim has " << created
              << " accounts; 201s held at the kill: "
              << sim_.Stats()["faults"]["held_total"].get<uint64_t>() -
                     held_before
              << "\n";
    ASSERT_TRUE(sim_.Faults({{"clear", true}}));
    gateway = Gateway::Start(config_path_, Config("150"));
    ASSERT_TRUE(gateway.ok()) << gateway.process->output();
  }

  // Every operation ends SUCCEEDED with the account the sim holds for its key
  // (asked of the sim, not of the gateway).
  std::set<std::string> accounts;
  std::map<int, std::string> account_of;
  std::map<std::string, v1::Operation> op_of_key;
  int created_true = 0;
  for (int i = 0; i < kOps; ++i) {
    v1::Operation op;
    ASSERT_TRUE(WaitFinished(gateway.stub.get(), ids[i], 90s, &op))
        << "operation " << ids[i];
    ASSERT_EQ(op.state(), v1::OPERATION_STATE_SUCCEEDED) << op.DebugString();
    EXPECT_EQ(op.external_key(), prefix + std::to_string(i));
    EXPECT_EQ(op.account_id(), sim_.AccountIdByKey(op.external_key()))
        << op.DebugString();
    accounts.insert(op.account_id());
    account_of[i] = op.account_id();
    op_of_key[op.external_key()] = op;
    created_true += op.created() ? 1 : 0;
  }
  EXPECT_EQ(accounts.size(), static_cast<size_t>(kOps))
      << "two operations share an account";

  // The dangerous window: every held key's operation went through a 409 after
  // the restart, and ended SUCCEEDED with the account its killed attempt made
  // (checked above against the sim), and says created = true: this operation
  // did create the account (false before issue 13 item 11's fix).
  const nlohmann::json stats = sim_.Stats();
  const nlohmann::json& held = stats["faults"]["held_keys"];
  ASSERT_GE(held.size(), 3u * 8u);
  int held_conflicts = 0;
  for (const auto& [key, h] : held.items()) {
    SCOPED_TRACE("held key " + key);
    const int conflicts = h["conflicts_after"].get<int>();
    held_conflicts += conflicts;
    EXPECT_GE(conflicts, 1) << "never retried after the restart";
    auto it = op_of_key.find(key);
    ASSERT_NE(it, op_of_key.end());
    EXPECT_EQ(it->second.state(), v1::OPERATION_STATE_SUCCEEDED);
    EXPECT_GE(it->second.attempts(), 2) << it->second.DebugString();
    EXPECT_TRUE(it->second.created()) << it->second.DebugString();
  }
  std::cout << "sim: accounts_created " << stats["accounts_created"]
            << ", conflicts_409 " << stats["conflicts_409"] << ", held keys "
            << held.size() << " (409s after their hold: " << held_conflicts
            << "); operations with created=true " << created_true << "\n";
  EXPECT_EQ(stats["accounts_created"].get<int>(), kOps);
  EXPECT_EQ(stats["accounts_total"].get<int>(), kOps);
  // Only a key whose outcome a crash lost is POSTed again: a 409 for any
  // other key is an operation run twice (a finished one replayed after a
  // restart, or a stale claim).
  EXPECT_EQ(stats["conflicts_409"].get<int>(), held_conflicts);
  // Every operation not caught in the window created its account in one go.
  EXPECT_GE(created_true, kOps - static_cast<int>(held.size()));

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

// SIGTERM in durable mode with operations in flight, some of them inside
// Kill Bill with their 201 held back (hold_created). Returns how long the
// gateway took to exit, after checking that it exited 0 and left every
// operation either finished or claimable (PENDING, or RUNNING until its lease
// runs out), none FAILED, and that a new gateway then finishes every one of
// them with the account the sim holds for its key.
double DurableEndToEnd::SigtermWithOperationsInFlight() {
  constexpr int kOps = 200;
  Gateway gateway = Gateway::Start(config_path_, Config("40"));
  EXPECT_TRUE(gateway.ok()) << gateway.process->output();
  if (!gateway.ok()) return -1;
  int failures = 0;
  std::vector<std::string> ids =
      SubmitAll(gateway.stub.get(), "term-", kOps, 16, &failures);
  EXPECT_EQ(failures, 0);
  v1::Operation op;
  EXPECT_TRUE(WaitFinished(gateway.stub.get(), ids[20], 30s, &op));
  EXPECT_TRUE(sim_.Faults({{"hold_created_seconds", 120}}));
  EXPECT_TRUE(WaitUntil(
      [&] { return sim_.Stats()["faults"]["holding_now"].get<int>() >= 2; },
      20s, 10ms));

  const auto signalled = std::chrono::steady_clock::now();
  const std::optional<int> exit_code = gateway.process->Terminate(30s);
  const double took = std::chrono::duration<double>(
                          std::chrono::steady_clock::now() - signalled)
                          .count();
  std::cout << "SIGTERM with " << sim_.Stats()["faults"]["holding_now"]
            << " creates held in Kill Bill: exited in " << took << " s\n";
  EXPECT_EQ(exit_code, std::optional<int>(0)) << gateway.process->output();

  // Nothing FAILED, nothing is missing.
  PGconn* conn = PQconnectdb(pg_.Url().c_str());
  EXPECT_EQ(PQstatus(conn), CONNECTION_OK) << PQerrorMessage(conn);
  PGresult* r = PQexec(
      conn, "SELECT state, count(*) FROM operations GROUP BY state ORDER BY 1");
  EXPECT_EQ(PQresultStatus(r), PGRES_TUPLES_OK) << PQerrorMessage(conn);
  std::map<std::string, int> by_state;
  for (int row = 0; row < PQntuples(r); ++row) {
    by_state[PQgetvalue(r, row, 0)] = std::atoi(PQgetvalue(r, row, 1));
  }
  PQclear(r);
  PQfinish(conn);
  int total = 0;
  for (const auto& [state, n] : by_state) {
    std::cout << "  after SIGTERM: " << state << " " << n << "\n";
    total += n;
  }
  EXPECT_EQ(total, kOps);
  EXPECT_EQ(by_state["FAILED"], 0);
  EXPECT_GT(by_state["SUCCEEDED"], 0);
  EXPECT_LT(by_state["SUCCEEDED"], kOps) << "nothing was in flight";

  EXPECT_TRUE(sim_.Faults({{"clear", true}}));
  gateway = Gateway::Start(config_path_, Config("200"));
  EXPECT_TRUE(gateway.ok()) << gateway.process->output();
  if (!gateway.ok()) return took;
  for (int i = 0; i < kOps; ++i) {
    EXPECT_TRUE(WaitFinished(gateway.stub.get(), ids[i], 60s, &op)) << ids[i];
    EXPECT_EQ(op.state(), v1::OPERATION_STATE_SUCCEEDED) << op.DebugString();
    EXPECT_EQ(op.account_id(),
              sim_.AccountIdByKey("term-" + std::to_string(i)));
  }
  EXPECT_EQ(sim_.Stats()["accounts_created"].get<int>(), kOps);
  return took;
}

TEST_F(DurableEndToEnd, SigtermWithOperationsInFlightLosesNone) {
  SigtermWithOperationsInFlight();
}

// The same, and the gateway exits within shutdown_grace (1 s) plus a small
// constant whatever is in flight: the dispatcher's finish_after_grace (1 s),
// then the cut; the metrics endpoint's stop (up to 2 s: civetweb sees its stop
// flag every 2 s) overlapping the rest; 1 s of slack. Measured 13.5 s before
// the fix of issue 13 defect 3 (a Kill Bill call held in flight kept the
// process up until killbill.request_timeout), and 5.04 s once in CI before the
// gRPC server stopped waiting 1 s for idle client connections and the metrics
// stop ran after everything else.
TEST_F(DurableEndToEnd, SigtermWithOperationsInFlightEndsInTheGrace) {
  const double took = SigtermWithOperationsInFlight();
  EXPECT_GE(took, 0);
  EXPECT_LE(took, 1.0 + 1.0 + 2.0 + 1.0)
      << "shutdown outlasted shutdown_grace (1 s)";
}

// One operation caught in the dangerous window: Kill Bill committed its
// account and held the 201 back, the gateway was SIGKILLed before recording
// anything. After the restart the operation meets the 409 and must end
// SUCCEEDED with that account and created = true: this operation created it.
// (Before issue 13 item 11's fix a retry that met 409 said created = false:
// CrashWhileDraining, 25 of 25 held keys, 2026-11-30.)
TEST_F(DurableEndToEnd, KilledAfterKillBillCommittedSaysCreated) {
  Gateway gateway = Gateway::Start(config_path_, Config("100"));
  ASSERT_TRUE(gateway.ok()) << gateway.process->output();
  ASSERT_TRUE(sim_.Faults({{"hold_created_seconds", 120}}));
  v1::Operation op;
  ASSERT_TRUE(
      gateway.stub
          ->SubmitCreateAccount(Context().get(), CreateRequest("window-1"), &op)
          .ok());
  ASSERT_TRUE(WaitUntil(
      [&] { return sim_.Stats()["faults"]["holding_now"].get<int>() == 1; },
      20s, 10ms));
  const std::string account = sim_.AccountIdByKey("window-1");
  ASSERT_EQ(account.size(), 36u);
  gateway.Kill();
  ASSERT_TRUE(sim_.Faults({{"clear", true}}));
  gateway = Gateway::Start(config_path_, Config("100"));
  ASSERT_TRUE(gateway.ok()) << gateway.process->output();
  ASSERT_TRUE(WaitFinished(gateway.stub.get(), op.operation_id(), 30s, &op));
  EXPECT_EQ(op.state(), v1::OPERATION_STATE_SUCCEEDED) << op.DebugString();
  EXPECT_EQ(op.account_id(), account);
  EXPECT_TRUE(op.created()) << op.DebugString();
  const nlohmann::json stats = sim_.Stats();
  EXPECT_EQ(stats["faults"]["held_keys"]["window-1"]["conflicts_after"], 1);
  EXPECT_EQ(stats["accounts_created"], 1);
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

// operation_id must be the decimal id SubmitCreateAccount returned: "+N" and
// " N" (which strtol-style parsing takes for N) are refused like "0" and a
// number past int64; wait_timeout_ms outside [0, 600000] is refused. Each
// message starts with the field.
TEST_F(DurableEndToEnd, OperationIdAndWaitTimeoutEdgesAreRefused) {
  Gateway gateway = Gateway::Start(config_path_, Config("100"));
  ASSERT_TRUE(gateway.ok()) << gateway.process->output();
  v1::Operation op;
  ASSERT_TRUE(
      gateway.stub
          ->SubmitCreateAccount(Context().get(), CreateRequest("edge-1"), &op)
          .ok());
  const std::string id = op.operation_id();
  ASSERT_TRUE(WaitFinished(gateway.stub.get(), id, 20s, &op));
  struct Case {
    std::string operation_id;
    int wait_timeout_ms;
    grpc::StatusCode want;
    const char* field;
  };
  const std::vector<Case> cases = {
      {"0", 0, grpc::StatusCode::INVALID_ARGUMENT, "operation_id"},
      {"+" + id, 0, grpc::StatusCode::INVALID_ARGUMENT, "operation_id"},
      {" " + id, 0, grpc::StatusCode::INVALID_ARGUMENT, "operation_id"},
      {id + " ", 0, grpc::StatusCode::INVALID_ARGUMENT, "operation_id"},
      {"-" + id, 0, grpc::StatusCode::INVALID_ARGUMENT, "operation_id"},
      {"99999999999999999999", 0, grpc::StatusCode::INVALID_ARGUMENT,
       "operation_id"},
      {"9223372036854775807", 0, grpc::StatusCode::NOT_FOUND, "operation_id"},
      {id, -1, grpc::StatusCode::INVALID_ARGUMENT, "wait_timeout_ms"},
      {id, 600001, grpc::StatusCode::INVALID_ARGUMENT, "wait_timeout_ms"},
      {id, 0, grpc::StatusCode::OK, ""},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE("operation_id '" + c.operation_id + "' wait_timeout_ms " +
                 std::to_string(c.wait_timeout_ms));
    v1::GetOperationRequest get;
    get.set_operation_id(c.operation_id);
    get.set_wait_timeout_ms(c.wait_timeout_ms);
    v1::Operation got;
    grpc::Status s = gateway.stub->GetOperation(Context().get(), get, &got);
    EXPECT_EQ(s.error_code(), c.want) << s.error_message();
    if (*c.field != '\0') {
      EXPECT_EQ(s.error_message().rfind(std::string(c.field) + ":", 0), 0u)
          << s.error_message();
    } else {
      EXPECT_EQ(got.operation_id(), id);
    }
  }
}

// The same key at the same moment through CreateAccount (synchronous) and
// SubmitCreateAccount (durable): both succeed with the one account the sim
// holds for the key, and exactly one of them says it created it.
TEST_F(DurableEndToEnd, SameKeySyncAndAsyncAtOnceMakeOneAccount) {
  constexpr int kKeys = 20;
  Gateway gateway = Gateway::Start(config_path_, Config("200"));
  ASSERT_TRUE(gateway.ok()) << gateway.process->output();
  for (int i = 0; i < kKeys; ++i) {
    const std::string key = "both-" + std::to_string(i);
    SCOPED_TRACE(key);
    std::mutex mu;
    std::condition_variable cv;
    int ready = 0;
    auto rendezvous = [&] {
      std::unique_lock<std::mutex> lock(mu);
      ++ready;
      cv.notify_all();
      cv.wait(lock, [&] { return ready == 2; });
    };
    v1::CreateAccountResponse sync;
    grpc::Status sync_status;
    std::thread caller([&] {
      rendezvous();
      sync_status = gateway.stub->CreateAccount(Context().get(),
                                                CreateRequest(key), &sync);
    });
    rendezvous();
    v1::Operation op;
    grpc::Status async_status = gateway.stub->SubmitCreateAccount(
        Context().get(), CreateRequest(key), &op);
    caller.join();
    ASSERT_TRUE(sync_status.ok()) << sync_status.error_message();
    ASSERT_TRUE(async_status.ok()) << async_status.error_message();
    ASSERT_TRUE(WaitFinished(gateway.stub.get(), op.operation_id(), 20s, &op));
    EXPECT_EQ(op.state(), v1::OPERATION_STATE_SUCCEEDED) << op.DebugString();
    const std::string account = sim_.AccountIdByKey(key);
    EXPECT_EQ(sync.account_id(), account);
    EXPECT_EQ(op.account_id(), account);
    EXPECT_NE(sync.created(), op.created())
        << "sync created=" << sync.created()
        << ", async created=" << op.created();
  }
  EXPECT_EQ(sim_.Stats()["accounts_created"].get<int>(), kKeys);
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
