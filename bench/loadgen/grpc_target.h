// GrpcTarget: calls billing.v1.BillingGateway with the callback stub API, one
// RPC per operation: CreateAccount (register_tagged with the AUTO_PAY_OFF tag,
// register_untagged without), CreateSubscription {account.external_key,
// plan_name basic-monthly, instance_id} (subscribe) and GetBillingOverview
// {account.external_key} (overview).
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
  std::string key_prefix;  // external_key = key_prefix + seq
};

class GrpcTarget final : public Target {
 public:
  explicit GrpcTarget(GrpcTargetOptions options);
  ~GrpcTarget() override;

  void Start(const CallSpec& call, Done done) override;
  void Shutdown() override;

 private:
  template <typename Request, typename Response>
  struct Call;

  // Sends `call` with `invoke(stub, context, request, response, on_done)` and
  // classifies its answer.
  template <typename Request, typename Response, typename Invoke>
  void Launch(int64_t seq, std::unique_ptr<Call<Request, Response>> call,
              Invoke invoke);
  std::chrono::system_clock::time_point Deadline() const;

  const GrpcTargetOptions options_;
  std::vector<std::unique_ptr<billing::v1::BillingGateway::Stub>> stubs_;
  absl::Mutex mu_;
  int64_t in_flight_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace bg::loadgen
