#include "gateway/service.h"

#include <atomic>
#include <string>

#include "absl/strings/cord.h"
#include "gateway/validation.h"

namespace bg::gateway {
namespace {

grpc::Status ToGrpc(const absl::Status& status) {
  return grpc::Status(static_cast<grpc::StatusCode>(status.code()),
                      std::string(status.message()));
}

}  // namespace

// One unary call: owns nothing of the request/response (gRPC does) and deletes itself in
// OnDone, after Finish.
class BillingGatewayService::Call final : public grpc::ServerUnaryReactor {
 public:
  Call(grpc::CallbackServerContext* context, GatewayMetrics* metrics, Method method,
       Clock* clock)
      : context_(context), metrics_(metrics), method_(method), clock_(clock),
        start_(clock->Now()) {}

  void OnCancel() override { cancelled_.store(true, std::memory_order_release); }
  void OnDone() override { delete this; }

  bool cancelled() const { return cancelled_.load(std::memory_order_acquire); }

  void Answer(const absl::Status& status, const char* reject_reason,
              Clock::Duration retry_pushback) {
    if (reject_reason != nullptr) {
      context_->AddTrailingMetadata(kRejectReasonKey, reject_reason);
      const auto ms =
          std::chrono::duration_cast<std::chrono::milliseconds>(retry_pushback).count();
      context_->AddTrailingMetadata(kRetryPushbackKey, std::to_string(ms > 0 ? ms : 1));
    }
    if (auto code = status.GetPayload(killbill::kKillBillCodePayload)) {
      context_->AddTrailingMetadata(kKillBillCodeKey, std::string(*code));
    }
    metrics_->RecordRequest(method_, status.code(), ToSeconds(clock_->Now() - start_));
    Finish(ToGrpc(status));
  }

 private:
  grpc::CallbackServerContext* const context_;
  GatewayMetrics* const metrics_;
  const Method method_;
  Clock* const clock_;
  const Clock::TimePoint start_;
  // Set by gRPC's thread in OnCancel, read by dispatcher threads: a lone flag, no ordering
  // with other data needed beyond acquire/release.
  std::atomic<bool> cancelled_{false};
};

Clock::TimePoint BillingGatewayService::DeadlineOf(
    const grpc::CallbackServerContext* context) const {
  const auto deadline = context->deadline();
  const auto now = std::chrono::system_clock::now();
  // gRPC reports "no deadline" as a far-future time point.
  if (deadline - now > std::chrono::hours(24 * 365)) return clock_->Now() + default_deadline_;
  return clock_->Now() + std::chrono::duration_cast<Clock::Duration>(deadline - now);
}

template <typename Request, typename Response, typename Work>
grpc::ServerUnaryReactor* BillingGatewayService::Handle(
    Method method, grpc::CallbackServerContext* context, const Request* request,
    Response* response, const absl::Status& valid, int expected_calls, Work work) {
  auto* call = new Call(context, metrics_, method, clock_);
  if (!valid.ok()) {
    call->Answer(valid, nullptr, {});
    return call;
  }
  Job job;
  job.method = method;
  job.expected_calls = expected_calls;
  job.deadline = DeadlineOf(context);
  job.cancelled = [call] { return call->cancelled(); };
  job.run = [call, request, response, work](KillBillCalls& calls) {
    auto result = work(*request, calls);
    if (result.ok()) *response = std::move(*result);
    call->Answer(result.status(), nullptr, {});
  };
  job.answer = [call](const absl::Status& status, const char* reason, Clock::Duration pushback) {
    call->Answer(status, reason, pushback);
  };
  dispatcher_->Submit(std::move(job));
  return call;
}

grpc::ServerUnaryReactor* BillingGatewayService::CreateAccount(
    grpc::CallbackServerContext* context, const billing::v1::CreateAccountRequest* request,
    billing::v1::CreateAccountResponse* response) {
  return Handle(Method::kCreateAccount, context, request, response,
                ValidateCreateAccount(*request), AccountOperations::ExpectedCalls(*request),
                [ops = operations_](const auto& req, KillBillCalls& calls) {
                  return ops->CreateAccount(req, calls);
                });
}

grpc::ServerUnaryReactor* BillingGatewayService::GetAccount(
    grpc::CallbackServerContext* context, const billing::v1::GetAccountRequest* request,
    billing::v1::Account* response) {
  return Handle(Method::kGetAccount, context, request, response, ValidateGetAccount(*request),
                /*expected_calls=*/1, [ops = operations_](const auto& req, KillBillCalls& calls) {
                  return ops->GetAccount(req, calls);
                });
}

}  // namespace bg::gateway
