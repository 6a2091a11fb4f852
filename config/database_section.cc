// The database section (durable asynchronous operations on PostgreSQL, written
// into durable::DurableOptions): its keys, the URL that the environment
// overrides, the order relations between its durations, its DescribeForLog
// lines (the URL's password redacted) and equality; RedactDatabaseUrl and
// DatabaseTarget.
#include <tuple>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/str_split.h"
#include "config/sections.h"
#include "durable/conninfo.h"

namespace bg::config {

using internal::ToAbsl;

std::string RedactDatabaseUrl(std::string_view url) {
  return durable::RedactedUri(url);
}

std::string DatabaseTarget(std::string_view url) {
  return durable::UriTarget(url);
}

namespace internal {
namespace {

// A libpq connection URI. Its value is never quoted: it may carry a password.
std::optional<std::string> CheckDatabaseUrl(absl::string_view text) {
  if (text.empty()) return std::nullopt;  // No database: in-memory queue.
  if (HasControlCharacter(text) || text.find(' ') != absl::string_view::npos) {
    return "must not contain spaces or control characters (value not shown)";
  }
  absl::StatusOr<durable::ConnInfo> parsed =
      durable::ParseConnInfo(std::string_view(text.data(), text.size()));
  if (!parsed.ok()) return std::string(parsed.status().message());
  return std::nullopt;
}

}  // namespace

std::vector<Section> DatabaseSection(GatewayConfig& c) {
  using absl::Hours;
  using absl::Milliseconds;
  using absl::Minutes;
  return {
      {"database",
       {
           StringField("url", &c.database.session.url, CheckDatabaseUrl),
           DurationField("connect_timeout", &c.database.session.connect_timeout,
                         absl::Seconds(1), Minutes(5)),
           DurationField("lease", &c.database.worker.lease, absl::Seconds(1),
                         Hours(1)),
           IntField("claim_batch", &c.database.worker.claim_batch, 1, 1000),
           IntField("max_outstanding", &c.database.worker.max_outstanding, 1,
                    100000),
           DurationField("poll_interval", &c.database.worker.poll_interval,
                         Milliseconds(10), Minutes(1)),
           DurationField("attempt_deadline",
                         &c.database.worker.attempt_deadline, absl::Seconds(1),
                         Hours(1)),
           IntField("max_attempts", &c.database.worker.max_attempts, 1, 1000),
           DurationField("retry_initial_backoff",
                         &c.database.worker.retry_initial_backoff,
                         Milliseconds(10), Hours(1)),
           DurationField("retry_max_backoff",
                         &c.database.worker.retry_max_backoff, Milliseconds(10),
                         Hours(1)),
           DurationField("retention", &c.database.retention, Minutes(1),
                         Hours(24 * 3650)),
           DurationField("heartbeat_interval", &c.database.heartbeat_interval,
                         Milliseconds(100), Minutes(1)),
           DurationField("heartbeat_timeout", &c.database.heartbeat_timeout,
                         Milliseconds(100), Hours(1)),
           IntField("submit_batch", &c.database.submit_batch, 1, 10000),
           IntField("submit_writers", &c.database.submit_writers, 1, 64),
           IntField("submit_queue", &c.database.submit_queue, 1, 1000000),
       }},
  };
}

absl::Status ApplyDatabaseEnvironment(const Environment& env,
                                      GatewayConfig& c) {
  if (std::optional<std::string> url = env.Get(kEnvDatabaseUrl)) {
    std::optional<std::string> error = CheckDatabaseUrl(*url);
    if (url->empty()) error = "must not be empty";
    if (error) {
      return absl::InvalidArgumentError(
          absl::StrCat("environment variable ", ToAbsl(kEnvDatabaseUrl),
                       " (overrides database.url): ", *error,
                       " (unset it to use the file's value)"));
    }
    c.database.session.url = *std::move(url);
  }
  return absl::OkStatus();
}

absl::Status CheckDatabaseSection(const GatewayConfig& c,
                                  const Positions& positions) {
  const auto duration = [](auto v) { return FormatDuration(v); };
  if (absl::Status s = positions.CheckOrder(
          "database.retry_initial_backoff",
          c.database.worker.retry_initial_backoff, "database.retry_max_backoff",
          c.database.worker.retry_max_backoff, duration);
      !s.ok()) {
    return s;
  }
  return positions.CheckOrder(
      "database.heartbeat_interval", c.database.heartbeat_interval,
      "database.heartbeat_timeout", c.database.heartbeat_timeout, duration);
}

void DescribeDatabaseSection(const GatewayConfig& c, std::string& out) {
  const auto d = [](auto v) { return FormatDuration(v); };
  const durable::DurableOptions& db = c.database;
  const durable::WorkerOptions& worker = c.database.worker;
  absl::StrAppend(&out, "database:\n");
  if (!db.session.url.empty()) {
    absl::StrAppend(
        &out, "  url: ", YamlString(RedactDatabaseUrl(db.session.url)), "\n");
  }
  absl::StrAppend(&out,  //
                  "  connect_timeout: ", d(db.session.connect_timeout), "\n",
                  "  lease: ", d(worker.lease), "\n",                        //
                  "  claim_batch: ", worker.claim_batch, "\n",               //
                  "  max_outstanding: ", worker.max_outstanding, "\n",       //
                  "  poll_interval: ", d(worker.poll_interval), "\n",        //
                  "  attempt_deadline: ", d(worker.attempt_deadline), "\n",  //
                  "  max_attempts: ", worker.max_attempts, "\n",             //
                  "  retry_initial_backoff: ", d(worker.retry_initial_backoff),
                  "\n",  //
                  "  retry_max_backoff: ", d(worker.retry_max_backoff), "\n",
                  "  retention: ", d(db.retention), "\n",                    //
                  "  heartbeat_interval: ", d(db.heartbeat_interval), "\n",  //
                  "  heartbeat_timeout: ", d(db.heartbeat_timeout), "\n",    //
                  "  submit_batch: ", db.submit_batch, "\n",                 //
                  "  submit_writers: ", db.submit_writers, "\n",             //
                  "  submit_queue: ", db.submit_queue, "\n");
}

namespace {

auto Tie(const durable::PgSessionOptions& s) {
  BG_EXPECT_SIZE(durable::PgSessionOptions, 104);
  return std::tie(s.url, s.connect_timeout, s.application_name,
                  s.min_reconnect_backoff, s.max_reconnect_backoff,
                  s.statement_timeout, s.answer_margin);
}
auto Tie(const durable::WorkerOptions& w) {
  BG_EXPECT_SIZE(durable::WorkerOptions, 88);
  return std::tie(w.owner, w.lease, w.claim_batch, w.max_outstanding,
                  w.poll_interval, w.attempt_deadline, w.max_attempts,
                  w.retry_initial_backoff, w.retry_max_backoff);
}
auto Tie(const durable::DurableOptions& d) {
  BG_EXPECT_SIZE(durable::DurableOptions, 232);
  return std::tuple_cat(
      Tie(d.session), Tie(d.worker),
      std::tie(d.retention, d.heartbeat_interval, d.heartbeat_timeout,
               d.submit_batch, d.submit_writers, d.submit_queue,
               d.max_waiters));
}

}  // namespace

bool SameDatabaseSection(const GatewayConfig& a, const GatewayConfig& b) {
  return Tie(a.database) == Tie(b.database);
}

}  // namespace internal
}  // namespace bg::config
