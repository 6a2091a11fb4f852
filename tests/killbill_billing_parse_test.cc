// The parsers of Kill Bill's billing objects (parse_billing.cc): the shapes
// Kill Bill 0.24 sends, its nulls and timestamps, and broken answers that must
// end in an error naming the object and field.
#include "gtest/gtest.h"
#include "killbill_client/parse.h"

namespace bg::killbill {
namespace {

constexpr char kAccount[] = "2f5a1c3e-6c1b-4d1e-9c59-7f9b0b6a1a11";
constexpr char kBundle[] = "0a7c9b1e-2d3f-4a5b-8c6d-7e8f9a0b1c2d";
constexpr char kSub[] = "5e4d3c2b-1a09-4876-9543-210fedcba987";

std::string SubscriptionJson(const std::string& extra = "") {
  return std::string(R"({"accountId":")") + kAccount + R"(","bundleId":")" +
         kBundle + R"(","subscriptionId":")" + kSub +
         R"(","externalKey":"x","bundleExternalKey":"odoo-1",
      "startDate":"2026-11-30T09:15:00.000Z","productName":"basic",
      "productCategory":"BASE","billingPeriod":"MONTHLY","phaseType":"TRIAL",
      "priceList":"DEFAULT","planName":"basic-monthly","state":"ACTIVE",
      "sourceType":"NATIVE","cancelledDate":null,"chargedThroughDate":"2026-11-30",
      "billCycleDayLocal":14,"quantity":1,"events":[
        {"eventType":"START_ENTITLEMENT","effectiveDate":"2026-11-30",
         "phase":"basic-monthly-trial"},
        {"eventType":"PHASE","effectiveDate":"2026-12-14T09:15:00.000Z",
         "phase":"basic-monthly-evergreen"}],
      "prices":[],"priceOverrides":[])" +
         extra + "}";
}

TEST(ParseSubscription, ReadsKillBillShapeAndTimestampsAsDays) {
  auto sub = ParseSubscription(SubscriptionJson());
  ASSERT_TRUE(sub.ok()) << sub.status();
  EXPECT_EQ(sub->subscription_id, kSub);
  EXPECT_EQ(sub->bundle_id, kBundle);
  EXPECT_EQ(sub->account_id, kAccount);
  EXPECT_EQ(sub->bundle_external_key, "odoo-1");
  EXPECT_EQ(sub->plan_name, "basic-monthly");
  EXPECT_EQ(sub->phase_type, "TRIAL");
  EXPECT_EQ(sub->state, "ACTIVE");
  EXPECT_EQ(sub->start_date, "2026-11-30");
  EXPECT_EQ(sub->cancelled_date, "");
  ASSERT_EQ(sub->events.size(), 2u);
  EXPECT_EQ(sub->events[1].event_type, "PHASE");
  EXPECT_EQ(sub->events[1].effective_date, "2026-12-14");
  EXPECT_EQ(sub->events[1].phase, "basic-monthly-evergreen");
}

TEST(ParseSubscription, RefusesBrokenBodiesNamingTheField) {
  struct Case {
    std::string body;
    const char* expect;
  };
  const Case cases[] = {
      {"", "not JSON"},
      {"[]", "not a JSON object"},
      {R"({"subscriptionId":"nope"})", "'subscriptionId' is not a UUID"},
      {SubscriptionJson(R"(,"state":7)"), "'state' is not a string"},
      {SubscriptionJson(R"(,"events":{})"), "'events' is not an array"},
      {SubscriptionJson(R"(,"events":[1])"), "subscription event is not"},
      {SubscriptionJson(R"(,"events":[{"phase":false}])"),
       "subscription event field 'phase'"},
  };
  for (const Case& c : cases) {
    auto sub = ParseSubscription(c.body);
    ASSERT_FALSE(sub.ok()) << c.body;
    EXPECT_EQ(sub.status().code(), absl::StatusCode::kInternal);
    EXPECT_NE(sub.status().message().find(c.expect), std::string::npos)
        << sub.status() << " for " << c.body;
  }
}

TEST(ParseBundles, ReadsBundlesWithTheirSubscriptions) {
  const std::string body = std::string(R"([{"accountId":")") + kAccount +
                           R"(","bundleId":")" + kBundle +
                           R"(","externalKey":"odoo-1","subscriptions":[)" +
                           SubscriptionJson() + R"(],"timeline":null}])";
  auto bundles = ParseBundles(body);
  ASSERT_TRUE(bundles.ok()) << bundles.status();
  ASSERT_EQ(bundles->size(), 1u);
  EXPECT_EQ((*bundles)[0].external_key, "odoo-1");
  ASSERT_EQ((*bundles)[0].subscriptions.size(), 1u);
  EXPECT_EQ((*bundles)[0].subscriptions[0].subscription_id, kSub);
  auto empty = ParseBundles("[]");
  ASSERT_TRUE(empty.ok());
  EXPECT_TRUE(empty->empty());

  EXPECT_FALSE(ParseBundles("{}").ok());
  EXPECT_FALSE(ParseBundles(R"([{"bundleId":"x"}])").ok());
  auto bad_sub = ParseBundles(std::string(R"([{"accountId":")") + kAccount +
                              R"(","bundleId":")" + kBundle +
                              R"(","subscriptions":[{"subscriptionId":1}]}])");
  ASSERT_FALSE(bad_sub.ok());
  EXPECT_NE(bad_sub.status().message().find("subscriptionId"),
            std::string::npos);
}

