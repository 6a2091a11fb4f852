#include "durable/pg_session.h"

#include <poll.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <optional>

#include "absl/strings/cord.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "durable/conninfo.h"
#include "spdlog/spdlog.h"

namespace bg::durable {
namespace {

// libpq messages span lines ("...failed: Connection refused\n\tIs the server
// running..."); one line reads better in logs and in status messages.
std::string OneLine(std::string text) {
  std::string out;
  bool space = false;
  for (char c : text) {
    if (c == '\n' || c == '\t' || c == '\r' || c == ' ') {
      space = !out.empty();
      continue;
    }
    if (space) out.push_back(' ');
    space = false;
    out.push_back(c);
  }
  return out;
}

}  // namespace

std::string PgResult::Text(int row, int col) const {
  const char* v = PQgetvalue(result_.get(), row, col);
  return std::string(v,
                     static_cast<size_t>(PQgetlength(result_.get(), row, col)));
}

int64_t PgResult::Int(int row, int col) const {
  if (IsNull(row, col)) return 0;
  int64_t v = 0;
  (void)absl::SimpleAtoi(PQgetvalue(result_.get(), row, col), &v);
  return v;
}

double PgResult::Double(int row, int col) const {
  if (IsNull(row, col)) return 0;
  double v = 0;
  (void)absl::SimpleAtod(PQgetvalue(result_.get(), row, col), &v);
  return v;
}

std::string PgResult::Bytes(int row, int col) const {
  size_t n = 0;
  unsigned char* raw = PQunescapeBytea(reinterpret_cast<const unsigned char*>(
                                           PQgetvalue(result_.get(), row, col)),
                                       &n);
  if (raw == nullptr) return std::string();
  std::string out(reinterpret_cast<char*>(raw), n);
  PQfreemem(raw);
  return out;
}

int64_t PgResult::affected() const {
  int64_t n = 0;
  (void)absl::SimpleAtoi(PQcmdTuples(result_.get()), &n);
  return n;
}

PgSession::PgSession(Clock* clock, PgSessionOptions options)
    : clock_(clock),
      options_(std::move(options)),
      jitter_state_(reinterpret_cast<uintptr_t>(this) | 1) {}

PgSession::~PgSession() { Disconnect(); }

void PgSession::Disconnect() {
  if (conn_ != nullptr) {
    PQfinish(conn_);
    conn_ = nullptr;
  }
}

absl::Status PgSession::EnsureConnected() {
  if (conn_ != nullptr) return absl::OkStatus();
  const Clock::TimePoint now = clock_->Now();
  if (now < next_attempt_) {
    return absl::UnavailableError(
        "database unreachable; reconnecting with backoff");
  }
  const auto timeout_s = std::max<int64_t>(
      1,
      std::chrono::duration_cast<std::chrono::seconds>(options_.connect_timeout)
          .count());
  const std::string timeout = std::to_string(timeout_s);
  // dbname first: with expand_dbname the URI is expanded there, and later
  // keywords override.
  // TCP-level bounds before dbname, so a URI that sets them wins: keepalives
  // notice a dead peer on an idle connection, tcp_user_timeout one that stops
  // acknowledging what is written.
  const std::string user_timeout_ms = std::to_string(
      std::chrono::duration_cast<std::chrono::milliseconds>(AnswerTimeout())
          .count());
  const char* keywords[] = {
      "keepalives",       "keepalives_idle",  "keepalives_interval",
      "keepalives_count", "tcp_user_timeout", "dbname",
      "connect_timeout",  "application_name", nullptr};
  const char* values[] = {"1",
                          "10",
                          "5",
                          "3",
                          user_timeout_ms.c_str(),
                          options_.url.c_str(),
                          timeout.c_str(),
                          options_.application_name.c_str(),
                          nullptr};
  PGconn* conn = PQconnectdbParams(keywords, values, /*expand_dbname=*/1);
  if (conn == nullptr || PQstatus(conn) != CONNECTION_OK) {
    // libpq's message names host and port; some (a URI it cannot parse) quote
    // the whole URI: scrubbed of it and of every secret value.
    const std::string why = ScrubSecrets(
        OneLine(conn ? PQerrorMessage(conn) : "out of memory"), options_.url);
    if (conn) PQfinish(conn);
    backoff_ = backoff_.count() == 0
                   ? options_.min_reconnect_backoff
                   : std::min(backoff_ * 2, options_.max_reconnect_backoff);
    // xorshift jitter in [backoff/2, backoff].
    jitter_state_ ^= jitter_state_ << 13;
    jitter_state_ ^= jitter_state_ >> 7;
    jitter_state_ ^= jitter_state_ << 17;
    const double f =
        0.5 + 0.5 * static_cast<double>(jitter_state_ % 1000) / 1000.0;
    next_attempt_ =
        now + std::chrono::duration_cast<Clock::Duration>(backoff_ * f);
    return absl::UnavailableError(
        absl::StrCat("cannot connect to the database: ", why));
  }
  conn_ = conn;
  backoff_ = Clock::Duration(0);
  const auto stmt_ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                           options_.statement_timeout)
                           .count();
  // synchronous_commit on whatever the server's default: a submission is
  // acknowledged only once its row is on disk.
  auto set = Exec(absl::StrCat("SET statement_timeout = ", stmt_ms,
                               "; SET client_min_messages = warning"
                               "; SET synchronous_commit = on"));
  if (!set.ok()) return set.status();
  return absl::OkStatus();
}

