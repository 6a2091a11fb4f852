// Shutdown under load: billing-gateway (a real process, shutdown_grace 1 s) in
// front of an in-process killbill-sim, 300 CreateAccount calls queued at once
// behind a 20 calls/s token bucket, then SIGTERM. Checks:
//   * admission stops: a call made after SIGTERM is refused UNAVAILABLE with
//     billing-gateway-reject-reason=shutting_down;
//   * what can finish finishes within the grace period (some calls succeed
//   after SIGTERM,
//     none later than grace + 500 ms);
//   * the rest are answered UNAVAILABLE with reason shutting_down and a retry
//   pushback;
//   * every one of the 300 calls gets an answer (counted), no other status
//   appears;
//   * no answer lies: Kill Bill holds exactly as many accounts as calls
//   answered OK;
//   * the process exits 0, within grace + 3 s of the signal.
// Waiting is on conditions with deadlines (a condition variable fed by the gRPC
// callbacks, metrics scrapes paced by a condition-variable wait); nothing
// sleeps.
#include <grpcpp/grpcpp.h>
#include <signal.h>

#include <chrono>
#include <condition_variable>
#include <fstream>
#include <map>
#include <mutex>
#include <regex>
#include <string>
#include <vector>

#include "bench/killbill_sim/killbill_sim.h"
#include "billing/v1/billing_gateway.grpc.pb.h"
#include "grpc/health/v1/health.grpc.pb.h"
#include "gtest/gtest.h"
#include "httplib.h"
#include "tests/subprocess.h"

namespace bg {
namespace {

using namespace std::chrono_literals;
namespace v1 = billing::v1;
using Steady = std::chrono::steady_clock;
using Ms = std::chrono::milliseconds;

constexpr int kCalls = 300;

Ms Since(Steady::time_point t) {
  return std::chrono::duration_cast<Ms>(Steady::now() - t);
}
constexpr Ms kGrace = 1000ms;

std::string Trailer(const grpc::ClientContext& ctx, const std::string& key) {
  const auto& trailers = ctx.GetServerTrailingMetadata();
  auto it = trailers.find(key);
  return it == trailers.end()
             ? ""
             : std::string(it->second.data(), it->second.size());
}

// Value of an unlabelled series on a Prometheus page, or -1.
double Metric(const std::string& page, const std::string& name) {
  std::smatch m;
  const std::regex re("(^|\n)" + name + " ([0-9.e+-]+)");
  return std::regex_search(page, m, re) ? std::stod(m[2].str()) : -1;
}

// One asynchronous call: owns what gRPC needs until the callback ran.
struct PendingCall {
  grpc::ClientContext ctx;
  v1::CreateAccountRequest req;
  v1::CreateAccountResponse resp;
  grpc::Status status;
  Steady::time_point answered;
};

TEST(Shutdown, SigtermWithHundredsQueuedAnswersEveryCall) {
  sim::SimOptions options;
  options.port = 0;
  sim::KillBillSim sim(options);
  ASSERT_TRUE(sim.Start().ok());
  sim::SimOptions paced = sim.options();
  paced.model.capacity = 30;
  paced.model.bus_drain = 1000;
  paced.model.base_latency = std::chrono::milliseconds(5);
  ASSERT_TRUE(sim.Configure(paced).ok());

  const std::string config = testing::TestFile("gateway.yaml");
  std::ofstream(config)
      << "server:\n  listen: 127.0.0.1:0\n  shutdown_grace: 1s\n"
      << "metrics:\n  listen: 127.0.0.1:0\n"
      << "logging:\n  level: warn\n"
      << "killbill:\n  url: http://127.0.0.1:" << sim.port() << "\n"
      << "queue:\n  capacity: 1000\n"
      << "concurrency:\n  max_in_flight: 4\n"
      << "rate:\n  mode: static\n  initial: 20\n  burst: 4\n";
  testing::Subprocess gateway({BG_GATEWAY_BINARY, "--config", config});
  auto grpc_port = gateway.WaitForLine(R"(grpc listening on port (\d+))", 20s);
  ASSERT_TRUE(grpc_port.has_value())
      << "gateway did not start: " << gateway.output();
  auto metrics_port =
      gateway.WaitForLine(R"(metrics listening on port (\d+))", 5s);
  ASSERT_TRUE(metrics_port.has_value());
  auto channel = grpc::CreateChannel("127.0.0.1:" + *grpc_port,
                                     grpc::InsecureChannelCredentials());
  auto stub = v1::BillingGateway::NewStub(channel);
  auto health = grpc::health::v1::Health::NewStub(channel);

  std::mutex mu;
  std::condition_variable cv;
  int answered = 0;
  auto wait = [&](Ms d, const std::function<bool()>& done) {
    std::unique_lock<std::mutex> lock(mu);
    return cv.wait_for(lock, d, done);
  };

  // 300 registrations at once, with deadlines far beyond the test: only
  // shutdown ends them.
  std::vector<std::unique_ptr<PendingCall>> calls;
  for (int i = 0; i < kCalls; ++i) {
    auto call = std::make_unique<PendingCall>();
    call->req.set_external_key("shutdown-" + std::to_string(i));
    call->req.set_name("Shutdown Test");
    call->ctx.set_deadline(std::chrono::system_clock::now() + 120s);
    PendingCall* c = call.get();
    stub->async()->CreateAccount(&c->ctx, &c->req, &c->resp,
                                 [c, &mu, &cv, &answered](grpc::Status s) {
                                   std::lock_guard<std::mutex> lock(mu);
                                   c->status = std::move(s);
                                   c->answered = Steady::now();
                                   ++answered;
                                   cv.notify_all();
                                 });
    calls.push_back(std::move(call));
  }

  // All of them admitted (queued or running) before the signal.
  httplib::Client metrics("127.0.0.1", std::stoi(*metrics_port));
  metrics.set_read_timeout(2s);
  const auto admitted_by = Steady::now() + 10s;
  double admitted = 0;
  while (Steady::now() < admitted_by) {
    auto page = metrics.Get("/metrics");
    admitted =
        page ? Metric(page->body, "billing_gateway_admissions_total") : -1;
    if (admitted >= kCalls) break;
    wait(50ms, [] { return false; });
  }
  ASSERT_EQ(admitted, kCalls) << "not every call was queued before SIGTERM";
  int answered_before;
  {
    std::lock_guard<std::mutex> lock(mu);
    answered_before = answered;
  }
  ASSERT_LT(answered_before, kCalls / 2)
      << "the queue drained before the signal";

  const auto signalled = Steady::now();
  ASSERT_EQ(kill(gateway.pid(), SIGTERM), 0);

  // Admission stops: once the health service says NOT_SERVING, a new call is
  // refused.
  bool not_serving = false;
  while (!not_serving && Since(signalled) < kGrace / 2) {
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + 200ms);
    grpc::health::v1::HealthCheckRequest req;
    grpc::health::v1::HealthCheckResponse resp;
    grpc::Status s = health->Check(&ctx, req, &resp);
    not_serving =
        s.ok() &&
        resp.status() == grpc::health::v1::HealthCheckResponse::NOT_SERVING;
    if (!not_serving) wait(10ms, [] { return false; });
  }
  EXPECT_TRUE(not_serving)
      << "health service did not turn NOT_SERVING after SIGTERM";
  {
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + 2s);
    v1::CreateAccountRequest req;
    req.set_external_key("after-sigterm");
    v1::CreateAccountResponse resp;
    grpc::Status s = stub->CreateAccount(&ctx, req, &resp);
    EXPECT_EQ(s.error_code(), grpc::StatusCode::UNAVAILABLE)
        << s.error_message();
    EXPECT_EQ(Trailer(ctx, "billing-gateway-reject-reason"), "shutting_down");
  }

