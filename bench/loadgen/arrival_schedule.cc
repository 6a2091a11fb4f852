#include "bench/loadgen/arrival_schedule.h"

#include <cmath>

namespace bg::loadgen {

ArrivalSchedule::ArrivalSchedule(double rate_per_second,
                                 std::chrono::nanoseconds duration,
                                 int64_t burst)
    : rate_(rate_per_second > 0 ? rate_per_second : 0),
      burst_(burst > 0 ? burst : 0) {
  const double seconds = duration.count() > 0 ? duration.count() / 1e9 : 0.0;
  // The small epsilon keeps 30/s * 10 s at 300 despite floating-point error.
  const int64_t paced =
      static_cast<int64_t>(std::floor(rate_ * seconds + 1e-9));
  size_ = burst_ + paced;
}

std::chrono::nanoseconds ArrivalSchedule::DueAt(int64_t i) const {
  if (i < burst_ || rate_ <= 0) return std::chrono::nanoseconds(0);
  const double k = static_cast<double>(i - burst_);
  return std::chrono::nanoseconds(std::llround(k / rate_ * 1e9));
}

}  // namespace bg::loadgen
