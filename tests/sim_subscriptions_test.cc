// HTTP tests of killbill-sim's subscription side: the in-process server on
// port 0 and an httplib client, as billing-gateway's client sees it. Every
// route (catalog, subscriptions, bundles, custom fields, invoices, payment
// methods, account balance), each error code of the contract in
// docs/killbill.md, the main-bus events each write posts (read from
// /sim/stats, as a benchmark reads them), the auth checks and the fault
// envelope. Capacity is set high and latency to zero; nothing sleeps.
#include <map>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/time/civil_time.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "bench/killbill_sim/killbill_sim.h"
#include "bench/killbill_sim/sim_catalog.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "httplib.h"
#include "nlohmann/json.hpp"

namespace bg::sim {
namespace {

// Ordered, so that field order can be checked.
using json = nlohmann::ordered_json;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::StartsWith;

constexpr char kSubscriptions[] = "/1.0/kb/subscriptions";

std::string Day(absl::CivilDay day) { return absl::FormatCivilTime(day); }
absl::CivilDay Today() {
  return absl::ToCivilDay(absl::Now(), absl::UTCTimeZone());
}
// The id at the end of a Location.
std::string LastSegment(const std::string& location) {
  return location.substr(location.rfind('/') + 1);
}

class SimSubscriptionsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    SimOptions options;
    options.port = 0;
    options.model.capacity = 1e6;
    options.model.base_latency = Clock::Duration::zero();
    sim_ = std::make_unique<KillBillSim>(options);
    ASSERT_TRUE(sim_->Start().ok());
    client_ = std::make_unique<httplib::Client>("127.0.0.1", sim_->port());
    client_->set_connection_timeout(2, 0);
    client_->set_read_timeout(10, 0);
    client_->set_basic_auth("admin", "password");
  }

  static httplib::Headers Auth(bool created_by = true) {
    httplib::Headers h = {{"X-Killbill-ApiKey", "fresh-tenant"},
                          {"X-Killbill-ApiSecret", "fresh-secret"}};
    if (created_by) h.emplace("X-Killbill-CreatedBy", "test");
    return h;
  }
  httplib::Result Post(const std::string& path, const json& body) {
    return client_->Post(path, Auth(), body.dump(), "application/json");
  }
  httplib::Result Get(const std::string& path) {
    return client_->Get(path, Auth(false));
  }
  httplib::Result Delete(const std::string& path) {
    return client_->Delete(path, Auth());
  }
  json GetJson(const std::string& path) {
    auto res = Get(path);
    EXPECT_TRUE(res);
    EXPECT_EQ(res->status, 200) << path << ": " << res->body;
    return json::parse(res->body);
  }
  std::string Prefix() const {
    return "http://127.0.0.1:" + std::to_string(sim_->port());
  }

  // A new account; returns its id.
  std::string NewAccount(const std::string& key) {
    auto res =
        Post("/1.0/kb/accounts", {{"externalKey", key}, {"currency", "USD"}});
    EXPECT_EQ(res->status, 201);
    return LastSegment(res->get_header_value("Location"));
  }
  httplib::Result Subscribe(const std::string& account_id,
                            const std::string& plan,
                            const std::string& bundle_key = "") {
    json body = {{"accountId", account_id}, {"planName", plan}};
    if (!bundle_key.empty()) body["bundleExternalKey"] = bundle_key;
    return Post(kSubscriptions, body);
  }
  // Subscribes and returns the new subscription's id.
  std::string NewSubscription(const std::string& account_id,
                              const std::string& plan,
                              const std::string& bundle_key = "") {
    auto res = Subscribe(account_id, plan, bundle_key);
    EXPECT_EQ(res->status, 201) << res->body;
    return LastSegment(res->get_header_value("Location"));
  }
  json GetSubscription(const std::string& id) {
    return GetJson(std::string(kSubscriptions) + "/" + id);
  }

  uint64_t BusPosted() { return sim_->Stats().bus_posted_total; }
  // Calls counted under a route label, by outcome.
  std::map<std::string, uint64_t> Counted(const std::string& label) {
    return sim_->Stats().requests[label];
  }

  // A Kill Bill error body: status, code, className suffix, message.
  static void ExpectError(const httplib::Result& res, int status,
                          const json& code, const std::string& class_suffix,
                          const std::string& message) {
    ASSERT_TRUE(res);
    EXPECT_EQ(res->status, status) << res->body;
    const json body = json::parse(res->body);
    EXPECT_EQ(body["code"], code) << res->body;
    EXPECT_TRUE(
        absl::EndsWith(body["className"].get<std::string>(), class_suffix))
        << res->body;
    EXPECT_EQ(body["message"], message);
    EXPECT_TRUE(body["causeClassName"].is_null());
    EXPECT_TRUE(body["stackTrace"].is_array());
  }

  static const CatalogPlan& Plan(const std::string& name) {
    const CatalogPlan* plan = SaasOdooCatalog().FindPlan(name);
    EXPECT_NE(plan, nullptr) << name;
    return *plan;
  }

