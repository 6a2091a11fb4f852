// Tests of the meters behind killbill-sim's GET /1.0/metrics, on
// bg::FakeClock: EwmaMeter against Dropwizard's Meter arithmetic (constant
// rate, a step and its time constant, mean rate, ticks applied lazily, events
// attributed to the 5 s interval in which they happened), and BusMeters fed by
// CapacityModel (a burst drained in 4 s, steady overload).
#include <chrono>
#include <cmath>
#include <cstdint>

#include "bench/killbill_sim/bus_meters.h"
#include "bench/killbill_sim/capacity_model.h"
#include "bench/killbill_sim/ewma_meter.h"
#include "common/clock.h"
#include "gtest/gtest.h"

namespace bg::sim {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;

// Dropwizard's decay per 5 s tick: 1 - alpha = exp(-5 s / window).
double Decay(double window_s, int ticks) {
  return std::exp(-5.0 * ticks / window_s);
}

// `per_second` events at the end of each of `duration_s` seconds.
void MarkEverySecond(FakeClock& clock, EwmaMeter& meter, uint64_t per_second,
                     int duration_s) {
  for (int s = 0; s < duration_s; ++s) {
    clock.Advance(seconds(1));
    meter.Mark(per_second);
  }
}

TEST(SimEwmaMeterTest, NothingBeforeTheFirstTick) {
  FakeClock clock;
  EwmaMeter meter(&clock);
  EwmaMeter::Rates rates = meter.Read();
  EXPECT_EQ(rates.count, 0u);
  EXPECT_EQ(rates.mean_rate, 0.0);
  MarkEverySecond(clock, meter, 25, 4);
  rates = meter.Read();
  EXPECT_EQ(rates.count, 100u);
  EXPECT_DOUBLE_EQ(rates.mean_rate, 25.0);
  EXPECT_EQ(rates.m1_rate, 0.0);  // no tick yet
  EXPECT_EQ(rates.m15_rate, 0.0);
}

TEST(SimEwmaMeterTest, ConstantRateReadsItsRate) {
  FakeClock clock;
  EwmaMeter meter(&clock);
  MarkEverySecond(clock, meter, 25, 300);  // 5 minutes
  clock.Advance(milliseconds(1));          // past the tick at 300 s
  const EwmaMeter::Rates rates = meter.Read();
  EXPECT_EQ(rates.count, 7500u);
  EXPECT_NEAR(rates.m1_rate, 25.0, 0.25);  // within 1 %
  EXPECT_NEAR(rates.m5_rate, 25.0, 0.25);
  EXPECT_NEAR(rates.m15_rate, 25.0, 0.25);
  // The first tick sets the rate; a constant one then never moves.
  EXPECT_NEAR(rates.m1_rate, 25.0, 1e-9);
  EXPECT_NEAR(rates.mean_rate, 7500 / 300.001, 1e-9);
}

TEST(SimEwmaMeterTest, StepMovesWithDropwizardsTimeConstant) {
  FakeClock clock;
  EwmaMeter meter(&clock);
  MarkEverySecond(clock, meter, 25, 300);
  double previous = 25.0;
  for (int s = 1; s <= 60; ++s) {
    clock.Advance(seconds(1));
    meter.Mark(12);
    const EwmaMeter::Rates rates = meter.Read();
    EXPECT_LE(rates.m1_rate, previous) << s;  // falls toward 12...
    EXPECT_GT(rates.m1_rate, 12.0) << s;      // ...never past it
    previous = rates.m1_rate;
  }
  clock.Advance(milliseconds(1));  // past the tick at 360 s
  const EwmaMeter::Rates rates = meter.Read();
  // 12 ticks of 12/s after 25/s: m = 12 + 13 * exp(-60 s / window); m1 is
  // 12 + 13/e after one minute.
  EXPECT_NEAR(rates.m1_rate, 12 + 13 * Decay(60, 12), 1e-9);
  EXPECT_NEAR(rates.m1_rate, 12 + 13 / std::exp(1.0), 1e-9);
  EXPECT_NEAR(rates.m5_rate, 12 + 13 * Decay(300, 12), 1e-9);
  EXPECT_NEAR(rates.m15_rate, 12 + 13 * Decay(900, 12), 1e-9);
  EXPECT_EQ(rates.count, 7500u + 720u);
  EXPECT_NEAR(rates.mean_rate, 8220 / 360.001, 1e-9);
  // A step read between ticks: still the value of the last whole tick.
  clock.Advance(seconds(3));
  meter.Mark(12 * 3);
  EXPECT_NEAR(meter.Read().m1_rate, rates.m1_rate, 1e-12);
}

TEST(SimEwmaMeterTest, LazyReadsEqualEagerOnes) {
  FakeClock clock;
  EwmaMeter eager(&clock);
  EwmaMeter lazy(&clock);
  EwmaMeter::Rates eager_rates;
  for (int s = 0; s < 200; ++s) {
    clock.Advance(milliseconds(1300));
    const uint64_t n = static_cast<uint64_t>(s % 7) * 5;
    eager.Mark(n);
    lazy.Mark(n);
    eager_rates = eager.Read();
  }
  const EwmaMeter::Rates lazy_rates = lazy.Read();
  EXPECT_EQ(lazy_rates.count, eager_rates.count);
  EXPECT_DOUBLE_EQ(lazy_rates.m1_rate, eager_rates.m1_rate);
  EXPECT_DOUBLE_EQ(lazy_rates.m5_rate, eager_rates.m5_rate);
  EXPECT_DOUBLE_EQ(lazy_rates.m15_rate, eager_rates.m15_rate);
  // Reading again with no time passing changes nothing.
  EXPECT_DOUBLE_EQ(lazy.Read().m1_rate, lazy_rates.m1_rate);
}

// The events of an interval are its tick's "uncounted", however late the read.
TEST(SimEwmaMeterTest, EventsCountInTheIntervalTheyHappenedIn) {
  const double alpha = 1 - Decay(60, 1);
  {
    FakeClock clock;
    EwmaMeter meter(&clock);
    clock.Advance(seconds(1));
    meter.Mark(100);  // in (0, 5 s]
    clock.Advance(milliseconds(59500));
    // Ticks at 5, 10, ..., 60 s: the first sees 100 events (20/s).
    EXPECT_NEAR(meter.Read().m1_rate, 20 * Decay(60, 11), 1e-9);
  }
  {
    FakeClock clock;
    EwmaMeter meter(&clock);
    clock.Advance(seconds(59));
    meter.Mark(100);  // in (55 s, 60 s]: only the twelfth tick sees them
    clock.Advance(milliseconds(1500));
    EXPECT_NEAR(meter.Read().m1_rate, alpha * 20, 1e-9);
  }
  {
    // An event exactly on a boundary belongs to the interval that ends there.
    FakeClock clock;
    EwmaMeter meter(&clock);
    clock.Advance(seconds(5));
    meter.Mark(10);
    clock.Advance(milliseconds(1));
    EXPECT_NEAR(meter.Read().m1_rate, 2.0, 1e-12);
  }
}

TEST(SimEwmaMeterTest, AReportedTotalGrowsLinearlyBetweenReports) {
  FakeClock clock;
  const Clock::TimePoint start = clock.Now();
  EwmaMeter steady(&clock);
  clock.Advance(milliseconds(100500));
  // 2500 events over 100 s, reported once: 25/s in every interval.
  steady.Report(start + seconds(100), 2500.0);
  EwmaMeter::Rates rates = steady.Read();
  EXPECT_EQ(rates.count, 2500u);
  EXPECT_NEAR(rates.m1_rate, 25.0, 1e-9);
  EXPECT_NEAR(rates.m15_rate, 25.0, 1e-9);

  // A drain that ended at 4 s, then nothing: all in the first interval.
  EwmaMeter burst(&clock);  // starts now
  const Clock::TimePoint burst_start = clock.Now();
  clock.Advance(milliseconds(60500));
  burst.Report(burst_start + seconds(4), 100.0);
  burst.Report(clock.Now(), 100.0);
  EXPECT_NEAR(burst.Read().m1_rate, 20 * Decay(60, 11), 1e-9);

  // Fractional totals count whole events; float drift just below an integer
  // counts as it; a total never falls.
  EwmaMeter drain(&clock);
  drain.Report(clock.Now(), 2.7);
  EXPECT_EQ(drain.count(), 2u);
  drain.Report(clock.Now(), 3.0 - 1e-9);
  EXPECT_EQ(drain.count(), 3u);
  drain.Report(clock.Now(), 1.0);
  EXPECT_EQ(drain.count(), 3u);
}

// BusMeters fed by CapacityModel on FakeClock, as KillBillSim feeds them:
// observe after every advance, observe before a post.
class SimBusMetersTest : public ::testing::Test {
 protected:
  SimBusMetersTest() : model_(&clock_, Options()), meters_(&clock_, model_) {}
  static CapacityModelOptions Options() {
    CapacityModelOptions options;
    options.bus_drain = 25;
    options.degrade = false;
    return options;
  }
  void Post(int64_t count) {
    model_.Advance();
    meters_.Observe(model_);
    model_.PostBusEvents(count);
    meters_.Posted(model_, static_cast<uint64_t>(count));
  }
  void AdvanceAndObserve(Clock::Duration d) {
    clock_.Advance(d);
    model_.Advance();
    meters_.Observe(model_);
  }

