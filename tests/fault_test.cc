// Fault scenarios: billing-gateway (a real process) in front of an in-process
// killbill-sim, under a steady closed-loop load of CreateAccount calls, for
// each of the sim's fault modes: outage (connection refused, and 503), a stall
// longer than every deadline, 50 % errors, garbage bodies, connection resets,
// and "out of rotation". For each one:
//   * the gateway stays up: its gRPC health service answers SERVING during the
//   fault;
//   * no call outlives its deadline by more than 100 ms: measured by the caller
//   (wall time
//     of every call) and by the gateway itself (its request-duration and Kill
//     Bill call-duration histograms: with 900 ms deadlines, every observation
//     is <= 1 s);
//   * every call is answered (the gateway's request counter equals the calls
//   made);
//   * the breaker moves as documented: it opens during the fault, and after the
//   fault clears
//     it goes half-open and closes again (billing_gateway_breaker_* series);
//   * retries stay inside their budget: retries <= 10 % of Kill Bill calls +
//   the budget's
//     fixed allowance (1/s, counted over its 10 s window);
//   * it recovers by itself: a call started after the fault cleared succeeds
//   within 8 s.
// The gateway runs with a small configuration (200 ms health polls, 300 ms open
// duration, breaker.min_calls 5) so each scenario takes a few seconds.
//
// Waiting is on conditions with deadlines: the load's own gRPC calls, metrics
// scrapes, and condition-variable waits that pace the loop; nothing sleeps.
#include <grpcpp/grpcpp.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <fstream>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_split.h"
#include "bench/killbill_sim/killbill_sim.h"
#include "billing/v1/billing_gateway.grpc.pb.h"
#include "grpc/health/v1/health.grpc.pb.h"
#include "gtest/gtest.h"
#include "httplib.h"
#include "nlohmann/json.hpp"
#include "tests/gateway_process.h"
#include "tests/metrics_page.h"
#include "tests/subprocess.h"

namespace bg {
namespace {

using namespace std::chrono_literals;
using testing::MetricsPage;
using testing::WaitUntil;
namespace v1 = billing::v1;
using Steady = std::chrono::steady_clock;
using Ms = std::chrono::milliseconds;

constexpr Ms kDeadline = 900ms;  // Every load call's gRPC deadline.
constexpr Ms kOverrun = 100ms;   // How far past it an answer may come.
constexpr char kWithinBucket[] =
    "1";  // Histogram bucket = kDeadline + kOverrun.

Ms Since(Steady::time_point t) {
  return std::chrono::duration_cast<Ms>(Steady::now() - t);
}

// Waits up to `d` unless `stop` turns true; the loops' pacing (a wait, not a
// sleep: a stop wakes it at once).
class Pacer {
 public:
  void Wait(Ms d) {
    std::unique_lock<std::mutex> lock(mu_);
    cv_.wait_for(lock, d, [this] { return stop_; });
  }
  void Stop() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      stop_ = true;
    }
    cv_.notify_all();
  }
  bool stopped() {
    std::lock_guard<std::mutex> lock(mu_);
    return stop_;
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  bool stop_ = false;
};

struct Outcome {
  grpc::StatusCode code;
  std::string message;
  std::string reason;  // billing-gateway-reject-reason, if any
  Steady::time_point start;
  Ms elapsed;
  std::string key;
  bool created = false;
  std::string account_id;
};

// One registration as user-service makes it (create + AUTO_PAY_OFF), with
// kDeadline.
Outcome CreateOnce(v1::BillingGateway::Stub* stub, const std::string& key) {
  v1::CreateAccountRequest req;
  req.set_external_key(key);
  req.set_name("Fault Test");
  req.set_email("fault@example.com");
  req.add_tags(v1::ACCOUNT_TAG_AUTO_PAY_OFF);
  v1::CreateAccountResponse resp;
  grpc::ClientContext ctx;
  const auto start = Steady::now();
  ctx.set_deadline(std::chrono::system_clock::now() + kDeadline);
  grpc::Status s = stub->CreateAccount(&ctx, req, &resp);
  Outcome o{s.error_code(), s.error_message(), "", start, Since(start), key,
            resp.created(), resp.account_id()};
  const auto& trailers = ctx.GetServerTrailingMetadata();
  if (auto it = trailers.find("billing-gateway-reject-reason");
      it != trailers.end()) {
    o.reason = std::string(it->second.data(), it->second.size());
  }
  return o;
}

// Closed-loop CreateAccount callers, each pausing 40 ms between calls (and
// honouring the retry pushback of a fast rejection), recording every outcome.
class Load {
 public:
  Load(v1::BillingGateway::Stub* stub, int threads, std::string prefix)
      : stub_(stub) {
    for (int t = 0; t < threads; ++t) {
      threads_.emplace_back([this, t, prefix] {
        for (int n = 0; !pacer_.stopped(); ++n) {
          Outcome o = CreateOnce(stub_, prefix + "-" + std::to_string(t) + "-" +
                                            std::to_string(n));
          Ms pause = 40ms;
          if (o.code != grpc::StatusCode::OK && o.elapsed < 50ms) pause = 100ms;
          Record(std::move(o));
          pacer_.Wait(pause);
        }
      });
    }
  }
  ~Load() { Stop(); }

