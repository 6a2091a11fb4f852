// WindowedCounter: counters summed over a sliding time window, kept in a ring
// of time buckets (the call-outcome window of CircuitBreaker, RetryBudget's
// calls and retries, DrainRate's drained jobs and busy time).
//
// `Counts` is a small struct of numbers (integers, doubles, Clock::Duration)
// whose value-initialized state is all zero and which has `operator+=`.
// A window of length `window` is split into kBuckets buckets of width
// max(window / kBuckets, 1 tick). Bucket i covers [i * width, (i + 1) * width)
// of the time since the clock's epoch and lives in ring slot i % kBuckets; a
// slot still holding an older bucket is reset when a newer one is added to.
// Sum(now) adds up the current bucket and the kBuckets - 1 before it, so an
// add at time t counts until the start of bucket index(t) + kBuckets: between
// kBuckets - 1 and kBuckets bucket widths after t, and exactly kBuckets widths
// (the window, when it divides evenly) after a bucket start.
//
// AddSpan adds a stretch of time (e.g. busy time) to a Duration field of every
// bucket it overlaps, each getting its share.
//
// It never reads a clock: the owner passes the time in (normally its injected
// bg::Clock's Now(), read under the owner's lock so that the times it passes
// never go backwards).
//
// Thread-safety: thread-compatible (no internal lock); owners that share it
// across threads serialize access under their own lock.
#pragma once

#include <algorithm>
#include <array>
#include <cstdint>
#include <limits>

#include "common/clock.h"

namespace bg::flow {

template <typename Counts, int kBuckets = 10>
class WindowedCounter {
  static_assert(kBuckets > 0, "a window needs at least one bucket");

 public:
  // `window`: the length the buckets split; a window of less than kBuckets
  // ticks still gets kBuckets buckets of one tick.
  explicit WindowedCounter(Clock::Duration window)
      : window_(window),
        width_(
            std::max<Clock::Duration>(window / kBuckets, Clock::Duration(1))) {}

  // Adds `delta` to the bucket `now` falls in.
  void Add(Clock::TimePoint now, const Counts& delta) {
    At(IndexOf(now)) += delta;
  }

  // Adds the time in [from, to) to `field` of the buckets it falls in, each
  // bucket the part inside it; Sum(to) then holds the part of the span inside
  // the live buckets. Parts already expired at `to` (before its oldest live
  // bucket) are dropped, so a span longer than the window costs at most
  // kBuckets steps and never clobbers a live bucket's ring slot; so are parts
  // more than `window` before `to` (which only bites when the window is under
  // kBuckets ticks). No-op when to <= from.
  void AddSpan(Clock::TimePoint from, Clock::TimePoint to,
               Clock::Duration Counts::*field) {
    if (to <= from) return;
    const Clock::TimePoint oldest_live((IndexOf(to) - (kBuckets - 1)) * width_);
    Clock::TimePoint t = std::max({from, to - window_, oldest_live});
    while (t < to) {
      const int64_t index = IndexOf(t);
      const Clock::TimePoint end =
          std::min(Clock::TimePoint((index + 1) * width_), to);
      At(index).*field += end - t;
      t = end;
    }
  }

  // Sum over the live buckets at `now`: the current one and the kBuckets - 1
  // before it.
  Counts Sum(Clock::TimePoint now) const {
    const int64_t current = IndexOf(now);
    Counts total{};
    for (const Bucket& b : buckets_) {
      if (b.index == kEmpty || current - b.index >= kBuckets) continue;
      total += b.counts;
    }
    return total;
  }

  // Forgets everything.
  void Clear() { buckets_.fill(Bucket{}); }

  Clock::Duration window() const { return window_; }
  Clock::Duration bucket_width() const { return width_; }

 private:
  static constexpr int64_t kEmpty = std::numeric_limits<int64_t>::min();
  struct Bucket {
    int64_t index = kEmpty;  // bucket id (time / width); kEmpty: never used
    Counts counts{};
  };

  // Floor division, so that times before the clock's epoch still map to one
  // bucket per width.
  int64_t IndexOf(Clock::TimePoint t) const {
    const Clock::Duration::rep ticks = t.time_since_epoch().count();
    const Clock::Duration::rep width = width_.count();
    return ticks >= 0 ? ticks / width : -((-(ticks + 1)) / width) - 1;
  }
  // The bucket `index`, reset first if its slot holds another one.
  Counts& At(int64_t index) {
    const int64_t slot = ((index % kBuckets) + kBuckets) % kBuckets;
    Bucket& b = buckets_[static_cast<size_t>(slot)];
    if (b.index != index) b = Bucket{index, Counts{}};
    return b.counts;
  }

  Clock::Duration window_;
  Clock::Duration width_;
  std::array<Bucket, kBuckets> buckets_;
};

}  // namespace bg::flow
