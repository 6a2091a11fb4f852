// billing-loadgen: closed- and open-loop load against billing-gateway (gRPC) or
// Kill Bill's REST API (directly or through a proxy), one operation or a mix
// of them (--mix). See load_runner.h for the loop semantics, operation_mix.h
// for the operations and outcome.h for how answers are classified. Run with
// --help for the flags.
#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <iostream>
#include <memory>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "bench/loadgen/arrival_schedule.h"
#include "bench/loadgen/grpc_target.h"
#include "bench/loadgen/http_target.h"
#include "bench/loadgen/load_runner.h"
#include "bench/loadgen/operation_mix.h"
#include "bench/loadgen/outcome.h"
#include "bench/loadgen/run_recorder.h"
#include "common/flags.h"
#include "common/help.h"

ABSL_FLAG(std::string, target, "",
          "grpc://HOST:PORT (billing-gateway: CreateAccount, "
          "CreateSubscription, GetBillingOverview) or "
          "http://HOST:PORT (Kill Bill "
          "REST, directly or through a proxy)");
ABSL_FLAG(int64_t, concurrency, 0, "closed loop: number of virtual users");
ABSL_FLAG(int64_t, count, 0,
          "closed loop: total calls across all virtual users");
ABSL_FLAG(double, rate, 0, "open loop: arrivals per second");
ABSL_FLAG(std::string, duration, "",
          "open loop: length of the arrival schedule; closed loop: stop "
          "starting calls after "
          "this (e.g. 60, 60s, 2m)");
ABSL_FLAG(int64_t, spike, 0,
          "open loop: arrivals all due at t=0 (scenario S4), before --rate");
ABSL_FLAG(int64_t, max_outstanding, 0,
          "open loop: calls in flight at most; a later arrival is counted as "
          "not_sent "
          "(default: max(1000, spike))");
ABSL_FLAG(std::string, time_limit, "10m",
          "closed loop without --duration: stop starting calls after this");
ABSL_FLAG(std::string, deadline, "30s",
          "per-call deadline (gRPC) / client timeout (HTTP)");
ABSL_FLAG(
    std::string, key_prefix, "",
    "external key prefix; the call's sequence number is appended (default: "
    "lg-<pid>-<unix time>-)");
ABSL_FLAG(bool, tag_auto_pay_off, true,
          "without --mix: every call registers an account with the "
          "AUTO_PAY_OFF tag (register_tagged), or without it "
          "(--no-tag-auto-pay-off: register_untagged); ignored with --mix");
ABSL_FLAG(std::string, mix, "",
          "operation mix, name=weight,...: each arrival draws one operation "
          "with probability weight / sum. Operations: register_tagged, "
          "register_untagged, subscribe (basic-monthly subscription on an "
          "account this run registered), overview (billing overview of such "
          "an account); subscribe/overview fall back to a registration while "
          "the run has no account yet. Example: "
          "register_tagged=1,register_untagged=1,subscribe=0.5,overview=4. "
          "Default: one registration kind, per --tag_auto_pay_off");
ABSL_FLAG(uint64_t, mix_seed, 1,
          "seed of the --mix draw and of the account picks: the same seed "
          "gives every sequence number the same operation");
ABSL_FLAG(bool, honor_pushback, true,
          "closed loop: a rejected request is retried (the same request); "
          "when the rejection carries grpc-retry-pushback-ms / Retry-After, "
          "the virtual user waits exactly that long first "
          "(--no-honor-pushback: retries at once)");
ABSL_FLAG(std::string, failure_wait, "0",
          "closed loop: after an error, or a rejection without a pushback, a "
          "virtual user waits this long (its own backoff; 0 = at once)");
ABSL_FLAG(int, channels, 4, "gRPC: number of channels (TCP connections)");
ABSL_FLAG(bool, http_keepalive, true,
          "HTTP: keep connections alive between calls");
ABSL_FLAG(std::string, user, "admin", "HTTP: basic auth user");
ABSL_FLAG(std::string, password, "password", "HTTP: basic auth password");
ABSL_FLAG(std::string, api_key, "fresh-tenant", "HTTP: X-Killbill-ApiKey");
ABSL_FLAG(std::string, api_secret, "fresh-secret",
          "HTTP: X-Killbill-ApiSecret");
ABSL_FLAG(std::string, output, "text",
          "summary format on stdout: text, json or csv");
ABSL_FLAG(std::string, label, "",
          "free text copied into the summary (e.g. contender name)");
ABSL_FLAG(std::string, timeseries, "",
          "write per-second rows to this CSV file");
ABSL_FLAG(std::string, sim_stats, "",
          "http://HOST:PORT of killbill-sim: poll GET /sim/stats each second "
          "for the backlog");