TEST(ParseInvoices, ReadsAmountsAsDecimalText) {
  const std::string body =
      R"([{"amount":19.0,"currency":"USD","status":"COMMITTED","creditAdj":0,
      "refundAdj":0,"invoiceId":"6f1e2d3c-4b5a-4987-8765-43210fedcba9",
      "invoiceDate":"2026-11-30","targetDate":"2026-11-30","invoiceNumber":"7",
      "balance":19,"accountId":")" +
      std::string(kAccount) + R"(","items":[]},
      {"amount":0.125,"balance":0,"invoiceNumber":8,
       "invoiceId":"7f1e2d3c-4b5a-4987-8765-43210fedcba9"}])";
  auto invoices = ParseInvoices(body);
  ASSERT_TRUE(invoices.ok()) << invoices.status();
  ASSERT_EQ(invoices->size(), 2u);
  EXPECT_EQ((*invoices)[0].amount, "19.00");
  EXPECT_EQ((*invoices)[0].balance, "19.00");
  EXPECT_EQ((*invoices)[0].invoice_number, "7");
  EXPECT_EQ((*invoices)[0].status, "COMMITTED");
  EXPECT_EQ((*invoices)[1].amount, "0.125");
  EXPECT_EQ((*invoices)[1].balance, "0.00");
  EXPECT_EQ((*invoices)[1].invoice_number, "8");

  auto bad = ParseInvoices(
      R"([{"invoiceId":"6f1e2d3c-4b5a-4987-8765-43210fedcba9","amount":"19"}])");
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("invoice field 'amount'"),
            std::string::npos);
}

TEST(ParsePaymentMethodsAndCustomFields, ReadTheirShapes) {
  auto methods = ParsePaymentMethods(
      R"([{"paymentMethodId":"1f1e2d3c-4b5a-4987-8765-43210fedcba9",
      "externalKey":"pm","accountId":"x","isDefault":true,
      "pluginName":"__EXTERNAL_PAYMENT__","pluginInfo":null}])");
  ASSERT_TRUE(methods.ok()) << methods.status();
  ASSERT_EQ(methods->size(), 1u);
  EXPECT_TRUE((*methods)[0].is_default);
  EXPECT_EQ((*methods)[0].plugin_name, "__EXTERNAL_PAYMENT__");
  EXPECT_FALSE(
      ParsePaymentMethods(
          R"([{"paymentMethodId":"1f1e2d3c-4b5a-4987-8765-43210fedcba9","isDefault":"yes"}])")
          .ok());

  auto fields = ParseCustomFields(
      R"([{"customFieldId":"c","objectId":"o","objectType":"SUBSCRIPTION",
      "name":"instance_id","value":"odoo-1","auditLogs":[]}])");
  ASSERT_TRUE(fields.ok()) << fields.status();
  ASSERT_EQ(fields->size(), 1u);
  EXPECT_EQ((*fields)[0].name, "instance_id");
  EXPECT_EQ((*fields)[0].value, "odoo-1");
  EXPECT_FALSE(ParseCustomFields(R"([{"name":1}])").ok());
  EXPECT_FALSE(ParseCustomFields("null").ok());
}

