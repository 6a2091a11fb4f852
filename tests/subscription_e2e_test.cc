// Subscriptions and the billing overview end to end: killbill-sim in process,
// billing-gateway as a real process, gRPC over loopback, as user-service calls
// it.
//
// Checks, on the real wiring:
//   * CreateSubscription: the Kill Bill state it leaves (bundle key, custom
//     field, trial phase and its end), the bus events it posts, idempotency on
//     instance_id for repeats, retries and concurrent duplicates (one
//     subscription), every error the API documents;
//   * Get/List/Cancel (cancelling twice is success), the overview in at most 5
//     Kill Bill reads;
//   * reads answered from the cache: fresh ones without a Kill Bill call, and,
//     with Kill Bill down and the breaker open, every warm read answered from
//     the cache with its age, a cold one refused breaker_open with a pushback.
#include <grpcpp/grpcpp.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <ctime>
#include <fstream>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/match.h"
#include "bench/killbill_sim/killbill_sim.h"
#include "billing/v1/billing_gateway.grpc.pb.h"
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

// The trailing metadata value for `key`, or "" when absent.
std::string Trailer(const grpc::ClientContext& ctx, const std::string& key) {
  const auto& md = ctx.GetServerTrailingMetadata();
  auto it = md.find(key);
  return it == md.end() ? ""
                        : std::string(it->second.data(), it->second.size());
}

class SubscriptionE2E : public ::testing::Test {
 protected:
  // `extra`: YAML appended to the gateway's config.
  void Start(const std::string& extra = "") {
    sim::SimOptions options;
    options.port = 0;
    sim_ = std::make_unique<sim::KillBillSim>(options);
    ASSERT_TRUE(sim_->Start().ok());
    // Fast and never saturated: the API, not capacity, is under test.
    sim::SimOptions fast = sim_->options();
    fast.model.capacity = 2000;
    fast.model.bus_drain = 5000;
    fast.model.base_latency = std::chrono::milliseconds(1);
    ASSERT_TRUE(sim_->Configure(fast).ok());

    const std::string config = testing::TestFile("gateway.yaml");
    std::ofstream(config)
        << "server:\n  listen: 127.0.0.1:0\n  shutdown_grace: 1s\n"
        << "metrics:\n  listen: 127.0.0.1:0\n"
        << "logging:\n  level: warn\n"
        << "killbill:\n  url: http://127.0.0.1:" << sim_->port() << "\n"
        << "  connect_timeout: 300ms\n"
        << "rate:\n  mode: static\n  initial: 500\n  max: 500\n"
        << "  api_calls_per_second: 1000\n"
        << extra;
    testing::Gateway g = testing::Gateway::Launch(config, 20s);
    ASSERT_TRUE(g.ok()) << "gateway did not start: " << g.process->output();
    gateway_ = std::move(g.process);
    metrics_port_ = g.metrics_port;
    stub_ = std::move(g.stub);
  }

  void TearDown() override {
    if (gateway_) {
      EXPECT_EQ(gateway_->Terminate(10s), std::optional<int>(0));
    }
    if (sim_) sim_->Stop();
  }

  static void Deadline(grpc::ClientContext* ctx) {
    ctx->set_deadline(std::chrono::system_clock::now() + 10s);
  }

  std::string NewAccount(const std::string& key) {
    v1::CreateAccountRequest req;
    req.set_external_key(key);
    req.add_tags(v1::ACCOUNT_TAG_AUTO_PAY_OFF);
    v1::CreateAccountResponse resp;
    grpc::ClientContext ctx;
    Deadline(&ctx);
    grpc::Status s = stub_->CreateAccount(&ctx, req, &resp);
    EXPECT_TRUE(s.ok()) << s.error_message();
    return resp.account_id();
  }

  static v1::CreateSubscriptionRequest Subscribe(const std::string& account_key,
                                                 const std::string& plan,
                                                 const std::string& instance) {
    v1::CreateSubscriptionRequest req;
    req.mutable_account()->set_external_key(account_key);
    req.set_plan_name(plan);
    req.set_instance_id(instance);
    return req;
  }

  grpc::Status Create(const v1::CreateSubscriptionRequest& req,
                      v1::CreateSubscriptionResponse* resp,
                      std::string* killbill_code = nullptr) {
    grpc::ClientContext ctx;
    Deadline(&ctx);
    grpc::Status s = stub_->CreateSubscription(&ctx, req, resp);
    if (killbill_code)
      *killbill_code = Trailer(ctx, "billing-gateway-killbill-code");
    return s;
  }

