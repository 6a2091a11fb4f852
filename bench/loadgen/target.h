// Target: where billing-loadgen sends its calls. One implementation per
// protocol (GrpcTarget: billing.v1.BillingGateway/CreateAccount; HttpTarget:
// Kill Bill REST directly or through a proxy).
//
// Thread-safety: Start() may be called from any thread, including from inside a
// `done` callback; implementations never block in Start() beyond a short lock.
#pragma once

#include <cstdint>
#include <functional>

#include "bench/loadgen/outcome.h"

namespace bg::loadgen {

class Target {
 public:
  using Done = std::function<void(const CallResult&)>;

  virtual ~Target() = default;

  // Starts one account creation numbered `seq` (unique within the run; it makes
  // the external key unique). Calls `done` exactly once, from a thread of the
  // target (gRPC callback or HTTP worker). Callers must not rely on it never
  // running before Start() returns: the runner sends the follow-up call after
  // an error through its timer thread for that reason.
  virtual void Start(int64_t seq, Done done) = 0;

  // Stops accepting calls and joins the target's threads. Calls still running
  // finish first (each is bounded by its deadline).
  virtual void Shutdown() = 0;
};

}  // namespace bg::loadgen
