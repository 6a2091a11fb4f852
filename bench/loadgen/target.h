// Target: where billing-loadgen sends its calls. One implementation per
// protocol (GrpcTarget: billing.v1.BillingGateway; HttpTarget: Kill Bill REST
// directly or through a proxy). Each call is one operation of operation_mix.h:
// a registration (tagged or not), a subscription creation or a billing
// overview read.
//
// Thread-safety: Start() may be called from any thread, including from inside a
// `done` callback; implementations never block in Start() beyond a short lock.
#pragma once

#include <cstdint>
#include <functional>

#include "bench/loadgen/operation_mix.h"
#include "bench/loadgen/outcome.h"

namespace bg::loadgen {

// One call: what to do and on which keys.
struct CallSpec {
  // Unique within the run: registrations use it for the new account's
  // external key (key prefix + seq), subscriptions for the instance id.
  int64_t seq = 0;
  Operation op = Operation::kRegisterTagged;
  // subscribe / overview: the `seq` of the registration that created the
  // account to act on (its external key is key prefix + account_seq).
  int64_t account_seq = -1;
};

class Target {
 public:
  using Done = std::function<void(const CallResult&)>;

  virtual ~Target() = default;

  // Starts one call. Calls `done` exactly once, from a thread of the target
  // (gRPC callback or HTTP worker). Callers must not rely on it never running
  // before Start() returns: the runner sends the follow-up call after an error
  // through its timer thread for that reason.
  virtual void Start(const CallSpec& call, Done done) = 0;

  // Stops accepting calls and joins the target's threads. Calls still running
  // finish first (each is bounded by its deadline).
  virtual void Shutdown() = 0;
};

}  // namespace bg::loadgen
