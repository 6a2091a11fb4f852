// BillingGatewayService: the gRPC edge (callback API).
//
// A handler validates the request, wraps it in a Job and hands it to the
// Dispatcher, then returns: it never blocks a gRPC thread. The reactor is
// finished later, exactly once, by whichever dispatcher thread answers the job.
// This is the one place where absl::Status becomes grpc::Status, and where
// rejections get their trailing metadata:
// clang-format off
//   billing-gateway-reject-reason   queue_full | deadline_unmeetable | breaker_open |
//                                   shutting_down
//   grpc-retry-pushback-ms          milliseconds the caller should wait before retrying
//   billing-gateway-killbill-code   Kill Bill's numeric error code, when it sent one
//   billing-gateway-cache-age-ms    an answer from the read cache, and its age
// clang-format on
//
// Asynchronous operations (SubmitCreateAccount, GetOperation) go to the
// DurableQueue, whose own threads answer the reactor; without one (no database
// configured) they answer FAILED_PRECONDITION. A submission the database cannot
// commit gets UNAVAILABLE with reject reason `database_unavailable`.
//
// Thread-safety: gRPC calls the handlers concurrently; all state is in the
// reactors and the thread-safe dispatcher, durable queue and metrics.
#pragma once

#include <chrono>

#include "billing/v1/billing_gateway.grpc.pb.h"
#include "common/clock.h"
#include "dispatch/dispatcher.h"
#include "metrics/gateway_metrics.h"
#include "service/account_operations.h"
#include "service/subscription_operations.h"

namespace bg::durable {
class DurableQueue;
struct OperationRecord;
}  // namespace bg::durable

namespace bg::service {

using dispatch::Dispatcher;
using dispatch::Job;
using dispatch::KillBillCalls;
using dispatch::Method;
using metrics::GatewayMetrics;

inline constexpr char kRejectReasonKey[] = "billing-gateway-reject-reason";
inline constexpr char kRetryPushbackKey[] = "grpc-retry-pushback-ms";
inline constexpr char kKillBillCodeKey[] = "billing-gateway-killbill-code";
inline constexpr char kDatabaseUnavailableReason[] = "database_unavailable";
inline constexpr char kCacheAgeKey[] = "billing-gateway-cache-age-ms";

class BillingGatewayService final
    : public billing::v1::BillingGateway::CallbackService {
 public:
  // Reads are answered from the cache the operations share (`cache`, its
  // freshness and staleness bounds): fresh entries at once, stale ones when
  // Kill Bill cannot answer (breaker open, or UNAVAILABLE).
  BillingGatewayService(Clock* clock, Dispatcher* dispatcher,
                        const AccountOperations* operations,
                        const SubscriptionOperations* subscriptions,
                        CacheOptions cache, GatewayMetrics* metrics,
                        std::chrono::milliseconds default_deadline,
                        durable::DurableQueue* durable = nullptr)
      : clock_(clock),
        dispatcher_(dispatcher),
        operations_(operations),
        subscriptions_(subscriptions),
        cache_(cache),
        metrics_(metrics),
        default_deadline_(default_deadline),
        durable_(durable) {}

  grpc::ServerUnaryReactor* CreateAccount(
      grpc::CallbackServerContext* context,
      const billing::v1::CreateAccountRequest* request,
      billing::v1::CreateAccountResponse* response) override;
  grpc::ServerUnaryReactor* GetAccount(
      grpc::CallbackServerContext* context,
      const billing::v1::GetAccountRequest* request,
      billing::v1::Account* response) override;
  grpc::ServerUnaryReactor* SubmitCreateAccount(
      grpc::CallbackServerContext* context,
      const billing::v1::CreateAccountRequest* request,
      billing::v1::Operation* response) override;
  grpc::ServerUnaryReactor* GetOperation(
      grpc::CallbackServerContext* context,
      const billing::v1::GetOperationRequest* request,
      billing::v1::Operation* response) override;
  grpc::ServerUnaryReactor* CreateSubscription(
      grpc::CallbackServerContext* context,
      const billing::v1::CreateSubscriptionRequest* request,
      billing::v1::CreateSubscriptionResponse* response) override;
  grpc::ServerUnaryReactor* GetSubscription(
      grpc::CallbackServerContext* context,
      const billing::v1::GetSubscriptionRequest* request,
      billing::v1::Subscription* response) override;
  grpc::ServerUnaryReactor* ListSubscriptions(
      grpc::CallbackServerContext* context,
      const billing::v1::ListSubscriptionsRequest* request,
      billing::v1::ListSubscriptionsResponse* response) override;
  grpc::ServerUnaryReactor* CancelSubscription(
      grpc::CallbackServerContext* context,
      const billing::v1::CancelSubscriptionRequest* request,
      billing::v1::CancelSubscriptionResponse* response) override;
  grpc::ServerUnaryReactor* GetBillingOverview(
      grpc::CallbackServerContext* context,
      const billing::v1::GetBillingOverviewRequest* request,
      billing::v1::BillingOverview* response) override;
  grpc::ServerUnaryReactor* SubmitCreateSubscription(
      grpc::CallbackServerContext* context,
      const billing::v1::CreateSubscriptionRequest* request,
      billing::v1::Operation* response) override;

 private:
  class Call;
  class OperationCall;
  // Validates, then queues `work(request, calls)` as a Job that answers the
  // call. For reads, `cached(request, max_age)` looks the answer up in the
  // cache (std::optional<Cached<Response>>): a fresh one answers at once, a
  // stale one when Kill Bill cannot answer.
  template <typename Request, typename Response, typename Work,
            typename FromCache = std::nullptr_t>
  grpc::ServerUnaryReactor* Handle(Method method,
                                   grpc::CallbackServerContext* context,
                                   const Request* request, Response* response,
                                   const absl::Status& valid,
                                   dispatch::Cost cost, std::string_view key,
                                   Work work, FromCache cached = nullptr);
  Clock::TimePoint DeadlineOf(const grpc::CallbackServerContext* context) const;

  Clock* const clock_;
  Dispatcher* const dispatcher_;
  const AccountOperations* const operations_;
  const SubscriptionOperations* const subscriptions_;
  const CacheOptions cache_;
  GatewayMetrics* const metrics_;
  const std::chrono::milliseconds default_deadline_;
  durable::DurableQueue* const durable_;  // Null without a database.
};

// The public form of a stored operation.
void ToProto(const durable::OperationRecord& op, billing::v1::Operation* out);

}  // namespace bg::service