  FakeClock clock_;
  CapacityModel model_;
  BusMeters meters_;
};

// 100 events drained at 25/s took 4 s; an observation only a minute later
// still puts them in the first 5 s interval.
TEST_F(SimBusMetersTest, ABurstIsDispatchedWhenItWasDrained) {
  Post(100);
  AdvanceAndObserve(milliseconds(60500));
  const EwmaMeter::Rates dispatched = meters_.ReadDispatched();
  EXPECT_EQ(dispatched.count, 100u);
  EXPECT_EQ(dispatched.count, model_.bus_dispatched_total());
  EXPECT_NEAR(dispatched.m1_rate, 20 * Decay(60, 11), 1e-9);
  EXPECT_NEAR(dispatched.mean_rate, 100 / 60.5, 1e-9);
  EXPECT_DOUBLE_EQ(meters_.handler_seconds(), 1 / 25.0);
  const EwmaMeter::Rates posted = meters_.ReadPosted();
  EXPECT_EQ(posted.count, 100u);
  EXPECT_NEAR(posted.m1_rate, 20 * Decay(60, 11), 1e-9);
}

// Posting 30/s into a bus that drains 25/s: dispatch runs at the drain, the
// backlog is the difference, and the handler time follows a settings change.
TEST_F(SimBusMetersTest, SteadyOverloadDispatchesAtTheDrain) {
  for (int i = 0; i < 30 * 300; ++i) {  // 5 minutes
    clock_.Advance(std::chrono::nanoseconds(1'000'000'000 / 30));
    Post(1);
  }
  AdvanceAndObserve(milliseconds(1));
  const EwmaMeter::Rates posted = meters_.ReadPosted();
  const EwmaMeter::Rates dispatched = meters_.ReadDispatched();
  EXPECT_NEAR(posted.m1_rate, 30, 0.3);
  EXPECT_NEAR(dispatched.m1_rate, 25, 0.25);
  EXPECT_NEAR(dispatched.m15_rate, 25, 0.25);
  EXPECT_EQ(posted.count, model_.bus_posted_total());
  EXPECT_EQ(dispatched.count, model_.bus_dispatched_total());
  EXPECT_EQ(static_cast<int64_t>(posted.count - dispatched.count),
            model_.BusBacklog());

  CapacityModelOptions slower = Options();
  slower.bus_drain = 10;
  model_.set_options(slower);
  meters_.Observe(model_);
  AdvanceAndObserve(seconds(1));
  EXPECT_DOUBLE_EQ(meters_.handler_seconds(), 0.1);
}

}  // namespace
}  // namespace bg::sim