  void Stop() {
    pacer_.Stop();
    for (std::thread& t : threads_) {
      if (t.joinable()) t.join();
    }
  }

  std::vector<Outcome> outcomes() {
    std::lock_guard<std::mutex> lock(mu_);
    return outcomes_;
  }
  bool SucceededSince(Steady::time_point t) {
    std::lock_guard<std::mutex> lock(mu_);
    return std::any_of(outcomes_.begin(), outcomes_.end(),
                       [t](const Outcome& o) {
                         return o.start >= t && o.code == grpc::StatusCode::OK;
                       });
  }
  int CountReason(const std::string& reason) {
    std::lock_guard<std::mutex> lock(mu_);
    return static_cast<int>(
        std::count_if(outcomes_.begin(), outcomes_.end(),
                      [&](const Outcome& o) { return o.reason == reason; }));
  }

 private:
  void Record(Outcome o) {
    std::lock_guard<std::mutex> lock(mu_);
    outcomes_.push_back(std::move(o));
  }

  v1::BillingGateway::Stub* const stub_;
  Pacer pacer_;
  std::mutex mu_;
  std::vector<Outcome> outcomes_;
  std::vector<std::thread> threads_;
};

class FaultTest : public ::testing::Test {
 protected:
  void SetUp() override {
    sim::SimOptions options;
    options.port = 0;
    sim_ = std::make_unique<sim::KillBillSim>(options);
    ASSERT_TRUE(sim_->Start().ok());
    // Fast and never saturated: the faults, not capacity, are under test.
    sim::SimOptions fast = sim_->options();
    fast.model.capacity = 2000;
    fast.model.bus_drain = 5000;
    fast.model.base_latency = std::chrono::milliseconds(2);
    ASSERT_TRUE(sim_->Configure(fast).ok());

    const std::string config = testing::TestFile("gateway.yaml");
    std::ofstream(config)
        << "server:\n  listen: 127.0.0.1:0\n  shutdown_grace: 1s\n"
        << "metrics:\n  listen: 127.0.0.1:0\n"
        << "logging:\n  level: warn\n"
        << "killbill:\n  url: http://127.0.0.1:" << sim_->port() << "\n"
        << "  connect_timeout: 300ms\n  request_timeout: 10s\n"
        << "queue:\n  capacity: 200\n"
        << "concurrency:\n  max_in_flight: 8\n"
        << "rate:\n  initial: 200\n  min: 20\n  max: 400\n  burst: 40\n"
        << "  increase_step: 10\n  adjust_interval: 100ms\n"
        << "  cooldown: 500ms\n"
        << "health:\n  poll_interval: 200ms\n  timeout: 500ms\n"
        << "breaker:\n  window: 2s\n  min_calls: 5\n  open_duration: 300ms\n"
        << "  max_open_duration: 1s\n  half_open_probes: 2\n"
        << "  probe_timeout: 3s\n  slow_call_threshold: 5s\n";
    testing::Gateway g = testing::Gateway::Launch(config, 20s);
    ASSERT_TRUE(g.ok()) << "gateway did not start: " << g.process->output();
    ASSERT_NE(g.metrics_port, 0);
    gateway_ = std::move(g.process);
    metrics_port_ = g.metrics_port;
    channel_ = g.channel;
    stub_ = std::move(g.stub);
    health_ = grpc::health::v1::Health::NewStub(channel_);
    start_ = Steady::now();
  }

