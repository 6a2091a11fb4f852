// Tests of killbill-sim's arithmetic on bg::FakeClock: the queue-growth
// detector (Kill Bill's own test vector, Java number formatting) and the
// capacity model (processor sharing, base latency, bus drain, degradation, the
// healthcheck signal at saturation).
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <utility>
#include <vector>

#include "bench/killbill_sim/capacity_model.h"
#include "common/clock.h"
#include "gtest/gtest.h"
#include "killbill_client/queue_growth.h"

namespace bg::sim {
namespace {

using killbill::JavaDoubleToString;
using killbill::QueueGrowthDetector;
using killbill::QueueGrowthOptions;
using killbill::RoundHalfUp;
using std::chrono::milliseconds;
using std::chrono::seconds;

// docs/killbill.md: Kill Bill's unit test, window 3, alpha 0.3, x = timestamp.
TEST(SimQueueGrowthTest, ReproducesKillBillTestVector) {
  struct Row {
    int64_t x;
    double y;
    double smoothed;
    bool growing;
  };
  const std::vector<Row> rows = {
      {0, 0, 0.0, false},     {1, 10, 3.0, false},    {2, 15, 6.6, true},
      {3, 9, 7.32, true},     {4, 12, 8.724, true},   {5, 14, 10.3068, true},
      {6, 18, 12.6148, true}, {7, 0, 8.8303, false},  {8, 0, 6.1812, false},
      {9, 0, 4.3268, false},  {10, 0, 3.0288, false},
  };
  QueueGrowthOptions options;
  options.window = 3;
  QueueGrowthDetector detector(options);
  for (const Row& row : rows) {
    const auto result = detector.Sample(row.x, row.y);
    // The table truncates to 4 decimals.
    EXPECT_NEAR(result.smoothed, row.smoothed, 1e-4) << "x=" << row.x;
    EXPECT_EQ(result.growing, row.growing) << "x=" << row.x;
  }
}

// The same vector's slopes. With three points one millisecond apart the OLS
// slope is (s[x] - s[x-2]) / 2 per ms, so the exact values are known.
TEST(SimQueueGrowthTest, TestVectorSlopes) {
  struct Row {
    double y;
    double raw_slope_per_s;  // exact
    double slope;            // as Kill Bill prints it
  };
  const std::vector<Row> rows = {
      {0, 0, 0},
      {10, 0, 0},
      {15, 3300, 330},
      {9, 2160, 216},
      {12, 1062, 106.2},
      {14, 1493.4, 149.34},
      {18, 1945.38, 194.54},
      {0, -738.234, -73.82},
      {0, -3216.7638, -321.68},
      {0, -2251.73466, -225.17},
      {0, -1576.214262, -157.62},
  };
  QueueGrowthOptions options;
  options.window = 3;
  QueueGrowthDetector detector(options);
  for (size_t x = 0; x < rows.size(); ++x) {
    const auto result = detector.Sample(static_cast<int64_t>(x), rows[x].y);
    EXPECT_NEAR(result.raw_slope_per_s, rows[x].raw_slope_per_s, 1e-9)
        << "x=" << x;
    EXPECT_DOUBLE_EQ(result.slope, rows[x].slope) << "x=" << x;
  }
}

// A two-pass regression over the detector's window, the reference for the
// running sums.
double ReferenceSlopePerMs(const std::vector<std::pair<int64_t, double>>& pts) {
  const int64_t origin = pts.front().first;
  double mean_x = 0, mean_y = 0;
  for (const auto& [t, s] : pts) {
    mean_x += static_cast<double>(t - origin);
    mean_y += s;
  }
  mean_x /= static_cast<double>(pts.size());
  mean_y /= static_cast<double>(pts.size());
  double sxx = 0, sxy = 0;
  for (const auto& [t, s] : pts) {
    const double dx = static_cast<double>(t - origin) - mean_x;
    sxx += dx * dx;
    sxy += dx * (s - mean_y);
  }
  return sxx > 0 ? sxy / sxx : 0.0;
}

// Long runs with epoch timestamps, irregular polling and backlogs from empty
// to large: the running sums never drift from the two-pass answer.
TEST(SimQueueGrowthTest, RunningSumsMatchTwoPassRegression) {
  struct Case {
    int window;
    double level;    // backlog around which the walk moves
    double step;     // largest change per sample
    int max_gap_ms;  // polling interval up to this
  };
  const std::vector<Case> cases = {
      {60, 0, 5, 2000},    {60, 1e5, 50, 1000}, {60, 1e6, 2, 1000},
      {7, 500, 20, 30000}, {2, 10, 3, 1},
  };
  for (const Case& c : cases) {
    QueueGrowthOptions options;
    options.window = c.window;
    QueueGrowthDetector detector(options);
    std::mt19937_64 rng(42);
    std::uniform_int_distribution<int> gap(0, c.max_gap_ms);
    std::uniform_real_distribution<double> step(-c.step, c.step);
    int64_t t = 1'764'000'000'000;  // epoch milliseconds
    double backlog = c.level;
    double smoothed = 0;
    std::vector<std::pair<int64_t, double>> window;
    for (int i = 0; i < 20000; ++i) {
      t += gap(rng);
      backlog = std::max(0.0, std::round(backlog + step(rng)));
      smoothed = i == 0
                     ? backlog
                     : options.alpha * backlog + (1 - options.alpha) * smoothed;
      window.emplace_back(t, smoothed);
      if (static_cast<int>(window.size()) > c.window)
        window.erase(window.begin());
      const auto r = detector.Sample(t, backlog);
      ASSERT_EQ(r.smoothed, smoothed) << "i=" << i;
      if (static_cast<int>(window.size()) < c.window) {
        ASSERT_EQ(r.raw_slope_per_s, 0.0);
        continue;
      }
      const double reference = ReferenceSlopePerMs(window);
      ASSERT_NEAR(r.raw_slope_per_s, reference * 1000, 1e-9)
          << "window=" << c.window << " level=" << c.level << " i=" << i;
      ASSERT_EQ(r.slope, RoundHalfUp(reference * 100, 2))
          << "window=" << c.window << " level=" << c.level << " i=" << i;
    }
  }
}

// A replay copies a warmed-up detector and feeds the copy: both go on alike.
TEST(SimQueueGrowthTest, CopiesAreIndependentAndEqual) {
  QueueGrowthDetector original;
  for (int i = 0; i < 100; ++i) original.Sample(i * 1000, i * 3.0);
  QueueGrowthDetector copy = original;
  for (int i = 100; i < 250; ++i) {
    const auto a = original.Sample(i * 1000, i * 0.5);
    const auto b = copy.Sample(i * 1000, i * 0.5);
    ASSERT_EQ(a.raw_slope_per_s, b.raw_slope_per_s);
    ASSERT_EQ(a.slope, b.slope);
  }
  copy.Sample(250'000, 1e4);
  EXPECT_NE(copy.last().smoothed, original.last().smoothed);
}

TEST(SimQueueGrowthTest, SameMillisecondGivesNoSlope) {
  QueueGrowthOptions options;
  options.window = 3;
  QueueGrowthDetector detector(options);
  for (int i = 0; i < 5; ++i) {
    const auto r = detector.Sample(42, i * 10.0);
    EXPECT_EQ(r.raw_slope_per_s, 0.0);
    EXPECT_FALSE(r.growing);
  }
}

TEST(SimQueueGrowthTest, SlopeIsZeroUntilWindowIsFull) {
  QueueGrowthDetector detector;  // window 60
  for (int i = 0; i < 59; ++i) {
    const auto r = detector.Sample(i * 1000, i * 5.0);
    EXPECT_FALSE(r.growing);
    EXPECT_EQ(r.slope, 0.0);
  }
  const auto r = detector.Sample(59 * 1000, 59 * 5.0);
  EXPECT_TRUE(r.growing);
  EXPECT_GT(r.slope, 0.1);
  EXPECT_EQ(detector.points(), 60);
  detector.Sample(60 * 1000, 300);
  EXPECT_EQ(detector.points(), 60);  // oldest dropped
}

TEST(SimQueueGrowthTest, ExactLinearGrowthGivesRateTimes100) {
  QueueGrowthOptions options;
  options.window = 5;
  options.alpha = 1.0;  // no smoothing: the slope is exact
  QueueGrowthDetector detector(options);
  QueueGrowthDetector::Result r;
  for (int i = 0; i < 5; ++i)
    r = detector.Sample(i * 1000, i * 5.1);  // 5.1 entries/s
  EXPECT_DOUBLE_EQ(r.slope, 0.51);
  EXPECT_NEAR(r.raw_slope_per_s, 5.1, 1e-9);
}

TEST(SimJavaFormatTest, MatchesDoubleToString) {
  const std::vector<std::pair<double, const char*>> cases = {
      {0.5, "0.5"},       {0.51, "0.51"},           {3.0, "3.0"},
      {0.0, "0.0"},       {-0.74, "-0.74"},         {12.5, "12.5"},
      {100.0, "100.0"},   {0.001, "0.001"},         {1e7, "1.0E7"},
      {1.5e-4, "1.5E-4"}, {1234567.0, "1234567.0"}, {0.1, "0.1"},
  };
  for (const auto& [value, text] : cases)
    EXPECT_EQ(JavaDoubleToString(value), text);
}

TEST(SimJavaFormatTest, RoundHalfUp) {
  EXPECT_DOUBLE_EQ(RoundHalfUp(0.505, 2), 0.51);
  EXPECT_DOUBLE_EQ(RoundHalfUp(0.125, 2), 0.13);
  EXPECT_DOUBLE_EQ(RoundHalfUp(0.5049, 2), 0.5);
  EXPECT_DOUBLE_EQ(RoundHalfUp(-0.125, 2), -0.13);
  EXPECT_DOUBLE_EQ(RoundHalfUp(1.005, 2), 1.01);
  EXPECT_DOUBLE_EQ(RoundHalfUp(100.49999999, 2), 100.5);
}

// RoundHalfUp skips the decimal text away from ties; it must answer exactly as
// the decimal text always would.
TEST(SimJavaFormatTest, RoundHalfUpEqualsDecimalTextRounding) {
  auto by_text = [](double value, int decimals) {
    const double scale = std::pow(10.0, decimals);
    char buf[64];
    std::snprintf(buf, sizeof buf, "%.*f", decimals + 6,
                  std::fabs(value) * scale);
    const double rounded = std::floor(std::strtod(buf, nullptr) + 0.5) / scale;
    return value < 0 ? -rounded : rounded;
  };
  std::mt19937_64 rng(7);
  std::uniform_real_distribution<double> uniform(-1e4, 1e4);
  std::uniform_int_distribution<int> cents(-1000000, 1000000);
  for (int i = 0; i < 50000; ++i) {
    // Arbitrary values, and values on or next to a tie (x.xx5).
    const double any = uniform(rng);
    const double tie = (cents(rng) + 0.5) / 100.0;
    for (double v :
         {any, tie, std::nextafter(tie, 0.0), std::nextafter(tie, 1e9)}) {
      ASSERT_EQ(RoundHalfUp(v, 2), by_text(v, 2)) << v;
    }
  }
}

CapacityModelOptions NoLatency() {
  CapacityModelOptions o;
  o.base_latency = Clock::Duration::zero();
  return o;
}

TEST(SimCapacityModelTest, SingleJobTakesWorkOverCapacity) {
  FakeClock clock;
  CapacityModel model(&clock, NoLatency());  // capacity 30
  const auto id = model.Submit(1.0);
  EXPECT_FALSE(model.IsDone(id));
  EXPECT_EQ(model.EstimatedCompletion(id) - clock.Now(),
            std::chrono::duration_cast<Clock::Duration>(
                std::chrono::nanoseconds(33333334)));
  clock.Advance(milliseconds(33));
  model.Advance();
  EXPECT_FALSE(model.IsDone(id));
  clock.Advance(std::chrono::microseconds(334));
  EXPECT_EQ(model.Advance(), 1);
  EXPECT_TRUE(model.IsDone(id));
}

TEST(SimCapacityModelTest, ProcessorSharingSplitsCapacity) {
  FakeClock clock;
  CapacityModelOptions options = NoLatency();
  options.capacity = 10;
  CapacityModel model(&clock, options);
  // Two jobs of 1 unit at 10 units/s shared: both finish at 0.2 s.
  const auto a = model.Submit(1.0);
  const auto b = model.Submit(1.0);
  clock.Advance(milliseconds(199));
  model.Advance();
  EXPECT_FALSE(model.IsDone(a));
  clock.Advance(milliseconds(1));
  EXPECT_EQ(model.Advance(), 2);
  EXPECT_TRUE(model.IsDone(a) && model.IsDone(b));

  // A 1-unit job alone for 0.05 s (0.5 done), then a second arrives: each now
  // gets 5/s; the first needs 0.1 s more, then the second (0.5 left) runs alone
  // at 10/s: 0.05 s.
  const auto c = model.Submit(1.0);
  clock.Advance(milliseconds(50));
  const auto d = model.Submit(1.0);
  clock.Advance(milliseconds(100));
  model.Advance();
  EXPECT_TRUE(model.IsDone(c));
  EXPECT_FALSE(model.IsDone(d));
  clock.Advance(milliseconds(50));
  model.Advance();
  EXPECT_TRUE(model.IsDone(d));
}

TEST(SimCapacityModelTest, BaseLatencyIsPureDelayAndReadsAreFree) {
  FakeClock clock;
  CapacityModelOptions options;
  options.base_latency = milliseconds(100);
  options.capacity = 10;
  CapacityModel model(&clock, options);
  const auto read = model.Submit(0.0);
  const auto write = model.Submit(1.0);
  clock.Advance(milliseconds(99));
  model.Advance();
  EXPECT_FALSE(model.IsDone(read));
  EXPECT_EQ(model.InService(), 0u);
  clock.Advance(milliseconds(1));
  model.Advance();
  EXPECT_TRUE(model.IsDone(read));    // latency only
  EXPECT_FALSE(model.IsDone(write));  // now in service for 0.1 s
  EXPECT_EQ(model.InService(), 1u);
  clock.Advance(milliseconds(100));
  model.Advance();
  EXPECT_TRUE(model.IsDone(write));
}

TEST(SimCapacityModelTest, ReleaseAbandonsWorkAndSpeedsUpOthers) {
  FakeClock clock;
  CapacityModelOptions options = NoLatency();
  options.capacity = 10;
  CapacityModel model(&clock, options);
  const auto a = model.Submit(1.0);
  const auto b = model.Submit(1.0);
  clock.Advance(milliseconds(100));  // each has 0.5 done
  model.Advance();
  model.Release(b);
  clock.Advance(milliseconds(50));  // a alone at 10/s: 0.5 more in 0.05 s
  model.Advance();
  EXPECT_TRUE(model.IsDone(a));
  EXPECT_EQ(model.InService(), 0u);
}

TEST(SimCapacityModelTest, ClosedLoopThroughputEqualsCapacity) {
  FakeClock clock;
  CapacityModel model(&clock, NoLatency());
  std::vector<CapacityModel::JobId> jobs;
  for (int i = 0; i < 100; ++i) jobs.push_back(model.Submit(1.0));
  int completed = 0;
  // 100 equal jobs under processor sharing finish together every 100/30 s:
  // run 10.05 s so the third batch (due at 10.0 s) is in.
  for (int step = 0; step < 10050; ++step) {
    clock.Advance(milliseconds(1));
    model.Advance();
    for (auto& id : jobs) {
      if (model.IsDone(id)) {
        model.Release(id);
        ++completed;
        id = model.Submit(1.0);
      }
    }
  }
  EXPECT_NEAR(completed, 300, 1);  // 30/s x 10 s; each job waits 100/30 s
}

TEST(SimCapacityModelTest, BusDrainsAtConfiguredRate) {
  FakeClock clock;
  CapacityModelOptions options = NoLatency();
  options.bus_drain = 25;
  CapacityModel model(&clock, options);
  model.PostBusEvents(10);
  EXPECT_EQ(model.BusBacklog(), 10);
  clock.Advance(milliseconds(200));  // 5 drained
  model.Advance();
  EXPECT_EQ(model.BusBacklog(), 5);
  clock.Advance(milliseconds(10));  // 4.75 left: still 5 ready entries
  model.Advance();
  EXPECT_EQ(model.BusBacklog(), 5);
  clock.Advance(seconds(10));
  model.Advance();
  EXPECT_EQ(model.BusBacklog(), 0);
  EXPECT_DOUBLE_EQ(model.bus_drained_total(), 10.0);
  // Idle drain is not banked: new events wait their turn.
  model.PostBusEvents(25);
  clock.Advance(milliseconds(500));
  model.Advance();
  EXPECT_EQ(model.BusBacklog(), 13);  // 12.5 left -> 13 ready entries
}

TEST(SimCapacityModelTest, DegradationCutsCapacityAndDrainBeyondThreshold) {
  FakeClock clock;
  CapacityModelOptions options = NoLatency();
  options.degrade_threshold = 100;
  options.degrade_per_entry = 0.001;
  options.degrade_floor = 0.25;
  options.bus_drain = 0;  // hold the backlog still
  CapacityModel model(&clock, options);
  model.PostBusEvents(100);
  EXPECT_DOUBLE_EQ(model.CapacityFactor(), 1.0);
  model.PostBusEvents(500);  // 600: 1 - 0.001 * 500
  EXPECT_DOUBLE_EQ(model.CapacityFactor(), 0.5);
  const auto id = model.Submit(1.0);  // 15 units/s now: 1/15 s
  clock.Advance(milliseconds(66));
  model.Advance();
  EXPECT_FALSE(model.IsDone(id));
  clock.Advance(milliseconds(1));
  model.Advance();
  EXPECT_TRUE(model.IsDone(id));
  model.PostBusEvents(10000);
  EXPECT_DOUBLE_EQ(model.CapacityFactor(), 0.25);  // floor

  options.degrade = false;
  model.set_options(options);
  EXPECT_DOUBLE_EQ(model.CapacityFactor(), 1.0);
}

// Drives the model like Kill Bill under a closed loop of `clients` creation
// calls (each completion posts one bus event) for `duration`, polling a
// 60-point detector every second.
QueueGrowthDetector::Result Drive(FakeClock& clock, CapacityModel& model,
                                  int clients, double open_rate,
                                  seconds duration) {
  QueueGrowthDetector detector;
  QueueGrowthDetector::Result last;
  std::vector<CapacityModel::JobId> jobs;
  for (int i = 0; i < clients; ++i) jobs.push_back(model.Submit(1.0));
  const auto start = clock.Now();
  double open_due = 0;
  const auto step = milliseconds(5);
  for (int64_t t = 0; clock.Now() - start < duration; ++t) {
    clock.Advance(step);
    model.Advance();
    open_due += open_rate * ToSeconds(step);
    for (; open_due >= 1; open_due -= 1) jobs.push_back(model.Submit(1.0));
    for (size_t i = 0; i < jobs.size();) {
      if (!model.IsDone(jobs[i])) {
        ++i;
        continue;
      }
      model.Release(jobs[i]);
      model.PostBusEvents(1);
      if (static_cast<int>(i) < clients) {
        jobs[i] = model.Submit(1.0);
        ++i;
      } else {
        jobs.erase(jobs.begin() + static_cast<std::ptrdiff_t>(i));
      }
    }
    if ((t + 1) % 200 == 0) {  // every second
      last = detector.Sample(
          std::chrono::duration_cast<milliseconds>(clock.Now() - start).count(),
          static_cast<double>(model.BusBacklog()));
    }
  }
  return last;
}

TEST(SimCapacityModelTest, SaturationAt30PerSecondGrowsBusAtHalf) {
  FakeClock clock;
  CapacityModel model(&clock,
                      CapacityModelOptions{});  // defaults: 30/s, drain 25/s
  const auto result = Drive(clock, model, 100, 0, seconds(90));
  EXPECT_TRUE(result.growing);
  EXPECT_GE(result.slope, 0.45);
  EXPECT_LE(result.slope, 0.55);
  // Batches of 100 finish together every 100/30 s: within one batch of 30/s x
  // 90 s.
  EXPECT_NEAR(static_cast<double>(model.completed_total()), 90 * 30.0, 100);
}

TEST(SimCapacityModelTest, BelowTwentyPerSecondStaysHealthy) {
  FakeClock clock;
  CapacityModel model(&clock, CapacityModelOptions{});
  const auto result = Drive(clock, model, 0, 19.0, seconds(120));
  EXPECT_FALSE(result.growing);
  EXPECT_LE(result.slope, 0.1);
  EXPECT_LE(model.BusBacklog(), 2);
}

TEST(SimCapacityModelTest, SustainedOverloadCollapsesThroughput) {
  FakeClock clock;
  CapacityModelOptions options;
  options.degrade_threshold = 100;
  CapacityModel model(&clock, options);
  Drive(clock, model, 100, 0, seconds(600));
  const uint64_t before = model.completed_total();
  Drive(clock, model, 100, 0, seconds(60));
  const double rate =
      static_cast<double>(model.completed_total() - before) / 60.0;
  EXPECT_LT(rate, 30 * 0.6);  // well below capacity
  EXPECT_GE(rate, 30 * options.degrade_floor - 1);
}

}  // namespace
}  // namespace bg::sim
