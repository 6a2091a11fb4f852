// BusMeters: the main bus's posted and dispatched meters behind killbill-sim's
// GET /1.0/metrics timers, fed from CapacityModel.
//
// Posts are steps (Posted()). Dispatch is continuous in the model: Observe(),
// called after every advance of the model, reports its drained total to the
// dispatch meter as having grown linearly since the previous observation, at
// the drain rate then in force (bus_drain * capacity factor), until now or
// until the backlog emptied, whichever came first. Nothing is posted between
// two observations (the owner observes before posting) and the drain rate
// changes only with the backlog past degrade_threshold or with the settings
// (the owner observes around set_options), so the line is exact below
// degrade_threshold and a close approximation above it. The dispatch meter's
// count is CapacityModel::bus_dispatched_total().
//
// Thread-safety: thread-compatible. KillBillSim holds its mutex around calls.
#pragma once

#include <cstdint>

#include "bench/killbill_sim/capacity_model.h"
#include "bench/killbill_sim/ewma_meter.h"
#include "common/clock.h"

namespace bg::sim {

class BusMeters {
 public:
  // `model` is observed as it is now; `clock` is the model's.
  BusMeters(const Clock* clock, const CapacityModel& model);

  // After model.Advance() (or set_options): the drain since the last call.
  void Observe(const CapacityModel& model);
  // After model.PostBusEvents(count), the model having been observed at its
  // time just before.
  void Posted(const CapacityModel& model, uint64_t count);

  EwmaMeter::Rates ReadPosted() { return posted_.Read(); }
  EwmaMeter::Rates ReadDispatched() { return dispatched_.Read(); }
  // Seconds one main-bus event took to handle at the last dispatch observed:
  // 1 / (bus_drain * capacity factor). 1 / bus_drain before any.
  double handler_seconds() const { return handler_seconds_; }

 private:
  static double DrainRate(const CapacityModel& model);

  EwmaMeter posted_;
  EwmaMeter dispatched_;
  Clock::TimePoint observed_at_;
  double observed_drained_;
  // Events/s at observed_at_.
  double observed_rate_;
  double handler_seconds_;
};

}  // namespace bg::sim
