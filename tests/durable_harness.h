// Helpers of the durable end-to-end tests: killbill-sim and billing-gateway as
// processes (tests/subprocess.h, which also has WaitUntil;
// tests/gateway_process.h), a gateway config with a `database:` section, and
// /sim/stats reads.
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
#include "tests/gateway_process.h"
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

  // A sim that is never the bottleneck (capacity 2000/s, 1 ms latency, a bus
  // draining 5000/s, a healthcheck that never reports growth): for tests of
  // durability, not of flow control.
  static Sim Ample() {
    return Start({"--capacity", "2000", "--base_latency_ms", "1", "--bus_drain",
                  "5000", "--queue_healthcheck=false"});
  }

  nlohmann::json Stats() const {
    httplib::Client c("127.0.0.1", port);
    c.set_read_timeout(5, 0);
    auto r = c.Get("/sim/stats");
    if (!r || r->status != 200) return nlohmann::json::object();
    return nlohmann::json::parse(r->body);
  }

  // POST /sim/faults with `faults`; true when the sim accepted it.
  bool Faults(const nlohmann::json& faults) const {
    httplib::Client c("127.0.0.1", port);
    c.set_read_timeout(5, 0);
    auto r = c.Post("/sim/faults", faults.dump(), "application/json");
    return r && r->status == 200;
  }

  // The id of the account the sim holds under `external_key`, asked through
  // its Kill Bill API (not through the gateway); "" when it has none.
  std::string AccountIdByKey(const std::string& external_key) const {
    httplib::Client c("127.0.0.1", port);
    c.set_read_timeout(5, 0);
    c.set_basic_auth("admin", "password");
    httplib::Headers headers = {{"X-Killbill-ApiKey", "fresh-tenant"},
                                {"X-Killbill-ApiSecret", "fresh-secret"}};
    auto r =
        c.Get("/1.0/kb/accounts", {{"externalKey", external_key}}, headers);
    if (!r || r->status != 200) return "";
    return nlohmann::json::parse(r->body).value("accountId", "");
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
