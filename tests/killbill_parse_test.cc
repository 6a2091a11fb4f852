#include "gtest/gtest.h"
#include "killbill_client/killbill_client.h"
#include "killbill_client/parse.h"

namespace bg::killbill {
namespace {

constexpr char kId[] = "4a7b1e8c-0b1d-4b8e-9f0a-2d9b6a1c3e5f";

TEST(AccountIdFromLocation, AcceptsAbsoluteUrl) {
  auto id = AccountIdFromLocation(
      std::string("http://127.0.0.1:8080/1.0/kb/accounts/") + kId);
  ASSERT_TRUE(id.ok()) << id.status();
  EXPECT_EQ(*id, kId);
}

TEST(AccountIdFromLocation, AcceptsRelativePath) {
  auto id = AccountIdFromLocation(std::string("/1.0/kb/accounts/") + kId);
  ASSERT_TRUE(id.ok()) << id.status();
  EXPECT_EQ(*id, kId);
}

// A proxy or TLS terminator in front of Kill Bill rewrites Host: the 201
// created the account, and its id is in the path (issue 13, item 10: this was
// INTERNAL, and fed the breaker as a Kill Bill failure).
TEST(AccountIdFromLocation, TakesTheIdWhateverTheHost) {
  for (const char* origin :
       {"http://kb-internal.cluster.local:8080", "http://127.0.0.1:8081",
        "https://billing.example.com", "HTTP://KB"}) {
    auto id =
        AccountIdFromLocation(std::string(origin) + "/1.0/kb/accounts/" + kId);
    ASSERT_TRUE(id.ok()) << origin << ": " << id.status();
    EXPECT_EQ(*id, kId);
  }
}

TEST(AccountIdFromLocation, RefusesMalformed) {
  for (const char* location :
       {"", "/1.0/kb/accounts/", "/1.0/kb/accounts/not-a-uuid", "/1.0/kb/tags/",
        "http://127.0.0.1:8080", "ftp:/x",
        "/1.0/kb/accounts/4a7b1e8c-0b1d-4b8e-9f0a-2d9b6a1c3e5f/x"}) {
    EXPECT_FALSE(AccountIdFromLocation(location).ok()) << location;
  }
}

TEST(ParseAccount, ReadsKillBillShape) {
  auto account = ParseAccount(
      std::string(R"({"accountId":")") + kId +
      R"(","name":"John Doe","firstNameLength":null,"externalKey":"c-1",)"
      R"("email":"j@x.io","billCycleDayLocal":0,"currency":"USD",)"
      R"("company":null,"timeZone":"UTC","auditLogs":[]})");
  ASSERT_TRUE(account.ok()) << account.status();
  EXPECT_EQ(account->account_id, kId);
  EXPECT_EQ(account->external_key, "c-1");
  EXPECT_EQ(account->company, "");
  EXPECT_EQ(account->time_zone, "UTC");
}

TEST(ParseAccount, RefusesBrokenBodies) {
  for (
      const char* body :
      {"", "{", "[]", "null", R"({"accountId":5})", R"({"accountId":"x"})",
       R"({"accountId":"4a7b1e8c-0b1d-4b8e-9f0a-2d9b6a1c3e5f","name":7})",
       R"({"accountId":"4a7b1e8c-0b1d-4b8e-9f0a-2d9b6a1c3e5f","billCycleDayLocal":"x"})"}) {
    auto account = ParseAccount(body);
    EXPECT_EQ(account.status().code(), absl::StatusCode::kInternal) << body;
  }
}

TEST(ParseBusCounters, ReadsTheMainBusTimers) {
  // The shape of Kill Bill's MetricsServlet, trimmed: the external bus's pair
  // must not be taken for the main bus's.
  const char* body = R"json({"version":"4.0.0","gauges":{},"counters":{},
    "histograms":{},"meters":{},"timers":{
    "org.killbill.queue.DBBackedQueue.bus_ext_events.rawInsertEntryTime":
      {"count":999,"m1_rate":1.0},
    "org.killbill.queue.DBBackedQueue.bus_events.rawInsertEntryTime":
      {"count":1200,"max":0.01,"mean":0.002,"m1_rate":25.1,
       "duration_units":"seconds","rate_units":"calls/second"},
    "org.killbill.bus.DefaultPersistentBus.bus_events.busHandlersProcessingTime":
      {"count":1150,"m1_rate":24.9,"p99":0.05}}})json";
  auto c = ParseBusCounters(body);
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_TRUE(c->present);
  EXPECT_EQ(c->posted, 1200);
  EXPECT_EQ(c->dispatched, 1150);
}