  std::unique_ptr<KillBillSim> sim_;
  std::unique_ptr<httplib::Client> client_;
};

// ---------------------------------------------------------------------------
// Catalog.

TEST_F(SimSubscriptionsTest, CatalogIsSaasOdoosTwelvePlans) {
  // The contract's prices, per product and billing period.
  const std::map<std::string, std::vector<double>> kPrices = {
      {"basic", {9, 25, 49, 89}},
      {"standard", {19, 49, 99, 179}},
      {"premium", {39, 99, 199, 379}}};
  const std::vector<std::string> kPeriods = {"MONTHLY", "QUARTERLY", "BIANNUAL",
                                             "ANNUAL"};
  const uint64_t posted = BusPosted();
  for (const char* path :
       {"/1.0/kb/catalog/simpleCatalog", "/1.0/kb/catalog"}) {
    const json catalogs = GetJson(path);
    ASSERT_TRUE(catalogs.is_array());
    ASSERT_EQ(catalogs.size(), 1u);
    const json& c = catalogs[0];
    EXPECT_EQ(c["name"], "SaasOdoo");
    EXPECT_EQ(c["currencies"], json::array({"USD"}));
    EXPECT_TRUE(c["effectiveDate"].is_string());
    EXPECT_TRUE(c["units"].is_array());
    ASSERT_EQ(c["products"].size(), kPrices.size());
    size_t plans = 0;
    for (const json& product : c["products"]) {
      EXPECT_EQ(product["type"], "BASE");
      EXPECT_TRUE(product["included"].is_array());
      EXPECT_TRUE(product["available"].is_array());
      const std::string name = product["name"];
      ASSERT_EQ(product["plans"].size(), kPeriods.size());
      for (size_t i = 0; i < kPeriods.size(); ++i) {
        const json& plan = product["plans"][i];
        ++plans;
        EXPECT_EQ(plan["billingPeriod"], kPeriods[i]);
        EXPECT_THAT(plan["name"].get<std::string>(), StartsWith(name + "-"));
        const json& phases = plan["phases"];
        const json& evergreen = phases.back();
        EXPECT_EQ(evergreen["type"], "EVERGREEN");
        EXPECT_EQ(evergreen["prices"],
                  json::array(
                      {{{"currency", "USD"}, {"value", kPrices.at(name)[i]}}}));
        EXPECT_EQ(evergreen["fixedPrices"], json::array());
        EXPECT_EQ(evergreen["duration"]["unit"], "UNLIMITED");
        if (name == "basic") {
          ASSERT_EQ(phases.size(), 2u);
          EXPECT_EQ(phases[0]["type"], "TRIAL");
          EXPECT_EQ(phases[0]["prices"], json::array());
          EXPECT_EQ(phases[0]["fixedPrices"],
                    json::array({{{"currency", "USD"}, {"value", 0}}}));
          EXPECT_EQ(phases[0]["duration"],
                    json({{"unit", "DAYS"}, {"number", 14}}));
        } else {
          EXPECT_EQ(phases.size(), 1u);
        }
      }
    }
    EXPECT_EQ(plans, 12u);
    EXPECT_EQ(c["priceLists"][0]["name"], "DEFAULT");
    EXPECT_EQ(c["priceLists"][0]["plans"].size(), 12u);
  }
  EXPECT_EQ(BusPosted(), posted);  // reads post nothing
  EXPECT_EQ(Counted("GET /1.0/kb/catalog/simpleCatalog")["200"], 1u);
  EXPECT_EQ(Counted("GET /1.0/kb/catalog")["200"], 1u);
}

// ---------------------------------------------------------------------------
// Subscriptions.