absl::Status PgSession::ErrorFrom(const PGresult* result, const char* what,
                                  bool sent) {
  const char* state =
      result ? PQresultErrorField(result, PG_DIAG_SQLSTATE) : nullptr;
  std::string message = result ? PQresultErrorMessage(result) : "";
  if (message.empty() && conn_) message = PQerrorMessage(conn_);
  message = ScrubSecrets(OneLine(message), options_.url);
  const std::string sqlstate = state ? state : "";
  const bool connection_lost =
      conn_ == nullptr || PQstatus(conn_) == CONNECTION_BAD ||
      sqlstate.rfind("08", 0) == 0 || sqlstate == "57P01" ||
      sqlstate == "57P02" || sqlstate == "57P03";
  if (connection_lost) {
    Disconnect();
    absl::Status lost = absl::UnavailableError(
        absl::StrCat("database connection lost (", what, "): ", message));
    if (sent) lost.SetPayload(kOutcomeUnknownPayload, absl::Cord("1"));
    return lost;
  }
  const std::string text =
      absl::StrCat(what, ": ", message, " [", sqlstate, "]");
  if (sqlstate == "40001" || sqlstate == "40P01")
    return absl::AbortedError(text);
  if (sqlstate == "23505") return absl::AlreadyExistsError(text);
  if (sqlstate == "57014") return absl::DeadlineExceededError(text);
  return absl::InternalError(text);
}

absl::StatusOr<PgResult> PgSession::Exec(const std::string& sql,
                                         const std::vector<PgParam>& params) {
  if (absl::Status s = EnsureConnected(); !s.ok()) return s;
  int sent;
  if (params.empty()) {
    sent = PQsendQuery(conn_, sql.c_str());
  } else {
    std::vector<const char*> values(params.size());
    std::vector<int> lengths(params.size());
    std::vector<int> formats(params.size());
    for (size_t i = 0; i < params.size(); ++i) {
      values[i] = params[i].null ? nullptr : params[i].value.data();
      lengths[i] = static_cast<int>(params[i].value.size());
      formats[i] = params[i].binary ? 1 : 0;
    }
    sent = PQsendQueryParams(conn_, sql.c_str(),
                             static_cast<int>(params.size()), nullptr,
                             values.data(), lengths.data(), formats.data(),
                             /*resultFormat=*/0);
  }
  // Blocking mode: a send that failed wrote no whole message, so the server
  // ran nothing.
  if (!sent) return ErrorFrom(nullptr, "query not sent", /*sent=*/false);
  // Like PQexec (the last result, or the first error), but never waiting past
  // the answer timeout.
  const auto give_up = std::chrono::steady_clock::now() + AnswerTimeout();
  std::optional<PgResult> last;
  std::optional<PgResult> error;
  for (;;) {
    while (PQisBusy(conn_)) {
      const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
          give_up - std::chrono::steady_clock::now());
      pollfd p{PQsocket(conn_), POLLIN, 0};
      const int ready =
          left.count() > 0 ? poll(&p, 1, static_cast<int>(left.count())) : 0;
      if (ready < 0 && errno == EINTR) continue;
      if (ready == 0) {
        Disconnect();
        absl::Status late = absl::UnavailableError(absl::StrCat(
            "the database did not answer within ",
            std::chrono::duration_cast<std::chrono::milliseconds>(
                AnswerTimeout())
                .count(),
            " ms (statement_timeout + margin); connection dropped"));
        late.SetPayload(kOutcomeUnknownPayload, absl::Cord("1"));
        return late;
      }
      if (!PQconsumeInput(conn_)) break;  // PQgetResult reports the error.
    }
    PGresult* raw = PQgetResult(conn_);
    if (raw == nullptr) break;
    const ExecStatusType status = PQresultStatus(raw);
    if (status != PGRES_COMMAND_OK && status != PGRES_TUPLES_OK) {
      if (!error)
        error.emplace(raw);
      else
        PQclear(raw);
      if (PQstatus(conn_) == CONNECTION_BAD) break;
      continue;
    }
    last.emplace(raw);
  }
  if (error) return ErrorFrom(error->get(), "query failed", /*sent=*/true);
  if (!last) return ErrorFrom(nullptr, "query failed", /*sent=*/true);
  return *std::move(last);
}

Clock::Duration PgSession::AnswerTimeout() const {
  return options_.statement_timeout + options_.answer_margin;
}

}  // namespace bg::durable
