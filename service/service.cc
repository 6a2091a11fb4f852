#include "service/service.h"

#include <algorithm>
#include <atomic>
#include <string>
#include <string_view>
#include <type_traits>

#include "absl/strings/ascii.h"
#include "absl/strings/cord.h"
#include "absl/strings/numbers.h"
#include "durable/durable_queue.h"
#include "durable/operation_waiter.h"
#include "durable/submit_batcher.h"
#include "service/validation.h"

namespace bg::service {
namespace {

grpc::Status ToGrpc(const absl::Status& status) {
  return grpc::Status(static_cast<grpc::StatusCode>(status.code()),
                      std::string(status.message()));
}

// The reason and retry pushback of a rejection, as trailing metadata (none for
// other answers).
void AddRejectionMetadata(grpc::CallbackServerContext* context,
                          const char* reject_reason,
                          Clock::Duration retry_pushback) {
  if (reject_reason == nullptr) return;
  context->AddTrailingMetadata(kRejectReasonKey, reject_reason);
  const auto ms =
      std::chrono::duration_cast<std::chrono::milliseconds>(retry_pushback)
          .count();
  context->AddTrailingMetadata(kRetryPushbackKey,
                               std::to_string(ms > 0 ? ms : 1));
}

// A unary reactor that remembers whether its caller cancelled, and deletes
// itself in OnDone (after Finish). Owns nothing of the request/response: gRPC
// does.
class CancellableReactor : public grpc::ServerUnaryReactor {
 public:
  void OnCancel() override {
    cancelled_.store(true, std::memory_order_release);
  }
  void OnDone() override { delete this; }
  bool cancelled() const { return cancelled_.load(std::memory_order_acquire); }

 private:
  // Set by gRPC's thread in OnCancel, read by the threads that answer the call:
  // a lone flag, no ordering with other data needed beyond acquire/release.
  std::atomic<bool> cancelled_{false};
};

// The request's identity across a caller's retries, for the admission
// queue's pushback book (dispatch/job.h): a write's idempotency key, the key a
// read looks up. Handle() prefixes the method. A key of one kind of a oneof
// may equal one of the other kind (an external key spelled like a UUID): the
// two requests then share a turn, which costs one of them a rejection at most.
std::string_view KeyOf(const billing::v1::AccountRef& ref) {
  return ref.key_case() == billing::v1::AccountRef::kAccountId
             ? ref.account_id()
             : ref.external_key();
}
std::string_view KeyOf(const billing::v1::CreateAccountRequest& r) {
  return r.external_key();
}
std::string_view KeyOf(const billing::v1::GetAccountRequest& r) {
  return r.key_case() == billing::v1::GetAccountRequest::kAccountId
             ? r.account_id()
             : r.external_key();
}
std::string_view KeyOf(const billing::v1::CreateSubscriptionRequest& r) {
  return r.instance_id();
}
std::string_view KeyOf(const billing::v1::GetSubscriptionRequest& r) {
  return r.key_case() == billing::v1::GetSubscriptionRequest::kSubscriptionId
             ? r.subscription_id()
             : r.instance_id();
}
std::string_view KeyOf(const billing::v1::CancelSubscriptionRequest& r) {
  return r.key_case() == billing::v1::CancelSubscriptionRequest::kSubscriptionId
             ? r.subscription_id()
             : r.instance_id();
}
std::string_view KeyOf(const billing::v1::ListSubscriptionsRequest& r) {
  return KeyOf(r.account());
}
std::string_view KeyOf(const billing::v1::GetBillingOverviewRequest& r) {
  return KeyOf(r.account());
}

}  // namespace

// One synchronous unary call, answered by a dispatcher thread.
class BillingGatewayService::Call final : public CancellableReactor {
 public:
  Call(grpc::CallbackServerContext* context, GatewayMetrics* metrics,
       Method method, Clock* clock)
      : context_(context),
        metrics_(metrics),
        method_(method),
        clock_(clock),
        start_(clock->Now()) {}