ABSL_FLAG(std::string, sim_backlog_field, "bus_backlog",
          "JSON field (dotted path) of the bus backlog in /sim/stats");
ABSL_FLAG(std::string, progress, "auto",
          "progress on stderr: auto, tty, plain or none");

namespace bg::loadgen {
namespace {

[[noreturn]] void Fail(const std::string& message) {
  std::fprintf(stderr, "billing-loadgen: %s\n", message.c_str());
  std::exit(2);
}

std::chrono::nanoseconds DurationFlag(const std::string& name,
                                      const std::string& value) {
  auto d = ParseDurationFlag(value);
  if (!d) Fail(absl::StrCat("--", name, ": not a duration: '", value, "'"));
  return *d;
}

// Splits http://host:port or grpc://host:port.
void SplitTarget(const std::string& target, std::string* scheme,
                 std::string* host, int* port) {
  const size_t sep = target.find("://");
  if (sep == std::string::npos)
    Fail("--target must look like grpc://HOST:PORT or http://HOST:PORT");
  *scheme = target.substr(0, sep);
  std::string hostport = target.substr(sep + 3);
  if (const size_t slash = hostport.find('/'); slash != std::string::npos) {
    hostport.resize(slash);
  }
  const size_t colon = hostport.rfind(':');
  if (colon == std::string::npos ||
      !absl::SimpleAtoi(hostport.substr(colon + 1), port) || *port <= 0 ||
      *port > 65535) {
    Fail(absl::StrCat("--target: no port in '", target, "'"));
  }
  *host = hostport.substr(0, colon);
}

int Main(int argc, char** argv) {
  absl::SetProgramUsageMessage(
      "Load generator for billing-gateway and Kill Bill.\n"
      "  closed loop: billing-loadgen --target grpc://127.0.0.1:50051 "
      "--concurrency 100 "
      "--count 3000\n"
      "  open loop:   billing-loadgen --target http://127.0.0.1:8080 --rate 30 "
      "--duration 60\n"
      "  spike:       billing-loadgen --target grpc://127.0.0.1:50051 --spike "
      "2000\n"
      "  mixed:       billing-loadgen --target grpc://127.0.0.1:50051 --rate "
      "54 "
      "--duration 120 --mix "
      "register_tagged=8,register_untagged=8,subscribe=4,overview=32");
  if (bg::HandleHelp(argc, argv, "loadgen/main.cc")) return 0;
  bg::DashedFlags flags(argc, argv);
  absl::ParseCommandLine(flags.argc(), flags.argv());

  const std::string target_url = absl::GetFlag(FLAGS_target);
  if (target_url.empty()) Fail("--target is required (see --help)");
  std::string scheme, host;
  int port = 0;
  SplitTarget(target_url, &scheme, &host, &port);

  const int64_t concurrency = absl::GetFlag(FLAGS_concurrency);
  const int64_t count = absl::GetFlag(FLAGS_count);
  const double rate = absl::GetFlag(FLAGS_rate);
  const int64_t spike = absl::GetFlag(FLAGS_spike);
  const std::string duration_text = absl::GetFlag(FLAGS_duration);
  const bool open_loop = rate > 0 || spike > 0;
  const bool closed_loop = concurrency > 0 || count > 0;
  if (open_loop == closed_loop) {
    Fail(
        "choose one loop: --concurrency N --count M (closed) or --rate R "
        "--duration S / "
        "--spike N (open)");
  }

  RunnerOptions ro;
  RunInfo info;
  info.label = absl::GetFlag(FLAGS_label);
  info.target = target_url;
  ro.open_loop = open_loop;
  ro.deadline = DurationFlag("deadline", absl::GetFlag(FLAGS_deadline));
  ro.honor_pushback = absl::GetFlag(FLAGS_honor_pushback);
  ro.failure_wait =
      DurationFlag("failure_wait", absl::GetFlag(FLAGS_failure_wait));
  int64_t in_flight_cap = 0;
  if (open_loop) {
    if (rate > 0 && duration_text.empty()) Fail("--rate needs --duration");
    const auto duration = duration_text.empty()
                              ? std::chrono::nanoseconds(0)
                              : DurationFlag("duration", duration_text);
    ro.schedule = ArrivalSchedule(rate, duration, spike);
    ro.max_outstanding = absl::GetFlag(FLAGS_max_outstanding);
    if (ro.max_outstanding <= 0)
      ro.max_outstanding = std::max<int64_t>(1000, spike);
    in_flight_cap = ro.max_outstanding;
    info.mode = "open";
    info.rate = rate;
    info.concurrency = spike;
    info.planned = ro.schedule.size();
  } else {
    if (concurrency <= 0 || count <= 0)
      Fail("closed loop needs --concurrency and --count > 0");
    ro.concurrency = concurrency;
    ro.count = count;
    ro.max_duration =
        DurationFlag(duration_text.empty() ? "time_limit" : "duration",
                     duration_text.empty() ? absl::GetFlag(FLAGS_time_limit)
                                           : duration_text);
    in_flight_cap = std::min(concurrency, count);
    info.mode = "closed";
    info.concurrency = concurrency;
    info.planned = count;
  }

  const std::string progress = absl::GetFlag(FLAGS_progress);
  if (progress == "auto") {
    ro.progress =
        isatty(STDERR_FILENO) ? ProgressMode::kTty : ProgressMode::kPlain;
  } else if (progress == "tty") {
    ro.progress = ProgressMode::kTty;
  } else if (progress == "plain") {
    ro.progress = ProgressMode::kPlain;
  } else if (progress == "none") {
    ro.progress = ProgressMode::kNone;
  } else {
    Fail("--progress must be auto, tty, plain or none");
  }
  ro.sim_stats_url = absl::GetFlag(FLAGS_sim_stats);
  ro.backlog_field = absl::GetFlag(FLAGS_sim_backlog_field);

  const std::string output = absl::GetFlag(FLAGS_output);
  if (output != "text" && output != "json" && output != "csv") {
    Fail("--output must be text, json or csv");
  }
  if (const std::string mix = absl::GetFlag(FLAGS_mix); !mix.empty()) {
    absl::StatusOr<OperationMix> parsed = OperationMix::Parse(mix);
    if (!parsed.ok()) Fail(std::string(parsed.status().message()));
    ro.mix = *parsed;
  } else {
    ro.mix = OperationMix::Single(absl::GetFlag(FLAGS_tag_auto_pay_off)
                                      ? Operation::kRegisterTagged
                                      : Operation::kRegisterUntagged);
  }
  ro.mix_seed = absl::GetFlag(FLAGS_mix_seed);
  info.mix = ro.mix.ToString();
  std::string key_prefix = absl::GetFlag(FLAGS_key_prefix);
  if (key_prefix.empty())
    key_prefix = absl::StrCat("lg-", getpid(), "-", time(nullptr), "-");

  std::unique_ptr<Target> target;
  if (scheme == "grpc") {
    GrpcTargetOptions go;
    go.address = absl::StrCat(host, ":", port);
    go.channels = absl::GetFlag(FLAGS_channels);
    go.deadline = ro.deadline;
    go.key_prefix = key_prefix;
    target = std::make_unique<GrpcTarget>(go);
  } else if (scheme == "http") {
    HttpTargetOptions ho;
    ho.host = host;
    ho.port = port;
    ho.workers = static_cast<int>(std::min<int64_t>(in_flight_cap, 10000));
    ho.deadline = ro.deadline;
    ho.key_prefix = key_prefix;
    ho.keep_alive = absl::GetFlag(FLAGS_http_keepalive);
    ho.user = absl::GetFlag(FLAGS_user);
    ho.password = absl::GetFlag(FLAGS_password);
    ho.api_key = absl::GetFlag(FLAGS_api_key);
    ho.api_secret = absl::GetFlag(FLAGS_api_secret);
    target = std::make_unique<HttpTarget>(ho);
  } else {
    Fail(
        absl::StrCat("--target: unknown scheme '", scheme, "' (grpc or http)"));
  }

  RunRecorder recorder;
  LoadRunner runner(target.get(), ro, &recorder);
  bool complete = false;
  const auto elapsed = runner.Run(&complete);
  if (complete) target->Shutdown();

  const RunSummary summary = recorder.Summarize(info, elapsed);
  if (output == "json") {
    std::cout << FormatJson(summary);
  } else if (output == "csv") {
    std::cout << FormatCsvHeader() << FormatCsvRow(summary);
  } else {
    std::cout << FormatText(summary);
  }
  std::cout.flush();
  if (const std::string ts = absl::GetFlag(FLAGS_timeseries); !ts.empty()) {
    std::ofstream f(ts);
    recorder.WriteTimeSeriesCsv(f);
    if (!f)
      std::fprintf(stderr, "billing-loadgen: could not write %s\n", ts.c_str());
  }
  if (!complete) {
    std::fprintf(stderr,
                 "billing-loadgen: calls still outstanding past deadline + 10 "
                 "s; exiting "
                 "without waiting for them\n");
    std::fflush(nullptr);
    _exit(3);
  }
  return 0;
}

}  // namespace
}  // namespace bg::loadgen

int main(int argc, char** argv) { return bg::loadgen::Main(argc, argv); }