TEST_F(SimSubscriptionsTest, TrialSubscriptionHasPhaseEventFourteenDaysOn) {
  const std::string account = NewAccount("trial");
  const uint64_t posted = BusPosted();
  auto res = Post(kSubscriptions, {{"accountId", account},
                                   {"planName", "basic-monthly"},
                                   {"phaseType", "TRIAL"},
                                   {"bundleExternalKey", "instance-1"},
                                   {"externalKey", "sub-key"}});
  ASSERT_EQ(res->status, 201) << res->body;
  EXPECT_EQ(res->body, "");
  const std::string location = res->get_header_value("Location");
  EXPECT_THAT(location, StartsWith(Prefix() + "/1.0/kb/subscriptions/"));
  EXPECT_EQ(BusPosted() - posted,
            static_cast<uint64_t>(KillBillSim::kBusEventsPerSubscription));

  const std::string id = LastSegment(location);
  const uint64_t before_read = BusPosted();
  const auto s = json::parse(Get(std::string(kSubscriptions) + "/" + id)->body);
  EXPECT_EQ(BusPosted(), before_read);
  std::vector<std::string> keys;
  for (const auto& item : s.items()) keys.push_back(item.key());
  EXPECT_EQ(keys, (std::vector<std::string>{"accountId",
                                            "bundleId",
                                            "subscriptionId",
                                            "externalKey",
                                            "bundleExternalKey",
                                            "startDate",
                                            "productName",
                                            "productCategory",
                                            "billingPeriod",
                                            "phaseType",
                                            "priceList",
                                            "planName",
                                            "state",
                                            "sourceType",
                                            "cancelledDate",
                                            "chargedThroughDate",
                                            "billingStartDate",
                                            "billingEndDate",
                                            "billCycleDayLocal",
                                            "quantity",
                                            "events",
                                            "prices",
                                            "priceOverrides",
                                            "auditLogs"}));
  const absl::CivilDay today = Today();
  const CatalogPlan& plan = Plan("basic-monthly");
  const absl::CivilDay trial_end = today + plan.trial_days;
  EXPECT_EQ(s["accountId"], account);
  EXPECT_EQ(s["subscriptionId"], id);
  EXPECT_EQ(s["externalKey"], "sub-key");
  EXPECT_EQ(s["bundleExternalKey"], "instance-1");
  EXPECT_EQ(s["bundleId"].get<std::string>().size(), 36u);
  EXPECT_EQ(s["startDate"], Day(today));
  EXPECT_EQ(s["productName"], "basic");
  EXPECT_EQ(s["productCategory"], "BASE");
  EXPECT_EQ(s["billingPeriod"], "MONTHLY");
  EXPECT_EQ(s["phaseType"], "TRIAL");
  EXPECT_EQ(s["priceList"], "DEFAULT");
  EXPECT_EQ(s["planName"], "basic-monthly");
  EXPECT_EQ(s["state"], "ACTIVE");
  EXPECT_EQ(s["sourceType"], "NATIVE");
  EXPECT_TRUE(s["cancelledDate"].is_null());
  EXPECT_EQ(s["chargedThroughDate"], Day(today));  // the $0 covers no period
  EXPECT_EQ(s["billingStartDate"], Day(today));
  EXPECT_TRUE(s["billingEndDate"].is_null());
  EXPECT_EQ(s["billCycleDayLocal"], trial_end.day());
  EXPECT_EQ(s["quantity"], 1);
  EXPECT_EQ(s["priceOverrides"], json::array());
  ASSERT_EQ(s["prices"].size(), 2u);
  EXPECT_EQ(s["prices"][0]["phaseType"], "TRIAL");
  EXPECT_EQ(s["prices"][0]["fixedPrice"], 0);
  EXPECT_EQ(s["prices"][1]["recurringPrice"], plan.recurring_price);

  const auto& events = s["events"];
  ASSERT_EQ(events.size(), 3u);
  std::vector<std::string> types;
  for (const auto& e : events) types.push_back(e["eventType"]);
  EXPECT_THAT(types,
              ElementsAre("START_ENTITLEMENT", "START_BILLING", "PHASE"));
  for (int i = 0; i < 2; ++i) {
    EXPECT_EQ(events[i]["effectiveDate"], Day(today));
    EXPECT_EQ(events[i]["phase"], "basic-monthly-trial");
  }
  EXPECT_EQ(events[2]["effectiveDate"], Day(trial_end));
  EXPECT_EQ(events[2]["phase"], "basic-monthly-evergreen");
  std::vector<std::string> event_keys;
  for (const auto& item : events[0].items()) event_keys.push_back(item.key());
  EXPECT_EQ(event_keys,
            (std::vector<std::string>{
                "eventId", "billingPeriod", "effectiveDate",
                "catalogEffectiveDate", "plan", "product", "priceList",
                "eventType", "isBlockedBilling", "isBlockedEntitlement",
                "serviceName", "serviceStateName", "phase", "auditLogs"}));
  EXPECT_EQ(events[0]["plan"], "basic-monthly");
  EXPECT_EQ(events[0]["product"], "basic");
  EXPECT_EQ(events[0]["isBlockedBilling"], false);
  EXPECT_EQ(Counted("POST /1.0/kb/subscriptions")["201"], 1u);
  EXPECT_EQ(Counted("GET /1.0/kb/subscriptions/{id}")["200"], 1u);
  EXPECT_EQ(sim_->Stats().subscriptions_total, 1u);
}

TEST_F(SimSubscriptionsTest,
       TrialPlanAskedEvergreenAndNoTrialPlansHaveNoPhase) {
  const std::string account = NewAccount("no-trial");
  const absl::CivilDay today = Today();
  for (const std::string plan_name : {"standard-monthly", "premium-annual"}) {
    const json s = GetSubscription(NewSubscription(account, plan_name));
    const CatalogPlan& plan = Plan(plan_name);
    EXPECT_EQ(s["phaseType"], "EVERGREEN");
    ASSERT_EQ(s["events"].size(), 2u);
    for (const auto& e : s["events"]) {
      EXPECT_NE(e["eventType"], "PHASE");
      EXPECT_EQ(e["phase"], plan_name + "-evergreen");
    }
    EXPECT_EQ(s["chargedThroughDate"],
              Day(AddMonths(today, plan.period_months)));
    EXPECT_EQ(s["billCycleDayLocal"], today.day());
  }
  auto res = Post(kSubscriptions, {{"accountId", account},
                                   {"planName", "basic-annual"},
                                   {"phaseType", "EVERGREEN"}});
  ASSERT_EQ(res->status, 201);
  const json s =
      GetSubscription(LastSegment(res->get_header_value("Location")));
  EXPECT_EQ(s["phaseType"], "EVERGREEN");
  EXPECT_EQ(s["events"].size(), 2u);
  // Without a bundle key the bundle's key is generated.
  EXPECT_EQ(s["bundleExternalKey"].get<std::string>().size(), 36u);
}

