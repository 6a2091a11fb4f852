#include <chrono>

#include "bench/loadgen/latency_stats.h"
#include "gtest/gtest.h"

namespace bg::loadgen {
namespace {

using std::chrono::microseconds;
using std::chrono::milliseconds;

TEST(LatencyStatsTest, EmptyIsAllZero) {
  LatencyStats s;
  EXPECT_TRUE(s.empty());
  EXPECT_EQ(s.MeanMs(), 0);
  EXPECT_EQ(s.PercentileMs(50), 0);
  EXPECT_EQ(s.MaxMs(), 0);
}

TEST(LatencyStatsTest, SingleSampleIsEveryPercentile) {
  LatencyStats s;
  s.Add(milliseconds(7));
  EXPECT_DOUBLE_EQ(s.PercentileMs(0), 7);
  EXPECT_DOUBLE_EQ(s.PercentileMs(50), 7);
  EXPECT_DOUBLE_EQ(s.PercentileMs(99), 7);
  EXPECT_DOUBLE_EQ(s.MaxMs(), 7);
  EXPECT_DOUBLE_EQ(s.MeanMs(), 7);
}

// Nearest rank over 1..100 ms added in reverse order: pN is exactly N ms.
TEST(LatencyStatsTest, NearestRankOnHundredSamples) {
  LatencyStats s;
  for (int i = 100; i >= 1; --i) s.Add(milliseconds(i));
  struct Case {
    double p;
    double want_ms;
  };
  for (const Case& c : {Case{1, 1}, Case{50, 50}, Case{95, 95}, Case{99, 99},
                        Case{99.5, 100}, Case{100, 100}, Case{0, 1}}) {
    EXPECT_DOUBLE_EQ(s.PercentileMs(c.p), c.want_ms) << "p" << c.p;
  }
  EXPECT_DOUBLE_EQ(s.MeanMs(), 50.5);
}

// Nearest rank on few samples never interpolates: p95 of {1,2,3,4} is 4, p50
// is 2.
TEST(LatencyStatsTest, NearestRankDoesNotInterpolate) {
  LatencyStats s;
  for (int v : {3, 1, 4, 2}) s.Add(milliseconds(v));
  EXPECT_DOUBLE_EQ(s.PercentileMs(50), 2);
  EXPECT_DOUBLE_EQ(s.PercentileMs(75), 3);
  EXPECT_DOUBLE_EQ(s.PercentileMs(95), 4);
}

TEST(LatencyStatsTest, KeepsMicrosecondResolutionAndClampsNegative) {
  LatencyStats s;
  s.Add(microseconds(1500));
  s.Add(microseconds(-20));  // a clock oddity must not poison the statistics
  EXPECT_DOUBLE_EQ(s.MaxMs(), 1.5);
  EXPECT_DOUBLE_EQ(s.PercentileMs(50), 0);
  EXPECT_DOUBLE_EQ(s.MeanMs(), 0.75);
}

TEST(LatencyStatsTest, AddingAfterQueryResorts) {
  LatencyStats s;
  s.Add(milliseconds(10));
  s.Add(milliseconds(20));
  EXPECT_DOUBLE_EQ(s.MaxMs(), 20);
  s.Add(milliseconds(5));
  EXPECT_DOUBLE_EQ(s.PercentileMs(1), 5);
  EXPECT_DOUBLE_EQ(s.MaxMs(), 20);
}

TEST(LatencySummaryTest, SummarizeCopiesEveryNumber) {
  LatencyStats s;
  for (int i = 1; i <= 200; ++i) s.Add(milliseconds(i));
  const LatencySummary sum = Summarize(s);
  EXPECT_EQ(sum.count, 200);
  EXPECT_DOUBLE_EQ(sum.p50_ms, 100);
  EXPECT_DOUBLE_EQ(sum.p95_ms, 190);
  EXPECT_DOUBLE_EQ(sum.p99_ms, 198);
  EXPECT_DOUBLE_EQ(sum.max_ms, 200);
  EXPECT_DOUBLE_EQ(sum.avg_ms, 100.5);
}

}  // namespace
}  // namespace bg::loadgen
