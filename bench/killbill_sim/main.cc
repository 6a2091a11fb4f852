// killbill-sim: the Kill Bill stand-in as a process. Thin: parses flags / YAML
// into SimOptions, starts KillBillSim, prints "listening on HOST:PORT", waits
// for SIGTERM/SIGINT.
//
// clang-format off
//   killbill-sim [--listen 127.0.0.1:8080] [--config sim.yaml]
//                [--capacity 30] ...
// clang-format on
//
// Precedence: built-in defaults < --config YAML < flags given on the command
// line. --help lists every flag.
#include <csignal>
#include <cstdio>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/reflection.h"
#include "absl/flags/usage.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "bench/killbill_sim/killbill_sim.h"
#include "bench/killbill_sim/sim_options.h"
#include "bench/killbill_sim/sim_options_json.h"
#include "common/flags.h"
#include "common/help.h"

namespace {
const bg::sim::SimOptions kDefaults;
}  // namespace

ABSL_FLAG(std::string, listen, "127.0.0.1:8080",
          "HOST:PORT to bind; port 0 = any free port");
ABSL_FLAG(std::string, config, "",
          "YAML settings file (keys as in GET /sim/stats settings)");
ABSL_FLAG(std::string, api_key, kDefaults.api_key, "tenant X-Killbill-ApiKey");
ABSL_FLAG(std::string, api_secret, kDefaults.api_secret,
          "tenant X-Killbill-ApiSecret");
ABSL_FLAG(std::string, user, kDefaults.user, "basic auth user");
ABSL_FLAG(std::string, password, kDefaults.password, "basic auth password");
ABSL_FLAG(bool, location_full_url, kDefaults.location_full_url,
          "absolute Location headers (false = path only)");
ABSL_FLAG(bool, queue_healthcheck, kDefaults.queue_healthcheck,
          "false = KillbillQueuesHealthcheck always healthy");
ABSL_FLAG(int, healthcheck_window, kDefaults.growth.window,
          "regression points (Kill Bill: 60)");
ABSL_FLAG(double, smoothing_alpha, kDefaults.growth.alpha,
          "exponential smoothing weight");
ABSL_FLAG(double, growing_threshold, kDefaults.growth.growing_threshold,
          "slope above which a queue is growing");
ABSL_FLAG(double, capacity, kDefaults.model.capacity,
          "processor-sharing capacity, creation/tag calls per second");
ABSL_FLAG(double, bus_drain, kDefaults.model.bus_drain,
          "bus events drained per second");
ABSL_FLAG(double, base_latency_ms,
          bg::ToSeconds(kDefaults.model.base_latency) * 1000,
          "fixed latency of every call before it competes for capacity");
ABSL_FLAG(double, read_cost, kDefaults.model.read_cost,
          "capacity units of a GET (0 = free)");
ABSL_FLAG(double, tag_cost, kDefaults.model.tag_cost,
          "capacity units of a tag call (account creation = 1)");
ABSL_FLAG(int, bus_events_per_tag, kDefaults.bus_events_per_tag,
          "bus events posted per tag a tag call adds (Kill Bill 0.24: 1, "
          "ControlTagCreation); 0 = account creations only, the model of "
          "earlier benchmark runs");
ABSL_FLAG(std::string, metrics, bg::sim::MetricsModeName(kDefaults.metrics),
          "GET /1.0/metrics: on (Kill Bill's Dropwizard registry with the bus "
          "timers), absent (404, as for an unknown path), empty (200 with an "
          "empty registry: the metrics bundle not installed)");
ABSL_FLAG(bool, degrade, kDefaults.model.degrade,
          "overload degradation on/off");
ABSL_FLAG(double, degrade_threshold, kDefaults.model.degrade_threshold,
          "bus backlog where degradation starts");
ABSL_FLAG(double, degrade_per_entry, kDefaults.model.degrade_per_entry,
          "capacity fraction lost per backlog entry beyond the threshold");
ABSL_FLAG(double, degrade_floor, kDefaults.model.degrade_floor,
          "lowest capacity/drain fraction under degradation");
ABSL_FLAG(int, max_threads, kDefaults.max_threads,
          "requests processed at once (maxThreads)");
ABSL_FLAG(int, max_connections, kDefaults.max_connections,
          "open connections served");
ABSL_FLAG(
    int, accept_count, kDefaults.accept_count,
    "connections waiting beyond max_connections before new ones are closed");
ABSL_FLAG(int, keep_alive_max_requests, kDefaults.keep_alive_max_requests,
          "requests per kept-alive connection");
ABSL_FLAG(int, keep_alive_timeout_s,
          static_cast<int>(kDefaults.keep_alive_timeout.count()),
          "keep-alive idle timeout");
ABSL_FLAG(uint64_t, seed, kDefaults.seed, "seed of fault-injection draws");
ABSL_FLAG(bool, probes, kDefaults.probes.enabled,
          "the kubelet's liveness and readiness probes on GET "
          "/1.0/healthcheck: unready (connections refused) and restarted "
          "after probe_failure_threshold failures in a row");
ABSL_FLAG(double, probe_period_s, bg::ToSeconds(kDefaults.probes.period),
          "seconds between probe rounds (periodSeconds)");