TEST_F(SimSubscriptionsTest, CreationErrors) {
  const std::string account = NewAccount("errors");
  const uint64_t posted = BusPosted();
  const std::string nobody = "11111111-2222-4333-8444-555555555555";
  ExpectError(Subscribe(nobody, "basic-monthly"), 404, 3002,
              ".AccountApiException",
              "Account does not exist for id " + nobody);
  ExpectError(Subscribe(account, "gold-monthly"), 400, 2021,
              ".CatalogApiException",
              "Could not find any plans named 'gold-monthly'");
  ExpectError(Post(kSubscriptions, {{"accountId", account},
                                    {"planName", "standard-monthly"},
                                    {"phaseType", "TRIAL"}}),
              400, 1011, ".SubscriptionBaseApiException",
              "Can't create plan initial phase TRIAL");
  ExpectError(Post(kSubscriptions, {{"planName", "basic-monthly"}}), 400,
              nullptr, "IllegalArgumentException",
              "SubscriptionJson accountId needs to be set");
  ExpectError(Post(kSubscriptions, {{"accountId", account}}), 400, nullptr,
              "IllegalArgumentException",
              "SubscriptionJson planName needs to be set");
  auto garbage =
      client_->Post(kSubscriptions, Auth(), "{nope", "application/json");
  EXPECT_EQ(garbage->status, 400);
  auto no_created_by = client_->Post(
      kSubscriptions, Auth(false),
      json{{"accountId", account}, {"planName", "basic-monthly"}}.dump(),
      "application/json");
  ExpectError(no_created_by, 400, nullptr, "IllegalArgumentException",
              "Header X-Killbill-CreatedBy needs to be set");
  EXPECT_EQ(BusPosted(), posted);  // no failed write posts anything
  EXPECT_EQ(sim_->Stats().subscriptions_total, 0u);
}

TEST_F(SimSubscriptionsTest, BundleKeyIdempotencyCodes) {
  const std::string account = NewAccount("idem-1");
  const std::string other = NewAccount("idem-2");
  const std::string first = NewSubscription(account, "basic-monthly", "inst-9");
  const uint64_t posted = BusPosted();
  ExpectError(Subscribe(account, "basic-monthly", "inst-9"), 400, 1015,
              ".SubscriptionBaseApiException",
              "Subscription bundle inst-9 already has a base subscription");
  ExpectError(Subscribe(account, "premium-monthly", "inst-9"), 400, 1015,
              ".SubscriptionBaseApiException",
              "Subscription bundle inst-9 already has a base subscription");
  ExpectError(Subscribe(other, "basic-monthly", "inst-9"), 400, 1014,
              ".SubscriptionBaseApiException",
              "Active bundle with external key inst-9 already exists");
  EXPECT_EQ(BusPosted(), posted);
  // A pending END_OF_TERM cancellation still holds the key.
  ASSERT_EQ(Delete(std::string(kSubscriptions) + "/" + first)->status, 204);
  EXPECT_EQ(Subscribe(account, "basic-monthly", "inst-9")->status, 400);
  // Once cancelled, the key can be used again: a second bundle has it.
  const std::string second = NewSubscription(other, "standard-monthly");
  ASSERT_EQ(Delete(std::string(kSubscriptions) + "/" + second +
                   "?entitlementPolicy=IMMEDIATE")
                ->status,
            204);
  const std::string key = GetSubscription(second)["bundleExternalKey"];
  EXPECT_EQ(Subscribe(other, "standard-monthly", key)->status, 201);
  EXPECT_EQ(GetJson("/1.0/kb/bundles?externalKey=" + key).size(), 2u);
}

TEST_F(SimSubscriptionsTest, UnknownSubscriptionIs404Code1082) {
  const std::string id = "11111111-2222-4333-8444-555555555555";
  const std::string message = "Unknown subscription matching id " + id;
  ExpectError(Get(std::string(kSubscriptions) + "/" + id), 404, 1082,
              ".SubscriptionApiException", message);
  ExpectError(Delete(std::string(kSubscriptions) + "/" + id), 404, 1082,
              ".EntitlementApiException", message);
}

// ---------------------------------------------------------------------------
// Cancellation.