  // Kill Bill API calls (healthcheck and metrics excluded) the sim answered.
  uint64_t KillBillCalls(const char* method = "") {
    uint64_t n = 0;
    for (const auto& [label, outcomes] : sim_->Stats().requests) {
      if (!absl::StrContains(label, "/1.0/kb/")) continue;
      if (!absl::StartsWith(label, method)) continue;
      for (const auto& [outcome, count] : outcomes) n += count;
    }
    return n;
  }

  MetricsPage Scrape() {
    httplib::Client http("127.0.0.1", metrics_port_);
    auto res = http.Get("/metrics");
    return MetricsPage(res ? res->body : "");
  }

  std::unique_ptr<sim::KillBillSim> sim_;
  std::unique_ptr<testing::Subprocess> gateway_;
  int metrics_port_ = 0;
  std::unique_ptr<v1::BillingGateway::Stub> stub_;
};

TEST_F(SubscriptionE2E, CreateStoresTheInstanceAndStartsTheTrial) {
  Start();
  const std::string account_id = NewAccount("sub-customer-1");
  const uint64_t posted_before = sim_->Stats().bus_posted_total;

  v1::CreateSubscriptionResponse resp;
  auto req = Subscribe("sub-customer-1", "basic-monthly", "odoo-instance-1");
  (*req.mutable_metadata())["region"] = "eu-west";
  grpc::Status s = Create(req, &resp);
  ASSERT_TRUE(s.ok()) << s.error_message();
  EXPECT_TRUE(resp.created());
  const v1::Subscription& sub = resp.subscription();
  EXPECT_EQ(sub.account_id(), account_id);
  EXPECT_EQ(sub.instance_id(), "odoo-instance-1");
  EXPECT_EQ(sub.plan_name(), "basic-monthly");
  EXPECT_EQ(sub.product_name(), "basic");
  EXPECT_EQ(sub.billing_period(), "MONTHLY");
  EXPECT_EQ(sub.phase(), v1::PHASE_TYPE_TRIAL);
  EXPECT_EQ(sub.state(), v1::SUBSCRIPTION_STATE_ACTIVE);
  ASSERT_EQ(sub.start_date().size(), 10u) << sub.start_date();
  ASSERT_EQ(sub.trial_end_date().size(), 10u) << sub.trial_end_date();
  // 14 days later, as the catalog's trial says.
  std::tm start{}, end{};
  strptime(sub.start_date().c_str(), "%Y-%m-%d", &start);
  strptime(sub.trial_end_date().c_str(), "%Y-%m-%d", &end);
  EXPECT_NEAR(std::difftime(timegm(&end), timegm(&start)), 14 * 86400.0, 1);
  EXPECT_TRUE(sub.cancelled_date().empty());

  // Kill Bill holds the instance id as the bundle key and as a custom field,
  // next to the metadata; the bus got the subscription's 4 events and 1 per
  // field.
  EXPECT_EQ(sim_->Stats().bus_posted_total - posted_before, 4u + 2u);
  httplib::Client http("127.0.0.1", sim_->port());
  http.set_basic_auth("admin", "password");
  httplib::Headers tenant = {{"X-Killbill-ApiKey", "fresh-tenant"},
                             {"X-Killbill-ApiSecret", "fresh-secret"}};
  auto fields = http.Get(
      "/1.0/kb/subscriptions/" + sub.subscription_id() + "/customFields",
      tenant);
  ASSERT_TRUE(fields);
  EXPECT_TRUE(absl::StrContains(fields->body, "\"instance_id\""))
      << fields->body;
  EXPECT_TRUE(absl::StrContains(fields->body, "\"odoo-instance-1\""));
  EXPECT_TRUE(absl::StrContains(fields->body, "\"eu-west\""));

  // A plan without a trial starts in its evergreen phase, with no trial end.
  ASSERT_TRUE(
      Create(Subscribe("sub-customer-1", "standard-annual", "odoo-instance-2"),
             &resp)
          .ok());
  EXPECT_EQ(resp.subscription().phase(), v1::PHASE_TYPE_EVERGREEN);
  EXPECT_TRUE(resp.subscription().trial_end_date().empty());
}

