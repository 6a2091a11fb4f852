// SimOptions: every setting of killbill-sim in one typed struct, its range
// checks, and the YAML adapter (`--config FILE`). The JSON adapters (POST
// /sim/config, GET /sim/stats) are in sim_options_json.h, so that this header,
// and KillBillSim's, carry no JSON type. Exceptions of yaml-cpp stop here and
// become absl::Status.
//
// Thread-safety: plain value types and free functions; no shared state.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "bench/killbill_sim/capacity_model.h"
#include "bench/killbill_sim/probe_model.h"
#include "killbill_client/queue_growth.h"

namespace bg::sim {

// What GET /1.0/metrics serves (Kill Bill's Dropwizard metrics servlet). The
// setting's values are the names in quotes.
enum class MetricsMode {
  // "on": the registry, with the bus timers (killbill_sim.h).
  kOn,
  // "absent": the answer of an unknown path (no metrics servlet).
  kAbsent,
  // "empty": 200 with an empty registry (the metrics bundle not installed).
  kEmpty,
};
const char* MetricsModeName(MetricsMode mode);
// std::nullopt for any other name.
std::optional<MetricsMode> MetricsModeFromName(std::string_view name);

struct SimOptions {
  // Address to bind. Port 0 picks a free port (read it back with
  // KillBillSim::port()).
  std::string host = "127.0.0.1";
  int port = 8080;

  // Credentials every /1.0/kb/** call must carry (SaaSOdoo's defaults).
  std::string api_key = "fresh-tenant";
  std::string api_secret = "fresh-secret";
  std::string user = "admin";
  std::string password = "password";

  // org.killbill.jaxrs.location.full.url: absolute Location (http://Host/...)
  // when true, the path only when false.
  bool location_full_url = true;
  // org.killbill.server.queue.healthcheck: false = the queues check is always
  // healthy.
  bool queue_healthcheck = true;
  killbill::QueueGrowthOptions growth;

  CapacityModelOptions model;

  // Main-bus events a POST /1.0/kb/accounts/{id}/tags posts per tag it adds
  // (a tag the account already has adds nothing), besides the one event of
  // each account creation. Kill Bill 0.24 posts one per tag
  // (ControlTagCreation), so a registration (create + AUTO_PAY_OFF) loads the
  // bus twice. 0 = account creations only: the model of benchmark runs made
  // before tags posted events, kept to compare with them.
  int bus_events_per_tag = 1;

  // GET /1.0/metrics: on, absent or empty (MetricsMode).
  MetricsMode metrics = MetricsMode::kOn;

  // Tomcat-like limits. `max_threads` requests are processed at once (Tomcat
  // maxThreads); more wait FIFO for a thread. `max_connections` connections are
  // held open (one I/O thread each, created lazily); up to `accept_count` more
  // wait to be served, and any connection beyond that is closed at once without
  // a response (Tomcat acceptCount: the real one is the kernel backlog).
  // /sim/** calls bypass the max_threads limit.
  int max_threads = 200;
  int max_connections = 8192;
  int accept_count = 100;
  // Keep-alive: requests per connection and idle timeout (Tomcat: 100 and
  // 20 s).
  int keep_alive_max_requests = 100;
  std::chrono::seconds keep_alive_timeout{20};

  // The kubelet's liveness and readiness probes on GET /1.0/healthcheck
  // (probe_model.h): off by default. When on, the sim goes unready (refuses
  // connections) and restarts as the seed platform's Kubernetes would.
  ProbeOptions probes;

  // Port of a second listener (on `host`) that serves only /sim/**, so the
  // control API stays reachable while Kill Bill refuses connections (unready,
  // restarting, refuse outage). -1 = none (the default); 0 = any free port
  // (KillBillSim::control_port()). Cannot change while running.
  int control_port = -1;

  // Seed of the fault-injection random draws (error_rate, garbage_rate,
  // reset_rate).
  uint64_t seed = 1;
};

// Checks ranges (capacity > 0, drain >= 0, limits >= 1, ...).
absl::Status Validate(const SimOptions& options);

// Reads a YAML file whose keys are the JSON keys of SimOptionsToJson
// (sim_options_json.h; nested `model:` and `growth:` maps, or flat keys: both
// accepted). Unknown keys are an error. On error *options is left unchanged.
// The values of text settings (IsTextSetting) stay text whatever they look
// like: `metrics: on` is the word, not YAML 1.1's boolean.
absl::Status LoadYamlFile(const std::string& path, SimOptions* options);
absl::Status ApplyYaml(const std::string& yaml_text, SimOptions* options);

}  // namespace bg::sim
