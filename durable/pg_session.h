// PgSession: one libpq connection that reconnects by itself, and PgResult, its
// RAII result.
//
// Every durable component owns its own PgSession (no pool, no sharing): the
// submit writers, the claim worker, the operation waiter and the replica
// coordinator each run on one thread and talk to PostgreSQL over their own
// connection. A session connects lazily on the first Exec(); when the server
// goes away (CONNECTION_BAD, SQLSTATE class 08, admin shutdown) the call fails
// with UNAVAILABLE, the connection is dropped, and the next Exec() reconnects,
// but not before a jittered exponential backoff (100 ms doubling to 5 s) has
// passed, so a dead database is not hammered; calls in the backoff window fail
// fast with UNAVAILABLE.
//
// Time: the server cancels a statement at statement_timeout; the session itself
// stops waiting for an answer kAnswerMargin later (a database that is
// blackholed or frozen answers nothing, not even the cancel), and TCP
// keepalives plus tcp_user_timeout notice a dead peer on an idle or a writing
// connection. A statement the session stopped waiting for, or whose connection
// broke after it was sent, may or may not have been committed: its UNAVAILABLE
// carries the payload kOutcomeUnknownPayload. A statement never sent (no
// connection) has none.
//
// Errors map to canonical codes: connection trouble UNAVAILABLE, serialization
// failure and deadlock ABORTED, unique violation ALREADY_EXISTS, anything else
// INTERNAL. Messages never contain the connection URL (it may carry a
// password).
//
// Thread-safety: thread-compatible; one thread uses a session at a time.
#pragma once

#include <libpq-fe.h>

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "common/clock.h"

namespace bg::durable {

// Status payload (any value) on an UNAVAILABLE whose statement was sent: it may
// have been committed.
inline constexpr char kOutcomeUnknownPayload[] = "bg.durable/outcome-unknown";

// One query parameter: text unless `binary` (bytea), or SQL NULL.
struct PgParam {
  std::string value;
  bool binary = false;
  bool null = false;

  static PgParam Text(std::string v) {
    return PgParam{std::move(v), false, false};
  }
  static PgParam Int(int64_t v) {
    return PgParam{std::to_string(v), false, false};
  }
  static PgParam Bytes(std::string v) {
    return PgParam{std::move(v), true, false};
  }
  static PgParam Null() { return PgParam{std::string(), false, true}; }
};

class PgResult {
 public:
  explicit PgResult(PGresult* result) : result_(result, &PQclear) {}

  const PGresult* get() const { return result_.get(); }
  int rows() const { return PQntuples(result_.get()); }
  bool IsNull(int row, int col) const {
    return PQgetisnull(result_.get(), row, col) != 0;
  }
  std::string Text(int row, int col) const;
  int64_t Int(int row, int col) const;  // 0 for NULL.
  double Double(int row, int col) const;
  bool Bool(int row, int col) const { return Text(row, col) == "t"; }
  // A bytea column returned in text (hex) format, unescaped.
  std::string Bytes(int row, int col) const;
  // Rows affected by an UPDATE/DELETE/INSERT.
  int64_t affected() const;

 private:
  std::unique_ptr<PGresult, void (*)(PGresult*)> result_;
};

struct PgSessionOptions {
  // libpq URI; never logged. database.url, or BILLING_GATEWAY_DATABASE_URL
  // which overrides it.
  std::string url;
  // libpq's connect_timeout counts whole seconds.
  Clock::Duration connect_timeout = std::chrono::seconds(5);
  std::string application_name = "billing-gateway";
  Clock::Duration min_reconnect_backoff = std::chrono::milliseconds(100);
  Clock::Duration max_reconnect_backoff = std::chrono::seconds(5);
  // statement_timeout set on every new connection: no query waits forever on a
  // lock.
  Clock::Duration statement_timeout = std::chrono::seconds(30);
  // How much longer than statement_timeout the session waits for an answer.
  Clock::Duration answer_margin = std::chrono::seconds(5);
};

class PgSession {
 public:
  PgSession(Clock* clock, PgSessionOptions options);
  ~PgSession();
  PgSession(const PgSession&) = delete;
  PgSession& operator=(const PgSession&) = delete;

  // Runs one statement (several only when `params` is empty: simple query
  // protocol).
  absl::StatusOr<PgResult> Exec(const std::string& sql,
                                const std::vector<PgParam>& params = {});
  // BEGIN; fn(); COMMIT, or ROLLBACK when fn or COMMIT fails.
  template <typename Fn>
  absl::Status InTransaction(Fn fn) {
    if (auto begin = Exec("BEGIN"); !begin.ok()) return begin.status();
    absl::Status status = fn();
    if (status.ok()) {
      auto commit = Exec("COMMIT");
      if (commit.ok()) return absl::OkStatus();
      status = commit.status();
    }
    if (connected()) (void)Exec("ROLLBACK");
    return status;
  }

  // Connects now if not connected (subject to the backoff).
  absl::Status EnsureConnected();
  bool connected() const { return conn_ != nullptr; }
  // Drops the connection (tests; or after an error that leaves the session
  // unusable).
  void Disconnect();

 private:
  // `sent`: the statement reached the server (a lost connection then leaves
  // its outcome unknown).
  absl::Status ErrorFrom(const PGresult* result, const char* what, bool sent);
  Clock::Duration AnswerTimeout() const;

  Clock* const clock_;
  const PgSessionOptions options_;
  PGconn* conn_ = nullptr;
  Clock::TimePoint next_attempt_{};
  Clock::Duration backoff_{0};
  uint64_t jitter_state_;
};

}  // namespace bg::durable