TEST_F(SubscriptionE2E, RepeatsAndConcurrentDuplicatesMakeOneSubscription) {
  Start();
  NewAccount("dup-customer");
  v1::CreateSubscriptionResponse first;
  auto req = Subscribe("dup-customer", "basic-monthly", "dup-instance");
  ASSERT_TRUE(Create(req, &first).ok());
  ASSERT_TRUE(first.created());
  const size_t subs_after_first = sim_->Stats().subscriptions_total;
  const uint64_t posted = sim_->Stats().bus_posted_total;

  // A repeat (a retried call) answers the same subscription, posting nothing.
  v1::CreateSubscriptionResponse again;
  ASSERT_TRUE(Create(req, &again).ok());
  EXPECT_FALSE(again.created());
  EXPECT_EQ(again.subscription().subscription_id(),
            first.subscription().subscription_id());
  EXPECT_EQ(sim_->Stats().bus_posted_total, posted);
  EXPECT_EQ(sim_->Stats().subscriptions_total, subs_after_first);

  // Eight callers, one new instance id, at once.
  constexpr int kCallers = 8;
  std::vector<v1::CreateSubscriptionResponse> answers(kCallers);
  std::vector<grpc::Status> statuses(kCallers);
  std::atomic<bool> go{false};
  std::vector<std::thread> threads;
  const auto concurrent = Subscribe("dup-customer", "basic-monthly", "raced");
  for (int i = 0; i < kCallers; ++i) {
    threads.emplace_back([&, i] {
      while (!go.load()) std::this_thread::yield();
      statuses[i] = Create(concurrent, &answers[i]);
    });
  }
  go = true;
  for (auto& t : threads) t.join();
  int created = 0;
  std::set<std::string> ids;
  for (int i = 0; i < kCallers; ++i) {
    ASSERT_TRUE(statuses[i].ok()) << statuses[i].error_message();
    created += answers[i].created() ? 1 : 0;
    ids.insert(answers[i].subscription().subscription_id());
  }
  EXPECT_EQ(created, 1);
  EXPECT_EQ(ids.size(), 1u);
  EXPECT_EQ(sim_->Stats().subscriptions_total, subs_after_first + 1);
}

// Kill Bill commits a write and the answer is lost (the sim resets 30 % of
// connections after the handler ran): the gateway's retries, and the caller's
// own, meet 1015 (bundle key taken) and 9000 (field present) and must still
// end with exactly one subscription and one instance_id field per instance.
TEST_F(SubscriptionE2E, LostAnswersAndRetriesStillMakeOneSubscription) {
  Start(
      "retry:\n  max_attempts: 5\n  initial_backoff: 10ms\n"
      "  max_backoff: 50ms\n  budget_ratio: 1\n"
      "breaker:\n  failure_rate_threshold: 1\n  min_calls: 1000\n"
      // Resets hit the health polls too: poll rarely, so the breaker stays
      // out of this test.
      "health:\n  poll_interval: 1m\n");
  NewAccount("lossy-customer");
  const size_t subs_before = sim_->Stats().subscriptions_total;
  ASSERT_TRUE(sim_->InjectFaults(sim::FaultRequest::ResetRate(0.3)).ok());
  constexpr int kInstances = 20;
  std::vector<std::string> ids(kInstances);
  int caller_retries = 0;
  for (int i = 0; i < kInstances; ++i) {
    const auto req = Subscribe("lossy-customer", "basic-monthly",
                               "lossy-" + std::to_string(i));
    // The caller retries what the gateway could not finish, as the contract
    // says (the same request: idempotent).
    grpc::Status last;
    WaitUntil(
        [&] {
          v1::CreateSubscriptionResponse resp;
          last = Create(req, &resp);
          if (last.ok()) {
            ids[i] = resp.subscription().subscription_id();
            return true;
          }
          ++caller_retries;
          return false;
        },
        20s, 10ms);
    ASSERT_FALSE(ids[i].empty())
        << "instance " << i << " never succeeded: " << last.error_code() << " "
        << last.error_message();
  }
  sim_->ClearFaults();
  EXPECT_EQ(sim_->Stats().subscriptions_total, subs_before + kInstances);
  httplib::Client http("127.0.0.1", sim_->port());
  http.set_basic_auth("admin", "password");
  httplib::Headers tenant = {{"X-Killbill-ApiKey", "fresh-tenant"},
                             {"X-Killbill-ApiSecret", "fresh-secret"}};
  for (int i = 0; i < kInstances; ++i) {
    v1::GetSubscriptionRequest get;
    get.set_instance_id("lossy-" + std::to_string(i));
    v1::Subscription sub;
    grpc::ClientContext ctx;
    Deadline(&ctx);
    ASSERT_TRUE(stub_->GetSubscription(&ctx, get, &sub).ok());
    EXPECT_EQ(sub.subscription_id(), ids[i]);
    auto fields =
        http.Get("/1.0/kb/subscriptions/" + ids[i] + "/customFields", tenant);
    ASSERT_TRUE(fields);
    auto json = nlohmann::json::parse(fields->body);
    EXPECT_EQ(json.size(), 1u) << fields->body;
  }
  std::printf(
      "[ retries  ] %d instances, %d caller retries, %.0f gateway "
      "retries\n",
      kInstances, caller_retries,
      Scrape().Sum("billing_gateway_retries_total"));
}