  void Answer(const absl::Status& status, const char* reject_reason,
              Clock::Duration retry_pushback) {
    AddRejectionMetadata(context_, reject_reason, retry_pushback);
    if (auto code = status.GetPayload(killbill::kKillBillCodePayload)) {
      context_->AddTrailingMetadata(kKillBillCodeKey, std::string(*code));
    }
    metrics_->RecordRequest(method_, status.code(), reject_reason != nullptr,
                            ToSeconds(clock_->Now() - start_));
    Finish(ToGrpc(status));
  }

  // Answers OK with a response the caller already filled from the cache.
  void AnswerFromCache(Clock::Duration age, bool stale) {
    const auto ms =
        std::chrono::duration_cast<std::chrono::milliseconds>(age).count();
    context_->AddTrailingMetadata(kCacheAgeKey, std::to_string(ms));
    metrics_->RecordCacheAnswer(method_, stale);
    Answer(absl::OkStatus(), nullptr, {});
  }

 private:
  grpc::CallbackServerContext* const context_;
  GatewayMetrics* const metrics_;
  const Method method_;
  Clock* const clock_;
  const Clock::TimePoint start_;
};

// One SubmitCreateAccount / GetOperation call, answered by a durable queue
// thread. Counted in the durable queue's own request metrics (GatewayMetrics'
// method label covers the synchronous methods only). Deletes itself in OnDone.
class BillingGatewayService::OperationCall final : public CancellableReactor {
 public:
  OperationCall(grpc::CallbackServerContext* context,
                durable::DurableMetrics* metrics, durable::DurableMethod method)
      : context_(context), metrics_(metrics), method_(method) {}

  void Answer(const absl::Status& status, const char* reject_reason,
              Clock::Duration retry_pushback) {
    AddRejectionMetadata(context_, reject_reason, retry_pushback);
    if (metrics_ != nullptr) metrics_->RecordRequest(method_, status.code());
    Finish(ToGrpc(status));
  }