TEST_F(SimSubscriptionsTest, EndOfTermCancelOfATrialEndsAtTheTrialEnd) {
  const std::string account = NewAccount("cancel-trial");
  const std::string id = NewSubscription(account, "basic-quarterly");
  const uint64_t posted = BusPosted();
  const std::string path = std::string(kSubscriptions) + "/" + id;
  auto res = Delete(path +
                    "?entitlementPolicy=END_OF_TERM&billingPolicy=END_OF_TERM"
                    "&useRequestedDateForBilling=true&callCompletion=true"
                    "&callTimeoutSec=10");
  ASSERT_EQ(res->status, 204) << res->body;
  EXPECT_EQ(res->body, "");
  EXPECT_EQ(BusPosted() - posted,
            static_cast<uint64_t>(KillBillSim::kBusEventsPerEndOfTermCancel));
  const json s = GetSubscription(id);
  const std::string trial_end =
      Day(Today() + Plan("basic-quarterly").trial_days);
  EXPECT_EQ(s["state"], "ACTIVE");
  EXPECT_EQ(s["cancelledDate"], trial_end);
  EXPECT_EQ(s["billingEndDate"], trial_end);
  std::vector<std::string> types;
  for (const auto& e : s["events"]) types.push_back(e["eventType"]);
  EXPECT_THAT(types, ElementsAre("START_ENTITLEMENT", "START_BILLING",
                                 "STOP_ENTITLEMENT", "STOP_BILLING"));
  EXPECT_EQ(s["events"][2]["effectiveDate"], trial_end);
  EXPECT_EQ(s["events"][2]["isBlockedEntitlement"], true);
  EXPECT_EQ(s["events"][3]["isBlockedBilling"], true);

  const uint64_t before_again = BusPosted();
  ExpectError(Delete(path), 500, 1031, ".EntitlementApiException",
              "Subscription " + id + " is in state ACTIVE: Failed to cancel");
  EXPECT_EQ(BusPosted(), before_again);
  EXPECT_EQ(Counted("DELETE /1.0/kb/subscriptions/{id}")["204"], 1u);
  EXPECT_EQ(Counted("DELETE /1.0/kb/subscriptions/{id}")["500"], 1u);
}

TEST_F(SimSubscriptionsTest, EndOfTermCancelWithoutTrialEndsAtChargedThrough) {
  const std::string account = NewAccount("cancel-eot");
  const std::string id = NewSubscription(account, "standard-biannual");
  ASSERT_EQ(Delete(std::string(kSubscriptions) + "/" + id +
                   "?entitlementPolicy=END_OF_TERM")
                ->status,
            204);
  const json s = GetSubscription(id);
  EXPECT_EQ(s["state"], "ACTIVE");
  EXPECT_EQ(s["cancelledDate"], s["chargedThroughDate"]);
  EXPECT_EQ(s["cancelledDate"], Day(AddMonths(Today(), 6)));
}

TEST_F(SimSubscriptionsTest, ImmediateCancelIsCancelledToday) {
  const std::string account = NewAccount("cancel-now");
  const std::string id = NewSubscription(account, "basic-monthly");
  const uint64_t posted = BusPosted();
  const std::string path = std::string(kSubscriptions) + "/" + id;
  ASSERT_EQ(
      Delete(path + "?entitlementPolicy=IMMEDIATE&billingPolicy=IMMEDIATE")
          ->status,
      204);
  EXPECT_EQ(BusPosted() - posted,
            static_cast<uint64_t>(KillBillSim::kBusEventsPerImmediateCancel));
  const json s = GetSubscription(id);
  EXPECT_EQ(s["state"], "CANCELLED");
  EXPECT_EQ(s["cancelledDate"], Day(Today()));
  std::vector<std::string> types;
  for (const auto& e : s["events"]) types.push_back(e["eventType"]);
  // The trial never reaches its PHASE.
  EXPECT_THAT(types, ElementsAre("START_ENTITLEMENT", "START_BILLING",
                                 "STOP_ENTITLEMENT", "STOP_BILLING"));
  ExpectError(
      Delete(path + "?entitlementPolicy=IMMEDIATE"), 500, 1031,
      ".EntitlementApiException",
      "Subscription " + id + " is in state CANCELLED: Failed to cancel");
  EXPECT_EQ(Delete(path + "?entitlementPolicy=SOMETIME")->status, 400);
}

// The contract's figures, stated once.
TEST_F(SimSubscriptionsTest, BusEventsPerWriteAreTheContracts) {
  EXPECT_EQ(KillBillSim::kBusEventsPerSubscription, 4);
  EXPECT_EQ(KillBillSim::kBusEventsPerCustomField, 1);
  EXPECT_EQ(KillBillSim::kBusEventsPerEndOfTermCancel, 2);
  EXPECT_EQ(KillBillSim::kBusEventsPerImmediateCancel, 3);
}

// The bus timers of /1.0/metrics count the subscription writes as well.
TEST_F(SimSubscriptionsTest, MetricsSeeTheSubscriptionWrites) {
  const std::string account = NewAccount("metrics");
  const std::string id = NewSubscription(account, "basic-monthly");
  ASSERT_EQ(Post(std::string(kSubscriptions) + "/" + id + "/customFields",
                 json::array({{{"name", "instance_id"}, {"value", "i-1"}}}))
                ->status,
            201);
  const json metrics = json::parse(client_->Get("/1.0/metrics")->body);
  const int64_t expected = 1 + KillBillSim::kBusEventsPerSubscription +
                           KillBillSim::kBusEventsPerCustomField;
  EXPECT_EQ(metrics["timers"]["org.killbill.queue.DBBackedQueue.bus_events."
                              "rawInsertEntryTime"]["count"],
            expected);
}

