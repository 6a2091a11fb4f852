#include "bench/killbill_sim/bus_meters.h"

#include <algorithm>

namespace bg::sim {

double BusMeters::DrainRate(const CapacityModel& model) {
  return model.options().bus_drain * model.CapacityFactor();
}

BusMeters::BusMeters(const Clock* clock, const CapacityModel& model)
    : posted_(clock),
      dispatched_(clock),
      observed_at_(model.time()),
      observed_drained_(model.bus_drained_total()),
      observed_rate_(DrainRate(model)),
      handler_seconds_(model.options().bus_drain > 0
                           ? 1.0 / model.options().bus_drain
                           : 0.0) {}

void BusMeters::Observe(const CapacityModel& model) {
  const Clock::TimePoint now = std::max(model.time(), observed_at_);
  const double drained = model.bus_drained_total();
  if (drained > observed_drained_ && observed_rate_ > 0) {
    Clock::TimePoint until = now;
    if (model.BusBacklogExact() <= 0) {  // it emptied on the way
      until = std::min(
          now, observed_at_ +
                   FromSeconds((drained - observed_drained_) / observed_rate_));
    }
    dispatched_.Report(until, drained);
    handler_seconds_ = 1.0 / observed_rate_;
  }
  dispatched_.Report(now, drained);  // flat from `until`
  observed_at_ = now;
  observed_drained_ = drained;
  observed_rate_ = DrainRate(model);
}

void BusMeters::Posted(const CapacityModel& model, uint64_t count) {
  if (count > 0) posted_.Mark(count);
  // The backlog may have crossed degrade_threshold.
  observed_rate_ = DrainRate(model);
}

}  // namespace bg::sim