TEST(ParseBusCounters, EmptySectionsAreAbsentAndMissingTimersAreZero) {
  // Without the killbill-metrics bundle every section is empty.
  auto empty = ParseBusCounters(
      R"({"version":"4.0.0","gauges":{},"counters":{},"histograms":{},)"
      R"("meters":{},"timers":{}})");
  ASSERT_TRUE(empty.ok()) << empty.status();
  EXPECT_FALSE(empty->present);
  // With it, a timer appears only after its first update.
  auto fresh = ParseBusCounters(
      R"({"version":"4.0.0","gauges":{"jvm.uptime":{"value":3}},"timers":{}})");
  ASSERT_TRUE(fresh.ok()) << fresh.status();
  EXPECT_TRUE(fresh->present);
  EXPECT_EQ(fresh->posted, 0);
  EXPECT_EQ(fresh->dispatched, 0);
}

TEST(ParseBusCounters, MalformedBodiesNameWhatIsWrong) {
  const std::pair<const char*, const char*> cases[] = {
      {"<html>", "not a JSON object"},
      {"[1,2]", "not a JSON object"},
      {R"({"timers":[]})", "section 'timers' is not an object"},
      {R"({"timers":{"org.killbill.queue.DBBackedQueue.bus_events.rawInsertEntryTime":{"count":"12"}}})",
       "rawInsertEntryTime' has no non-negative integer 'count'"},
      {R"({"timers":{"org.killbill.bus.DefaultPersistentBus.bus_events.busHandlersProcessingTime":{"count":-1}}})",
       "busHandlersProcessingTime' has no non-negative integer 'count'"},
      {R"({"timers":{"org.killbill.bus.DefaultPersistentBus.bus_events.busHandlersProcessingTime":7}})",
       "busHandlersProcessingTime' has no non-negative integer 'count'"},
  };
  for (const auto& [body, want] : cases) {
    auto c = ParseBusCounters(body);
    ASSERT_FALSE(c.ok()) << body;
    EXPECT_EQ(c.status().code(), absl::StatusCode::kInternal) << body;
    EXPECT_NE(c.status().message().find(want), std::string::npos) << c.status();
  }
}

TEST(ParseHealthReport, ReadsGrowingQueues) {
  const char* body = R"json({
    "org.killbill.billing.server.healthchecks.KillbillHealthcheck":{"healthy":true,"message":"OK"},
    "org.killbill.billing.server.healthchecks.KillbillQueuesHealthcheck":{"healthy":false,
      "message":"Growing queues: bus (0.51), externalBus (3.0)",
      "error":{"type":"java.lang.Throwable","message":"java.lang.Throwable","stack":[]},
      "bus":{"growing":true},"externalBus":{"growing":true},
      "invoice-service:next-billing-date-queue":{"growing":false}}})json";
  auto report = ParseHealthReport(500, body);
  ASSERT_TRUE(report.ok()) << report.status();
  EXPECT_FALSE(report->healthy);
  EXPECT_FALSE(report->out_of_rotation);
  EXPECT_DOUBLE_EQ(report->queue_growth.at("bus"), 0.51);
  EXPECT_DOUBLE_EQ(report->queue_growth.at("externalBus"), 3.0);
  EXPECT_TRUE(report->queue_growing.at("bus"));
  EXPECT_FALSE(
      report->queue_growing.at("invoice-service:next-billing-date-queue"));
}

TEST(ParseHealthReport, AcceptsShortNamesAndOutOfRotation) {
  auto report = ParseHealthReport(
      500,
      R"json({"KillbillHealthcheck":{"healthy":false,"message":"Out of rotation"},
               "KillbillQueuesHealthcheck":{"healthy":true,"bus":{"growing":false}}})json");
  ASSERT_TRUE(report.ok()) << report.status();
  EXPECT_TRUE(report->out_of_rotation);
  EXPECT_FALSE(report->queue_growing.at("bus"));
  EXPECT_TRUE(report->queue_growth.empty());
}

