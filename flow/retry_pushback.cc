#include "flow/retry_pushback.h"

#include <algorithm>
#include <cmath>

#include "absl/hash/hash.h"

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
      next_free_(clock->Now()) {
  const size_t holders = std::max<size_t>(opt_.max_holders, 1);
  holders_.reserve(holders);
  ring_.resize(holders);
}

uint64_t RetryPushback::Identity(std::string_view key) {
  if (key.empty()) return 0;
  const uint64_t h = absl::Hash<std::string_view>()(key);
  return h == 0 ? 1 : h;
}

void RetryPushback::DropExpired(Clock::TimePoint now) {
  while (ring_size_ > 0) {
    const Booking& oldest = ring_[ring_head_];
    auto it = holders_.find(oldest.identity);
    const bool live =
        it != holders_.end() && it->second.booking == oldest.booking;
    if (live && it->second.turn + opt_.late >= now) return;
    if (live) holders_.erase(it);
    ring_head_ = (ring_head_ + 1) % ring_.size();
    --ring_size_;
  }
}

void RetryPushback::Remember(uint64_t identity, Clock::TimePoint turn) {
  if (ring_size_ == ring_.size()) {  // full: forget the oldest booking
    const Booking& oldest = ring_[ring_head_];
    auto it = holders_.find(oldest.identity);
    if (it != holders_.end() && it->second.booking == oldest.booking) {
      holders_.erase(it);
    }
    ring_head_ = (ring_head_ + 1) % ring_.size();
    --ring_size_;
  }
  const uint64_t booking = ++bookings_;
  ring_[(ring_head_ + ring_size_) % ring_.size()] = Booking{identity, booking};
  ++ring_size_;
  holders_.insert_or_assign(identity, Holder{turn, booking});
}

RetryPushback::Standing RetryPushback::StandingOf(uint64_t identity) {
  const Clock::TimePoint now = clock_->Now();
  DropExpired(now);
  if (identity == 0) return Standing::kNewcomer;
  auto it = holders_.find(identity);
  if (it == holders_.end() || it->second.turn + opt_.late < now) {
    return Standing::kNewcomer;
  }
  return now + opt_.early >= it->second.turn ? Standing::kDue
                                             : Standing::kEarly;
}

void RetryPushback::Forget(uint64_t identity) {
  // The ring's booking goes stale and is dropped when it reaches the front.
  if (identity != 0) holders_.erase(identity);
}

size_t RetryPushback::Promised(size_t ahead, double serve_per_s) const {
  const double booked_s = ToSeconds(booked());
  if (booked_s <= 0 || serve_per_s <= 0) return 0;
  // The turns lie one 1 / serve_per_s apart before next_free; the epsilon
  // keeps 0.2 s at 10/s two spacings, not three.
  const double turns = std::ceil(booked_s * serve_per_s - 1e-9) - 1;
  if (turns <= 0) return 0;
  return turns >= static_cast<double>(ahead) ? ahead
                                             : static_cast<size_t>(turns);
}

Clock::Duration RetryPushback::Next(Clock::Duration earliest,
                                    double serve_per_s, uint64_t identity) {
  const Clock::TimePoint now = clock_->Now();
  earliest = std::clamp(earliest, opt_.min, opt_.max);
  DropExpired(now);
  if (identity != 0) {
    // A caller early for its turn keeps it, if the reason lets it wait so
    // long.
    auto it = holders_.find(identity);
    if (it != holders_.end() && it->second.turn >= now + earliest) {
      return std::clamp(it->second.turn - now, opt_.min, opt_.max);
    }
  }
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
  const Clock::Duration pushback = std::clamp(
      earliest + FromSeconds(beyond - window * u), opt_.min, opt_.max);
  if (identity != 0) Remember(identity, now + pushback);
  return pushback;
}

Clock::Duration RetryPushback::booked() const {
  return std::max(next_free_ - clock_->Now(), Clock::Duration::zero());
}

}  // namespace bg::flow