// ---------------------------------------------------------------------------
// Custom fields.

TEST_F(SimSubscriptionsTest, CustomFieldsOnASubscription) {
  const std::string account = NewAccount("fields");
  const std::string id = NewSubscription(account, "basic-monthly");
  const std::string path =
      std::string(kSubscriptions) + "/" + id + "/customFields";
  const uint64_t posted = BusPosted();
  auto res = Post(path, json::array({{{"name", "instance_id"}, {"value", "a"}},
                                     {{"name", "region"}, {"value", "eu"}}}));
  ASSERT_EQ(res->status, 201) << res->body;
  EXPECT_EQ(res->get_header_value("Location"), Prefix() + path);
  EXPECT_EQ(BusPosted() - posted,
            static_cast<uint64_t>(2 * KillBillSim::kBusEventsPerCustomField));

  const auto fields = json::parse(Get(path)->body);
  ASSERT_EQ(fields.size(), 2u);
  std::vector<std::string> keys;
  for (const auto& item : fields[0].items()) keys.push_back(item.key());
  EXPECT_EQ(keys,
            (std::vector<std::string>{"customFieldId", "objectId", "objectType",
                                      "name", "value", "auditLogs"}));
  EXPECT_EQ(fields[0]["objectId"], id);
  EXPECT_EQ(fields[0]["objectType"], "SUBSCRIPTION");
  EXPECT_EQ(fields[0]["name"], "instance_id");
  EXPECT_EQ(fields[0]["value"], "a");
  EXPECT_EQ(fields[1]["name"], "region");

  const uint64_t before_dup = BusPosted();
  ExpectError(
      Post(path, json::array({{{"name", "instance_id"}, {"value", "a"}}})), 400,
      9000, ".CustomFieldApiException",
      "The custom field " + fields[0]["customFieldId"].get<std::string>() +
          " already exists");
  EXPECT_EQ(BusPosted(), before_dup);
  EXPECT_EQ(GetJson(path).size(), 2u);  // all or nothing
  // Same name, another value: a new field.
  EXPECT_EQ(Post(path, json::array({{{"name", "instance_id"}, {"value", "b"}}}))
                ->status,
            201);
  EXPECT_EQ(GetJson(path).size(), 3u);

  ExpectError(Post(path, json::array({{{"name", "x"}}})), 400, nullptr,
              "IllegalArgumentException",
              "CustomFieldJson value needs to be set");
  EXPECT_EQ(Post(path, json::array())->status, 400);
  const std::string nobody = "11111111-2222-4333-8444-555555555555";
  const std::string unknown =
      std::string(kSubscriptions) + "/" + nobody + "/customFields";
  const std::string message =
      "Object id=" + nobody + " type=SUBSCRIPTION doesn't exist!";
  ExpectError(Post(unknown, json::array({{{"name", "a"}, {"value", "b"}}})),
              404, nullptr, "$ObjectDoesNotExist", message);
  ExpectError(Get(unknown), 404, nullptr, "$ObjectDoesNotExist", message);
  EXPECT_EQ(Counted("POST /1.0/kb/subscriptions/{id}/customFields")["201"], 2u);
  EXPECT_EQ(Counted("GET /1.0/kb/subscriptions/{id}/customFields")["200"], 3u);
}

// ---------------------------------------------------------------------------
// Bundles.

TEST_F(SimSubscriptionsTest, BundlesByKeyAndByAccount) {
  const std::string account = NewAccount("bundles");
  const std::string id = NewSubscription(account, "premium-quarterly", "k-1");
  const uint64_t posted = BusPosted();
  const auto bundles =
      json::parse(Get("/1.0/kb/bundles?externalKey=k-1")->body);
  ASSERT_TRUE(bundles.is_array());
  ASSERT_EQ(bundles.size(), 1u);
  std::vector<std::string> keys;
  for (const auto& item : bundles[0].items()) keys.push_back(item.key());
  EXPECT_EQ(keys, (std::vector<std::string>{"accountId", "bundleId",
                                            "externalKey", "subscriptions",
                                            "timeline", "auditLogs"}));
  EXPECT_EQ(bundles[0]["accountId"], account);
  EXPECT_EQ(bundles[0]["externalKey"], "k-1");
  EXPECT_TRUE(bundles[0]["timeline"].is_null());
  ASSERT_EQ(bundles[0]["subscriptions"].size(), 1u);
  EXPECT_EQ(bundles[0]["subscriptions"][0]["subscriptionId"], id);
  EXPECT_EQ(bundles[0]["bundleId"], GetSubscription(id)["bundleId"]);

  ExpectError(Get("/1.0/kb/bundles?externalKey=nope"), 404, 1084,
              ".SubscriptionApiException",
              "Could not find a bundle matching key nope");

  NewSubscription(account, "basic-monthly", "k-2");
  const json by_account = GetJson("/1.0/kb/accounts/" + account + "/bundles");
  ASSERT_EQ(by_account.size(), 2u);
  EXPECT_EQ(by_account[0]["externalKey"], "k-1");
  EXPECT_EQ(by_account[1]["externalKey"], "k-2");
  EXPECT_EQ(GetJson("/1.0/kb/accounts/" + account + "/bundles?externalKey=k-2")
                .size(),
            1u);
  EXPECT_EQ(GetJson("/1.0/kb/accounts/" + NewAccount("empty") + "/bundles"),
            json::array());
  const std::string nobody = "11111111-2222-4333-8444-555555555555";
  ExpectError(Get("/1.0/kb/accounts/" + nobody + "/bundles"), 404, nullptr,
              "$ObjectDoesNotExist",
              "Object id=" + nobody + " type=ACCOUNT doesn't exist!");
  // Reads post nothing (the subscription and the empty account did).
  EXPECT_EQ(BusPosted() - posted,
            static_cast<uint64_t>(KillBillSim::kBusEventsPerSubscription + 1));
}

