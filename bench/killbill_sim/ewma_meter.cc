#include "bench/killbill_sim/ewma_meter.h"

#include <algorithm>
#include <cmath>

namespace bg::sim {
namespace {

constexpr double kTickSeconds = 5.0;
// A total this close below an integer counts as it (CapacityModel's BusBacklog
// tolerance).
constexpr double kCountTolerance = 1e-6;

double Alpha(double minutes) {
  return 1.0 - std::exp(-kTickSeconds / 60.0 / minutes);
}

}  // namespace

void EwmaMeter::Ewma::Tick(double instant_rate) {
  if (initialized) {
    rate += alpha * (instant_rate - rate);
  } else {
    rate = instant_rate;
    initialized = true;
  }
}

EwmaMeter::EwmaMeter(const Clock* clock)
    : clock_(clock),
      start_(clock->Now()),
      next_tick_(start_ + kTickInterval),
      reported_at_(start_),
      m1_{Alpha(1)},
      m5_{Alpha(5)},
      m15_{Alpha(15)} {}

uint64_t EwmaMeter::CountOf(double total) {
  if (!(total > 0)) return 0;
  return static_cast<uint64_t>(std::floor(total + kCountTolerance));
}

void EwmaMeter::TickBefore(Clock::TimePoint until, Clock::TimePoint at,
                           double total) {
  const double span = ToSeconds(at - reported_at_);
  while (next_tick_ < until) {
    // The total at the boundary, on the line from the last report to `at`.
    double at_boundary = total;
    if (next_tick_ < at && span > 0) {
      const double f =
          std::max(0.0, ToSeconds(next_tick_ - reported_at_)) / span;
      at_boundary = total_ + (total - total_) * f;
    }
    const uint64_t count = std::max(counted_, CountOf(at_boundary));
    const double instant = static_cast<double>(count - counted_) / kTickSeconds;
    counted_ = count;
    m1_.Tick(instant);
    m5_.Tick(instant);
    m15_.Tick(instant);
    next_tick_ += kTickInterval;
  }
}

void EwmaMeter::Report(Clock::TimePoint at, double total) {
  at = std::max(at, reported_at_);
  total = std::max(total, total_);
  // Boundaries before `at` close on this line; one exactly at `at` closes
  // later, with whatever else happens at that instant.
  TickBefore(at, at, total);
  reported_at_ = at;
  total_ = total;
}

void EwmaMeter::Mark(uint64_t n) {
  const Clock::TimePoint now = clock_->Now();
  Report(now, total_);  // flat until now
  Report(now, total_ + static_cast<double>(n));
}

EwmaMeter::Rates EwmaMeter::Read() {
  const Clock::TimePoint now = std::max(clock_->Now(), reported_at_);
  TickBefore(now, reported_at_, total_);  // flat since the last report
  Rates rates;
  rates.count = count();
  const double elapsed = ToSeconds(now - start_);
  rates.mean_rate = rates.count > 0 && elapsed > 0
                        ? static_cast<double>(rates.count) / elapsed
                        : 0.0;
  rates.m1_rate = m1_.rate;
  rates.m5_rate = m5_.rate;
  rates.m15_rate = m15_.rate;
  return rates;
}

}  // namespace bg::sim