  void TearDown() override {
    if (gateway_) {
      EXPECT_EQ(gateway_->Terminate(10s), std::optional<int>(0));
    }
    if (sim_) sim_->Stop();
  }

  MetricsPage Scrape() {
    httplib::Client http("127.0.0.1", metrics_port_);
    http.set_read_timeout(2s);
    auto res = http.Get("/metrics");
    EXPECT_TRUE(res) << "metrics page unreachable";
    return MetricsPage(res ? res->body : "");
  }

  bool Serving() {
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + 1s);
    grpc::health::v1::HealthCheckRequest req;
    grpc::health::v1::HealthCheckResponse resp;
    return health_->Check(&ctx, req, &resp).ok() &&
           resp.status() == grpc::health::v1::HealthCheckResponse::SERVING;
  }

  double Transitions(const char* to) {
    return Scrape().Sum("billing_gateway_breaker_transitions_total",
                        {{"to", to}});
  }

  // The whole scenario: steady load, fault, recovery, then every check in the
  // banner. `reopens`: the fault is certain to fail the half-open probes (or
  // keep the health red), so the breaker must open a second time while it
  // lasts.
  std::vector<Outcome> RunScenario(const std::function<void()>& inject,
                                   const std::function<void()>& clear,
                                   bool reopens = true) {
    Load load(stub_.get(), 4, "fault");
    // Healthy first: calls succeed.
    if (!WaitUntil([&] { return load.SucceededSince(start_); }, 5s)) {
      ADD_FAILURE() << "no success before the fault";
      return {};
    }
    const double opened_before = Transitions("open");

    inject();
    EXPECT_TRUE(
        WaitUntil([&] { return Transitions("open") > opened_before; }, 6s))
        << "breaker never opened";
    // Let the fault last until callers have been refused breaker_open and the
    // breaker has probed and reopened (at most 6 s).
    WaitUntil(
        [&] {
          return load.CountReason("breaker_open") > 0 &&
                 (!reopens || Transitions("open") > opened_before + 1);
        },
        6s);
    EXPECT_GT(load.CountReason("breaker_open"), 0)
        << "no call was rejected breaker_open";
    if (reopens) {
      EXPECT_GT(Transitions("open"), opened_before + 1)
          << "half-open probes did not reopen the breaker";
    }
    EXPECT_TRUE(Serving())
        << "gRPC health service did not answer SERVING during the fault";
    const double half_open_before = Transitions("half_open");
    const double closed_before = Transitions("closed");

    clear();
    const auto cleared = Steady::now();
    const bool recovered = WaitUntil(
        [&] {
          MetricsPage page = Scrape();
          return load.SucceededSince(cleared) &&
                 page.Sum("billing_gateway_breaker_state",
                          {{"state", "closed"}}) == 1;
        },
        8s);
    EXPECT_TRUE(recovered) << "no recovery within 8 s of the fault clearing";
    recovery_ = Since(cleared);
    load.Stop();

    // Breaker: open -> half-open -> closed after the fault.
    MetricsPage page = Scrape();
    EXPECT_GT(page.Sum("billing_gateway_breaker_transitions_total",
                       {{"to", "half_open"}}),
              half_open_before);
    EXPECT_GT(page.Sum("billing_gateway_breaker_transitions_total",
                       {{"to", "closed"}}),
              closed_before);

    // Deadlines, as the caller saw them.
    const std::vector<Outcome> outcomes = load.outcomes();
    std::map<grpc::StatusCode, int> by_code;
    for (const Outcome& o : outcomes) {
      ++by_code[o.code];
      EXPECT_LE(o.elapsed, kDeadline + kOverrun)
          << o.key << " took " << o.elapsed.count() << " ms: " << o.message;
      EXPECT_TRUE(o.code == grpc::StatusCode::OK ||
                  o.code == grpc::StatusCode::UNAVAILABLE ||
                  o.code == grpc::StatusCode::RESOURCE_EXHAUSTED ||
                  o.code == grpc::StatusCode::INTERNAL ||
                  o.code == grpc::StatusCode::DEADLINE_EXCEEDED)
          << o.code << " " << o.message;
    }
    // Every call answered by the gateway, and none later than its deadline +
    // 100 ms as the gateway measured it (the caller's own deadline hides a late
    // answer).
    const double calls = static_cast<double>(outcomes.size());
    EXPECT_TRUE(WaitUntil(
        [&] {
          return Scrape().Sum("billing_gateway_requests_total",
                              {{"method", "CreateAccount"}}) >= calls;
        },
        3s));
    page = Scrape();
    EXPECT_EQ(page.Sum("billing_gateway_requests_total",
                       {{"method", "CreateAccount"}}),
              calls);
    EXPECT_EQ(page.Sum("billing_gateway_request_duration_seconds_bucket",
                       {{"method", "CreateAccount"}, {"le", kWithinBucket}}),
              page.Sum("billing_gateway_request_duration_seconds_count",
                       {{"method", "CreateAccount"}}))
        << "a gRPC call was answered more than 100 ms after its deadline";
    // The duration histogram's outcome label agrees with what callers saw:
    // ok, rejected by flow control (a reject reason in the trailers), error.
    // A call the caller gave up on (DEADLINE_EXCEEDED, within the 100 ms
    // allowed) may be any of them on the gateway's side.
    int ok = 0, rejected = 0, gave_up = 0;
    for (const Outcome& o : outcomes) {
      if (o.code == grpc::StatusCode::OK) ++ok;
      if (!o.reason.empty()) ++rejected;
      if (o.code == grpc::StatusCode::DEADLINE_EXCEEDED) ++gave_up;
    }
    const double by_outcome[3] = {
        page.Sum("billing_gateway_request_duration_seconds_count",
                 {{"method", "CreateAccount"}, {"outcome", "ok"}}),
        page.Sum("billing_gateway_request_duration_seconds_count",
                 {{"method", "CreateAccount"}, {"outcome", "rejected"}}),
        page.Sum("billing_gateway_request_duration_seconds_count",
                 {{"method", "CreateAccount"}, {"outcome", "error"}})};
    EXPECT_NEAR(by_outcome[0], ok, gave_up);
    EXPECT_NEAR(by_outcome[1], rejected, gave_up);
    EXPECT_EQ(by_outcome[0] + by_outcome[1] + by_outcome[2], calls);
    double killbill_calls = 0;
    for (const char* endpoint : {"create_account", "get_account", "add_tags"}) {
      killbill_calls += page.Sum("billing_gateway_killbill_calls_total",
                                 {{"endpoint", endpoint}});
      EXPECT_EQ(
          page.Sum("billing_gateway_killbill_call_duration_seconds_bucket",
                   {{"endpoint", endpoint}, {"le", kWithinBucket}}),
          page.Sum("billing_gateway_killbill_call_duration_seconds_count",
                   {{"endpoint", endpoint}}))
          << endpoint << ": a Kill Bill call outlived its caller's deadline";
    }
    // Retry budget: 10 % of calls, plus 1 retry/s counted over a 10 s window.
    const double seconds = std::chrono::duration<double>(Since(start_)).count();
    const double retries = page.Sum("billing_gateway_retries_total");
    EXPECT_LE(retries, 0.1 * killbill_calls + 10.0 * (1 + seconds / 10.0) + 2)
        << "retries " << retries << " for " << killbill_calls
        << " Kill Bill calls";
    EXPECT_TRUE(Serving());

    std::string summary;
    for (const auto& [code, n] : by_code) {
      summary += " code" + std::to_string(code) + "=" + std::to_string(n);
    }
    std::printf(
        "[ fault    ] %s: %zu calls,%s, retries %.0f / %.0f Kill Bill calls, "
        "breaker opened %.0f times, recovered in %lld ms\n",
        ::testing::UnitTest::GetInstance()->current_test_info()->name(),
        outcomes.size(), summary.c_str(), retries, killbill_calls,
        page.Sum("billing_gateway_breaker_transitions_total", {{"to", "open"}}),
        static_cast<long long>(recovery_.count()));
    return outcomes;
  }

