// A start that fails (issue 13, defect 1), with a database configured:
//   * an unreadable TLS file fails the start before anything touches the
//     database (the schema is not even migrated) or any thread runs;
//   * a gRPC port that is taken fails the start after the durable queue has
//     started and claimed work: the process exits 1 with the reason, cleanly
//     (under the sanitizer builds: no use-after-free of the durable worker by
//     the dispatcher's queued jobs), and what it had claimed is not lost: a
//     later gateway finishes every operation, one account each.
#include <arpa/inet.h>
#include <libpq-fe.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "tests/durable_harness.h"
#include "tests/gateway_process.h"
#include "tests/pg_fixture.h"

namespace bg::testing {
namespace {

using namespace std::chrono_literals;

// Runs billing-gateway on `yaml` until it exits by itself (bounded); returns
// its exit status and output.
std::pair<std::optional<int>, std::string> RunToExit(const std::string& name,
                                                     const std::string& yaml) {
  const std::string path = TestFile(name);
  std::ofstream(path) << yaml;
  Subprocess gateway({BG_GATEWAY_BINARY, "--config", path},
                     /*capture_stderr=*/true);
  std::string output = gateway.ReadAll(30s);
  return {gateway.Terminate(5s), output};
}

std::string Query(const std::string& url, const std::string& sql) {
  PGconn* conn = PQconnectdb(url.c_str());
  std::string value = "<no connection>";
  if (PQstatus(conn) == CONNECTION_OK) {
    PGresult* r = PQexec(conn, sql.c_str());
    value = PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1
                ? std::string(PQgetvalue(r, 0, 0))
                : std::string("<error> ") + PQerrorMessage(conn);
    PQclear(r);
  }
  PQfinish(conn);
  return value;
}

TEST(GatewayStart, AnUnreadableTlsFileFailsBeforeTheDatabaseIsTouched) {
  if (auto skip = PgFixture::SkipReason()) GTEST_SKIP() << *skip;
  PgFixture pg;
  ASSERT_EQ(pg.Start(), "");
  const std::string url = pg.CreateDatabase("tls_first");
  ASSERT_FALSE(url.empty());
  auto [code, output] = RunToExit("tls-first.yaml",
                                  "server:\n  listen: 127.0.0.1:0\n"
                                  "  tls_cert_file: /nonexistent/server.crt\n"
                                  "  tls_key_file: /nonexistent/server.key\n"
                                  "metrics:\n  listen: 127.0.0.1:0\n"
                                  "killbill:\n  url: http://127.0.0.1:9\n"
                                  "database:\n  url: \"" +
                                      url + "\"\n");
  EXPECT_EQ(code, std::optional<int>(1)) << output;
  EXPECT_NE(output.find("server.tls_cert_file"), std::string::npos) << output;
  EXPECT_EQ(Query(url, "SELECT to_regclass('operations') IS NULL"), "t")
      << "the database was migrated before the TLS files were read";
}

TEST(GatewayStart, APortTakenAfterTheDurableQueueStartedLosesNothing) {
  if (auto skip = PgFixture::SkipReason()) GTEST_SKIP() << *skip;
  PgFixture pg;
  ASSERT_EQ(pg.Start(), "");
  Sim sim = Sim::Ample();
  ASSERT_NE(sim.port, 0);
  auto yaml = [&](const std::string& listen, double rate) {
    return "server:\n  listen: " + listen +
           "\n  shutdown_grace: 1s\n"
           "metrics:\n  listen: 127.0.0.1:0\n"
           "logging:\n  level: warn\n"
           "killbill:\n  url: http://127.0.0.1:" +
           std::to_string(sim.port) +
           "\n"
           "rate:\n  mode: static\n  initial: " +
           std::to_string(rate) + "\n  min: 0.5\n  burst: 1\n" +
           "database:\n  url: \"" + pg.Url() +
           "\"\n  lease: 2s\n  poll_interval: 50ms\n";
  };

  // Work left in the database: 40 operations accepted by a gateway that runs
  // them at 1/s and is killed at once.
  constexpr int kOps = 40;
  std::vector<std::string> ids;
  {
    Gateway first =
        Gateway::Start(TestFile("first.yaml"), yaml("127.0.0.1:0", /*rate=*/1));
    ASSERT_TRUE(first.ok()) << first.process->output();
    int failures = 0;
    ids = SubmitAll(first.stub.get(), "start-", kOps, 4, &failures);
    ASSERT_EQ(failures, 0);
    first.Kill();
  }

  // A socket holds the port the next gateway is told to listen on (without
  // SO_REUSEPORT, so gRPC cannot share it).
  const int holder = socket(AF_INET, SOCK_STREAM, 0);
  ASSERT_GE(holder, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(bind(holder, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
  ASSERT_EQ(listen(holder, 1), 0);
  socklen_t len = sizeof addr;
  ASSERT_EQ(getsockname(holder, reinterpret_cast<sockaddr*>(&addr), &len), 0);
  const std::string taken = "127.0.0.1:" + std::to_string(ntohs(addr.sin_port));

  // Several tries, since what the failed start had claimed by then varies.
  for (int attempt = 0; attempt < 3; ++attempt) {
    auto [code, output] = RunToExit("taken.yaml", yaml(taken, /*rate=*/1));
    EXPECT_EQ(code, std::optional<int>(1)) << output;
    EXPECT_NE(output.find("server.listen " + taken + ": cannot listen"),
              std::string::npos)
        << output;
    EXPECT_EQ(output.find("Sanitizer"), std::string::npos) << output;
  }
  close(holder);

  // Nothing lost: a gateway that starts finishes every operation, one account
  // each.
  Gateway last =
      Gateway::Start(TestFile("last.yaml"), yaml("127.0.0.1:0", /*rate=*/50));
  ASSERT_TRUE(last.ok()) << last.process->output();
  for (const std::string& id : ids) {
    v1::Operation op;
    EXPECT_TRUE(WaitFinished(last.stub.get(), id, 30s, &op)) << id;
    EXPECT_EQ(op.state(), v1::OPERATION_STATE_SUCCEEDED) << op.DebugString();
  }
  EXPECT_EQ(Query(pg.Url(),
                  "SELECT count(*) FROM operations WHERE state = 'SUCCEEDED'"),
            std::to_string(kOps));
  EXPECT_EQ(sim.Stats()["accounts_created"].get<int>(), kOps)
      << sim.Stats().dump();
}

}  // namespace
}  // namespace bg::testing
