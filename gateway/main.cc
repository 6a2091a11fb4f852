// billing-gateway: the gRPC gateway in front of Kill Bill.
//
//   billing-gateway --config FILE [--check-config]
//
// Reads and validates the YAML config (refusing it with FILE:LINE:COLUMN on any
// error), starts the server, and shuts down cleanly on SIGTERM or SIGINT.
#include <csignal>
#include <cstdio>
#include <string>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "common/flags.h"
#include "config/gateway_config.h"
#include "gateway/gateway_server.h"
#include "spdlog/sinks/stdout_color_sinks.h"
#include "spdlog/spdlog.h"

ABSL_FLAG(std::string, config, "",
          "Path of the YAML configuration file (required).");
ABSL_FLAG(bool, check_config, false,
          "Validate the configuration, print the effective values (secrets "
          "redacted), exit.");

namespace {

spdlog::level::level_enum ToSpdlog(bg::config::LogLevel level) {
  switch (level) {
    case bg::config::LogLevel::kTrace:
      return spdlog::level::trace;
    case bg::config::LogLevel::kDebug:
      return spdlog::level::debug;
    case bg::config::LogLevel::kInfo:
      return spdlog::level::info;
    case bg::config::LogLevel::kWarn:
      return spdlog::level::warn;
    case bg::config::LogLevel::kError:
      return spdlog::level::err;
  }
  return spdlog::level::info;
}

}  // namespace

int main(int argc, char** argv) {
  absl::SetProgramUsageMessage(
      "billing-gateway --config FILE [--check-config]");
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
  spdlog::set_default_logger(spdlog::stderr_color_mt("billing-gateway"));
  spdlog::set_level(ToSpdlog(config->logging.level));

  // Block the stop signals in every thread (threads inherit the mask) and take
  // them with sigwait on this one, so shutdown runs as ordinary code, not in a
  // signal handler.
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGTERM);
  sigaddset(&stop_signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);

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
  sigwait(&stop_signals, &signal);
  spdlog::info("received {}, shutting down",
               signal == SIGTERM ? "SIGTERM" : "SIGINT");
  server.Shutdown();
  spdlog::info("stopped");
  return 0;
}