TEST_F(SubscriptionE2E, EveryDocumentedError) {
  Start();
  NewAccount("err-a");
  NewAccount("err-b");
  v1::CreateSubscriptionResponse resp;

  grpc::Status s =
      Create(Subscribe("err-a", "platinum-monthly", "err-i1"), &resp);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_TRUE(absl::StartsWith(s.error_message(), "plan_name:"))
      << s.error_message();

  auto trial_on_paid = Subscribe("err-a", "premium-monthly", "err-i2");
  trial_on_paid.set_phase(v1::PHASE_TYPE_TRIAL);
  s = Create(trial_on_paid, &resp);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_TRUE(absl::StartsWith(s.error_message(), "phase:"))
      << s.error_message();

  s = Create(Subscribe("nobody", "basic-monthly", "err-i3"), &resp);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::NOT_FOUND) << s.error_message();

  // An instance id already used by another account's subscription.
  ASSERT_TRUE(
      Create(Subscribe("err-a", "basic-monthly", "err-i4"), &resp).ok());
  std::string code;
  s = Create(Subscribe("err-b", "basic-monthly", "err-i4"), &resp, &code);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_TRUE(absl::StartsWith(s.error_message(), "instance_id:"))
      << s.error_message();
  EXPECT_EQ(code, "1014");

  // enforce_single_trial: err-a had a trial (err-i4); a repeat of the very
  // request that started it is still answered.
  auto second_trial = Subscribe("err-a", "basic-annual", "err-i5");
  second_trial.set_enforce_single_trial(true);
  s = Create(second_trial, &resp);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_TRUE(absl::StartsWith(s.error_message(), "enforce_single_trial:"))
      << s.error_message();
  auto repeat = Subscribe("err-a", "basic-monthly", "err-i4");
  repeat.set_enforce_single_trial(true);
  s = Create(repeat, &resp);
  EXPECT_TRUE(s.ok()) << s.error_message();
  EXPECT_FALSE(resp.created());
  // A paid plan is not a trial: allowed.
  auto paid = Subscribe("err-a", "standard-monthly", "err-i6");
  paid.set_enforce_single_trial(true);
  EXPECT_TRUE(Create(paid, &resp).ok());

  // Unknown subscription, by id and by instance.
  v1::GetSubscriptionRequest get;
  get.set_subscription_id("00000000-0000-0000-0000-00000000beef");
  v1::Subscription sub;
  {
    grpc::ClientContext ctx;
    Deadline(&ctx);
    s = stub_->GetSubscription(&ctx, get, &sub);
    EXPECT_EQ(s.error_code(), grpc::StatusCode::NOT_FOUND) << s.error_message();
    EXPECT_EQ(Trailer(ctx, "billing-gateway-killbill-code"), "1082");
  }
  get.set_instance_id("no-such-instance");
  {
    grpc::ClientContext ctx;
    Deadline(&ctx);
    s = stub_->GetSubscription(&ctx, get, &sub);
    EXPECT_EQ(s.error_code(), grpc::StatusCode::NOT_FOUND) << s.error_message();
  }
  // Malformed requests never reach Kill Bill.
  const uint64_t calls = KillBillCalls();
  v1::CreateSubscriptionRequest bad = Subscribe("err-a", "basic-monthly", "");
  s = Create(bad, &resp);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_TRUE(absl::StartsWith(s.error_message(), "instance_id:"));
  bad = Subscribe("err-a", "basic-monthly", "i");
  bad.clear_account();
  s = Create(bad, &resp);
  EXPECT_TRUE(absl::StartsWith(s.error_message(), "account:"));
  bad = Subscribe("err-a", "basic-monthly", "i");
  (*bad.mutable_metadata())["instance_id"] = "x";
  s = Create(bad, &resp);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(KillBillCalls(), calls);
}

