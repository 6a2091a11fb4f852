// billing-gateway's SIGHUP reload as a process against killbill-sim: the rate
// changed in the file under load takes effect with every call answered; a bad
// file, or one that changes a key only a restart applies, keeps the running
// configuration with a log line that says why. Also the logging formats as
// the process writes them (logging.format json and text, x-request-id).
#include <grpcpp/grpcpp.h>
#include <signal.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <memory>
#include <mutex>
#include <optional>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "billing/v1/billing_gateway.grpc.pb.h"
#include "gtest/gtest.h"
#include "httplib.h"
#include "nlohmann/json.hpp"
#include "tests/subprocess.h"

namespace bg {
namespace {

namespace v1 = billing::v1;
using std::chrono::milliseconds;
using std::chrono::seconds;
using Steady = std::chrono::steady_clock;

class GatewayReloadTest : public ::testing::Test {
 protected:
  void SetUp() override {
    sim_ = std::make_unique<testing::Subprocess>(
        std::vector<std::string>{BG_SIM_BINARY, "--listen", "127.0.0.1:0"});
    auto port =
        sim_->WaitForLine(R"(listening on 127\.0\.0\.1:(\d+))", seconds(20));
    ASSERT_TRUE(port.has_value()) << "killbill-sim did not start";
    sim_port_ = std::stoi(*port);
    config_path_ = testing::TestFile("gateway.yaml");
  }

  // The config file: loopback on free ports, the sim, then `tuning`.
  std::string Yaml(const std::string& tuning,
                   const std::string& listen = "127.0.0.1:0") const {
    std::ostringstream y;
    y << "server:\n  listen: \"" << listen << "\"\n"
      << "metrics:\n  listen: \"127.0.0.1:0\"\n"
      << "killbill:\n  url: http://127.0.0.1:" << sim_port_ << "\n"
      << tuning;
    return y.str();
  }
  void Write(const std::string& yaml) const {
    std::ofstream(config_path_, std::ios::trunc) << yaml;
  }

  // Starts the gateway on the file as written; its stderr (the log) is read
  // with its stdout.
  void Launch() {
    gateway_ = std::make_unique<testing::Subprocess>(
        std::vector<std::string>{BG_GATEWAY_BINARY, "--config", config_path_},
        /*capture_stderr=*/true);
    auto grpc_port =
        gateway_->WaitForLine(R"(grpc listening on port (\d+))", seconds(30));
    ASSERT_TRUE(grpc_port.has_value()) << gateway_->output();
    auto metrics_port =
        gateway_->WaitForLine(R"(metrics listening on port (\d+))", seconds(5));
    ASSERT_TRUE(metrics_port.has_value()) << gateway_->output();
    metrics_port_ = std::stoi(*metrics_port);
    stub_ = v1::BillingGateway::NewStub(grpc::CreateChannel(
        "127.0.0.1:" + *grpc_port, grpc::InsecureChannelCredentials()));
  }

  // SIGHUP, then the log line that ends the reload ("reloaded" or
  // "refused"), or nullopt.
  std::optional<std::string> Reload() {
    kill(gateway_->pid(), SIGHUP);
    return gateway_->WaitForLine(R"((configuration reload(ed| refused).*))",
                                 seconds(10));
  }

  // The value of the sample line that starts with `series`, or -1.
  double Metric(const std::string& series) const {
    httplib::Client c("127.0.0.1", metrics_port_);
    auto r = c.Get("/metrics");
    if (!r) return -1;
    std::istringstream page(r->body);
    std::string line;
    while (std::getline(page, line)) {
      if (line.rfind(series + " ", 0) == 0) {
        return std::stod(line.substr(series.size() + 1));
      }
    }
    return -1;
  }

