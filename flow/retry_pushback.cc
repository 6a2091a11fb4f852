#include "flow/retry_pushback.h"

#include <algorithm>

namespace bg::flow {
namespace {

uint64_t SeedOf(uint64_t seed) {
  if (seed != 0) return seed;
  std::random_device device;
  return (static_cast<uint64_t>(device()) << 32) ^ device();
}

}  // namespace

RetryPushback::RetryPushback(Clock* clock, Options options)
    : clock_(clock),
      opt_(options),
      rng_(SeedOf(options.seed)),
      next_free_(clock->Now()) {}

Clock::Duration RetryPushback::Next(Clock::Duration earliest,
                                    double serve_per_s) {
  const Clock::TimePoint now = clock_->Now();
  earliest = std::clamp(earliest, opt_.min, opt_.max);
  const Clock::TimePoint turn = std::max(next_free_, now + earliest);
  const Clock::Duration spacing =
      serve_per_s > 0
          ? std::min<Clock::Duration>(FromSeconds(1 / serve_per_s), opt_.max)
          : opt_.max;
  const bool at_max = turn + spacing > now + opt_.max;
  next_free_ = std::min(turn + spacing, now + opt_.max);
  // Distinct turns are kept as they are: the callers return in order at the
  // pace the rate serves them. Once the turns pile up at the maximum, the
  // wait beyond `earliest` is shortened by up to `jitter` of itself, so those
  // callers do not return together (and none before `earliest`).
  const double beyond = ToSeconds(turn - now - earliest);
  const double window = at_max ? opt_.jitter * beyond : 0.0;
  const double u = std::uniform_real_distribution<double>(0, 1)(rng_);
  return std::clamp(earliest + FromSeconds(beyond - window * u), opt_.min,
                    opt_.max);
}

Clock::Duration RetryPushback::booked() const {
  return std::max(next_free_ - clock_->Now(), Clock::Duration::zero());
}

}  // namespace bg::flow
