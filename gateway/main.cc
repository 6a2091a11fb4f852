// billing-gateway: the gRPC gateway in front of Kill Bill.
//
//   billing-gateway --config FILE [--check-config]
//
// Reads and validates the YAML config (refusing it with FILE:LINE:COLUMN on any
// error), starts the server, and shuts down cleanly on SIGTERM or SIGINT.
// SIGHUP re-reads FILE, validates it as --check-config does and applies its
// tuning keys (config/reload.h) without a restart; a file that does not
// validate, or that changes a key only a restart applies, is refused with a
// log line and the running configuration stays.
#include <csignal>
#include <cstdio>
#include <string>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/strings/str_join.h"
#include "common/flags.h"
#include "common/help.h"
#include "config/gateway_config.h"
#include "gateway/gateway_server.h"
#include "gateway/logging.h"
#include "spdlog/spdlog.h"

ABSL_FLAG(std::string, config, "",
          "Path of the YAML configuration file (required).");
ABSL_FLAG(bool, check_config, false,
          "Validate the configuration, print the effective values (secrets "
          "redacted), exit.");

namespace {

// SIGHUP: re-read `path` and apply what a reload may change.
void Reload(const std::string& path, bg::gateway::GatewayServer& server) {
  auto next = bg::config::LoadConfigFile(path, bg::config::Environment());
  if (!next.ok()) {
    server.RecordInvalidReload();
    spdlog::error(
        "configuration reload refused, the running configuration stays: {}",
        std::string(next.status().message()));
    return;
  }
  auto plan = server.Reload(*next);
  if (!plan.ok()) {
    spdlog::error(
        "configuration reload refused, the running configuration stays: {}: "
        "{}",
        path, std::string(plan.status().message()));
    return;
  }
  if (plan->changes.empty()) {
    spdlog::info("configuration reloaded from {}: nothing changed", path);
  } else {
    spdlog::info("configuration reloaded from {}: {}", path,
                 absl::StrJoin(plan->changes, "; "));
  }
}

}  // namespace

int main(int argc, char** argv) {
  absl::SetProgramUsageMessage(
      "billing-gateway --config FILE [--check-config]\n"
      "Signals: SIGTERM/SIGINT drain and stop; SIGHUP reloads FILE's tuning "
      "keys (logging, queue.capacity, cost, rate, breaker).");
  if (bg::HandleHelp(argc, argv, "gateway/main.cc")) return 0;
  bg::DashedFlags flags(argc, argv);
  absl::ParseCommandLine(flags.argc(), flags.argv());
  const std::string path = absl::GetFlag(FLAGS_config);
  if (path.empty()) {
    std::fprintf(stderr, "billing-gateway: --config FILE is required\n");
    return 2;
  }
  auto config = bg::config::LoadConfigFile(path, bg::config::Environment());
  if (!config.ok()) {
    std::fprintf(stderr, "billing-gateway: invalid configuration: %s\n",
                 std::string(config.status().message()).c_str());
    return 2;
  }
  if (absl::GetFlag(FLAGS_check_config)) {
    std::printf("%s: OK\n%s", path.c_str(),
                bg::config::DescribeForLog(*config).c_str());
    return 0;
  }
  // Logs go to stderr; stdout carries only the two "listening on" lines scripts
  // read.
  bg::logging::Configure(config->logging);

  // Block the signals in every thread (threads inherit the mask) and take
  // them with sigwait on this one, so shutdown and reload run as ordinary
  // code, not in a signal handler.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGHUP);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);

  bg::gateway::GatewayServer server(*config, bg::SteadyClock::Instance());
  if (absl::Status started = server.Start(); !started.ok()) {
    spdlog::error("cannot start: {}", std::string(started.message()));
    return 1;
  }
  spdlog::info("queue: {}", server.QueueMode());
  spdlog::info("effective configuration:\n{}",
               bg::config::DescribeForLog(*config));
  // Tests and scripts read the chosen ports from these two lines.
  std::printf("grpc listening on port %d\nmetrics listening on port %d\n",
              server.grpc_port(), server.metrics_port());
  std::fflush(stdout);

  int signal = 0;
  while (sigwait(&signals, &signal) == 0 && signal == SIGHUP) {
    spdlog::info("received SIGHUP, reloading {}", path);
    Reload(path, server);
  }
  spdlog::info("received {}, shutting down",
               signal == SIGTERM ? "SIGTERM" : "SIGINT");
  server.Shutdown();
  spdlog::info("stopped");
  return 0;
}
