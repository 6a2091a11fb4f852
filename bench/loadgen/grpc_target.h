// GrpcTarget: calls billing.v1.BillingGateway/CreateAccount with the callback
// stub API.
//
// Calls are spread round-robin over a few channels, each with its own
// subchannel pool so each gets its own TCP connection (one HTTP/2 connection
// carrying 1,000 streams would measure the connection, not the gateway). Every
// call carries its own deadline; rejection trailers
// (`billing-gateway-reject-reason`, `grpc-retry-pushback-ms`) are read back
// into the result.
//
// Thread-safety: Start() from any thread; `done` runs on a gRPC callback
// thread.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "bench/loadgen/target.h"
#include "billing/v1/billing_gateway.grpc.pb.h"

namespace bg::loadgen {

struct GrpcTargetOptions {
  std::string address;  // host:port
  int channels = 4;
  std::chrono::nanoseconds deadline = std::chrono::seconds(30);
  std::string key_prefix;        // external_key = key_prefix + seq
  bool tag_auto_pay_off = true;  // ask for ACCOUNT_TAG_AUTO_PAY_OFF
};

class GrpcTarget final : public Target {
 public:
  explicit GrpcTarget(GrpcTargetOptions options);
  ~GrpcTarget() override;

  void Start(int64_t seq, Done done) override;
  void Shutdown() override;

 private:
  struct Call;

  const GrpcTargetOptions options_;
  std::vector<std::unique_ptr<billing::v1::BillingGateway::Stub>> stubs_;
  absl::Mutex mu_;
  int64_t in_flight_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace bg::loadgen