TEST(ParseCatalog, ReadsPlansAndTheirPhasesLatestVersionWinning) {
  const char* body = R"([
    {"name":"SaasOdoo","effectiveDate":"2024-01-01T00:00:00.000Z",
     "products":[{"type":"BASE","name":"basic","plans":[
       {"name":"basic-monthly","billingPeriod":"MONTHLY","phases":[
         {"type":"TRIAL","prices":[]},{"type":"EVERGREEN","prices":[]}]}]}]},
    {"name":"SaasOdoo","effectiveDate":"2025-01-01T00:00:00.000Z",
     "products":[{"type":"BASE","name":"basic","plans":[
       {"name":"basic-monthly","billingPeriod":"MONTHLY","phases":[
         {"type":"EVERGREEN","prices":[]}]}]},
      {"type":"BASE","name":"standard","plans":[
       {"name":"standard-annual","billingPeriod":"ANNUAL","phases":[
         {"type":"EVERGREEN"}]}]}]}])";
  auto plans = ParseCatalog(body);
  ASSERT_TRUE(plans.ok()) << plans.status();
  ASSERT_EQ(plans->size(), 2u);
  EXPECT_EQ((*plans)[0].name, "basic-monthly");
  EXPECT_EQ((*plans)[0].product, "basic");
  EXPECT_EQ((*plans)[0].phase_types, std::vector<std::string>{"EVERGREEN"});
  EXPECT_EQ((*plans)[1].name, "standard-annual");
  EXPECT_EQ((*plans)[1].billing_period, "ANNUAL");

  EXPECT_FALSE(ParseCatalog("{}").ok());
  auto nameless = ParseCatalog(R"([{"products":[{"plans":[{"phases":[]}]}]}])");
  ASSERT_FALSE(nameless.ok());
  EXPECT_NE(nameless.status().message().find("'name'"), std::string::npos);
}

TEST(ParseAccount, ReadsBalanceAndCreditWhenAskedFor) {
  const std::string body = std::string(R"({"accountId":")") + kAccount +
                           R"(","accountBalance":19.0,"accountCBA":0})";
  auto account = ParseAccount(body);
  ASSERT_TRUE(account.ok()) << account.status();
  EXPECT_EQ(account->balance, "19.00");
  EXPECT_EQ(account->credit, "0.00");
  auto plain = ParseAccount(std::string(R"({"accountId":")") + kAccount +
                            R"(","accountBalance":null})");
  ASSERT_TRUE(plain.ok());
  EXPECT_EQ(plain->balance, "");
}

TEST(IdFromLocation, ReadsSubscriptionLocations) {
  auto id = IdFromLocation(
      std::string("http://127.0.0.1:8080/1.0/kb/subscriptions/") + kSub,
      "/1.0/kb/subscriptions");
  ASSERT_TRUE(id.ok()) << id.status();
  EXPECT_EQ(*id, kSub);
  // An account Location is not a subscription's, nor is a look-alike prefix.
  EXPECT_FALSE(IdFromLocation(std::string("/1.0/kb/accounts/") + kSub,
                              "/1.0/kb/subscriptions")
                   .ok());
  EXPECT_FALSE(IdFromLocation(std::string("/1.0/kb/subscriptionsX/") + kSub,
                              "/1.0/kb/subscriptions")
                   .ok());
}

}  // namespace
}  // namespace bg::killbill
