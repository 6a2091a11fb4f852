// PgFixture: a throwaway PostgreSQL server for a test: Debian's server
// binaries, a fresh data directory under /tmp, loopback only
// (listen_addresses=127.0.0.1, a free port, its socket in the same directory),
// trust authentication for one superuser. Stopped (pg_ctl stop) and deleted
// when the fixture goes away.
//
// PostgreSQL refuses to run as root and CI runs as root: then initdb and pg_ctl
// run as the `postgres` user (runuser -u postgres --) on a directory chowned to
// it.
//
// When the server binaries are missing, SkipReason() gives the reason to
// GTEST_SKIP with, except under CI (the environment variable CI set, as CI
// services do, and not "false"/"0"): there the test command installs
// PostgreSQL, so its absence is a failure (RequiredButMissing()), never a
// quiet skip. Anything else that goes wrong is a test failure everywhere.
//
// Not thread-safe; one test thread owns a fixture.
#pragma once

#include <libpq-fe.h>
#include <netinet/in.h>
#include <pwd.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <optional>
#include <sstream>
#include <string>

namespace bg::testing {

inline constexpr char kPgBinDir[] = "/usr/lib/postgresql/15/bin";

class PgFixture {
 public:
  PgFixture() = default;
  ~PgFixture() {
    Stop();
    if (!dir_.empty()) Run("rm -rf '" + dir_ + "'", /*as_postgres=*/false);
  }
  PgFixture(const PgFixture&) = delete;
  PgFixture& operator=(const PgFixture&) = delete;

  // Why the server cannot run here (nullopt = it can).
  static std::optional<std::string> MissingBinaries() {
    for (const char* tool : {"initdb", "pg_ctl", "postgres"}) {
      const std::string path = std::string(kPgBinDir) + "/" + tool;
      if (access(path.c_str(), X_OK) != 0) {
        return "PostgreSQL 15 server binaries not found (" + path +
               "); install the Debian package `postgresql` (scripts/setup.sh "
               "does)";
      }
    }
    if (geteuid() == 0 && getpwnam("postgres") == nullptr) {
      return "running as root but there is no `postgres` user to run the "
             "server as";
    }
    return std::nullopt;
  }

  // Under CI, PostgreSQL must be there: a missing server fails the test.
  static bool Required() {
    const char* ci = std::getenv("CI");
    if (ci == nullptr) return false;
    const std::string value = ci;
    return !value.empty() && value != "false" && value != "0";
  }
  // Why a test may skip here (nullopt: it must run; under CI it always must).
  static std::optional<std::string> SkipReason() {
    if (Required()) return std::nullopt;
    return MissingBinaries();
  }

  // initdb + start. Returns "" on success, else what went wrong.
  std::string Start() {
    if (auto missing = MissingBinaries()) return *missing;
    char tmpl[] = "/tmp/bg-pg-XXXXXX";
    if (mkdtemp(tmpl) == nullptr) return "mkdtemp failed";
    dir_ = tmpl;
    if (geteuid() == 0 &&
        Run("chown postgres:postgres '" + dir_ + "'", false) != 0) {
      return "chown of the data directory failed";
    }
    port_ = FreePort();
    const std::string initdb =
        std::string(kPgBinDir) + "/initdb -D '" + data() + "' -A trust -U " +
        kUser + " --no-sync -E UTF8 > '" + dir_ + "/initdb.log' 2>&1";
    if (Run(initdb, true) != 0)
      return "initdb failed: " + ReadFile(dir_ + "/initdb.log");
    return StartServer();
  }

  // pg_ctl start on the existing data directory (after Stop(), for outage
  // tests).
  std::string StartServer() {
    const std::string opts = "-c listen_addresses=127.0.0.1 -p " +
                             std::to_string(port_) + " -k " + dir_ +
                             " -c max_connections=300 -c shared_buffers=64MB";
    const std::string start =
        std::string(kPgBinDir) + "/pg_ctl start -w -t 60 -D '" + data() +
        "' -l '" + dir_ + "/server.log' -o '" + opts + "' > /dev/null 2>&1";
    if (Run(start, true) != 0)
      return "pg_ctl start failed: " + ReadFile(dir_ + "/server.log");
    running_ = true;
    return "";
  }

  // pg_ctl stop -m fast (idempotent).
  void Stop() {
    if (!running_) return;
    Run(std::string(kPgBinDir) + "/pg_ctl stop -w -t 60 -m fast -D '" + data() +
            "' > /dev/null 2>&1",
        true);
    running_ = false;
  }

  int port() const { return port_; }
  const std::string& dir() const { return dir_; }
  // URI of database `db` (the default database `postgres` unless told).
  std::string Url(const std::string& db = "postgres") const {
    return "postgresql://" + std::string(kUser) +
           "@127.0.0.1:" + std::to_string(port_) + "/" + db;
  }
  // CREATE DATABASE `name` (an identifier); returns its URI ("" on failure).
  std::string CreateDatabase(const std::string& name) {
    PGconn* conn = PQconnectdb(Url().c_str());
    bool ok = PQstatus(conn) == CONNECTION_OK;
    if (ok) {
      PGresult* r = PQexec(conn, ("CREATE DATABASE " + name).c_str());
      ok = PQresultStatus(r) == PGRES_COMMAND_OK;
      PQclear(r);
    }
    PQfinish(conn);
    return ok ? Url(name) : "";
  }

 private:
  static constexpr char kUser[] = "bg";

  std::string data() const { return dir_ + "/data"; }

  static int Run(const std::string& command, bool as_postgres) {
    std::string cmd = command;
    if (as_postgres && geteuid() == 0) {
      // Single-quote the command for sh -c under runuser.
      std::string quoted;
      for (char c : command) {
        if (c == '\'') {
          quoted += "'\\''";
        } else {
          quoted += c;
        }
      }
      cmd = "runuser -u postgres -- sh -c '" + quoted + "'";
    }
    const int rc = std::system(cmd.c_str());
    return rc == -1 ? -1 : WEXITSTATUS(rc);
  }

  static int FreePort() {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = 0;
    socklen_t len = sizeof(addr);
    bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr));
    getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
    const int port = ntohs(addr.sin_port);
    close(fd);
    return port;
  }

  static std::string ReadFile(const std::string& path) {
    std::ifstream in(path);
    std::stringstream s;
    s << in.rdbuf();
    return s.str();
  }

  std::string dir_;
  int port_ = 0;
  bool running_ = false;
};

}  // namespace bg::testing
