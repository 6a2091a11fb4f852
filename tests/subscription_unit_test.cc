// The pieces of the subscription path that need no server: the read cache's
// freshness and bound (FakeClock), the Kill Bill error mapping, the public form
// of a subscription, and request validation.
#include <chrono>

#include "gtest/gtest.h"
#include "killbill_client/killbill_client.h"
#include "service/account_operations.h"
#include "service/read_cache.h"
#include "service/subscription_operations.h"
#include "service/validation.h"

namespace bg::service {
namespace {

using std::chrono::hours;
using std::chrono::seconds;
namespace v1 = billing::v1;

TEST(TimedMap, AnswersWithinMaxAgeAndSaysHowOld) {
  FakeClock clock;
  TimedMap<std::string> map(&clock, 10);
  map.Put("k", "v");
  clock.Advance(seconds(3));
  auto fresh = map.Find("k", seconds(5));
  ASSERT_TRUE(fresh.has_value());
  EXPECT_EQ(fresh->value, "v");
  EXPECT_EQ(fresh->age, seconds(3));
  EXPECT_FALSE(map.Find("k", seconds(2)).has_value());  // too old for this use
  EXPECT_TRUE(map.Find("k", ReadCache::kForever).has_value());
  EXPECT_FALSE(map.Find("other", ReadCache::kForever).has_value());
  // A newer value replaces the entry and its age.
  map.Put("k", "v2");
  EXPECT_EQ(map.Find("k", seconds(0))->value, "v2");
  map.Erase("k");
  EXPECT_FALSE(map.Find("k", ReadCache::kForever).has_value());
}

TEST(TimedMap, EvictsTheEntryStoredLongestAgo) {
  FakeClock clock;
  TimedMap<int> map(&clock, 3);
  for (int i = 0; i < 3; ++i) map.Put(std::to_string(i), i);
  map.Put("0", 10);  // refreshed: now the newest
  map.Put("3", 3);   // over the bound: "1" goes
  EXPECT_EQ(map.size(), 3u);
  EXPECT_FALSE(map.Find("1", ReadCache::kForever).has_value());
  EXPECT_TRUE(map.Find("0", ReadCache::kForever).has_value());
  EXPECT_TRUE(map.Find("2", ReadCache::kForever).has_value());
  EXPECT_TRUE(map.Find("3", ReadCache::kForever).has_value());
}

// Each documented mapping, from the status the client makes of Kill Bill's
// answer.
TEST(Mapped, GivesKillBillRefusalsTheirDocumentedCodeAndField) {
  struct Case {
    int http;
    const char* body;
    absl::StatusCode code;
    const char* prefix;  // of the message, "" = any
  };
  const Case cases[] = {
      {400, R"({"code":2021,"message":"no plan"})",
       absl::StatusCode::kInvalidArgument, "plan_name: "},
      {400, R"({"code":1011,"message":"no TRIAL"})",
       absl::StatusCode::kInvalidArgument, "phase: "},
      {400, R"({"code":1014,"message":"key taken"})",
       absl::StatusCode::kFailedPrecondition, "instance_id: "},
      {404, R"({"code":3002,"message":"no account"})",
       absl::StatusCode::kNotFound, ""},
      {400, R"({"code":3003,"message":"no account for key"})",
       absl::StatusCode::kNotFound, ""},
      {404, R"({"code":1082,"message":"no subscription"})",
       absl::StatusCode::kNotFound, ""},
      // 408 (callCompletion timed out) stays retryable.
      {408, R"({"code":null,"message":"timeout"})",
       absl::StatusCode::kUnavailable, ""},
      // 1031 is handled by Cancel (already cancelled = done); alone it is a
      // business refusal, never retried.
      {500, R"({"code":1031,"message":"cancelled"})",
       absl::StatusCode::kFailedPrecondition, ""},
      {503, "", absl::StatusCode::kUnavailable, ""},
  };
  for (const Case& c : cases) {
    const absl::Status s =
        Mapped(killbill::StatusFromResponse(c.http, c.body, "op"));
    EXPECT_EQ(s.code(), c.code) << c.body;
    EXPECT_EQ(s.message().rfind(c.prefix, 0), 0u) << s;
    // Kill Bill's code survives for the billing-gateway-killbill-code trailer.
    if (std::string(c.body).find("\"code\":null") == std::string::npos &&
        c.body[0] != '\0') {
      EXPECT_TRUE(s.GetPayload(killbill::kKillBillCodePayload).has_value())
          << c.body;
    }
  }
}

TEST(SubscriptionToProto, TrialEndIsTheDateTheTrialPhaseEnds) {
  killbill::Subscription sub;
  sub.subscription_id = "s";
  sub.phase_type = "TRIAL";
  sub.state = "ACTIVE";
  sub.start_date = "2026-11-30";
  sub.events = {{"START_ENTITLEMENT", "2026-11-30", "basic-monthly-trial"},
                {"START_BILLING", "2026-11-30", "basic-monthly-trial"},
                {"PHASE", "2026-12-14", "basic-monthly-evergreen"}};
  v1::Subscription out = ToProto(sub);
  EXPECT_EQ(out.phase(), v1::PHASE_TYPE_TRIAL);
  EXPECT_EQ(out.state(), v1::SUBSCRIPTION_STATE_ACTIVE);
  EXPECT_EQ(out.trial_end_date(), "2026-12-14");

  // After the trial (phase EVERGREEN now), the date it ended stays.
  sub.phase_type = "EVERGREEN";
  EXPECT_EQ(ToProto(sub).trial_end_date(), "2026-12-14");
  // No trial phase ever: no trial end.
  sub.events = {
      {"START_ENTITLEMENT", "2026-11-30", "standard-monthly-evergreen"}};
  EXPECT_EQ(ToProto(sub).trial_end_date(), "");
  // Values this API does not know become UNSPECIFIED, never a crash.
  sub.phase_type = "SOMETHING";
  sub.state = "WEIRD";
  EXPECT_EQ(ToProto(sub).phase(), v1::PHASE_TYPE_UNSPECIFIED);
  EXPECT_EQ(ToProto(sub).state(), v1::SUBSCRIPTION_STATE_UNSPECIFIED);
}

v1::CreateSubscriptionRequest ValidCreate() {
  v1::CreateSubscriptionRequest r;
  r.mutable_account()->set_external_key("customer-1");
  r.set_plan_name("basic-monthly");
  r.set_instance_id("odoo-1");
  return r;
}

TEST(ValidateCreateSubscription, NamesTheField) {
  EXPECT_TRUE(ValidateCreateSubscription(ValidCreate()).ok());
  struct Case {
    void (*edit)(v1::CreateSubscriptionRequest&);
    const char* prefix;
  };
  const Case cases[] = {
      {[](auto& r) { r.clear_account(); }, "account: is required"},
      {[](auto& r) { r.mutable_account()->clear_key(); }, "account: set"},
      {[](auto& r) { r.mutable_account()->set_account_id("x"); },
       "account.account_id:"},
      {[](auto& r) { r.mutable_account()->set_external_key("a b"); },
       "account.external_key:"},
      {[](auto& r) { r.set_plan_name(""); }, "plan_name:"},
      {[](auto& r) { r.set_instance_id(std::string(256, 'i')); },
       "instance_id:"},
      {[](auto& r) { r.set_phase(v1::PHASE_TYPE_DISCOUNT); }, "phase:"},
      {[](auto& r) { r.set_phase(static_cast<v1::PhaseType>(99)); }, "phase:"},
      {[](auto& r) { (*r.mutable_metadata())["instance_id"] = "x"; },
       "metadata[\"instance_id\"]"},
      {[](auto& r) { (*r.mutable_metadata())[""] = "x"; }, "metadata:"},
      {[](auto& r) { (*r.mutable_metadata())["k"] = ""; }, "metadata[\"k\"]"},
      {[](auto& r) {
         for (int i = 0; i < 21; ++i)
           (*r.mutable_metadata())["k" + std::to_string(i)] = "v";
       },
       "metadata: has more than 20"},
  };
  for (const Case& c : cases) {
    v1::CreateSubscriptionRequest r = ValidCreate();
    c.edit(r);
    const absl::Status s = ValidateCreateSubscription(r);
    EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << c.prefix;
    EXPECT_EQ(s.message().rfind(c.prefix, 0), 0u) << s;
  }
}

TEST(ValidateSubscriptionReads, NameTheField) {
  v1::GetSubscriptionRequest get;
  EXPECT_EQ(ValidateGetSubscription(get).message().rfind("key:", 0), 0u);
  get.set_subscription_id("not-a-uuid");
  EXPECT_EQ(ValidateGetSubscription(get).message().rfind("subscription_id:", 0),
            0u);
  get.set_instance_id("odoo-1");
  EXPECT_TRUE(ValidateGetSubscription(get).ok());

  v1::CancelSubscriptionRequest cancel;
  cancel.set_instance_id("odoo-1");
  EXPECT_TRUE(ValidateCancelSubscription(cancel).ok());
  cancel.set_reason("line\nbreak");
  EXPECT_EQ(ValidateCancelSubscription(cancel).message().rfind("reason:", 0),
            0u);
  cancel.set_reason(std::string(256, 'r'));
  EXPECT_EQ(ValidateCancelSubscription(cancel).message().rfind("reason:", 0),
            0u);
  cancel.set_reason("");
  cancel.set_policy(static_cast<v1::CancelPolicy>(7));
  EXPECT_EQ(ValidateCancelSubscription(cancel).message().rfind("policy:", 0),
            0u);

  v1::ListSubscriptionsRequest list;
  EXPECT_EQ(ValidateListSubscriptions(list).message().rfind("account:", 0), 0u);
  v1::GetBillingOverviewRequest ov;
  ov.mutable_account()->set_account_id("00000000-0000-0000-0000-000000000001");
  EXPECT_TRUE(ValidateGetBillingOverview(ov).ok());
}

// What a running job may ask, for operations that must not get that far.
class NoCalls : public KillBillCalls {
 public:
  absl::Status Admit(KillBillEndpoint, dispatch::Cost) override {
    ++admitted;
    return absl::UnavailableError("no Kill Bill in this test");
  }
  void Record(KillBillEndpoint, const absl::Status&, Clock::Duration) override {
  }
  bool MayRetry(Clock::Duration*) override { return false; }
  Clock::TimePoint deadline() const override {
    return clock_.Now() + std::chrono::seconds(30);
  }
  Clock* clock() const override { return &clock_; }
  int admitted = 0;

 private:
  mutable FakeClock clock_;
};

// A request that skipped validation (a stored durable row written by another
// version, or edited by hand) with a tag value this version does not know
// ends in INVALID_ARGUMENT before any Kill Bill call; it used to put
// TagDefinitionId's nullptr into a std::string (issue 13, item 7).
TEST(AccountOperations, AnUnknownTagIsRefusedBeforeAnyKillBillCall) {
  AccountOperations ops(/*client=*/nullptr);
  v1::CreateAccountRequest request;
  request.set_external_key("k");
  request.add_tags(v1::ACCOUNT_TAG_AUTO_PAY_OFF);
  request.add_tags(static_cast<v1::AccountTag>(99));
  NoCalls calls;
  auto result = ops.CreateAccount(request, calls);
  EXPECT_EQ(result.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(result.status().message().rfind("tags[1]:", 0), 0u)
      << result.status();
  EXPECT_EQ(calls.admitted, 0);
}

}  // namespace
}  // namespace bg::service
