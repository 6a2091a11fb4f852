// sim-calibrate: checks killbill-sim's defaults against the load-test report,
// over HTTP.
//
//  1. Direct row: closed loop, --clients (100) concurrent, --count (300)
//     account creations, like the report's test_killbill_direct.py. Prints
//     rate and average latency beside the report's 30.2/s and 3,155 ms, and
//     PASS when both are within +-10 %.
//  2. Saturation: the same 100 clients keep creating while one poller calls
//     /1.0/healthcheck every --poll_ms for --polls (65) polls; the last answer
//     must be 500 with "Growing queues: bus (x)", 0.4 <= x <= 0.6.
//  3. Below capacity: open loop at --low_rate (18/s) creations, same polling;
//     every answer must be 200.
//  4. Throughput (only when asked): keep-alive clients, simple calls, as fast
//     as the sim answers; wants >= 2,000/s (run the sim with --capacity 1e6
//     --base_latency_ms 0).
// Each phase runs against --target HOST:PORT (a killbill-sim process;
// calibrate.sh starts a fresh one per phase), or, without --target, against an
// in-process KillBillSim.
//
// Thread-safety: a tool; its client threads share only atomics and a
// mutex-guarded vector.
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <memory>
#include <mutex>
#include <numeric>
#include <string>
#include <thread>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "bench/killbill_sim/killbill_sim.h"
#include "httplib.h"
#include "nlohmann/json.hpp"

ABSL_FLAG(std::string, target, "",
          "HOST:PORT of a running killbill-sim (default: in-process)");
ABSL_FLAG(int, clients, 100, "closed-loop concurrent clients");
ABSL_FLAG(int, count, 300, "account creations in the direct-row run");
ABSL_FLAG(int, polls, 65, "healthcheck polls per health phase");
ABSL_FLAG(int, poll_ms, 1000, "healthcheck polling interval");
ABSL_FLAG(double, low_rate, 18.0,
          "open-loop creation rate of the below-capacity phase");
ABSL_FLAG(
    std::string, phases, "direct,saturation,below",
    "phases to run; also \"throughput\" (start the sim with --capacity 1e6 "
    "--base_latency_ms 0)");
ABSL_FLAG(int, throughput_clients, 8,
          "keep-alive clients of the throughput phase");
ABSL_FLAG(int, throughput_seconds, 5, "duration of the throughput phase");

