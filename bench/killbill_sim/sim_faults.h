// SimFaults: the faults killbill-sim injects into Kill Bill calls (/1.0/**
// only; /sim/** is never affected), what is in force now, and the random draws
// that pick the calls a rate-based fault hits.
//
// clang-format off
//   fault          what a client sees
//   -------------  ------------------------------------------------------------
//   outage refuse  The listening socket is closed for outage_seconds: new
//                  connections are refused, kept-alive ones are closed, calls in
//                  flight are reset and their work is abandoned. Then the same
//                  port is bound again. /sim/ is unreachable meanwhile, so
//                  outage_seconds is required; clearing ends it early.
//   outage 503     Every call answers 503 (text body) at once, for
//                  outage_seconds or until cleared.
//   stall          Calls arriving before the stall ends wait for it, then
//                  proceed.
//   error_rate p   With probability p: 500 with a Kill Bill error body, no work
//                  done.
//   garbage_rate p With probability p: 200, Content-Type application/json, a
//                  body that is not JSON, no work done.
//   reset_rate p   With probability p: the call is fully processed (an account
//                  IS created), then the connection is reset (RST) before any
//                  response byte: the client cannot tell whether it happened.
//   hold_created   Until hold_created_seconds have passed (or the fault is
//                  cleared), an account creation commits the account, then
//                  holds its 201 back: a client killed meanwhile never learns
//                  that Kill Bill created it. The keys held are remembered with
//                  the 409s later answered for them (at most kMaxHeldKeys).
// clang-format on
//
// This class keeps the state and makes the draws; KillBillSim acts on them
// (closes the listener, waits out a stall, aborts calls in flight).
//
// Thread-safety: thread-compatible. KillBillSim holds its mutex around every
// call.
#pragma once

#include <map>
#include <optional>
#include <random>
#include <string>

#include "absl/status/status.h"
#include "common/clock.h"

namespace bg::sim {

enum class OutageMode { kNone, kRefuse, k503 };

// "refuse", "503", or "" for kNone: the names /sim/faults and /sim/stats use.
const char* OutageModeName(OutageMode mode);

// One change of the faults (POST /sim/faults, KillBillSim::InjectFaults).
// Fields left at their defaults change nothing, except that `clear` first ends
// every fault. The factories below build the common single-fault requests.
struct FaultRequest {
  // End any outage and stall and set every rate to 0, then apply the rest.
  bool clear = false;
  // Start this outage (kNone: leave the current one as it is).
  OutageMode outage = OutageMode::kNone;
  // How long the outage lasts; 0 = until cleared (503 only: a refuse outage
  // needs > 0).
  double outage_seconds = 0;
  // Start a stall of this length now (0: no new stall).
  double stall_seconds = 0;
  // New rates in [0, 1]; unset = unchanged (0 after `clear`).
  std::optional<double> error_rate;
  std::optional<double> garbage_rate;
  std::optional<double> reset_rate;
  // Start holding created accounts' 201s for this long (0: no new hold).
  double hold_created_seconds = 0;

  static FaultRequest Clear();
  static FaultRequest RefuseOutage(double seconds);
  static FaultRequest Outage503(double seconds = 0);
  static FaultRequest Stall(double seconds);
  static FaultRequest ErrorRate(double p);
  static FaultRequest GarbageRate(double p);
  static FaultRequest ResetRate(double p);
  static FaultRequest HoldCreated(double seconds);
};

// One key whose 201 the hold_created fault held back.
struct HeldKey {
  // 409s (key taken) answered for this key after its 201 was held.
  int conflicts_after = 0;
};

// The faults in force at one moment (GET /sim/stats "faults").
struct FaultState {
  OutageMode outage = OutageMode::kNone;
  // -1 while the outage lasts until cleared.
  double outage_remaining_s = 0;
  double stall_remaining_s = 0;
  double error_rate = 0;
  double garbage_rate = 0;
  double reset_rate = 0;
  double hold_created_remaining_s = 0;
  // 201s held back now, and since start.
  int holding_now = 0;
  uint64_t held_total = 0;
  // The keys held so far (the first kMaxHeldKeys), by key.
  std::map<std::string, HeldKey> held_keys;
};

class SimFaults {
 public:
  // What the rate-based faults decided for one call.
  enum class Draw { kNone, kError500, kGarbage, kReset };

  explicit SimFaults(uint64_t seed) : rng_(seed) {}

  // Validates the whole request, then applies it at `now`; on error nothing
  // changes.
  absl::Status Apply(const FaultRequest& request, Clock::TimePoint now);
  void Reseed(uint64_t seed) { rng_.seed(seed); }

  // A refuse outage is set and has not run out.
  bool RefuseOutageActive(Clock::TimePoint now) const;
  // A refuse outage is set (whether or not it has run out).
  bool RefuseOutageSet() const { return outage_ == OutageMode::kRefuse; }
  // Forgets a refuse outage once the listener is back.
  void EndRefuseOutage();
  bool Outage503Active(Clock::TimePoint now) const;
  Clock::TimePoint outage_until() const { return outage_until_; }
  Clock::TimePoint stall_until() const { return stall_until_; }
  Clock::TimePoint hold_created_until() const { return hold_created_until_; }

  // hold_created: whether a creation committed at `now` holds its 201 back.
  bool HoldsCreated(Clock::TimePoint now) const {
    return now < hold_created_until_;
  }
  // A 201 for `key` starts being held; one held 201 is let go.
  void Held(const std::string& key);
  void Released() { --holding_now_; }
  // A creation for `key` was answered 409.
  void Conflict(const std::string& key);

  static constexpr size_t kMaxHeldKeys = 10000;

  // Draws for one call that passed the outage and stall checks: an injected
  // error, garbage, a reset after processing, or nothing. Draws only for the
  // rates that are > 0, in that order, so a seed replays the same choices.
  Draw DrawForCall();

  FaultState State(Clock::TimePoint now) const;

 private:
  OutageMode outage_ = OutageMode::kNone;
  Clock::TimePoint outage_until_;
  Clock::TimePoint stall_until_;
  double error_rate_ = 0;
  double garbage_rate_ = 0;
  double reset_rate_ = 0;
  Clock::TimePoint hold_created_until_;
  int holding_now_ = 0;
  uint64_t held_total_ = 0;
  std::map<std::string, HeldKey> held_keys_;
  std::mt19937_64 rng_;
};

}  // namespace bg::sim
