// ArrivalSchedule: when each open-loop arrival is due, relative to the start of
// the run.
//
// `burst` arrivals are due at offset 0 (a spike, scenario S4), then `rate`
// arrivals per second for `duration`, evenly spaced: arrival burst+k is due at
// k / rate. Arrivals are fixed in advance and never wait for answers, so a slow
// server cannot hide missed arrivals (coordinated omission): the runner
// measures latency from the due time, not the send time.
//
// Thread-safety: immutable after construction.
#pragma once

#include <chrono>
#include <cstdint>

namespace bg::loadgen {

class ArrivalSchedule {
 public:
  ArrivalSchedule() = default;
  // `rate_per_second` >= 0, `duration` >= 0, `burst` >= 0; rate 0 means burst
  // only.
  ArrivalSchedule(double rate_per_second, std::chrono::nanoseconds duration,
                  int64_t burst);

  // Total number of arrivals: burst + floor(rate * duration seconds).
  int64_t size() const { return size_; }
  // Offset of arrival `i` (0 <= i < size()) from the start of the run.
  std::chrono::nanoseconds DueAt(int64_t i) const;

  double rate_per_second() const { return rate_; }
  int64_t burst() const { return burst_; }

 private:
  double rate_ = 0;
  int64_t burst_ = 0;
  int64_t size_ = 0;
};

}  // namespace bg::loadgen