namespace {

using Clock = std::chrono::steady_clock;

struct Target {
  std::unique_ptr<bg::sim::KillBillSim> sim;  // null when external
  std::string host = "127.0.0.1";
  int port = 0;
};

Target MakeTarget() {
  Target t;
  const std::string target = absl::GetFlag(FLAGS_target);
  if (!target.empty()) {
    const size_t colon = target.rfind(':');
    t.host = target.substr(0, colon);
    (void)absl::SimpleAtoi(target.substr(colon + 1), &t.port);
    return t;
  }
  bg::sim::SimOptions options;
  options.port = 0;
  t.sim = std::make_unique<bg::sim::KillBillSim>(options);
  absl::Status status = t.sim->Start();
  if (!status.ok()) {
    std::fprintf(stderr, "cannot start sim: %s\n", status.ToString().c_str());
    std::exit(1);
  }
  t.port = t.sim->port();
  return t;
}

httplib::Headers KillBillHeaders() {
  return {{"Authorization", "Basic YWRtaW46cGFzc3dvcmQ="},  // admin:password
          {"X-Killbill-ApiKey", "fresh-tenant"},
          {"X-Killbill-ApiSecret", "fresh-secret"},
          {"X-Killbill-CreatedBy", "sim-calibrate"}};
}

std::atomic<uint64_t> g_key{0};

// One account creation; returns latency in ms, or -1 on failure.
double CreateOne(httplib::Client& client) {
  const uint64_t n = g_key.fetch_add(1);
  const std::string key = absl::StrCat("calib-", ::getpid(), "-", n);
  const std::string body = nlohmann::json{
      {"externalKey", key},
      {"name", "Calibration " + std::to_string(n)},
      {"email", key + "@example.com"},
      {"currency", "USD"}}.dump();
  const auto start = Clock::now();
  auto res = client.Post("/1.0/kb/accounts", KillBillHeaders(), body,
                         "application/json");
  const double ms =
      std::chrono::duration<double, std::milli>(Clock::now() - start).count();
  if (res && res->status == 201) return ms;
  static std::atomic<int> reported{0};
  if (reported.fetch_add(1) < 3) {
    std::fprintf(stderr, "create failed: %s\n",
                 res ? absl::StrCat("HTTP ", res->status).c_str()
                     : httplib::to_string(res.error()).c_str());
  }
  return -1;
}

std::unique_ptr<httplib::Client> NewClient(const Target& t) {
  auto c = std::make_unique<httplib::Client>(t.host, t.port);
  c->set_keep_alive(true);
  c->set_tcp_nodelay(true);
  c->set_read_timeout(60, 0);
  c->set_connection_timeout(5, 0);
  return c;
}

bool Within(double value, double reference, double tolerance) {
  return std::fabs(value - reference) <= tolerance * reference;
}

bool DirectRow() {
  Target t = MakeTarget();
  const int clients = absl::GetFlag(FLAGS_clients);
  const int count = absl::GetFlag(FLAGS_count);
  std::atomic<int> next{0};
  std::mutex mu;
  std::vector<double> latencies;
  int failures = 0;
  const auto start = Clock::now();
  std::vector<std::thread> threads;
  for (int i = 0; i < clients; ++i) {
    threads.emplace_back([&] {
      auto client = NewClient(t);
      while (next.fetch_add(1) < count) {
        const double ms = CreateOne(*client);
        std::lock_guard<std::mutex> lock(mu);
        if (ms < 0) {
          ++failures;
        } else {
          latencies.push_back(ms);
        }
      }
    });
  }
  for (auto& th : threads) th.join();
  const double seconds =
      std::chrono::duration<double>(Clock::now() - start).count();
  const double rate = static_cast<double>(latencies.size()) / seconds;
  const double avg =
      latencies.empty()
          ? 0
          : std::accumulate(latencies.begin(), latencies.end(), 0.0) /
                static_cast<double>(latencies.size());
  const bool ok =
      failures == 0 && Within(rate, 30.2, 0.10) && Within(avg, 3155, 0.10);
  std::printf(
      "[direct] clients=%d creations=%d ok=%zu failed=%d wall=%.2fs\n"
      "[direct] rate %.1f/s   (report 30.2/s, %+.1f%%)\n"
      "[direct] avg  %.0f ms  (report 3,155 ms, %+.1f%%)\n"
      "[direct] %s (+-10%%)\n",
      clients, count, latencies.size(), failures, seconds, rate,
      (rate / 30.2 - 1) * 100, avg, (avg / 3155 - 1) * 100,
      ok ? "PASS" : "FAIL");
  std::fflush(stdout);
  return ok;
}

// Polls the healthcheck while `load` runs; returns (status, message) of each
// poll.
struct Poll {
  int status = 0;
  std::string message;
};
std::vector<Poll> PollHealth(const Target& t) {
  auto client = NewClient(t);
  std::vector<Poll> polls;
  const int n = absl::GetFlag(FLAGS_polls);
  const auto interval = std::chrono::milliseconds(absl::GetFlag(FLAGS_poll_ms));
  auto next = Clock::now();
  for (int i = 0; i < n; ++i) {
    std::this_thread::sleep_until(next);
    next += interval;
    Poll p;
    if (auto res = client->Get("/1.0/healthcheck")) {
      p.status = res->status;
      try {
        auto body = nlohmann::json::parse(res->body);
        auto& q = body
            ["org.killbill.billing.server.healthchecks."
             "KillbillQueuesHealthcheck"];
        p.message = q.value("message", "");
      } catch (const nlohmann::json::exception&) {
        p.message = "<unparsable>";
      }
    }
    polls.push_back(p);
  }
  return polls;
}

bool Saturation() {
  Target t = MakeTarget();
  std::atomic<bool> stop{false};
  std::atomic<int> created{0};
  std::vector<std::thread> threads;
  for (int i = 0; i < absl::GetFlag(FLAGS_clients); ++i) {
    threads.emplace_back([&] {
      auto client = NewClient(t);
      while (!stop) {
        if (CreateOne(*client) >= 0) ++created;
      }
    });
  }
  const auto start = Clock::now();
  std::vector<Poll> polls = PollHealth(t);
  const double seconds =
      std::chrono::duration<double>(Clock::now() - start).count();
  stop = true;
  for (auto& th : threads) th.join();
  const Poll& last = polls.back();
  double slope = -1;
  const std::string prefix = "Growing queues: bus (";
  if (last.message.rfind(prefix, 0) == 0) {
    (void)absl::SimpleAtod(last.message.substr(prefix.size()), &slope);
  }
  int first_500 = -1;
  for (size_t i = 0; i < polls.size(); ++i) {
    if (polls[i].status == 500) {
      first_500 = static_cast<int>(i) + 1;
      break;
    }
  }
  const bool ok = last.status == 500 && slope >= 0.4 && slope <= 0.6;
  std::printf(
      "[saturation] %d clients, %.1f creations/s over %.0fs, %zu polls every "
      "%d ms\n"
      "[saturation] first 500 at poll %d; last poll: %d \"%s\"\n"
      "[saturation] %s (want 500, 0.4 <= x <= 0.6; report: bus (0.51))\n",
      absl::GetFlag(FLAGS_clients), created / seconds, seconds, polls.size(),
      absl::GetFlag(FLAGS_poll_ms), first_500, last.status,
      last.message.c_str(), ok ? "PASS" : "FAIL");
  std::fflush(stdout);
  return ok;
}

bool Below() {
  Target t = MakeTarget();
  const double rate = absl::GetFlag(FLAGS_low_rate);
  std::atomic<bool> stop{false};
  std::atomic<int> created{0};
  // Open loop: a dispatcher thread paces starts; a few workers execute them.
  std::thread load([&] {
    std::vector<std::thread> inflight;
    auto next = Clock::now();
    const auto period = std::chrono::duration_cast<Clock::duration>(
        std::chrono::duration<double>(1.0 / rate));
    while (!stop) {
      std::this_thread::sleep_until(next);
      next += period;
      inflight.emplace_back([&] {
        auto client = NewClient(t);
        if (CreateOne(*client) >= 0) ++created;
      });
    }
    for (auto& th : inflight) th.join();
  });
  const auto start = Clock::now();
  std::vector<Poll> polls = PollHealth(t);
  const double seconds =
      std::chrono::duration<double>(Clock::now() - start).count();
  stop = true;
  load.join();
  int non_200 = 0;
  for (const Poll& p : polls) non_200 += p.status != 200;
  const bool ok = non_200 == 0;
  std::printf(
      "[below] open loop %.1f creations/s (achieved %.1f/s) over %.0fs, %zu "
      "polls\n"
      "[below] non-200 answers: %d; last poll: %d \"%s\"\n[below] %s\n",
      rate, created / seconds, seconds, polls.size(), non_200,
      polls.back().status, polls.back().message.c_str(), ok ? "PASS" : "FAIL");
  std::fflush(stdout);
  return ok;
}

// Simple authenticated calls (create, then lookups by key) as fast as the sim
// answers.
bool Throughput() {
  Target t = MakeTarget();
  std::atomic<bool> stop{false};
  std::atomic<uint64_t> ok{0}, failed{0};
  std::vector<std::thread> threads;
  for (int i = 0; i < absl::GetFlag(FLAGS_throughput_clients); ++i) {
    threads.emplace_back([&, i] {
      auto client = NewClient(t);
      client->set_basic_auth("admin", "password");
      const std::string path =
          "/1.0/kb/accounts?externalKey=tp-" + std::to_string(i);
      for (uint64_t n = 0; !stop; ++n) {
        httplib::Result res =
            n % 4 == 0 ? client->Post("/1.0/kb/accounts", KillBillHeaders(),
                                      nlohmann::json{{"name", "tp"}}.dump(),
                                      "application/json")
                       : client->Get(path.c_str(), KillBillHeaders());
        if (res && res->status < 500) {
          ++ok;
        } else {
          ++failed;
        }
      }
    });
  }
  const int seconds = absl::GetFlag(FLAGS_throughput_seconds);
  std::this_thread::sleep_for(std::chrono::seconds(seconds));
  stop = true;
  for (auto& th : threads) th.join();
  const double rate = static_cast<double>(ok.load()) / seconds;
  const bool pass = rate >= 2000 && failed == 0;
  std::printf(
      "[throughput] %d clients, %ds: %.0f requests/s (25%% creations, 75%% "
      "lookups), "
      "%llu failed; %s (want >= 2,000/s)\n",
      absl::GetFlag(FLAGS_throughput_clients), seconds, rate,
      static_cast<unsigned long long>(failed.load()), pass ? "PASS" : "FAIL");
  std::fflush(stdout);
  return pass;
}

}  // namespace

int main(int argc, char** argv) {
  absl::ParseCommandLine(argc, argv);
  const std::string phases = absl::GetFlag(FLAGS_phases);
  bool ok = true;
  if (phases.find("direct") != std::string::npos) ok = DirectRow() && ok;
  if (phases.find("saturation") != std::string::npos) ok = Saturation() && ok;
  if (phases.find("below") != std::string::npos) ok = Below() && ok;
  if (phases.find("throughput") != std::string::npos) ok = Throughput() && ok;
  return ok ? 0 : 1;
}