  std::unique_ptr<testing::Subprocess> sim_;
  std::unique_ptr<testing::Subprocess> gateway_;
  std::unique_ptr<v1::BillingGateway::Stub> stub_;
  std::string config_path_;
  int sim_port_ = 0;
  int metrics_port_ = 0;
};

constexpr char kApplied[] =
    "billing_gateway_config_reloads_total{result=\"applied\"}";
constexpr char kRefused[] =
    "billing_gateway_config_reloads_total{result=\"refused\"}";
constexpr char kInvalid[] =
    "billing_gateway_config_reloads_total{result=\"invalid\"}";

TEST_F(GatewayReloadTest, ANewRateUnderLoadTakesEffectAndEveryCallIsAnswered) {
  // Untagged creates: 1 bus event each, so the static rate is creations/s.
  const std::string slow = "rate:\n  mode: static\n  initial: 4\n  burst: 1\n";
  Write(Yaml(slow));
  ASSERT_NO_FATAL_FAILURE(Launch());
  ASSERT_EQ(Metric("billing_gateway_rate_limit_events_per_second"), 4);

  // A bounded closed loop: 24 callers, 150 creations, each with a deadline
  // far beyond the slow rate's queue wait (24 queued / 4 per s = 6 s).
  constexpr int kCalls = 150;
  std::atomic<int> next{0};
  std::mutex mu;
  std::vector<Steady::time_point> done;  // completion times of OK answers
  std::vector<std::string> failures;
  std::vector<std::thread> callers;
  for (int t = 0; t < 24; ++t) {
    callers.emplace_back([&] {
      for (int i = next++; i < kCalls; i = next++) {
        v1::CreateAccountRequest request;
        request.set_external_key("reload-" + std::to_string(i));
        request.set_name("Reload Test");
        request.set_email("reload@example.com");
        v1::CreateAccountResponse response;
        grpc::ClientContext context;
        context.set_deadline(std::chrono::system_clock::now() + seconds(60));
        const grpc::Status s =
            stub_->CreateAccount(&context, request, &response);
        std::lock_guard<std::mutex> lock(mu);
        if (s.ok() && response.created()) {
          done.push_back(Steady::now());
        } else {
          failures.push_back(std::to_string(s.error_code()) + " " +
                             s.error_message());
        }
      }
    });
  }
  const auto completed = [&] {
    std::lock_guard<std::mutex> lock(mu);
    return done.size() + failures.size();
  };
  // About 4 s at the slow rate.
  const bool slow_phase =
      testing::WaitUntil([&] { return completed() >= 16; }, seconds(30));
  const Steady::time_point reload_at = Steady::now();
  const std::string faster =
      "rate:\n  mode: static\n  initial: 25\n  burst: 1\n";
  Write(Yaml(faster));
  const std::optional<std::string> line = Reload();
  for (std::thread& t : callers) t.join();  // bounded by the 60 s deadlines

  ASSERT_TRUE(slow_phase);
  ASSERT_TRUE(line.has_value()) << gateway_->output();
  EXPECT_NE(line->find("configuration reloaded"), std::string::npos) << *line;
  EXPECT_NE(line->find("rate.initial: 4 -> 25"), std::string::npos) << *line;
  EXPECT_EQ(Metric("billing_gateway_rate_limit_events_per_second"), 25);
  EXPECT_EQ(Metric(kApplied), 1);

  // Zero calls lost: every call was answered, each with its new account.
  EXPECT_TRUE(failures.empty())
      << failures.size()
      << " failed, first: " << (failures.empty() ? "" : failures[0]);
  EXPECT_EQ(done.size(), static_cast<size_t>(kCalls));
  httplib::Client sim("127.0.0.1", sim_port_);
  auto stats = sim.Get("/sim/stats");
  ASSERT_TRUE(stats);
  EXPECT_EQ(nlohmann::json::parse(stats->body).at("accounts_created"), kCalls);

  // The pace before and after: creations completed per second in the 3 s
  // before the reload and in 3 s starting 0.5 s after it.
  const auto rate_in = [&](Steady::time_point from, Steady::time_point to) {
    const auto n = std::count_if(done.begin(), done.end(),
                                 [&](auto t) { return t >= from && t < to; });
    return static_cast<double>(n) /
           std::chrono::duration<double>(to - from).count();
  };
  const double before = rate_in(reload_at - seconds(3), reload_at);
  const double after =
      rate_in(reload_at + milliseconds(500), reload_at + milliseconds(3500));
  std::printf("creations/s: %.1f in the 3 s before the reload, %.1f after\n",
              before, after);
  EXPECT_LE(before, 5.5) << "before " << before << "/s";
  EXPECT_GE(after, 12) << "after " << after << "/s (before " << before << "/s)";
}

TEST_F(GatewayReloadTest, ABadOrRestartOnlyFileKeepsTheRunningConfiguration) {
  const std::string tuning = "rate:\n  mode: static\n  initial: 7\n";
  Write(Yaml(tuning));
  ASSERT_NO_FATAL_FAILURE(Launch());

  // A file that does not validate: FILE:LINE:COLUMN and the key in the log.
  Write(Yaml("rate:\n  mode: static\n  initial: fast\n"));
  std::optional<std::string> line = Reload();
  ASSERT_TRUE(line.has_value()) << gateway_->output();
  EXPECT_NE(line->find("refused"), std::string::npos) << *line;
  EXPECT_NE(line->find(config_path_ + ":9:"), std::string::npos) << *line;
  EXPECT_NE(line->find("rate.initial"), std::string::npos) << *line;
  EXPECT_EQ(Metric(kInvalid), 1);

  // A new listen address and a new queue capacity: nothing is applied.
  Write(Yaml("rate:\n  mode: static\n  initial: 9\nqueue:\n  capacity: 5\n",
             "127.0.0.1:1"));
  line = Reload();
  ASSERT_TRUE(line.has_value()) << gateway_->output();
  EXPECT_NE(line->find("refused"), std::string::npos) << *line;
  EXPECT_NE(line->find("server.listen"), std::string::npos) << *line;
  EXPECT_EQ(line->find("rate.initial"), std::string::npos) << *line;
  EXPECT_EQ(Metric(kRefused), 1);
  EXPECT_EQ(Metric("billing_gateway_rate_limit_events_per_second"), 7);
  EXPECT_EQ(Metric("billing_gateway_queue_capacity"), 2 * 10000);

  // The same tuning with the old address applies.
  Write(Yaml("rate:\n  mode: static\n  initial: 9\nqueue:\n  capacity: 5\n"));
  line = Reload();
  ASSERT_TRUE(line.has_value()) << gateway_->output();
  EXPECT_NE(line->find("configuration reloaded"), std::string::npos) << *line;
  EXPECT_EQ(Metric(kApplied), 1);
  EXPECT_EQ(Metric("billing_gateway_rate_limit_events_per_second"), 9);
  EXPECT_EQ(Metric("billing_gateway_queue_capacity"), 2 * 5);
}

// Calls GetAccount with x-request-id `id` (NOT_FOUND is fine: any answer ends
// the call and its log line).
void CallWithRequestId(v1::BillingGateway::Stub& stub, const std::string& id) {
  grpc::ClientContext context;
  context.AddMetadata("x-request-id", id);
  context.set_deadline(std::chrono::system_clock::now() + seconds(10));
  v1::GetAccountRequest request;
  request.set_external_key("nobody-" + id);
  v1::Account account;
  stub.GetAccount(&context, request, &account);
}

TEST_F(GatewayReloadTest, JsonLogsAreOneObjectPerLineWithTheRequestId) {
  Write(Yaml("logging:\n  level: debug\n  format: json\n"));
  ASSERT_NO_FATAL_FAILURE(Launch());
  CallWithRequestId(*stub_, "req-json-1");
  auto line = gateway_->WaitForLine(R"((.*req-json-1.*))", seconds(10));
  ASSERT_TRUE(line.has_value()) << gateway_->output();
  const nlohmann::json entry = nlohmann::json::parse(*line);
  EXPECT_EQ(entry.at("request_id"), "req-json-1");
  EXPECT_EQ(entry.at("level"), "debug");
  EXPECT_NE(entry.at("message").get<std::string>().find("GetAccount"),
            std::string::npos);
  EXPECT_EQ(entry.at("time").get<std::string>().back(), 'Z');
  // Every log line is a JSON object; stdout's two port lines are not logs.
  std::istringstream all(gateway_->output());
  std::string l;
  int objects = 0;
  while (std::getline(all, l)) {
    if (l.rfind("grpc listening", 0) == 0 ||
        l.rfind("metrics listening", 0) == 0) {
      continue;
    }
    ASSERT_TRUE(nlohmann::json::accept(l)) << l;
    EXPECT_TRUE(nlohmann::json::parse(l).contains("message")) << l;
    ++objects;
  }
  EXPECT_GE(objects, 3);  // start-up lines and the call's
}

TEST_F(GatewayReloadTest, TextLogsStayTheDefaultAndReloadToJson) {
  Write(Yaml("logging:\n  level: debug\n"));
  ASSERT_NO_FATAL_FAILURE(Launch());
  CallWithRequestId(*stub_, "req-text-1");
  auto line = gateway_->WaitForLine(R"((.*req-text-1.*))", seconds(10));
  ASSERT_TRUE(line.has_value()) << gateway_->output();
  EXPECT_FALSE(nlohmann::json::accept(*line)) << *line;
  EXPECT_NE(line->find("[debug]"), std::string::npos) << *line;
  EXPECT_NE(line->find(" request_id=req-text-1"), std::string::npos) << *line;

  Write(Yaml("logging:\n  level: debug\n  format: json\n"));
  ASSERT_TRUE(Reload().has_value()) << gateway_->output();
  CallWithRequestId(*stub_, "req-text-2");
  line = gateway_->WaitForLine(R"((.*req-text-2.*))", seconds(10));
  ASSERT_TRUE(line.has_value()) << gateway_->output();
  ASSERT_TRUE(nlohmann::json::accept(*line)) << *line;
  EXPECT_EQ(nlohmann::json::parse(*line).at("request_id"), "req-text-2");
}

}  // namespace
}  // namespace bg