ABSL_FLAG(int, probe_failure_threshold, kDefaults.probes.failure_threshold,
          "failed probes in a row before unready / restart "
          "(failureThreshold)");
ABSL_FLAG(double, probe_initial_delay_s,
          bg::ToSeconds(kDefaults.probes.initial_delay),
          "seconds after a restart before probes resume "
          "(initialDelaySeconds)");
ABSL_FLAG(double, probe_timeout_s, bg::ToSeconds(kDefaults.probes.timeout),
          "seconds a probe waits for its answer (a request thread) before it "
          "fails (timeoutSeconds)");
ABSL_FLAG(double, probe_restart_s, bg::ToSeconds(kDefaults.probes.restart_time),
          "seconds Kill Bill is down after a restart (no API, no bus drain)");
ABSL_FLAG(int, control_port, kDefaults.control_port,
          "port of a listener serving only /sim/** (reachable while Kill Bill "
          "refuses connections); -1 none, 0 any free port");

namespace {

// Flags whose value differs from their default override the YAML file.
nlohmann::json ChangedFlags() {
  nlohmann::json out = nlohmann::json::object();
  for (const char* name : {"api_key",
                           "api_secret",
                           "user",
                           "password",
                           "location_full_url",
                           "queue_healthcheck",
                           "healthcheck_window",
                           "smoothing_alpha",
                           "growing_threshold",
                           "capacity",
                           "bus_drain",
                           "base_latency_ms",
                           "read_cost",
                           "tag_cost",
                           "bus_events_per_tag",
                           "metrics",
                           "degrade",
                           "degrade_threshold",
                           "degrade_per_entry",
                           "degrade_floor",
                           "max_threads",
                           "max_connections",
                           "accept_count",
                           "keep_alive_max_requests",
                           "keep_alive_timeout_s",
                           "seed",
                           "probes",
                           "probe_period_s",
                           "probe_failure_threshold",
                           "probe_initial_delay_s",
                           "probe_timeout_s",
                           "probe_restart_s",
                           "control_port"}) {
    absl::CommandLineFlag* flag = absl::FindCommandLineFlag(name);
    if (flag == nullptr || flag->CurrentValue() == flag->DefaultValue())
      continue;
    const std::string value = flag->CurrentValue();
    if (flag->IsOfType<bool>()) {
      out[name] = value == "true";
    } else if (flag->IsOfType<std::string>()) {
      out[name] = value;
    } else if (flag->IsOfType<double>()) {
      double d = 0;
      (void)absl::SimpleAtod(value, &d);
      out[name] = d;
    } else {
      int64_t i = 0;
      (void)absl::SimpleAtoi(value, &i);
      out[name] = i;
    }
  }
  return out;
}

}  // namespace

int main(int argc, char** argv) {
  absl::SetProgramUsageMessage(
      "killbill-sim: a Kill Bill stand-in for billing-gateway");
  if (bg::HandleHelp(argc, argv, "killbill_sim/main.cc")) return 0;
  bg::DashedFlags flags(argc, argv);
  absl::ParseCommandLine(flags.argc(), flags.argv());

  bg::sim::SimOptions options;
  const std::string config = absl::GetFlag(FLAGS_config);
  if (!config.empty()) {
    absl::Status status = bg::sim::LoadYamlFile(config, &options);
    if (!status.ok()) {
      std::fprintf(stderr, "killbill-sim: %s\n", status.ToString().c_str());
      return 2;
    }
  }
  const std::string listen = absl::GetFlag(FLAGS_listen);
  const size_t colon = listen.rfind(':');
  int port = -1;
  if (colon == std::string::npos ||
      !absl::SimpleAtoi(listen.substr(colon + 1), &port)) {
    std::fprintf(stderr, "killbill-sim: --listen wants HOST:PORT, got '%s'\n",
                 listen.c_str());
    return 2;
  }
  nlohmann::json overrides = ChangedFlags();
  // --listen's default yields to a YAML host/port; an explicit --listen wins.
  if (config.empty() || listen != "127.0.0.1:8080") {
    overrides["host"] = listen.substr(0, colon);
    overrides["port"] = port;
  }
  absl::Status status = bg::sim::ApplyJson(overrides, &options);
  if (!status.ok()) {
    std::fprintf(stderr, "killbill-sim: %s\n", status.ToString().c_str());
    return 2;
  }

  // Block the stop signals before any thread starts, then wait for them here.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  std::signal(SIGPIPE, SIG_IGN);

  bg::sim::KillBillSim sim(options);
  status = sim.Start();
  if (!status.ok()) {
    std::fprintf(stderr, "killbill-sim: %s\n", status.ToString().c_str());
    return 1;
  }
  std::printf("listening on %s:%d\n", options.host.c_str(), sim.port());
  if (sim.control_port() > 0) {
    std::printf("control on %s:%d\n", options.host.c_str(), sim.control_port());
  }
  std::fflush(stdout);

  int received = 0;
  sigwait(&signals, &received);
  std::fprintf(stderr, "killbill-sim: signal %d, stopping\n", received);
  sim.Stop();
  return 0;
}