TEST_F(SubscriptionE2E, ListCancelAndOverview) {
  Start("cache:\n  fresh: 0s\n");
  const std::string account_id = NewAccount("ov-customer");
  v1::CreateSubscriptionResponse trial, paid;
  ASSERT_TRUE(
      Create(Subscribe("ov-customer", "basic-monthly", "ov-1"), &trial).ok());
  ASSERT_TRUE(
      Create(Subscribe("ov-customer", "standard-monthly", "ov-2"), &paid).ok());

  // Cancel now; a second cancel is success, marked as such.
  v1::CancelSubscriptionRequest cancel;
  cancel.set_instance_id("ov-1");
  cancel.set_policy(v1::CANCEL_POLICY_IMMEDIATE);
  cancel.set_reason("customer left");
  for (bool already : {false, true}) {
    v1::CancelSubscriptionResponse resp;
    grpc::ClientContext ctx;
    Deadline(&ctx);
    grpc::Status s = stub_->CancelSubscription(&ctx, cancel, &resp);
    ASSERT_TRUE(s.ok()) << s.error_message();
    EXPECT_EQ(resp.already_cancelled(), already);
    EXPECT_EQ(resp.subscription().state(), v1::SUBSCRIPTION_STATE_CANCELLED);
    EXPECT_FALSE(resp.subscription().cancelled_date().empty());
  }

  v1::ListSubscriptionsRequest list;
  list.mutable_account()->set_account_id(account_id);
  for (bool all : {false, true}) {
    list.set_include_cancelled(all);
    v1::ListSubscriptionsResponse resp;
    grpc::ClientContext ctx;
    Deadline(&ctx);
    ASSERT_TRUE(stub_->ListSubscriptions(&ctx, list, &resp).ok());
    EXPECT_EQ(resp.subscriptions_size(), all ? 2 : 1);
  }

  // The overview: 4 Kill Bill reads (at most 5), the paid plan's invoice
  // unpaid, the trial's $0 invoice not.
  const uint64_t gets = KillBillCalls("GET");
  v1::GetBillingOverviewRequest ov;
  ov.mutable_account()->set_external_key("ov-customer");
  v1::BillingOverview overview;
  grpc::ClientContext ctx;
  Deadline(&ctx);
  grpc::Status s = stub_->GetBillingOverview(&ctx, ov, &overview);
  ASSERT_TRUE(s.ok()) << s.error_message();
  EXPECT_LE(KillBillCalls("GET") - gets, 5u);
  EXPECT_EQ(overview.account().account_id(), account_id);
  EXPECT_EQ(overview.subscriptions_size(), 2);
  EXPECT_EQ(overview.payment_methods_size(), 0);
  ASSERT_EQ(overview.unpaid_invoices_size(), 1);
  EXPECT_EQ(overview.unpaid_invoices(0).balance(), "19.00");
  EXPECT_EQ(overview.balance(), "19.00");
  EXPECT_EQ(Trailer(ctx, "billing-gateway-cache-age-ms"), "");
}

TEST_F(SubscriptionE2E, FreshReadsComeFromTheCacheWithoutKillBill) {
  Start("cache:\n  fresh: 1h\n");
  NewAccount("fresh-customer");
  v1::CreateSubscriptionResponse resp;
  ASSERT_TRUE(
      Create(Subscribe("fresh-customer", "basic-monthly", "fresh-1"), &resp)
          .ok());
  v1::GetBillingOverviewRequest ov;
  ov.mutable_account()->set_external_key("fresh-customer");
  v1::BillingOverview overview;
  {
    grpc::ClientContext ctx;
    Deadline(&ctx);
    ASSERT_TRUE(stub_->GetBillingOverview(&ctx, ov, &overview).ok());
    EXPECT_EQ(Trailer(ctx, "billing-gateway-cache-age-ms"), "");
  }
  const uint64_t calls = KillBillCalls();
  grpc::ClientContext ctx;
  Deadline(&ctx);
  ASSERT_TRUE(stub_->GetBillingOverview(&ctx, ov, &overview).ok());
  EXPECT_NE(Trailer(ctx, "billing-gateway-cache-age-ms"), "");
  EXPECT_EQ(overview.subscriptions_size(), 1);
  EXPECT_EQ(KillBillCalls(), calls);
  EXPECT_GE(
      Scrape().Sum("billing_gateway_cache_answers_total",
                   {{"method", "GetBillingOverview"}, {"freshness", "fresh"}}),
      1);
}

