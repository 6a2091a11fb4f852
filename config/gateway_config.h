// GatewayConfig: the typed, validated configuration of billing-gateway, and the
// one place that turns YAML (plus a few environment variables) into it.
//
// The YAML file is parsed once at start-up into plain structs whose every field
// carries its default in a member initialiser; the rest of the program reads
// those structs and never sees YAML. `config/gateway.yaml` is the commented
// reference of every key, its default, its range and its trade-off; the ranges
// enforced here are the ones written there.
//
// Errors: every problem in the file (YAML syntax error, unknown key at any
// level, duplicate key, wrong type, bad duration, value out of range,
// inconsistent pair such as rate.min > rate.max) is returned as an
// `absl::InvalidArgumentError` whose message starts with `FILE:LINE:COLUMN: `
// (1-based) and names the full key path, e.g.
//   gateway.yaml:12:14: breaker.min_calls: must be between 1 and 100000, got 0
// Parsing stops at the first error. No exception escapes this library:
// yaml-cpp's are caught in the adapter.
//
// Secrets (killbill.api_key, api_secret, username, password) may come from the
// file or, overriding it, from the environment variables named below. Their
// values never appear in an error message nor in `DescribeForLog()`. (Key names
// and the values of other keys are quoted in errors, as is a URL unless it
// carries credentials.)
//
// Thread-safety: the structs are plain values (copy them freely; a const object
// may be read from any thread). `ParseConfig` and `LoadConfigFile` share no
// state and may run concurrently, except that the default `Environment` calls
// getenv(), which races with any concurrent setenv() in the process.
#pragma once

#include <chrono>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <utility>

#include "absl/status/statusor.h"