// ---------------------------------------------------------------------------
// Invoices, balance and payment methods.

TEST_F(SimSubscriptionsTest, InvoicesAndBalance) {
  const std::string account = NewAccount("invoices");
  const std::string path = "/1.0/kb/accounts/" + account;
  json a = GetJson(path);
  EXPECT_TRUE(a["accountBalance"].is_null());
  EXPECT_TRUE(a["accountCBA"].is_null());
  EXPECT_EQ(GetJson(path + "?accountWithBalanceAndCBA=true")["accountBalance"],
            0);

  const std::string trial = NewSubscription(account, "basic-monthly", "t-1");
  // The trial's $0 invoice is settled by definition.
  EXPECT_EQ(GetJson(path + "/invoices?unpaidInvoicesOnly=true"), json::array());
  json all = GetJson(path + "/invoices");
  ASSERT_EQ(all.size(), 1u);
  EXPECT_EQ(all[0]["amount"], 0);
  EXPECT_EQ(all[0]["balance"], 0);
  EXPECT_EQ(all[0]["items"][0]["itemType"], "FIXED");
  EXPECT_EQ(all[0]["items"][0]["subscriptionId"], trial);

  const std::string paid =
      NewSubscription(account, "standard-quarterly", "s-1");
  NewSubscription(account, "premium-monthly");
  const double expected_balance = Plan("standard-quarterly").recurring_price +
                                  Plan("premium-monthly").recurring_price;
  const auto unpaid =
      json::parse(Get(path + "/invoices?unpaidInvoicesOnly=true")->body);
  ASSERT_EQ(unpaid.size(), 2u);
  std::vector<std::string> keys;
  for (const auto& item : unpaid[0].items()) keys.push_back(item.key());
  EXPECT_EQ(keys, (std::vector<std::string>{
                      "amount", "currency", "status", "creditAdj", "refundAdj",
                      "invoiceId", "invoiceDate", "targetDate", "invoiceNumber",
                      "balance", "accountId", "bundleKeys", "credits", "items",
                      "trackingIds", "isParentInvoice", "parentInvoiceId",
                      "parentAccountId", "auditLogs"}));
  const json& first = unpaid[0];
  EXPECT_EQ(first["amount"], Plan("standard-quarterly").recurring_price);
  EXPECT_EQ(first["balance"], first["amount"]);
  EXPECT_EQ(first["currency"], "USD");
  EXPECT_EQ(first["status"], "COMMITTED");
  EXPECT_EQ(first["accountId"], account);
  EXPECT_EQ(first["bundleKeys"], "s-1");
  EXPECT_EQ(first["invoiceDate"], Day(Today()));
  EXPECT_TRUE(first["invoiceNumber"].is_string());
  ASSERT_EQ(first["items"].size(), 1u);
  EXPECT_EQ(first["items"][0]["itemType"], "RECURRING");
  EXPECT_EQ(first["items"][0]["subscriptionId"], paid);
  EXPECT_EQ(first["items"][0]["startDate"], Day(Today()));
  EXPECT_EQ(first["items"][0]["endDate"], Day(AddMonths(Today(), 3)));
  EXPECT_EQ(GetJson(path + "/invoices").size(), 3u);

  a = GetJson(path + "?accountWithBalanceAndCBA=true");
  EXPECT_EQ(a["accountBalance"], expected_balance);
  EXPECT_EQ(a["accountCBA"], 0);
  a = GetJson(
      "/1.0/kb/accounts?externalKey=invoices&accountWithBalanceAndCBA=true");
  EXPECT_EQ(a["accountBalance"], expected_balance);
  a = GetJson("/1.0/kb/accounts?externalKey=invoices");
  EXPECT_TRUE(a["accountBalance"].is_null());
}