  // Every call answered, none hanging.
  EXPECT_TRUE(wait(kGrace + 5s, [&] { return answered == kCalls; }))
      << answered << " of " << kCalls << " calls answered";
  const std::optional<int> exit_code = gateway.Terminate(10s);
  const Ms exited_after =
      std::chrono::duration_cast<Ms>(Steady::now() - signalled);
  EXPECT_EQ(exit_code, std::optional<int>(0)) << gateway.output();
  EXPECT_LE(exited_after, kGrace + 3s);

  std::lock_guard<std::mutex> lock(mu);
  int ok = 0, ok_after_signal = 0, shutting_down = 0;
  std::map<int, int> other;
  for (const auto& c : calls) {
    if (c->status.ok()) {
      ++ok;
      if (c->answered > signalled) {
        ++ok_after_signal;
        EXPECT_LE(c->answered - signalled, kGrace + 500ms)
            << "finished after the grace";
      }
    } else if (c->status.error_code() == grpc::StatusCode::UNAVAILABLE &&
               Trailer(c->ctx, "billing-gateway-reject-reason") ==
                   "shutting_down") {
      ++shutting_down;
      EXPECT_FALSE(Trailer(c->ctx, "grpc-retry-pushback-ms").empty());
    } else {
      ++other[c->status.error_code()];
      ADD_FAILURE() << c->req.external_key() << ": " << c->status.error_code()
                    << " " << c->status.error_message();
    }
  }
  EXPECT_EQ(ok + shutting_down, kCalls);
  EXPECT_GT(ok_after_signal, 0) << "nothing finished during the grace period";
  EXPECT_GT(shutting_down, 0)
      << "the grace period drained everything: test proves nothing";
  // An OK is an account; a shutting_down is none.
  EXPECT_EQ(static_cast<int>(sim.Stats().accounts_created), ok);
  std::printf(
      "[ shutdown ] %d calls: %d OK before SIGTERM, %d OK during the %lld ms "
      "grace, "
      "%d UNAVAILABLE shutting_down; exit %d after %lld ms\n",
      kCalls, ok - ok_after_signal, ok_after_signal,
      static_cast<long long>(kGrace.count()), shutting_down,
      exit_code.value_or(-1), static_cast<long long>(exited_after.count()));
}