TEST_F(SubscriptionE2E, BreakerOpenAnswersWarmReadsFromTheCache) {
  Start(
      "cache:\n  fresh: 0s\n"
      "health:\n  poll_interval: 100ms\n  timeout: 300ms\n"
      "breaker:\n  window: 2s\n  min_calls: 3\n  open_duration: 30s\n"
      "  max_open_duration: 60s\n");
  // Warm: three customers, each read once of every kind.
  std::vector<std::string> keys = {"warm-1", "warm-2", "warm-3"};
  std::vector<std::string> subscription_ids;
  for (const std::string& key : keys) {
    NewAccount(key);
    v1::CreateSubscriptionResponse resp;
    ASSERT_TRUE(
        Create(Subscribe(key, "basic-monthly", key + "-i"), &resp).ok());
    subscription_ids.push_back(resp.subscription().subscription_id());
    v1::BillingOverview overview;
    v1::GetBillingOverviewRequest ov;
    ov.mutable_account()->set_external_key(key);
    grpc::ClientContext ctx;
    Deadline(&ctx);
    ASSERT_TRUE(stub_->GetBillingOverview(&ctx, ov, &overview).ok());
  }

  ASSERT_TRUE(sim_->InjectFaults(sim::FaultRequest::RefuseOutage(60)).ok());
  ASSERT_TRUE(WaitUntil(
      [&] {
        return Scrape().Sum("billing_gateway_breaker_state",
                            {{"state", "open"}}) == 1;
      },
      10s))
      << "breaker never opened";

  // Every warm read is answered, from the cache, with its age.
  int answered = 0, total = 0;
  std::vector<double> ms;
  for (int round = 0; round < 20; ++round) {
    for (size_t i = 0; i < keys.size(); ++i) {
      v1::GetBillingOverviewRequest ov;
      ov.mutable_account()->set_external_key(keys[i]);
      v1::BillingOverview overview;
      v1::GetSubscriptionRequest get;
      get.set_subscription_id(subscription_ids[i]);
      v1::Subscription sub;
      v1::GetAccountRequest acc;
      acc.set_external_key(keys[i]);
      v1::Account account;
      for (int kind = 0; kind < 3; ++kind) {
        grpc::ClientContext ctx;
        Deadline(&ctx);
        const auto start = std::chrono::steady_clock::now();
        grpc::Status s = kind == 0
                             ? stub_->GetBillingOverview(&ctx, ov, &overview)
                         : kind == 1 ? stub_->GetSubscription(&ctx, get, &sub)
                                     : stub_->GetAccount(&ctx, acc, &account);
        ms.push_back(std::chrono::duration<double, std::milli>(
                         std::chrono::steady_clock::now() - start)
                         .count());
        ++total;
        if (s.ok() && !Trailer(ctx, "billing-gateway-cache-age-ms").empty()) {
          ++answered;
        } else {
          ADD_FAILURE() << "read " << kind << " of " << keys[i] << " round "
                        << round << ": " << s.error_code() << " "
                        << s.error_message() << " reason "
                        << Trailer(ctx, "billing-gateway-reject-reason");
        }
      }
    }
  }
  EXPECT_EQ(answered, total);
  std::sort(ms.begin(), ms.end());
  std::printf(
      "[ cache    ] %d/%d warm reads answered from the cache while "
      "the breaker was open; latency p50 %.2f ms, max %.2f ms\n",
      answered, total, ms[ms.size() / 2], ms.back());

  // A read the cache never saw is refused, explicitly, with a pushback.
  v1::GetBillingOverviewRequest ov;
  ov.mutable_account()->set_external_key("cold-unknown");
  v1::BillingOverview overview;
  grpc::ClientContext ctx;
  Deadline(&ctx);
  grpc::Status s = stub_->GetBillingOverview(&ctx, ov, &overview);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::UNAVAILABLE) << s.error_message();
  EXPECT_EQ(Trailer(ctx, "billing-gateway-reject-reason"), "breaker_open");
  EXPECT_NE(Trailer(ctx, "grpc-retry-pushback-ms"), "");
  EXPECT_GE(Scrape().Sum("billing_gateway_cache_answers_total",
                         {{"freshness", "stale"}}),
            total);
  sim_->ClearFaults();
}

}  // namespace
}  // namespace bg
