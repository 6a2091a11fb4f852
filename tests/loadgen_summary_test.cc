#include <algorithm>
#include <chrono>
#include <sstream>
#include <string>

#include "bench/loadgen/outcome.h"
#include "bench/loadgen/run_recorder.h"
#include "bench/loadgen/sim_stats.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"

namespace bg::loadgen {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;
using ::testing::HasSubstr;

CallResult Ok() { return CallResult{OutcomeKind::kOk, "", milliseconds(0)}; }
CallResult Rejected(const std::string& reason) {
  return CallResult{OutcomeKind::kRejected, reason, milliseconds(200)};
}

// The report's 100-concurrent row: 500 attempted, 445 ok, 55 timeouts over ~60
// s.
void ReportLikeRun(RunRecorder& r) {
  for (int i = 0; i < 500; ++i) r.RecordSent(milliseconds(i * 10));
  for (int i = 0; i < 445; ++i)
    r.RecordResult(milliseconds(3000 + i * 100), seconds(3), Ok());
  for (int i = 0; i < 55; ++i) {
    r.RecordResult(seconds(31), seconds(30),
                   CallResult{OutcomeKind::kTimeout, "", {}});
  }
}

RunInfo Info() {
  RunInfo info;
  info.label = "direct";
  info.target = "http://127.0.0.1:1";
  info.mode = "closed";
  info.concurrency = 100;
  info.planned = 500;
  return info;
}

TEST(RunSummaryTest, CountsAndRates) {
  RunRecorder r;
  ReportLikeRun(r);
  const RunSummary s = r.Summarize(Info(), seconds(60));
  EXPECT_EQ(s.attempted, 500);
  EXPECT_EQ(s.succeeded(), 445);
  EXPECT_EQ(s.failed(), 55);
  EXPECT_EQ(s.count(OutcomeKind::kTimeout), 55);
  EXPECT_DOUBLE_EQ(s.success_pct(), 89.0);
  EXPECT_NEAR(s.goodput_per_s(), 7.4167, 1e-3);
  EXPECT_DOUBLE_EQ(s.ok_latency.p95_ms, 3000);
}

TEST(RunSummaryTest, NotSentCountsAsAttemptedAndFailed) {
  RunRecorder r;
  r.RecordSent(seconds(0));
  r.RecordResult(seconds(1), milliseconds(40), Ok());
  r.RecordNotSent(seconds(0));
  r.RecordNotSent(seconds(0));
  const RunSummary s = r.Summarize(Info(), seconds(2));
  EXPECT_EQ(s.attempted, 3);
  EXPECT_EQ(s.failed(), 2);
  EXPECT_EQ(s.count(OutcomeKind::kNotSent), 2);
}

TEST(RunSummaryTest, RejectionsKeepReasonsAndTheirOwnLatency) {
  RunRecorder r;
  for (int i = 0; i < 3; ++i) r.RecordSent(seconds(0));
  r.RecordResult(seconds(0), milliseconds(2), Rejected("queue_full"));
  r.RecordResult(seconds(0), milliseconds(4), Rejected("queue_full"));
  r.RecordResult(seconds(0), milliseconds(900), Ok());
  const RunSummary s = r.Summarize(Info(), seconds(1));
  EXPECT_EQ(s.reject_reasons.at("queue_full"), 2);
  EXPECT_DOUBLE_EQ(s.rejected_latency.p99_ms, 4);
  EXPECT_DOUBLE_EQ(s.ok_latency.p50_ms, 900);
  EXPECT_EQ(s.pushback_count, 2);
  EXPECT_DOUBLE_EQ(s.pushback_avg_ms, 200);
}

TEST(RunSummaryTest, TextHasTheReportColumns) {
  RunRecorder r;
  ReportLikeRun(r);
  const std::string text = FormatText(r.Summarize(Info(), seconds(60)));
  EXPECT_THAT(text, HasSubstr("attempted 500   succeeded 445   failed 55"));
  EXPECT_THAT(text, HasSubstr("timeout 55"));
  EXPECT_THAT(text, HasSubstr("success   89.0 %   rate 7.4/s (445/min)"));
  EXPECT_THAT(text,
              HasSubstr("| 100 | 500 | 89% | 7.4/sec | 445/min | 3000ms |"));
}

TEST(RunSummaryTest, JsonParsesAndNamesEveryKind) {
  RunRecorder r;
  ReportLikeRun(r);
  const auto j =
      nlohmann::json::parse(FormatJson(r.Summarize(Info(), seconds(60))));
  EXPECT_EQ(j["attempted"], 500);
  EXPECT_EQ(j["failed_by_kind"]["timeout"], 55);
  EXPECT_EQ(j["failed_by_kind"]["not_sent"], 0);
  EXPECT_EQ(j["label"], "direct");
  EXPECT_DOUBLE_EQ(j["ok_latency"]["p95_ms"].get<double>(), 3000);
}

TEST(RunSummaryTest, RejectionsPerSuccessAndTimeToFirstSuccess) {
  RunRecorder r;
  RunInfo info = Info();
  info.concurrency = 4;
  // 4 callers: three succeed first at 2 s, 1 s and 9 s; one never does.
  for (int i = 0; i < 8; ++i) r.RecordSent(seconds(0));
  for (int i = 0; i < 5; ++i)
    r.RecordResult(seconds(1), milliseconds(1),
                   Rejected("deadline_unmeetable"));
  for (int i = 0; i < 3; ++i) r.RecordResult(seconds(2), seconds(1), Ok());
  r.RecordFirstSuccess(seconds(2));
  r.RecordFirstSuccess(seconds(1));
  r.RecordFirstSuccess(seconds(9));
  const RunSummary s = r.Summarize(info, seconds(10));
  EXPECT_NEAR(s.rejections_per_success(), 5.0 / 3, 1e-9);
  EXPECT_EQ(s.callers, 4);
  EXPECT_EQ(s.callers_without_success, 1);
  // Nearest rank over all 4 callers: rank 2 is 2 s; rank 4 never succeeded.
  EXPECT_DOUBLE_EQ(s.first_success_p50_s, 2);
  EXPECT_DOUBLE_EQ(s.first_success_p99_s, -1);
  const std::string text = FormatText(s);
  EXPECT_THAT(text, HasSubstr("rejections per success 1.67"));
  EXPECT_THAT(text, HasSubstr("first success of each of 4 callers: p50 2.0 s "
                              "  p99 never   never 1"));
  // Open loop: no callers to speak of.
  info.mode = "open";
  EXPECT_EQ(r.Summarize(info, seconds(10)).callers, 0);
}

TEST(RunSummaryTest, CsvRowMatchesHeader) {
  RunRecorder r;
  r.RecordSent(seconds(0));
  r.RecordResult(seconds(0), milliseconds(3), Rejected("breaker_open"));
  r.RecordSent(seconds(0));
  r.RecordResult(seconds(0), milliseconds(3),
                 CallResult{OutcomeKind::kError, "http_500", {}});
  RunInfo info = Info();
  info.label = "a,b";  // commas would shift columns
  const std::string header = FormatCsvHeader();
  const std::string row = FormatCsvRow(r.Summarize(info, seconds(1)));
  auto fields = [](const std::string& line) {
    return std::count(line.begin(), line.end(), ',');
  };
  EXPECT_EQ(fields(header), fields(row));
  EXPECT_THAT(row, HasSubstr("breaker_open:1,http_500:1"));
  EXPECT_THAT(row, HasSubstr("a b,"));
}

TEST(TimeSeriesTest, RowsPerSecond) {
  RunRecorder r;
  r.RecordSent(milliseconds(100));
  r.RecordSent(milliseconds(900));
  r.RecordResult(milliseconds(1200), milliseconds(10), Ok());
  r.RecordResult(milliseconds(1300), milliseconds(30), Ok());
  r.RecordBacklog(milliseconds(2100), 42);
  r.RecordOutstanding(milliseconds(2500), 7);
  r.RecordNotSent(milliseconds(2600));
  std::ostringstream out;
  r.WriteTimeSeriesCsv(out);
  EXPECT_EQ(
      out.str(),
      "t,sent,ok,rejected,timeout,error,not_sent,p95_ms,backlog,outstanding,"
      "ok_register_tagged,ok_register_untagged,ok_subscribe,ok_overview\n"
      "0,2,0,0,0,0,0,,,0,0,0,0,0\n"
      "1,0,2,0,0,0,0,30.0,,0,2,0,0,0\n"
      "2,0,0,0,0,0,1,,42.0,7,0,0,0,0\n");
}

TEST(ClassifyGrpcTest, Table) {
  struct Case {
    grpc::StatusCode code;
    std::optional<absl::string_view> reason;
    std::optional<absl::string_view> pushback;
    OutcomeKind kind;
    std::string detail;
    int64_t pushback_ms;
  };
  const Case cases[] = {
      {grpc::StatusCode::OK, std::nullopt, std::nullopt, OutcomeKind::kOk, "",
       0},
      {grpc::StatusCode::RESOURCE_EXHAUSTED, "queue_full", "250",
       OutcomeKind::kRejected, "queue_full", 250},
      {grpc::StatusCode::UNAVAILABLE, "breaker_open", "1000",
       OutcomeKind::kRejected, "breaker_open", 1000},
      // UNAVAILABLE without the gateway's reason is a transport failure, not a
      // rejection.
      {grpc::StatusCode::UNAVAILABLE, std::nullopt, std::nullopt,
       OutcomeKind::kError, "UNAVAILABLE", 0},
      {grpc::StatusCode::DEADLINE_EXCEEDED, std::nullopt, std::nullopt,
       OutcomeKind::kTimeout, "", 0},
      {grpc::StatusCode::INTERNAL, std::nullopt, std::nullopt,
       OutcomeKind::kError, "INTERNAL", 0},
      {grpc::StatusCode::RESOURCE_EXHAUSTED, "queue_full", "soon",
       OutcomeKind::kRejected, "queue_full", 0},
      {grpc::StatusCode::RESOURCE_EXHAUSTED, "queue_full", "-5",
       OutcomeKind::kRejected, "queue_full", 0},
  };
  for (const Case& c : cases) {
    const CallResult r = ClassifyGrpc(c.code, c.reason, c.pushback);
    EXPECT_EQ(r.kind, c.kind) << GrpcCodeName(c.code);
    EXPECT_EQ(r.detail, c.detail) << GrpcCodeName(c.code);
    EXPECT_EQ(r.pushback.count(), c.pushback_ms) << GrpcCodeName(c.code);
  }
}

TEST(ClassifyHttpTest, Table) {
  EXPECT_EQ(ClassifyHttpStatus(201, std::nullopt).kind, OutcomeKind::kOk);
  const CallResult r429 = ClassifyHttpStatus(429, "2");
  EXPECT_EQ(r429.kind, OutcomeKind::kRejected);
  EXPECT_EQ(r429.detail, "http_429");
  EXPECT_EQ(r429.pushback, milliseconds(2000));
  const CallResult r503 = ClassifyHttpStatus(503, "0.25");
  EXPECT_EQ(r503.kind, OutcomeKind::kRejected);
  EXPECT_EQ(r503.pushback, milliseconds(250));
  // HTTP-date form is not supported: no pushback, still a rejection.
  EXPECT_EQ(ClassifyHttpStatus(503, "Wed, 21 Oct 2015 07:28:00 GMT").pushback,
            milliseconds(0));
  const CallResult r500 = ClassifyHttpStatus(500, std::nullopt);
  EXPECT_EQ(r500.kind, OutcomeKind::kError);
  EXPECT_EQ(r500.detail, "http_500");
  EXPECT_EQ(ClassifyHttpStatus(504, std::nullopt).detail, "http_504");
}

TEST(SimStatsTest, ExtractsTopLevelAndNestedNumbers) {
  EXPECT_EQ(ExtractNumberField(R"({"bus_backlog": 12, "x": 1})", "bus_backlog"),
            12.0);
  EXPECT_EQ(ExtractNumberField(R"({"bus": {"backlog": 3.5}})", "bus.backlog"),
            3.5);
  EXPECT_FALSE(ExtractNumberField(R"({"bus_backlog": "12"})", "bus_backlog"));
  EXPECT_FALSE(ExtractNumberField(R"({"other": 1})", "bus_backlog"));
  EXPECT_FALSE(ExtractNumberField("not json", "bus_backlog"));
  EXPECT_FALSE(ExtractNumberField("[1,2]", "bus_backlog"));
}

}  // namespace
}  // namespace bg::loadgen