// Issue 13, defect 3: a call stuck in Kill Bill (a 60 s stall, a 30 s
// request_timeout, a 120 s caller deadline) must not hold SIGTERM past the
// grace: the gateway cuts what is still in flight 1 s after the grace
// (dispatcher finish_after_grace), answers the call UNAVAILABLE, and exits
// within grace + 1 s + 3 s (before: after the 30 s request_timeout and more).
TEST(Shutdown, ACallStuckInKillBillDoesNotOutlastTheGrace) {
  sim::SimOptions options;
  options.port = 0;
  sim::KillBillSim sim(options);
  ASSERT_TRUE(sim.Start().ok());

  const std::string config = testing::TestFile("gateway-stuck.yaml");
  std::ofstream(config)
      << "server:\n  listen: 127.0.0.1:0\n  shutdown_grace: 1s\n"
      << "metrics:\n  listen: 127.0.0.1:0\n"
      << "logging:\n  level: warn\n"
      << "killbill:\n  url: http://127.0.0.1:" << sim.port()
      << "\n  request_timeout: 30s\n"
      << "rate:\n  mode: static\n  initial: 20\n";
  testing::Subprocess gateway({BG_GATEWAY_BINARY, "--config", config});
  auto grpc_port = gateway.WaitForLine(R"(grpc listening on port (\d+))", 20s);
  ASSERT_TRUE(grpc_port.has_value())
      << "gateway did not start: " << gateway.output();
  auto metrics_port =
      gateway.WaitForLine(R"(metrics listening on port (\d+))", 5s);
  ASSERT_TRUE(metrics_port.has_value());
  ASSERT_TRUE(sim.InjectFaults(sim::FaultRequest::Stall(60)).ok());

  auto stub = v1::BillingGateway::NewStub(grpc::CreateChannel(
      "127.0.0.1:" + *grpc_port, grpc::InsecureChannelCredentials()));
  std::mutex mu;
  std::condition_variable cv;
  bool answered = false;
  PendingCall call;
  call.req.set_external_key("stuck-in-killbill");
  call.req.set_name("Stuck");
  call.ctx.set_deadline(std::chrono::system_clock::now() + 120s);
  stub->async()->CreateAccount(&call.ctx, &call.req, &call.resp,
                               [&](grpc::Status s) {
                                 std::lock_guard<std::mutex> lock(mu);
                                 call.status = std::move(s);
                                 answered = true;
                                 cv.notify_all();
                               });
  auto wait = [&](Ms d, const std::function<bool()>& done) {
    std::unique_lock<std::mutex> lock(mu);
    return cv.wait_for(lock, d, done);
  };

  // The call is in Kill Bill (the stall holds it) before the signal.
  httplib::Client metrics("127.0.0.1", std::stoi(*metrics_port));
  metrics.set_read_timeout(2s);
  double in_flight = 0;
  for (const auto until = Steady::now() + 10s;
       in_flight < 1 && Steady::now() < until;) {
    auto page = metrics.Get("/metrics");
    in_flight =
        page ? Metric(page->body, "billing_gateway_killbill_in_flight") : 0;
    if (in_flight < 1) wait(50ms, [] { return false; });
  }
  ASSERT_EQ(in_flight, 1) << "the call never reached Kill Bill";

  const auto signalled = Steady::now();
  ASSERT_EQ(kill(gateway.pid(), SIGTERM), 0);
  EXPECT_TRUE(wait(kGrace + 1s + 3s, [&] { return answered; }))
      << "the stuck call was not answered within the grace";
  const std::optional<int> exit_code = gateway.Terminate(40s);
  const Ms exited_after = Since(signalled);
  ASSERT_TRUE(sim.InjectFaults(sim::FaultRequest::Clear()).ok());
  EXPECT_EQ(exit_code, std::optional<int>(0)) << gateway.output();
  EXPECT_LE(exited_after, kGrace + 1s + 3s) << "SIGTERM outlasted the grace";
  std::lock_guard<std::mutex> lock(mu);
  EXPECT_TRUE(answered);
  EXPECT_EQ(call.status.error_code(), grpc::StatusCode::UNAVAILABLE)
      << call.status.error_message();
  std::printf("[ shutdown ] stuck call answered %d (%s); exit after %lld ms\n",
              call.status.error_code(), call.status.error_message().c_str(),
              static_cast<long long>(exited_after.count()));
}

}  // namespace
}  // namespace bg