TEST_F(SimSubscriptionsTest, PaymentMethodsAreEmpty) {
  const std::string account = NewAccount("pm");
  EXPECT_EQ(GetJson("/1.0/kb/accounts/" + account + "/paymentMethods"),
            json::array());
  EXPECT_EQ(Get("/1.0/kb/accounts/nobody/paymentMethods")->status, 404);
  EXPECT_EQ(Get("/1.0/kb/accounts/nobody/invoices")->status, 404);
  EXPECT_EQ(Counted("GET /1.0/kb/accounts/{id}/paymentMethods")["200"], 1u);
  EXPECT_EQ(Counted("GET /1.0/kb/accounts/{id}/paymentMethods")["404"], 1u);
}

// ---------------------------------------------------------------------------
// Auth and the envelope, for every new route.

struct Route {
  std::string method;
  std::string path;
  std::string label;
  bool write;
};

class SimSubscriptionRoutesTest : public SimSubscriptionsTest {
 protected:
  std::vector<Route> Routes() {
    const std::string account = NewAccount("routes");
    const std::string id = NewSubscription(account, "basic-monthly", "r-1");
    const std::string sub = std::string(kSubscriptions) + "/" + id;
    const std::string acc = "/1.0/kb/accounts/" + account;
    return {
        {"GET", "/1.0/kb/catalog/simpleCatalog",
         "GET /1.0/kb/catalog/simpleCatalog", false},
        {"GET", "/1.0/kb/catalog", "GET /1.0/kb/catalog", false},
        {"POST", kSubscriptions, "POST /1.0/kb/subscriptions", true},
        {"GET", sub, "GET /1.0/kb/subscriptions/{id}", false},
        {"DELETE", sub, "DELETE /1.0/kb/subscriptions/{id}", true},
        {"POST", sub + "/customFields",
         "POST /1.0/kb/subscriptions/{id}/customFields", true},
        {"GET", sub + "/customFields",
         "GET /1.0/kb/subscriptions/{id}/customFields", false},
        {"GET", "/1.0/kb/bundles?externalKey=r-1", "GET /1.0/kb/bundles",
         false},
        {"GET", acc + "/bundles", "GET /1.0/kb/accounts/{id}/bundles", false},
        {"GET", acc + "/invoices", "GET /1.0/kb/accounts/{id}/invoices", false},
        {"GET", acc + "/paymentMethods",
         "GET /1.0/kb/accounts/{id}/paymentMethods", false},
    };
  }
  httplib::Result Call(const Route& r, const httplib::Headers& headers) {
    const std::string body =
        r.path == kSubscriptions
            ? json{{"accountId", "x"}, {"planName", "basic-monthly"}}.dump()
            : json::array({{{"name", "n"}, {"value", "v"}}}).dump();
    if (r.method == "GET") return client_->Get(r.path, headers);
    if (r.method == "DELETE") return client_->Delete(r.path, headers);
    return client_->Post(r.path, headers, body, "application/json");
  }
};

TEST_F(SimSubscriptionRoutesTest, EveryRouteNeedsTheTenant) {
  const std::vector<Route> routes = Routes();
  for (const Route& r : routes) {
    auto res = Call(r, {});
    ASSERT_TRUE(res) << r.path;
    EXPECT_EQ(res->status, 401) << r.method << " " << r.path;
    EXPECT_THAT(res->body, HasSubstr("X-Killbill-ApiKey"));
    EXPECT_EQ(Counted(r.label)["401"], 1u) << r.label;
  }
  client_->set_basic_auth("admin", "wrong");
  for (const Route& r : routes) {
    EXPECT_EQ(Call(r, Auth())->status, 401) << r.method << " " << r.path;
  }
}

TEST_F(SimSubscriptionRoutesTest, WritesNeedCreatedBy) {
  for (const Route& r : Routes()) {
    if (!r.write) continue;
    auto res = Call(r, Auth(false));
    EXPECT_EQ(res->status, 400) << r.method << " " << r.path;
    EXPECT_EQ(json::parse(res->body)["message"],
              "Header X-Killbill-CreatedBy needs to be set");
  }
}

TEST_F(SimSubscriptionRoutesTest, EveryRouteGoesThroughTheFaults) {
  const std::vector<Route> routes = Routes();
  const uint64_t posted = BusPosted();
  ASSERT_TRUE(sim_->InjectFaults(FaultRequest::Outage503(60)).ok());
  for (const Route& r : routes) {
    EXPECT_EQ(Call(r, Auth())->status, 503) << r.method << " " << r.path;
    EXPECT_EQ(Counted(r.label)["503"], 1u) << r.label;
  }
  sim_->ClearFaults();
  ASSERT_TRUE(sim_->InjectFaults(FaultRequest::ErrorRate(1.0)).ok());
  for (const Route& r : routes) {
    auto res = Call(r, Auth());
    EXPECT_EQ(res->status, 500) << r.method << " " << r.path;
    EXPECT_EQ(json::parse(res->body)["message"], "killbill-sim injected error");
  }
  sim_->ClearFaults();
  EXPECT_EQ(BusPosted(), posted);  // nothing refused was written
}

}  // namespace
}  // namespace bg::sim