  void Inject(const sim::FaultRequest& faults) {
    absl::Status s = sim_->InjectFaults(faults);
    ASSERT_TRUE(s.ok()) << s;
  }
  void Clear() { sim_->ClearFaults(); }

  // The id of the account the sim holds under `key` (asked through its Kill
  // Bill API), "" when none.
  std::string SimAccountId(const std::string& key) {
    httplib::Client kb("127.0.0.1", sim_->port());
    kb.set_basic_auth("admin", "password");
    auto res = kb.Get("/1.0/kb/accounts", {{"externalKey", key}},
                      {{"X-Killbill-ApiKey", "fresh-tenant"},
                       {"X-Killbill-ApiSecret", "fresh-secret"}});
    if (!res || res->status != 200) return "";
    return nlohmann::json::parse(res->body).value("accountId", "");
  }

  std::unique_ptr<sim::KillBillSim> sim_;
  std::unique_ptr<testing::Subprocess> gateway_;
  int metrics_port_ = 0;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<v1::BillingGateway::Stub> stub_;
  std::unique_ptr<grpc::health::v1::Health::Stub> health_;
  Steady::time_point start_;
  Ms recovery_{0};
};

TEST_F(FaultTest, OutageRefused) {
  RunScenario([&] { Inject(sim::FaultRequest::RefuseOutage(60)); },
              [&] {
                Clear();
                ASSERT_TRUE(sim_->WaitForListener(absl::Seconds(5)));
              });
}

