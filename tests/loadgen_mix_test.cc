// billing-loadgen's operation mix: --mix parsing and its errors, the
// deterministic per-sequence draw, the account pool, and the per-operation
// summary (text, JSON, CSV).
#include <algorithm>
#include <array>
#include <chrono>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/str_split.h"
#include "bench/loadgen/operation_mix.h"
#include "bench/loadgen/outcome.h"
#include "bench/loadgen/run_recorder.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"

namespace bg::loadgen {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;
using ::testing::HasSubstr;

TEST(OperationMixParseTest, AcceptsWeightsAndPrintsThemBack) {
  auto mix = OperationMix::Parse(
      "register_tagged=1, register_untagged=1,subscribe=0.5,overview=4");
  ASSERT_TRUE(mix.ok()) << mix.status();
  EXPECT_DOUBLE_EQ(mix->weight(Operation::kRegisterTagged), 1);
  EXPECT_DOUBLE_EQ(mix->weight(Operation::kSubscribe), 0.5);
  EXPECT_DOUBLE_EQ(mix->weight(Operation::kOverview), 4);
  EXPECT_EQ(mix->ToString(),
            "register_tagged=1,register_untagged=1,subscribe=0.5,overview=4");
}

TEST(OperationMixParseTest, ZeroWeightsAreLeftOut) {
  auto mix = OperationMix::Parse("overview=0,register_untagged=2");
  ASSERT_TRUE(mix.ok()) << mix.status();
  EXPECT_EQ(mix->ToString(), "register_untagged=2");
}

TEST(OperationMixParseTest, ErrorsNameTheEntry) {
  struct Case {
    const char* spec;
    const char* message;
  };
  const Case cases[] = {
      {"subscribe=-1", "--mix entry 'subscribe=-1': weight must be >= 0"},
      {"overview=lots",
       "--mix entry 'overview=lots': weight 'lots' is not a number"},
      {"overview=inf",
       "--mix entry 'overview=inf': weight 'inf' is not a number"},
      {"register=1", "--mix entry 'register=1': unknown operation 'register'"},
      {"overview", "--mix entry 'overview': expected name=weight"},
      {"overview=1,,subscribe=1", "--mix entry '': empty entry"},
      {"overview=1,overview=2",
       "--mix entry 'overview=2': operation given twice"},
      {"overview=0,subscribe=0", "every weight is 0"},
      {"", "--mix is empty"},
  };
  for (const Case& c : cases) {
    auto mix = OperationMix::Parse(c.spec);
    ASSERT_FALSE(mix.ok()) << c.spec;
    EXPECT_THAT(std::string(mix.status().message()), HasSubstr(c.message))
        << c.spec;
  }
}

TEST(OperationMixDrawTest, SameSeedSameSequence) {
  auto mix = OperationMix::Parse(
      "register_tagged=1,register_untagged=1,subscribe=0.5,overview=4");
  ASSERT_TRUE(mix.ok());
  std::vector<Operation> a, b, other_seed;
  for (int64_t seq = 0; seq < 1000; ++seq) a.push_back(mix->Draw(7, seq));
  // Drawn in reverse order: the draw depends on seq only, not on call order.
  for (int64_t seq = 999; seq >= 0; --seq) b.push_back(mix->Draw(7, seq));
  std::reverse(b.begin(), b.end());
  for (int64_t seq = 0; seq < 1000; ++seq) {
    other_seed.push_back(mix->Draw(8, seq));
  }
  EXPECT_EQ(a, b);
  EXPECT_NE(a, other_seed);
}

TEST(OperationMixDrawTest, FrequenciesFollowWeights) {
  auto mix = OperationMix::Parse(
      "register_tagged=1,register_untagged=1,subscribe=0.5,overview=4");
  ASSERT_TRUE(mix.ok());
  constexpr int kDraws = 100000;
  std::array<int, kOperationCount> n{};
  for (int64_t seq = 0; seq < kDraws; ++seq) {
    ++n[static_cast<int>(mix->Draw(1, seq))];
  }
  // Expected shares 1/6.5, 1/6.5, 0.5/6.5, 4/6.5; one standard deviation of
  // a share over 100,000 draws is at most 0.0016.
  const double total = 6.5;
  const double weights[] = {1, 1, 0.5, 4};
  for (int i = 0; i < kOperationCount; ++i) {
    EXPECT_NEAR(static_cast<double>(n[i]) / kDraws, weights[i] / total, 0.01)
        << OperationName(static_cast<Operation>(i));
  }
}

TEST(OperationMixDrawTest, ZeroWeightIsNeverDrawn) {
  auto mix = OperationMix::Parse("register_tagged=1,subscribe=0,overview=1");
  ASSERT_TRUE(mix.ok());
  for (int64_t seq = 0; seq < 10000; ++seq) {
    EXPECT_NE(mix->Draw(3, seq), Operation::kSubscribe);
    EXPECT_NE(mix->Draw(3, seq), Operation::kRegisterUntagged);
  }
}

TEST(OperationMixDrawTest, SingleAlwaysDrawsItsOperation) {
  const OperationMix mix = OperationMix::Single(Operation::kRegisterUntagged);
  for (int64_t seq = 0; seq < 1000; ++seq) {
    ASSERT_EQ(mix.Draw(1, seq), Operation::kRegisterUntagged);
  }
  EXPECT_EQ(mix.ToString(), "register_untagged=1");
  EXPECT_EQ(mix.FallbackRegistration(), Operation::kRegisterUntagged);
}

TEST(OperationMixTest, FallbackIsTheHeavierRegistration) {
  EXPECT_EQ(OperationMix::Parse("register_tagged=1,register_untagged=1,"
                                "overview=1")
                ->FallbackRegistration(),
            Operation::kRegisterTagged);
  EXPECT_EQ(OperationMix::Parse("register_tagged=1,register_untagged=3")
                ->FallbackRegistration(),
            Operation::kRegisterUntagged);
  EXPECT_EQ(OperationMix::Parse("overview=1")->FallbackRegistration(),
            Operation::kRegisterTagged);
}

TEST(OperationMixTest, NamesAndKinds) {
  for (int i = 0; i < kOperationCount; ++i) {
    const auto op = static_cast<Operation>(i);
    EXPECT_EQ(OperationFromName(OperationName(op)), op);
    EXPECT_NE(IsRegistration(op), NeedsAccount(op));
  }
  EXPECT_FALSE(OperationFromName("Overview"));
  EXPECT_TRUE(IsWrite(Operation::kSubscribe));
  EXPECT_FALSE(IsWrite(Operation::kOverview));
  EXPECT_EQ(AccountKey("lg-1-", 42), "lg-1-42");
  EXPECT_EQ(InstanceId("lg-1-", 42), "lg-1-inst-42");
}

TEST(AccountPoolTest, EmptyThenPicksAddedAccounts) {
  AccountPool pool;
  EXPECT_FALSE(pool.Pick(1, 0));
  pool.Add(10);
  EXPECT_EQ(pool.Pick(1, 0), 10);
  pool.Add(20);
  pool.Add(30);
  EXPECT_EQ(pool.size(), 3);
  std::array<int, 3> hits{};
  for (int64_t seq = 0; seq < 3000; ++seq) {
    const auto picked = pool.Pick(1, seq);
    ASSERT_TRUE(picked);
    ASSERT_EQ(pool.Pick(1, seq), picked);  // same pool, same pick
    ++hits[*picked / 10 - 1];
  }
  for (int h : hits) EXPECT_GT(h, 800);  // about 1,000 each
}

CallResult Result(OutcomeKind kind, const std::string& detail = "") {
  return CallResult{kind, detail, milliseconds(0)};
}

// 10 s of a mixed run, 14 arrivals: 4 tagged registrations (3 ok, 1 rejected),
// 2 untagged (ok), 2 subscriptions (1 ok, 1 DEADLINE_EXCEEDED), 6 overviews (4
// ok, 1 NOT_FOUND, 1 not sent), 1 fallback.
RunSummary MixedRun() {
  RunRecorder r;
  for (int i = 0; i < 4; ++i)
    r.RecordSent(seconds(i), Operation::kRegisterTagged);
  for (int i = 0; i < 3; ++i) {
    r.RecordResult(seconds(i + 1), milliseconds(100 * (i + 1)),
                   Result(OutcomeKind::kOk), Operation::kRegisterTagged);
  }
  r.RecordResult(seconds(4), milliseconds(1),
                 Result(OutcomeKind::kRejected, "queue_full"),
                 Operation::kRegisterTagged);
  for (int i = 0; i < 2; ++i) {
    r.RecordSent(seconds(i), Operation::kRegisterUntagged);
    r.RecordResult(seconds(i + 1), milliseconds(50), Result(OutcomeKind::kOk),
                   Operation::kRegisterUntagged);
  }
  r.RecordFallback();
  r.RecordSent(seconds(5), Operation::kSubscribe);
  r.RecordResult(seconds(6), milliseconds(400), Result(OutcomeKind::kOk),
                 Operation::kSubscribe);
  r.RecordSent(seconds(5), Operation::kSubscribe);
  r.RecordResult(seconds(9), seconds(3), Result(OutcomeKind::kTimeout),
                 Operation::kSubscribe);
  for (int i = 0; i < 5; ++i) r.RecordSent(seconds(6), Operation::kOverview);
  for (int i = 0; i < 4; ++i) {
    r.RecordResult(seconds(7), milliseconds(10 * (i + 1)),
                   Result(OutcomeKind::kOk), Operation::kOverview);
  }
  r.RecordResult(seconds(7), milliseconds(5),
                 Result(OutcomeKind::kError, "NOT_FOUND"),
                 Operation::kOverview);
  r.RecordNotSent(seconds(8), Operation::kOverview);
  RunInfo info;
  info.label = "mixed";
  info.target = "grpc://127.0.0.1:1";
  info.mode = "open";
  info.rate = 1.5;
  info.planned = 15;
  info.mix = "register_tagged=2,register_untagged=1,subscribe=1,overview=3";
  return r.Summarize(info, seconds(10));
}

TEST(OperationSummaryTest, CountsPerOperationAndTotals) {
  const RunSummary s = MixedRun();
  EXPECT_EQ(s.attempted, 14);
  EXPECT_EQ(s.succeeded(), 10);
  EXPECT_EQ(s.count(OutcomeKind::kTimeout), 1);
  EXPECT_EQ(s.operations_used(), 4);
  EXPECT_EQ(s.fallback_registrations, 1);

  const OperationSummary& tagged = s.op(Operation::kRegisterTagged);
  EXPECT_EQ(tagged.attempted(), 4);
  EXPECT_EQ(tagged.count(OutcomeKind::kOk), 3);
  EXPECT_EQ(tagged.count(OutcomeKind::kRejected), 1);
  EXPECT_EQ(tagged.reject_reasons.at("queue_full"), 1);
  EXPECT_DOUBLE_EQ(tagged.success_pct(), 75);
  EXPECT_DOUBLE_EQ(tagged.goodput_per_s(s.elapsed_s), 0.3);
  EXPECT_DOUBLE_EQ(tagged.ok_latency.p50_ms, 200);
  EXPECT_DOUBLE_EQ(tagged.ok_latency.p99_ms, 300);

  const OperationSummary& sub = s.op(Operation::kSubscribe);
  EXPECT_EQ(sub.attempted(), 2);
  EXPECT_EQ(sub.count(OutcomeKind::kTimeout), 1);
  EXPECT_DOUBLE_EQ(sub.ok_latency.p99_ms, 400);

  const OperationSummary& ov = s.op(Operation::kOverview);
  EXPECT_EQ(ov.sent, 5);
  EXPECT_EQ(ov.attempted(), 6);
  EXPECT_EQ(ov.count(OutcomeKind::kNotSent), 1);
  EXPECT_EQ(ov.error_codes.at("NOT_FOUND"), 1);
  EXPECT_DOUBLE_EQ(ov.ok_latency.p50_ms, 20);
  EXPECT_DOUBLE_EQ(ov.ok_latency.p99_ms, 40);
  EXPECT_DOUBLE_EQ(ov.goodput_per_s(s.elapsed_s), 0.4);
}

TEST(OperationSummaryTest, JsonHasOperationsAndTheOldTotals) {
  const auto j = nlohmann::json::parse(FormatJson(MixedRun()));
  EXPECT_EQ(j["attempted"], 14);
  EXPECT_EQ(j["succeeded"], 10);
  EXPECT_EQ(j["failed_by_kind"]["timeout"], 1);
  EXPECT_EQ(j["fallback_registrations"], 1);
  EXPECT_EQ(j["mix"],
            "register_tagged=2,register_untagged=1,subscribe=1,overview=3");
  const auto& ov = j["operations"]["overview"];
  EXPECT_EQ(ov["attempted"], 6);
  EXPECT_EQ(ov["ok"], 4);
  EXPECT_EQ(ov["error"], 1);
  EXPECT_EQ(ov["not_sent"], 1);
  EXPECT_EQ(ov["error_codes"]["NOT_FOUND"], 1);
  EXPECT_DOUBLE_EQ(ov["ok_latency"]["p99_ms"].get<double>(), 40);
  EXPECT_DOUBLE_EQ(ov["goodput_per_s"].get<double>(), 0.4);
  EXPECT_EQ(j["operations"]["subscribe"]["timeout"], 1);
  EXPECT_EQ(j["operations"]["register_tagged"]["reject_reasons"]["queue_full"],
            1);
}

TEST(OperationSummaryTest, JsonLeavesOutUnusedOperations) {
  RunRecorder r;
  r.RecordSent(seconds(0), Operation::kRegisterUntagged);
  r.RecordResult(seconds(0), milliseconds(1), Result(OutcomeKind::kOk),
                 Operation::kRegisterUntagged);
  const auto j = nlohmann::json::parse(FormatJson(r.Summarize({}, seconds(1))));
  EXPECT_EQ(j["operations"].size(), 1u);
  EXPECT_TRUE(j["operations"].contains("register_untagged"));
}

TEST(OperationSummaryTest, CsvColumnsLineUpWithTheHeader) {
  const std::vector<std::string> header =
      absl::StrSplit(absl::string_view(FormatCsvHeader())
                         .substr(0, FormatCsvHeader().size() - 1),
                     ',');
  const std::string row_text = FormatCsvRow(MixedRun());
  const std::vector<std::string> row = absl::StrSplit(
      absl::string_view(row_text).substr(0, row_text.size() - 1), ',');
  ASSERT_EQ(header.size(), row.size());
  auto col = [&](const std::string& name) {
    const auto it = std::find(header.begin(), header.end(), name);
    EXPECT_NE(it, header.end()) << name;
    return it == header.end() ? std::string() : row[it - header.begin()];
  };
  // The totals keep their names (old scenarios read them).
  EXPECT_EQ(col("attempted"), "14");
  EXPECT_EQ(col("succeeded"), "10");
  EXPECT_EQ(col("timeout"), "1");
  EXPECT_EQ(col("fallback_registrations"), "1");
  EXPECT_EQ(col("mix"),
            "register_tagged=2;register_untagged=1;subscribe=1;overview=3");
  EXPECT_EQ(col("overview_attempted"), "6");
  EXPECT_EQ(col("overview_ok"), "4");
  EXPECT_EQ(col("overview_not_sent"), "1");
  EXPECT_EQ(col("overview_p99_ms"), "40.0");
  EXPECT_EQ(col("overview_goodput_per_s"), "0.40");
  EXPECT_EQ(col("overview_error_codes"), "NOT_FOUND:1");
  EXPECT_EQ(col("subscribe_timeout"), "1");
  EXPECT_EQ(col("register_tagged_success_pct"), "75.00");
  EXPECT_EQ(col("register_untagged_ok"), "2");
}

TEST(OperationSummaryTest, TextShowsATableOnlyForMixes) {
  const std::string mixed = FormatText(MixedRun());
  EXPECT_THAT(mixed, HasSubstr("fallback registrations 1"));
  EXPECT_THAT(mixed, HasSubstr("  overview "));
  EXPECT_THAT(mixed, HasSubstr("error codes: NOT_FOUND:1"));

  RunRecorder r;
  r.RecordSent(seconds(0));
  r.RecordResult(seconds(0), milliseconds(1), Result(OutcomeKind::kOk));
  const std::string single = FormatText(r.Summarize({}, seconds(1)));
  EXPECT_THAT(single, ::testing::Not(HasSubstr("operation ")));
}

TEST(OperationSummaryTest, TimeSeriesCountsOkPerOperation) {
  RunRecorder r;
  r.RecordResult(milliseconds(200), milliseconds(1), Result(OutcomeKind::kOk),
                 Operation::kOverview);
  r.RecordResult(milliseconds(300), milliseconds(1), Result(OutcomeKind::kOk),
                 Operation::kOverview);
  r.RecordResult(milliseconds(400), milliseconds(1), Result(OutcomeKind::kOk),
                 Operation::kSubscribe);
  std::ostringstream out;
  r.WriteTimeSeriesCsv(out);
  const std::vector<std::string> lines = absl::StrSplit(out.str(), '\n');
  ASSERT_GE(lines.size(), 2u);
  EXPECT_THAT(lines[0], HasSubstr(",ok_subscribe,ok_overview"));
  EXPECT_THAT(lines[1], ::testing::EndsWith(",0,0,1,2"));
}

}  // namespace
}  // namespace bg::loadgen
