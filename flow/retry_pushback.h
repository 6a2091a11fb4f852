// RetryPushback: the appointment book behind every retry pushback the
// admission queue hands out (`grpc-retry-pushback-ms`).
//
// A pushback should say when a retry is likely to be admitted, not when the
// next slot frees: if every turned-away caller is told "the next slot", they
// all come back for that one slot and all but one are turned away again (83
// rejections per success at 300 callers with 5 s deadlines when the pushback
// was the time to the next token). Instead each turned-away caller is given
// its own turn: the book hands out return times one `1 / serve_per_s` apart,
// where serve_per_s is the rate at which the gateway can take callers back
// (the queue's drain rate, jobs/s). So:
// clang-format off
//   turn      = max(next_free, now + earliest)
//   next_free = turn + 1 / serve_per_s          (never beyond now + max)
//   pushback  = clamp(earliest + beyond - u * window, min, max)
//     beyond  = turn - now - earliest
//     window  = jitter * beyond when the turns have piled up at now + max,
//               else 0
// clang-format on
// `earliest` is what the reason itself says (time until the queue is short
// enough for the deadline, until it drained to half, until the breaker's next
// probe). The book is the demand the gateway is turning away against what the
// current rate can serve: it grows by 1 / serve_per_s per rejection and time
// eats it at one second per second, so it lengthens while callers are turned
// away faster than the rate serves them and empties when they are not. A
// caller that honours its pushback finds room about once in every turn, which
// bounds the rejections to about one per success plus one per caller that was
// turned away at the start.
//
// Jitter: u is uniform in [0, 1) from a seeded generator. Distinct turns are
// not jittered: they already spread the callers (the herd after a breaker's
// probe included) at exactly the pace the rate serves them, and jitter would
// scatter them into clumps in which someone finds the queue full again and
// goes to the back of the book (in a fake-clock closed loop of 300 callers
// with 5 s deadlines, jittering each turn by up to one turn raised the
// rejections of callers returning at their turn from 139 to 633 a minute).
// Once the book has reached `max`, every later caller's turn is `max`: their
// wait beyond `earliest` is shortened by up to `jitter` of itself, so they do
// not return together, and none before `earliest`.
//
// Bound: a pushback is never longer than `max`, nor than the time the current
// rate needs to serve every caller booked before this one (plus `earliest`);
// the book itself never reaches beyond now + max.
//
// Thread-safety: thread-compatible (no lock of its own): the AdmissionQueue
// calls it under its own mutex.
#pragma once

#include <cstdint>
#include <random>

#include "common/clock.h"

namespace bg::flow {

class RetryPushback {
 public:
  struct Options {
    // Bounds of every pushback: not so short that callers hammer, not so long
    // that they give up on a gateway that has recovered.
    Clock::Duration min = std::chrono::milliseconds(100);
    Clock::Duration max = std::chrono::seconds(60);
    // Fraction of a pushback it may be shortened by, in [0, 1).
    double jitter = 0.2;
    // Seed of the jitter; 0 draws one from std::random_device.
    uint64_t seed = 0;
  };

  RetryPushback(Clock* clock, Options options);

  // Books the next turn for a caller turned away now and returns its
  // pushback. `earliest`: the reason's own earliest retry time from now;
  // `serve_per_s`: callers per second the current rate takes back (<= 0 is
  // treated as one per `max`).
  Clock::Duration Next(Clock::Duration earliest, double serve_per_s);

  // How far ahead of now the book is taken (0 when empty).
  Clock::Duration booked() const;
  const Options& options() const { return opt_; }

 private:
  Clock* const clock_;
  const Options opt_;
  std::mt19937_64 rng_;
  Clock::TimePoint next_free_;
};

}  // namespace bg::flow
