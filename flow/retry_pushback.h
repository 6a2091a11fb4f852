// RetryPushback: the appointment book behind every retry pushback the
// admission queue hands out (`grpc-retry-pushback-ms`), and the memory of who
// holds which turn.
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
// away faster than the rate serves them and empties when they are not.
//
// Fair turns. A turn is only worth something if the place it was booked for
// is still free when its holder comes back: a caller that has just succeeded
// and sends its next request at once (a newcomer) would otherwise take it
// about half the time, and the returning caller, turned away again, would go
// to the back of the book (at 1,000 callers, 369 never succeeded in 60 s). So
// the book remembers who holds each turn, by the request's identity (a 64-bit
// hash of its idempotency key: a retry of the same request carries the same
// key), and the queue asks it, per arrival, for the caller's Standing (a
// request without a key is a kNewcomer here, and the queue serves it first
// come, first served, asking no room for the book's promises):
// clang-format off
//   kDue       holds a turn and now >= turn - early      admitted on the queue as it is
//   kEarly     holds a turn that is further ahead        as a newcomer; keeps its turn if turned away
//   kNewcomer  holds none (or it expired: turn + late)   must leave room for the book's promises
// clang-format on
// The places the book has promised: a newcomer is admitted only if the queue
// still fits its deadline with Promised(ahead) more jobs in front of it: the
// turns that fall due while the `ahead` jobs in front of it drain (ahead /
// serve_per_s), each of which needs a place while the newcomer holds one:
// clang-format off
//   Promised(ahead) = min(ahead, ceil(booked * serve_per_s) - 1)
// clang-format on
// where booked = next_free - now (the turns lie one 1 / serve_per_s apart
// before next_free). While the book is full, a newcomer therefore finds room
// only when the queue is below half of what its deadline allows: the
// returning callers keep it above that, so newcomers are turned away and
// booked at the back, after the callers who waited before them. When callers
// do not come back for their turns (they gave up), the queue shrinks to half
// and newcomers take the places: never a dry queue for a book of no-shows. An
// estimate, not an account of each turn (it counts a sparse book as full and
// turns held by callers already served): it costs O(1) and no memory per
// turn, and it errs towards turning a newcomer away. Turns keep the spacing
// of the rate when they were booked: when the rate then rises (the adaptive
// rate climbing from its start), the later turns are further apart than the
// queue now drains, and newcomers take the places in between.
//
// A caller turned away keeps the turn it holds if that is no sooner than the
// reason's earliest retry (a caller a little early); otherwise (turned away at
// its turn: the rate fell since the turn was booked, or the breaker opened) it
// is booked a new turn at the end of the book.
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
// not return together, and none before `earliest`. The turn remembered is the
// jittered one the caller was told.
//
// Bounds: a pushback is never longer than `max`, nor than the time the current
// rate needs to serve every caller booked before this one (plus `earliest`);
// the book itself never reaches beyond now + max. The turns of the last
// `max_holders` bookings are remembered, no more (a flat hash map and a ring
// of bookings of that size, allocated at construction: about 70 bytes per
// booking, about 1 MiB at the default 16,384): when the ring is full, the
// oldest booking is forgotten (if still held, its holder is a newcomer when it
// comes back: one more rejection for it, not a storm). At the default that
// takes more than 16,384 rejections within one turn's life (at most max +
// late, 65 s): 250 a second. A turn is forgotten `late` after it fell due.
// Every call is O(1) amortized and allocates nothing.
//
// Thread-safety: thread-compatible (no lock of its own): the AdmissionQueue
// calls it under its own mutex.
#pragma once

#include <cstddef>
#include <cstdint>
#include <random>
#include <string_view>
#include <vector>

#include "absl/container/flat_hash_map.h"
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
    // How much before its turn a caller still counts as at its turn: the
    // pushback travels in whole milliseconds and clients' timers are coarse.
    Clock::Duration early = std::chrono::milliseconds(10);
    // How long after its turn a caller still holds it (a late, slow or
    // rescheduled client), after which it is forgotten.
    Clock::Duration late = std::chrono::seconds(5);
    // Bookings remembered (see the file comment).
    size_t max_holders = 16384;
  };

  enum class Standing { kNewcomer, kEarly, kDue };

  RetryPushback(Clock* clock, Options options);

  // The request identity the book keys turns by: a hash of `key` (0 for an
  // empty key: no identity). Pure; call it outside any lock.
  static uint64_t Identity(std::string_view key);

  // Where the caller with `identity` stands now (kNewcomer for 0).
  Standing StandingOf(uint64_t identity);
  // The caller with `identity` was admitted: its turn is used.
  void Forget(uint64_t identity);
  // Places of the queue the book has promised to the callers it turned away,
  // over the time a newcomer with `ahead` jobs in front of it would wait (see
  // the file comment).
  size_t Promised(size_t ahead, double serve_per_s) const;

  // The pushback for a caller turned away now: the turn it holds if that is no
  // sooner than `earliest`, else the next turn in the book (remembered for
  // `identity`). `earliest`: the reason's own earliest retry time from now;
  // `serve_per_s`: callers per second the current rate takes back (<= 0 is
  // treated as one per `max`).
  Clock::Duration Next(Clock::Duration earliest, double serve_per_s,
                       uint64_t identity = 0);

  // How far ahead of now the book is taken (0 when empty).
  Clock::Duration booked() const;
  // Turns remembered (expired ones included until they are dropped).
  size_t holders() const { return holders_.size(); }
  const Options& options() const { return opt_; }

 private:
  struct Holder {
    Clock::TimePoint turn;
    uint64_t booking;  // which booking of the ring this is
  };
  struct Booking {
    uint64_t identity;
    uint64_t booking;
  };
  // Drops expired turns and stale bookings from the front of the ring.
  void DropExpired(Clock::TimePoint now);
  void Remember(uint64_t identity, Clock::TimePoint turn);

  Clock* const clock_;
  const Options opt_;
  std::mt19937_64 rng_;
  Clock::TimePoint next_free_;
  absl::flat_hash_map<uint64_t, Holder> holders_;
  // Bookings in the order they were made (a ring of max_holders): the oldest
  // is forgotten first.
  std::vector<Booking> ring_;
  size_t ring_head_ = 0;
  size_t ring_size_ = 0;
  uint64_t bookings_ = 0;
};

}  // namespace bg::flow