 private:
  grpc::CallbackServerContext* const context_;
  durable::DurableMetrics* const metrics_;
  const durable::DurableMethod method_;
};

Clock::TimePoint BillingGatewayService::DeadlineOf(
    const grpc::CallbackServerContext* context) const {
  const auto deadline = context->deadline();
  const auto now = std::chrono::system_clock::now();
  // gRPC reports "no deadline" as a far-future time point.
  if (deadline - now > std::chrono::hours(24 * 365))
    return clock_->Now() + default_deadline_;
  return clock_->Now() +
         std::chrono::duration_cast<Clock::Duration>(deadline - now);
}

template <typename Request, typename Response, typename Work,
          typename FromCache>
grpc::ServerUnaryReactor* BillingGatewayService::Handle(
    Method method, grpc::CallbackServerContext* context, const Request* request,
    Response* response, const absl::Status& valid, dispatch::Cost cost,
    std::string_view key, Work work, FromCache cached) {
  auto* call = new Call(context, metrics_, method, clock_);
  if (!valid.ok()) {
    call->Answer(valid, nullptr, {});
    return call;
  }
  // Answers from a cached entry at most `max_age` old (0: that use is off);
  // false when there is none. Captures by copy: a write's instantiation uses
  // none of them.
  auto from_cache = [=](Clock::Duration max_age, bool stale) {
    if constexpr (std::is_same_v<FromCache, std::nullptr_t>) {
      return false;
    } else {
      if (max_age <= Clock::Duration::zero()) return false;
      auto hit = cached(*request, max_age);
      if (!hit) return false;
      *response = std::move(hit->value);
      call->AnswerFromCache(hit->age, stale);
      return true;
    }
  };
  if (from_cache(cache_.fresh, /*stale=*/false)) return call;
  const Clock::Duration stale_for = cache_.stale;
  Job job;
  job.method = method;
  job.cost = cost;
  job.deadline = DeadlineOf(context);
  if (!key.empty()) {
    job.key.append(MethodName(method)).append(1, '/').append(key);
  }
  job.cancelled = [call] { return call->cancelled(); };
  job.run = [call, request, response, work, from_cache,
             stale_for](KillBillCalls& calls) {
    auto result = work(*request, calls);
    if (result.ok()) {
      *response = std::move(*result);
    } else if (absl::IsUnavailable(result.status()) &&
               from_cache(stale_for, /*stale=*/true)) {
      return;
    }
    call->Answer(result.status(), nullptr, {});
  };
  job.answer = [call, from_cache, stale_for](const absl::Status& status,
                                             const char* reason,
                                             Clock::Duration pushback) {
    // The breaker holds calls away from a sick Kill Bill: a read it has
    // answered before is served from the cache, marked with its age.
    if (reason != nullptr &&
        std::string_view(reason) ==
            flow::RejectReasonName(flow::RejectReason::kBreakerOpen) &&
        from_cache(stale_for, /*stale=*/true)) {
      return;
    }
    call->Answer(status, reason, pushback);
  };
  dispatcher_->Submit(std::move(job));
  return call;
}

grpc::ServerUnaryReactor* BillingGatewayService::CreateAccount(
    grpc::CallbackServerContext* context,
    const billing::v1::CreateAccountRequest* request,
    billing::v1::CreateAccountResponse* response) {
  return Handle(Method::kCreateAccount, context, request, response,
                ValidateCreateAccount(*request), operations_->CostOf(*request),
                KeyOf(*request),
                [ops = operations_](const auto& req, KillBillCalls& calls) {
                  return ops->CreateAccount(req, calls);
                });
}

grpc::ServerUnaryReactor* BillingGatewayService::GetAccount(
    grpc::CallbackServerContext* context,
    const billing::v1::GetAccountRequest* request,
    billing::v1::Account* response) {
  return Handle(
      Method::kGetAccount, context, request, response,
      ValidateGetAccount(*request), AccountOperations::CostOf(*request),
      KeyOf(*request),
      [ops = operations_](const auto& req, KillBillCalls& calls) {
        return ops->GetAccount(req, calls);
      },
      [ops = operations_](const auto& req, Clock::Duration max_age) {
        return ops->FromCache(req, max_age);
      });
}

grpc::ServerUnaryReactor* BillingGatewayService::CreateSubscription(
    grpc::CallbackServerContext* context,
    const billing::v1::CreateSubscriptionRequest* request,
    billing::v1::CreateSubscriptionResponse* response) {
  return Handle(Method::kCreateSubscription, context, request, response,
                ValidateCreateSubscription(*request),
                subscriptions_->CostOf(*request), KeyOf(*request),
                [ops = subscriptions_](const auto& req, KillBillCalls& calls) {
                  return ops->CreateSubscription(req, calls);
                });
}

grpc::ServerUnaryReactor* BillingGatewayService::CancelSubscription(
    grpc::CallbackServerContext* context,
    const billing::v1::CancelSubscriptionRequest* request,
    billing::v1::CancelSubscriptionResponse* response) {
  return Handle(Method::kCancelSubscription, context, request, response,
                ValidateCancelSubscription(*request),
                subscriptions_->CostOf(*request), KeyOf(*request),
                [ops = subscriptions_](const auto& req, KillBillCalls& calls) {
                  return ops->CancelSubscription(req, calls);
                });
}

// The reads: each with its cache lookup.
grpc::ServerUnaryReactor* BillingGatewayService::GetSubscription(
    grpc::CallbackServerContext* context,
    const billing::v1::GetSubscriptionRequest* request,
    billing::v1::Subscription* response) {
  return Handle(
      Method::kGetSubscription, context, request, response,
      ValidateGetSubscription(*request),
      SubscriptionOperations::CostOf(*request), KeyOf(*request),
      [ops = subscriptions_](const auto& req, KillBillCalls& calls) {
        return ops->GetSubscription(req, calls);
      },
      [ops = subscriptions_](const auto& req, Clock::Duration max_age) {
        return ops->FromCache(req, max_age);
      });
}

grpc::ServerUnaryReactor* BillingGatewayService::ListSubscriptions(
    grpc::CallbackServerContext* context,
    const billing::v1::ListSubscriptionsRequest* request,
    billing::v1::ListSubscriptionsResponse* response) {
  return Handle(
      Method::kListSubscriptions, context, request, response,
      ValidateListSubscriptions(*request),
      SubscriptionOperations::CostOf(*request), KeyOf(*request),
      [ops = subscriptions_](const auto& req, KillBillCalls& calls) {
        return ops->ListSubscriptions(req, calls);
      },
      [ops = subscriptions_](const auto& req, Clock::Duration max_age) {
        return ops->FromCache(req, max_age);
      });
}

grpc::ServerUnaryReactor* BillingGatewayService::GetBillingOverview(
    grpc::CallbackServerContext* context,
    const billing::v1::GetBillingOverviewRequest* request,
    billing::v1::BillingOverview* response) {
  return Handle(
      Method::kGetBillingOverview, context, request, response,
      ValidateGetBillingOverview(*request),
      SubscriptionOperations::CostOf(*request), KeyOf(*request),
      [ops = subscriptions_](const auto& req, KillBillCalls& calls) {
        return ops->GetBillingOverview(req, calls);
      },
      [ops = subscriptions_](const auto& req, Clock::Duration max_age) {
        return ops->FromCache(req, max_age);
      });
}

void ToProto(const durable::OperationRecord& op, billing::v1::Operation* out) {
  namespace v1 = billing::v1;
  out->set_operation_id(std::to_string(op.id));
  if (op.kind == durable::OperationKind::kCreateSubscription) {
    out->set_kind(v1::OPERATION_KIND_CREATE_SUBSCRIPTION);
    out->set_instance_id(op.external_key);
    out->set_external_key(op.account_key);
  } else {
    out->set_kind(v1::OPERATION_KIND_CREATE_ACCOUNT);
    out->set_external_key(op.external_key);
  }
  switch (op.state) {
    case durable::OperationState::kPending:
      out->set_state(v1::OPERATION_STATE_PENDING);
      break;
    case durable::OperationState::kRunning:
      out->set_state(v1::OPERATION_STATE_RUNNING);
      break;
    case durable::OperationState::kSucceeded:
      out->set_state(v1::OPERATION_STATE_SUCCEEDED);
      break;
    case durable::OperationState::kFailed:
      out->set_state(v1::OPERATION_STATE_FAILED);
      break;
  }
  if (op.state == durable::OperationState::kSucceeded) {
    out->set_account_id(op.account_id);
    out->set_subscription_id(op.subscription_id);
    out->set_created(op.created);
  }
  if (op.error_code != 0 && (op.state == durable::OperationState::kFailed ||
                             op.state == durable::OperationState::kPending)) {
    v1::OperationError* error = out->mutable_error();
    error->set_code(op.error_code);
    error->set_message(op.error_message);
    error->set_killbill_code(op.killbill_code);
  }
  out->set_attempts(op.attempts);
  out->set_create_time_ms(op.created_at_ms);
  out->set_update_time_ms(op.updated_at_ms);
  out->set_finish_time_ms(op.finished_at_ms);
  if (op.state == durable::OperationState::kPending) {
    out->set_next_attempt_time_ms(op.not_before_ms);
  }
}

namespace {

constexpr char kNoDatabase[] =
    "asynchronous submissions need database.url (the gateway runs on its "
    "in-memory queue)";

// The reason SubmitBatcher put on a refusal, as a name that lives forever.
const char* SubmitReasonName(absl::string_view reason) {
  for (const char* known : durable::kSubmitReasons) {
    if (reason == known) return known;
  }
  return kDatabaseUnavailableReason;
}

// Answers with the operation, or with the status; a refusal carries its reason
// (SubmitBatcher's, else database_unavailable for UNAVAILABLE) and a retry
// pushback.
template <typename CallT>
void AnswerOperation(CallT* call, billing::v1::Operation* response,
                     const absl::StatusOr<durable::OperationRecord>& result) {
  if (result.ok()) {
    ToProto(*result, response);
    call->Answer(absl::OkStatus(), nullptr, {});
  } else if (auto reason =
                 result.status().GetPayload(durable::kSubmitReasonPayload)) {
    call->Answer(result.status(), SubmitReasonName(std::string(*reason)),
                 std::chrono::seconds(1));
  } else if (absl::IsUnavailable(result.status())) {
    call->Answer(result.status(), kDatabaseUnavailableReason,
                 std::chrono::seconds(1));
  } else {
    call->Answer(result.status(), nullptr, {});
  }
}

}  // namespace

grpc::ServerUnaryReactor* BillingGatewayService::SubmitCreateAccount(
    grpc::CallbackServerContext* context,
    const billing::v1::CreateAccountRequest* request,
    billing::v1::Operation* response) {
  auto* call =
      new OperationCall(context, durable_ ? durable_->metrics() : nullptr,
                        durable::DurableMethod::kSubmitCreateAccount);
  if (durable_ == nullptr) {
    call->Answer(absl::FailedPreconditionError(kNoDatabase), nullptr, {});
    return call;
  }
  if (absl::Status valid = ValidateCreateAccount(*request); !valid.ok()) {
    call->Answer(valid, nullptr, {});
    return call;
  }
  durable_->Submit(
      *request, DeadlineOf(context),
      [call, response](absl::StatusOr<durable::OperationRecord> result) {
        AnswerOperation(call, response, result);
      });
  return call;
}

grpc::ServerUnaryReactor* BillingGatewayService::SubmitCreateSubscription(
    grpc::CallbackServerContext* context,
    const billing::v1::CreateSubscriptionRequest* request,
    billing::v1::Operation* response) {
  auto* call =
      new OperationCall(context, durable_ ? durable_->metrics() : nullptr,
                        durable::DurableMethod::kSubmitCreateSubscription);
  if (durable_ == nullptr) {
    call->Answer(absl::FailedPreconditionError(kNoDatabase), nullptr, {});
    return call;
  }
  if (absl::Status valid = ValidateCreateSubscription(*request); !valid.ok()) {
    call->Answer(valid, nullptr, {});
    return call;
  }
  durable_->Submit(
      *request, DeadlineOf(context),
      [call, response](absl::StatusOr<durable::OperationRecord> result) {
        AnswerOperation(call, response, result);
      });
  return call;
}

grpc::ServerUnaryReactor* BillingGatewayService::GetOperation(
    grpc::CallbackServerContext* context,
    const billing::v1::GetOperationRequest* request,
    billing::v1::Operation* response) {
  auto* call =
      new OperationCall(context, durable_ ? durable_->metrics() : nullptr,
                        durable::DurableMethod::kGetOperation);
  if (durable_ == nullptr) {
    call->Answer(absl::FailedPreconditionError(kNoDatabase), nullptr, {});
    return call;
  }
  int64_t id = 0;
  // Digits only: SimpleAtoi alone also takes "+5" and " 5" for operation 5.
  if (request->operation_id().empty() ||
      !std::all_of(request->operation_id().begin(),
                   request->operation_id().end(), absl::ascii_isdigit) ||
      !absl::SimpleAtoi(absl::string_view(request->operation_id()), &id) ||
      id <= 0) {
    call->Answer(absl::InvalidArgumentError(
                     "operation_id: expected the id SubmitCreateAccount "
                     "returned (decimal digits)"),
                 nullptr, {});
    return call;
  }
  if (request->wait_timeout_ms() < 0 || request->wait_timeout_ms() > 600000) {
    call->Answer(absl::InvalidArgumentError(
                     "wait_timeout_ms: must be between 0 and 600000"),
                 nullptr, {});
    return call;
  }
  // Answer a little before the caller's deadline, so a wait ends with the state
  // rather than with DEADLINE_EXCEEDED: 10% of the time left, at least 20 ms,
  // at most 1 s.
  const Clock::TimePoint now = clock_->Now();
  const Clock::TimePoint deadline = DeadlineOf(context);
  const Clock::Duration margin = std::clamp<Clock::Duration>(
      (deadline - now) / 10, std::chrono::milliseconds(20),
      std::chrono::seconds(1));
  const Clock::TimePoint wait_until =
      std::min(now + std::chrono::milliseconds(request->wait_timeout_ms()),
               deadline - margin);
  // A database read that hangs is waited for past wait_until, but never
  // beyond the caller's deadline: UNAVAILABLE then.
  const Clock::TimePoint answer_by = std::min(
      wait_until + durable::OperationWaiter::kReadGrace, deadline - margin / 2);
  durable_->Get(
      id, wait_until, [call] { return call->cancelled(); },
      [call, response](absl::StatusOr<durable::OperationRecord> result) {
        AnswerOperation(call, response, result);
      },
      answer_by);
  return call;
}

}  // namespace bg::service