namespace bg::config {

// Durations are written in YAML as absl::ParseDuration strings ("250ms", "2s",
// "1m", "1m30s") and kept at millisecond precision; a std::chrono::milliseconds
// converts implicitly and losslessly to bg::Clock::Duration.
using Millis = std::chrono::milliseconds;

// The gRPC front door.
struct ServerConfig {
  // host:port the gRPC server binds; port 0 picks a free port (tests read it
  // back).
  std::string listen = "127.0.0.1:50051";
  // Largest request or response message, in bytes [1KiB, 16MiB].
  int max_message_bytes = 64 * 1024;
  // On SIGTERM: stop accepting, then give queued and in-flight calls this long
  // [0, 10m].
  Millis shutdown_grace = std::chrono::seconds(10);
  // Deadline applied to a call whose caller sent none [1ms, 1h].
  Millis default_deadline = std::chrono::seconds(30);
  // TLS: PEM certificate chain and private key of the gRPC server. Both or
  // neither; empty means plaintext (loopback or a mesh that terminates TLS).
  std::string tls_cert_file;
  std::string tls_key_file;
  // PEM CA bundle: when set, clients must present a certificate it signed
  // (mutual TLS). Needs tls_cert_file.
  std::string tls_client_ca_file;
};

// The Prometheus scrape endpoint (its own port, so scraping never competes with
// gRPC).
struct MetricsConfig {
  std::string listen = "127.0.0.1:9464";  // host:port, port 0..65535.
};

enum class LogLevel { kTrace, kDebug, kInfo, kWarn, kError };

struct LoggingConfig {
  LogLevel level = LogLevel::kInfo;  // trace | debug | info | warn | error
};

// The Kill Bill backend.
struct KillBillConfig {
  // scheme://host[:port], scheme http or https, no path, query or credentials;
  // a single trailing '/' is dropped. Suitable as cpp-httplib's
  // scheme_host_port.
  std::string url = "http://127.0.0.1:8080";
  // Secrets: overridden by
  // BILLING_GATEWAY_KILLBILL_{API_KEY,API_SECRET,USERNAME,PASSWORD}. Never
  // empty, never contain control characters (they travel in HTTP headers).
  std::string api_key = "fresh-tenant";
  std::string api_secret = "fresh-secret";
  std::string username = "admin";
  std::string password = "password";
  // X-Killbill-CreatedBy on every write (Kill Bill's audit log).
  std::string created_by = "billing-gateway";
  Millis connect_timeout = std::chrono::seconds(2);   // [1ms, 5m]
  Millis request_timeout = std::chrono::seconds(10);  // [1ms, 10m]
  int max_connections = 16;  // keep-alive pool size [1, 1024]
  // PEM bundle to verify Kill Bill's certificate; only with an https url. Empty
  // = the system's trust store. Existence is checked by the client when it
  // opens the file.
  std::string ca_file;
};

// The bounded admission queue.
struct QueueConfig {
  int capacity = 10000;  // jobs waiting for a token [1, 1000000]
};

struct ConcurrencyConfig {
  int max_in_flight = 8;  // Kill Bill calls outstanding at once [1, 1024]
};

enum class RateMode { kStatic, kAdaptive };

// The token bucket that paces Kill Bill's bus, and the controller that moves
// its rate. Rates are main-bus events per second; all > 0 and <= 100000, min <=
// initial <= max.
struct RateConfig {
  RateMode mode = RateMode::kAdaptive;  // static: stay at `initial` forever.
  double initial = 10;                  // rate at start-up.
  double min = 1;                       // adaptive floor.
  double max = 50;                      // adaptive ceiling.
  double burst = 10;                    // bucket depth in tokens [1, 100000].
  double increase_step = 1;  // additive increase per adjust_interval.
  Millis adjust_interval = std::chrono::seconds(1);  // [10ms, 1m]
  Millis cooldown =
      std::chrono::seconds(10);  // no increase this long after a cut [0, 1h]
};

// Polling Kill Bill's GET /1.0/healthcheck.
struct HealthConfig {
  Millis poll_interval = std::chrono::seconds(1);  // [10ms, 1m]
  Millis timeout = std::chrono::seconds(2);        // per poll [1ms, 1m]
  // Queue-growth slope (the number Kill Bill prints, e.g. "bus (0.51)") above
  // which a queue counts as growing (0, 1000].
  double queue_growth_threshold = 0.1;
};

struct BreakerConfig {
  double failure_rate_threshold = 0.5;  // open at this failure share (0, 1].
  Millis slow_call_threshold =
      std::chrono::seconds(5);            // a call this slow is "slow".
  double slow_call_rate_threshold = 0.8;  // open at this slow share (0, 1].
  Millis window =
      std::chrono::seconds(10);  // sliding window of outcomes [100ms, 1h].
  int min_calls = 10;  // no decision on fewer calls in the window [1, 100000].
  Millis open_duration =
      std::chrono::seconds(2);  // first open period [1ms, 1h].
  // Repeated trips back off up to this (>= open_duration, <= 1h).
  Millis max_open_duration = std::chrono::seconds(60);
  int half_open_probes = 3;  // successes needed to close again [1, 1000].
  Millis probe_timeout = std::chrono::seconds(10);  // [1ms, 10m]
};

// Retries of idempotent calls (jittered exponential backoff inside a retry
// budget).
struct RetryConfig {
  int max_attempts = 3;  // including the first [1, 10].
  Millis initial_backoff = std::chrono::milliseconds(100);  // [1ms, 1m]
  Millis max_backoff = std::chrono::seconds(2);  // >= initial_backoff, <= 10m.
  double budget_ratio = 0.1;  // retries at most this share of calls [0, 1].
};

// PostgreSQL: durable asynchronous operations (SubmitCreateAccount /
// GetOperation) and coordination between replicas. Absent `url` = the gateway
// runs on its in-memory queue only and refuses asynchronous submissions.
struct DatabaseConfig {
  // libpq connection URI, postgresql://[user[:password]@]host[:port]/dbname
  // [?param=value...] (or postgres://). Empty = no database. Secret (it may
  // carry a password): overridden by BILLING_GATEWAY_DATABASE_URL; libpq's own
  // PGPASSWORD / ~/.pgpass also work. Only RedactDatabaseUrl()'s form is
  // logged.
  std::string url;
  Millis connect_timeout =
      std::chrono::seconds(5);  // [1s, 5m] (libpq: whole seconds)
  // How long a claimed operation belongs to its replica without renewal
  // [1s, 1h]; renewed every lease/3 while the replica lives. A dead replica's
  // operations are taken over this long after its last renewal.
  Millis lease = std::chrono::seconds(30);
  // Operations claimed per query [1, 1000].
  int claim_batch = 32;
  // Claimed operations handed to the dispatcher and not yet finished [1,
  // 100000].
  int max_outstanding = 64;
  // Claim poll period when there was nothing to claim [10ms, 1m].
  Millis poll_interval = std::chrono::milliseconds(200);
  // Deadline of one attempt inside the dispatcher [1s, 1h].
  Millis attempt_deadline = std::chrono::minutes(2);
  // Attempts before a retryable failure becomes FAILED [1, 1000].
  int max_attempts = 20;
  // Backoff of a retryable failure, doubled per attempt up to the max [10ms,
  // 1h].
  Millis retry_initial_backoff = std::chrono::seconds(1);
  Millis retry_max_backoff = std::chrono::minutes(1);
  // Finished operations are deleted this long after they finished [1m, 3650d].
  Millis retention = std::chrono::hours(24 * 7);
  // Replica heartbeat period [100ms, 1m] and the silence after which a replica
  // counts as dead and its rate share is redistributed [> heartbeat_interval,
  // 1h].
  Millis heartbeat_interval = std::chrono::seconds(1);
  Millis heartbeat_timeout = std::chrono::seconds(5);
  // Group commit of submissions: most operations per INSERT transaction
  // [1, 10000], writer connections [1, 64], submissions waiting for a writer
  // [1, 1000000] (beyond: RESOURCE_EXHAUSTED).
  int submit_batch = 256;
  int submit_writers = 2;
  int submit_queue = 20000;
};

struct GatewayConfig {
  ServerConfig server;
  MetricsConfig metrics;
  LoggingConfig logging;
  KillBillConfig killbill;
  QueueConfig queue;
  ConcurrencyConfig concurrency;
  RateConfig rate;
  HealthConfig health;
  BreakerConfig breaker;
  RetryConfig retry;
  DatabaseConfig database;
};

// Field-by-field equality (secrets included).
bool operator==(const GatewayConfig& a, const GatewayConfig& b);
inline bool operator!=(const GatewayConfig& a, const GatewayConfig& b) {
  return !(a == b);
}

// Names of the environment variables that override the file's secrets.
inline constexpr std::string_view kEnvApiKey =
    "BILLING_GATEWAY_KILLBILL_API_KEY";
inline constexpr std::string_view kEnvApiSecret =
    "BILLING_GATEWAY_KILLBILL_API_SECRET";
inline constexpr std::string_view kEnvUsername =
    "BILLING_GATEWAY_KILLBILL_USERNAME";
inline constexpr std::string_view kEnvPassword =
    "BILLING_GATEWAY_KILLBILL_PASSWORD";

inline constexpr std::string_view kEnvDatabaseUrl =
    "BILLING_GATEWAY_DATABASE_URL";

// database.url with its password (userinfo or `password=` parameter) replaced
// by "<redacted>", for logs.
std::string RedactDatabaseUrl(std::string_view url);
// scheme://host[:port]/dbname of database.url: no user, password or parameters.
std::string DatabaseTarget(std::string_view url);

// Where environment variables come from: the process (getenv) by default,
// anything in tests. A lookup returns nullopt for an unset variable; a
// set-but-empty variable is refused (unset it to fall back to the file).
class Environment {
 public:
  using Lookup =
      std::function<std::optional<std::string>(std::string_view name)>;

  Environment();  // Reads the process environment.
  explicit Environment(Lookup lookup) : lookup_(std::move(lookup)) {}

  // An environment in which nothing is set.
  static Environment Empty();

  std::optional<std::string> Get(std::string_view name) const {
    return lookup_(name);
  }

 private:
  Lookup lookup_;
};

// Parses `yaml_text`; `file_name` only prefixes error messages. An empty text,
// or one of only comments, yields every default (secrets still come from
// `env`).
absl::StatusOr<GatewayConfig> ParseConfig(std::string_view yaml_text,
                                          std::string_view file_name,
                                          const Environment& env);

// Reads and parses the file at `path`. A file that cannot be read gives the
// status of the failing errno (NotFound, PermissionDenied, ...); a file over 1
// MiB, or anything wrong inside it, InvalidArgument as above.
absl::StatusOr<GatewayConfig> LoadConfigFile(const std::string& path,
                                             const Environment& env);

// The effective configuration as YAML that parses back to the same values, with
// every secret printed as "<redacted>". For --check-config and the start-up log
// line.
std::string DescribeForLog(const GatewayConfig& config);

std::string_view LogLevelName(LogLevel level);
std::string_view RateModeName(RateMode mode);

}  // namespace bg::config