TEST_F(FaultTest, Outage503) {
  RunScenario([&] { Inject(sim::FaultRequest::Outage503(60)); },
              [&] { Clear(); });
}

TEST_F(FaultTest, StallLongerThanDeadlines) {
  RunScenario([&] { Inject(sim::FaultRequest::Stall(60)); }, [&] { Clear(); });
}

TEST_F(FaultTest, HalfTheCallsFail) {
  RunScenario([&] { Inject(sim::FaultRequest::ErrorRate(0.5)); },
              [&] { Clear(); }, /*reopens=*/false);
}

TEST_F(FaultTest, GarbageBodies) {
  RunScenario([&] { Inject(sim::FaultRequest::GarbageRate(1.0)); },
              [&] { Clear(); });
}

TEST_F(FaultTest, ConnectionResets) {
  const std::vector<Outcome> outcomes = RunScenario(
      [&] { Inject(sim::FaultRequest::ResetRate(1.0)); }, [&] { Clear(); });
  // A reset comes after Kill Bill did the work: the caller cannot know whether
  // its account exists. Calling again with the same key must succeed, finding
  // the account when the reset call had created it, and never create a second
  // one.
  std::vector<std::string> unsure;
  for (const Outcome& o : outcomes) {
    if (o.code == grpc::StatusCode::UNAVAILABLE && o.reason.empty())
      unsure.push_back(o.key);
  }
  ASSERT_FALSE(unsure.empty()) << "no call reached Kill Bill during the resets";
  if (unsure.size() > 10) unsure.resize(10);
  const int accounts_before = static_cast<int>(sim_->Stats().accounts_total);
  const uint64_t conflicts_before = sim_->Stats().conflicts_409;
  int found = 0, had = 0;
  for (const std::string& key : unsure) {
    SCOPED_TRACE(key);
    // Whether the reset call had created the account: the sim knows.
    const std::string before = SimAccountId(key);
    const bool existed = !before.empty();
    had += existed ? 1 : 0;
    Outcome again = CreateOnce(stub_.get(), key);
    EXPECT_EQ(again.code, grpc::StatusCode::OK) << again.message;
    if (!again.created) ++found;
    // created is false exactly when the account was there already, and the
    // answer names the account the sim holds under the key.
    EXPECT_EQ(again.created, !existed);
    const std::string after = SimAccountId(key);
    EXPECT_EQ(again.account_id, after);
    if (existed) {
      EXPECT_EQ(after, before);
    }
  }
  EXPECT_EQ(found, had);
  EXPECT_EQ(static_cast<int>(sim_->Stats().accounts_total),
            accounts_before + static_cast<int>(unsure.size()) - found);
  // Each retry POSTed once: a 409 exactly for the keys that existed (a retry
  // that POSTed twice, or a lookup skipped, shows here).
  EXPECT_EQ(sim_->Stats().conflicts_409 - conflicts_before,
            static_cast<uint64_t>(had));
  std::printf(
      "[ fault    ] resets: %zu unsure callers retried, %d found their "
      "account\n",
      unsure.size(), found);
}

TEST_F(FaultTest, OutOfRotation) {
  auto rotation = [&](bool in) {
    httplib::Client kb("127.0.0.1", sim_->port());
    kb.set_basic_auth("admin", "password");
    auto res = in ? kb.Put("/1.0/kb/admin/healthcheck")
                  : kb.Delete("/1.0/kb/admin/healthcheck");
    ASSERT_TRUE(res);
    ASSERT_EQ(res->status, 204);
  };
  RunScenario([&] { rotation(false); }, [&] { rotation(true); });
}

}  // namespace
}  // namespace bg