TEST(ParseHealthReport, RefusesBrokenBodiesAndStatuses) {
  EXPECT_EQ(ParseHealthReport(200, "<html>").status().code(),
            absl::StatusCode::kInternal);
  EXPECT_EQ(ParseHealthReport(200, R"({"x":1})").status().code(),
            absl::StatusCode::kInternal);
  EXPECT_EQ(
      ParseHealthReport(200, R"({"x":{"healthy":"yes"}})").status().code(),
      absl::StatusCode::kInternal);
  EXPECT_EQ(ParseHealthReport(503, "{}").status().code(),
            absl::StatusCode::kUnavailable);
}

TEST(ParseGrowingQueues, IgnoresOtherMessages) {
  EXPECT_TRUE(ParseGrowingQueues("OK").empty());
  EXPECT_TRUE(ParseGrowingQueues("Growing queues: bus (abc)").empty());
  EXPECT_EQ(ParseGrowingQueues("Growing queues: a:b (0.2)").at("a:b"), 0.2);
}

struct MappingCase {
  int http;
  const char* body;
  absl::StatusCode code;
  const char* kb_code;  // Expected payload, or nullptr.
};

TEST(StatusFromResponse, MapsEveryStatus) {
  const MappingCase cases[] = {
      {409,
       R"({"className":"x","code":3000,"message":"Account already exists for key k"})",
       absl::StatusCode::kAlreadyExists, "3000"},
      {404, R"({"code":3003,"message":"Account does not exist for key k"})",
       absl::StatusCode::kNotFound, "3003"},
      {401, "<html>Make sure to set the X-Killbill-ApiKey</html>",
       absl::StatusCode::kUnauthenticated, nullptr},
      {403, "", absl::StatusCode::kPermissionDenied, nullptr},
      {400,
       R"({"code":null,"message":"Header X-Killbill-CreatedBy needs to be set"})",
       absl::StatusCode::kInvalidArgument, nullptr},
      {500, R"({"code":3006,"message":"boom"})", absl::StatusCode::kUnavailable,
       "3006"},
      {503, "garbage", absl::StatusCode::kUnavailable, nullptr},
      // Business rules Kill Bill answers with a 500: never retried.
      {500, R"({"code":1031,"message":"Subscription is cancelled"})",
       absl::StatusCode::kFailedPrecondition, "1031"},
      {500, R"({"code":1021,"message":"not active"})",
       absl::StatusCode::kFailedPrecondition, "1021"},
      // callCompletion timed out: the write may still complete; retryable.
      {408, R"({"code":null,"message":"timeout"})",
       absl::StatusCode::kUnavailable, nullptr},
      {400, R"({"code":2021,"message":"no such plan"})",
       absl::StatusCode::kInvalidArgument, "2021"},
  };
  for (const MappingCase& c : cases) {
    absl::Status s = StatusFromResponse(c.http, c.body, "op");
    EXPECT_EQ(s.code(), c.code) << c.http;
    auto payload = s.GetPayload(kKillBillCodePayload);
    if (c.kb_code) {
      ASSERT_TRUE(payload.has_value()) << c.http;
      EXPECT_EQ(std::string(*payload), c.kb_code);
    } else {
      EXPECT_FALSE(payload.has_value()) << c.http;
    }
  }
}

// Kill Bill's message goes into the gRPC status and a durable operation's
// error_message: 1 MiB of it would break GetOperation (issue 13, item 6).
TEST(StatusFromResponse, CapsKillBillsMessage) {
  const std::string huge(1 << 20, 'x');
  const absl::Status s = StatusFromResponse(
      400, R"({"code":2021,"message":")" + huge + R"("})", "create");
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_LE(s.message().size(), 1200u);
  EXPECT_NE(s.message().find("more bytes"), absl::string_view::npos)
      << s.message().substr(0, 200);
  // Cut on a character boundary: no half of a multi-byte character.
  std::string utf8;
  for (int i = 0; i < 2000; ++i) utf8 += "\xc3\xa9";  // U+00E9
  const absl::Status u = StatusFromResponse(
      400, R"({"code":null,"message":")" + utf8 + R"("})", "create");
  const std::string m(u.message());
  const size_t cut = m.find("...");
  ASSERT_NE(cut, std::string::npos);
  EXPECT_NE(static_cast<unsigned char>(m[cut - 1]), 0xc3u);
  // A short message is kept whole.
  const absl::Status k =
      StatusFromResponse(404, R"({"code":3003,"message":"nope"})", "get");
  EXPECT_NE(k.message().find(": nope"), absl::string_view::npos);
}

}  // namespace
}  // namespace bg::killbill
