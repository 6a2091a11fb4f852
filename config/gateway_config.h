// GatewayConfig: the typed, validated configuration of billing-gateway, and the
// one place that turns YAML (plus a few environment variables) into it.
//
// The YAML file is parsed once at start-up into plain structs; the rest of the
// program reads those structs and never sees YAML. Every default lives in one
// place, a member initialiser: for the sections killbill, queue, breaker, retry
// and database GatewayConfig holds the component's own options struct
// (killbill::ClientOptions, flow::AdmissionOptions, ...) and the parser writes
// the keys straight into its fields, so the component's default is the
// configuration's default; the other sections are the structs below.
// `config/gateway.yaml` is the commented reference of every key, its default,
// its range and its trade-off (a unit test keeps its values equal to the
// defaults); the ranges enforced here are the ones written there.
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
#include "dispatch/dispatcher.h"
#include "dispatch/flow_control.h"
#include "dispatch/health_monitor.h"
#include "durable/durable_queue.h"
#include "flow/admission_queue.h"
#include "flow/circuit_breaker.h"
#include "flow/memory_guard.h"
#include "flow/rate_controller.h"
#include "flow/retry_policy.h"
#include "killbill_client/killbill_client.h"
#include "killbill_client/types.h"
#include "service/cache_options.h"

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
// text: spdlog's human-readable lines; json: one JSON object per line (time,
// level, logger, message, request_id when known).
enum class LogFormat { kText, kJson };

struct LoggingConfig {
  LogLevel level = LogLevel::kInfo;     // trace | debug | info | warn | error
  LogFormat format = LogFormat::kText;  // text | json
};

struct ConcurrencyConfig {
  // Jobs running Kill Bill calls at once [1, 1024]
  // (dispatch::DispatcherOptions).
  int max_in_flight = dispatch::DispatcherOptions{}.max_in_flight;
};

enum class RateMode { kStatic, kAdaptive };
using RateSignal = flow::RateController::Signal;

// The token bucket that paces Kill Bill's bus, and the controller that moves
// its rate. Rates are main-bus events per second; all > 0 and <= 100000, min <=
// initial <= max.
struct RateConfig {
  RateMode mode = RateMode::kAdaptive;  // static: stay at `initial` forever.
  // Adaptive: auto = Kill Bill's bus counters (GET /1.0/metrics) when served,
  // else its healthcheck; healthcheck = the healthcheck only.
  RateSignal signal = flow::RateController::Options{}.signal;
  // Bus entries the counters-driven controller holds the bus at [0, 100000].
  double target_backlog = flow::RateController::Options{}.target_backlog;
  // The defaults are flow::RateController::Options's (one copy of each).
  double initial = flow::RateController::Options{}.initial;  // at start-up.
  double min = flow::RateController::Options{}.min;          // adaptive floor.
  double max = flow::RateController::Options{}.max;  // adaptive ceiling.
  // Bucket depth in tokens [1, 100000] (both buckets).
  double burst = flow::RateController::Options{}.burst;
  // Additive increase per adjust_interval (the controller's
  // increase_step_per_s times adjust_interval).
  double increase_step = flow::RateController::Options{}.increase_step_per_s;
  Millis adjust_interval = std::chrono::duration_cast<Millis>(
      dispatch::FlowOptions{}.adjust_interval);  // [10ms, 1m]
  // RateController::Options::fast_cooldown: after a cut on a fast signal (Kill
  // Bill latency or error share), that same signal may not cut again for this
  // long, so the first cut can show its effect [0, 1h]. It does not hold back
  // increases, nor cuts on the bus growth number.
  Millis cooldown = std::chrono::duration_cast<Millis>(
      flow::RateController::Options{}.fast_cooldown);
  // Kill Bill's API budget, calls/s (reads included) [> 0, 100000]: a fixed
  // ceiling next to the bus budget above (dispatch::FlowOptions).
  double api_calls_per_second = dispatch::FlowOptions{}.api_calls_per_s;
};

// Polling Kill Bill's GET /1.0/healthcheck.
// Defaults from dispatch::HealthMonitor::Options.
struct HealthConfig {
  Millis poll_interval = std::chrono::duration_cast<Millis>(
      dispatch::HealthMonitor::Options{}.poll_interval);  // [10ms, 1m]
  // Per poll [1ms, 1m]: the health client's request timeout (no component
  // default: the client's own is for account calls).
  Millis timeout = std::chrono::seconds(2);
  // Queue-growth slope (the number Kill Bill prints, e.g. "bus (0.51)") above
  // which a queue counts as growing (0, 1000].
  double queue_growth_threshold =
      dispatch::HealthMonitor::Options{}.queue_growth_threshold;
};

// Each section is the struct its `section.*` keys are written into. A
// component's options struct may have fields no key sets (e.g.
// breaker.health_failures_to_open): those keep the struct's default.
struct GatewayConfig {
  ServerConfig server;
  MetricsConfig metrics;
  LoggingConfig logging;
  killbill::ClientOptions killbill;
  // What each write posts on Kill Bill's main bus (`cost.*`).
  killbill::BusEvents cost;
  flow::AdmissionOptions queue;
  // queue.max_resident_mb (0: off, else [64, 1048576] MiB): the memory budget
  // at admission; the other fields have no key.
  flow::MemoryGuard::Options memory;
  ConcurrencyConfig concurrency;
  RateConfig rate;
  HealthConfig health;
  flow::CircuitBreaker::Options breaker;
  flow::RetryOptions retry;
  // database.url and connect_timeout go to `session`; lease, claim_batch,
  // max_outstanding, poll_interval, attempt_deadline, max_attempts and
  // retry_{initial,max}_backoff to `worker` (whose `owner`, the replica id, is
  // filled in at run time by durable::DurableQueue); the rest are top-level
  // fields of the same name. Absent url (empty) = no database: the gateway runs
  // on its in-memory queue only and refuses asynchronous submissions.
  durable::DurableOptions database;
  // The read cache (`cache.*`).
  service::CacheOptions cache;
};

// Field-by-field equality of every field, secrets and the options fields that
// no key sets included.
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
std::string_view LogFormatName(LogFormat format);
std::string_view RateModeName(RateMode mode);
std::string_view RateSignalName(RateSignal signal);

}  // namespace bg::config
