// Helpers of the durable end-to-end tests: killbill-sim and billing-gateway as
// processes (tests/subprocess.h), a gateway config with a `database:` section,
// /sim/stats and /metrics reads, and bounded waits on conditions (never a sleep
// to let time pass).
#pragma once

#include <grpcpp/grpcpp.h>

#include <chrono>
#include <fstream>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "billing/v1/billing_gateway.grpc.pb.h"
#include "gtest/gtest.h"
#include "httplib.h"
#include "nlohmann/json.hpp"
#include "tests/subprocess.h"

namespace bg::testing {

using namespace std::chrono_literals;
namespace v1 = billing::v1;

inline std::unique_ptr<grpc::ClientContext> Context(
    std::chrono::milliseconds timeout = 10s) {
  auto ctx = std::make_unique<grpc::ClientContext>();
  ctx->set_deadline(std::chrono::system_clock::now() + timeout);
  return ctx;
}

// Polls `condition` (state of another process: HTTP or SQL) until it holds or
// `timeout` passes, with `poll` between polls so a sampler does not hammer the
// process it watches. Used where no blocking primitive exists (sim counters);
// operation completion is waited for with GetOperation's own server-side wait
// instead.
inline bool WaitUntil(const std::function<bool()>& condition,
                      std::chrono::milliseconds timeout,
                      std::chrono::milliseconds poll = 50ms) {
  const auto give_up = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    if (condition()) return true;
    if (std::chrono::steady_clock::now() >= give_up) return false;
    struct timespec ts {
      0, static_cast<long>(
             std::chrono::duration_cast<std::chrono::nanoseconds>(poll).count())
    };
    nanosleep(&ts, nullptr);
  }
}

// Waits (GetOperation with a server-side wait) until operation `id` is
// finished.
inline bool WaitFinished(v1::BillingGateway::Stub* stub, const std::string& id,
                         std::chrono::milliseconds timeout,
                         v1::Operation* out) {
  const auto give_up = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < give_up) {
    v1::GetOperationRequest req;
    req.set_operation_id(id);
    req.set_wait_timeout_ms(5000);
    grpc::Status s = stub->GetOperation(Context(6s).get(), req, out);
    if (!s.ok()) return false;
    if (out->state() == v1::OPERATION_STATE_SUCCEEDED ||
        out->state() == v1::OPERATION_STATE_FAILED) {
      return true;
    }
  }
  return false;
}

struct Sim {
  std::unique_ptr<Subprocess> process;
  int port = 0;

  static Sim Start(std::vector<std::string> flags) {
    Sim sim;
    std::vector<std::string> argv = {BG_SIM_BINARY, "--listen", "127.0.0.1:0"};
    argv.insert(argv.end(), flags.begin(), flags.end());
    sim.process = std::make_unique<Subprocess>(argv);
    auto port =
        sim.process->WaitForLine(R"(listening on 127\.0\.0\.1:(\d+))", 20s);
    if (port) sim.port = std::stoi(*port);
    return sim;
  }

  nlohmann::json Stats() const {
    httplib::Client c("127.0.0.1", port);
    c.set_read_timeout(5, 0);
    auto r = c.Get("/sim/stats");
    if (!r || r->status != 200) return nlohmann::json::object();
    return nlohmann::json::parse(r->body);
  }

  // Kill Bill account calls so far (creates, lookups, tags; not healthchecks).
  static uint64_t AccountCalls(const nlohmann::json& stats) {
    uint64_t n = 0;
    if (!stats.contains("requests")) return 0;
    for (const auto& [label, outcomes] : stats["requests"].items()) {
      if (label.find("/1.0/kb/accounts") == std::string::npos) continue;
      for (const auto& [outcome, count] : outcomes.items())
        n += count.get<uint64_t>();
    }
    return n;
  }
};

struct Gateway {
  std::unique_ptr<Subprocess> process;
  int grpc_port = 0;
  int metrics_port = 0;
  std::shared_ptr<grpc::Channel> channel;
  std::unique_ptr<v1::BillingGateway::Stub> stub;

  // `yaml` is the whole config file.
  static Gateway Start(const std::string& config_path,
                       const std::string& yaml) {
    std::ofstream(config_path) << yaml;
    Gateway g;
    g.process = std::make_unique<Subprocess>(
        std::vector<std::string>{BG_GATEWAY_BINARY, "--config", config_path});
    auto grpc_port =
        g.process->WaitForLine(R"(grpc listening on port (\d+))", 30s);
    if (!grpc_port) return g;
    auto metrics_port =
        g.process->WaitForLine(R"(metrics listening on port (\d+))", 5s);
    g.grpc_port = std::stoi(*grpc_port);
    if (metrics_port) g.metrics_port = std::stoi(*metrics_port);
    g.channel = grpc::CreateChannel("127.0.0.1:" + *grpc_port,
                                    grpc::InsecureChannelCredentials());
    g.stub = v1::BillingGateway::NewStub(g.channel);
    return g;
  }

  bool ok() const { return grpc_port != 0; }
  // SIGKILL (no shutdown code runs) and reap.
  void Kill() { process.reset(); }

  std::string Metrics() const {
    httplib::Client c("127.0.0.1", metrics_port);
    auto r = c.Get("/metrics");
    return r ? r->body : "";
  }
  // Value of the first sample line starting with `series` ("" prefix match), or
  // -1.
  double Metric(const std::string& series) const {
    const std::string page = Metrics();
    size_t at = 0;
    while ((at = page.find(series, at)) != std::string::npos) {
      if (at == 0 || page[at - 1] == '\n') {
        const size_t space = page.find(' ', at + series.size());
        const size_t eol = page.find('\n', at);
        if (space != std::string::npos && space < eol) {
          return std::stod(page.substr(space + 1, eol - space - 1));
        }
      }
      at += series.size();
    }
    return -1;
  }
};

inline v1::CreateAccountRequest CreateRequest(const std::string& key) {
  v1::CreateAccountRequest r;
  r.set_external_key(key);
  r.set_name("Durable Customer");
  r.set_email(key + "@example.com");
  return r;
}

// Submits keys [first, first+n) with `threads` concurrent callers; returns
// operation ids by key index (empty string when the submission failed) and
// counts failures.
inline std::vector<std::string> SubmitAll(v1::BillingGateway::Stub* stub,
                                          const std::string& prefix, int n,
                                          int threads, int* failures) {
  std::vector<std::string> ids(n);
  std::atomic<int> next{0};
  std::atomic<int> failed{0};
  std::vector<std::thread> pool;
  for (int t = 0; t < threads; ++t) {
    pool.emplace_back([&] {
      for (int i = next++; i < n; i = next++) {
        v1::Operation op;
        grpc::Status s = stub->SubmitCreateAccount(
            Context().get(), CreateRequest(prefix + std::to_string(i)), &op);
        if (s.ok()) {
          ids[i] = op.operation_id();
        } else {
          ++failed;
        }
      }
    });
  }
  for (auto& t : pool) t.join();
  *failures = failed.load();
  return ids;
}

}  // namespace bg::testing
