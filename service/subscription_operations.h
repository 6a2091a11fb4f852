// SubscriptionOperations: the Kill Bill work behind the subscription methods
// and the billing overview, as sequences of Kill Bill calls that each pass
// through KillBillCalls (tokens, deadline, metrics, breaker).
//
// CreateSubscription does what SaaSOdoo's billing-service does, made safe:
//   account id (cache, or GET by key) -> catalog (cache, or GET) -> [with
//   enforce_single_trial: GET the account's bundles] -> POST subscription with
//   bundleExternalKey = instance_id -> POST custom fields -> GET subscription.
//   Kill Bill answers 400/1015 when the instance id already holds an active
//   base subscription on the account: the bundle is looked up and its
//   subscription answered (created = false), after adding the custom fields it
//   lacks. A create that failed UNAVAILABLE is retried (the bundle key makes it
//   idempotent), within the retry budget and the deadline.
// CancelSubscription treats Kill Bill's 1031 (already cancelled) as done and
// retries UNAVAILABLE (idempotent for the same reason).
// GetBillingOverview makes four reads: the account with balance, its bundles,
// payment methods, unpaid invoices.
//
// Error mapping (Kill Bill code -> gRPC): 2021 unknown plan -> INVALID_ARGUMENT
// naming plan_name; 1014 instance id on another account -> FAILED_PRECONDITION
// naming instance_id; 1011 phase not in the plan -> INVALID_ARGUMENT naming
// phase; 3002 / 3003 / 1082 / 1084 -> NOT_FOUND; a trial already used ->
// FAILED_PRECONDITION; 408 -> UNAVAILABLE (retryable).
//
// Thread-safety: stateless apart from the client and the cache, both
// thread-safe, and the bus events (under a mutex: SetBusEvents); call from
// any thread.
#pragma once

#include <optional>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "billing/v1/billing_gateway.pb.h"
#include "dispatch/job.h"
#include "killbill_client/killbill_client.h"
#include "service/account_operations.h"
#include "service/read_cache.h"

namespace bg::service {

class SubscriptionOperations {
 public:
  // `cache` may be null; it must outlive this object.
  SubscriptionOperations(killbill::KillBillClient* client,
                         killbill::BusEvents bus_events, ReadCache* cache)
      : client_(client), bus_events_(bus_events), cache_(cache) {}

  // A configuration reload (cost.*): requests costed or run from now on use
  // these events.
  void SetBusEvents(killbill::BusEvents bus_events) {
    absl::MutexLock lock(&bus_events_mu_);
    bus_events_ = bus_events;
  }

  absl::StatusOr<billing::v1::CreateSubscriptionResponse> CreateSubscription(
      const billing::v1::CreateSubscriptionRequest& request,
      KillBillCalls& calls) const;
  absl::StatusOr<billing::v1::Subscription> GetSubscription(
      const billing::v1::GetSubscriptionRequest& request,
      KillBillCalls& calls) const;
  absl::StatusOr<billing::v1::ListSubscriptionsResponse> ListSubscriptions(
      const billing::v1::ListSubscriptionsRequest& request,
      KillBillCalls& calls) const;
  absl::StatusOr<billing::v1::CancelSubscriptionResponse> CancelSubscription(
      const billing::v1::CancelSubscriptionRequest& request,
      KillBillCalls& calls) const;
  absl::StatusOr<billing::v1::BillingOverview> GetBillingOverview(
      const billing::v1::GetBillingOverviewRequest& request,
      KillBillCalls& calls) const;

  // Cached answers of the reads, if at most `max_age` old.
  std::optional<Cached<billing::v1::Subscription>> FromCache(
      const billing::v1::GetSubscriptionRequest& request,
      Clock::Duration max_age) const;
  std::optional<Cached<billing::v1::ListSubscriptionsResponse>> FromCache(
      const billing::v1::ListSubscriptionsRequest& request,
      Clock::Duration max_age) const;
  std::optional<Cached<billing::v1::BillingOverview>> FromCache(
      const billing::v1::GetBillingOverviewRequest& request,
      Clock::Duration max_age) const;

  // What a valid request is expected to spend (the tokens taken at dispatch).
  dispatch::Cost CostOf(
      const billing::v1::CreateSubscriptionRequest& request) const;
  dispatch::Cost CostOf(const billing::v1::CancelSubscriptionRequest&) const {
    return {2, bus_events().per_cancel};
  }
  static dispatch::Cost CostOf(const billing::v1::GetSubscriptionRequest&) {
    return {1, 0};
  }
  static dispatch::Cost CostOf(const billing::v1::ListSubscriptionsRequest&) {
    return {1, 0};
  }
  static dispatch::Cost CostOf(const billing::v1::GetBillingOverviewRequest&) {
    return {4, 0};
  }

 private:
  // The account's Kill Bill id: the request's, the cache's, or a GET by key.
  absl::StatusOr<std::string> AccountId(const billing::v1::AccountRef& ref,
                                        KillBillCalls& calls) const;
  absl::StatusOr<std::vector<killbill::CatalogPlan>> Catalog(
      KillBillCalls& calls) const;
  // The subscription held under an instance id (a bundle key); NOT_FOUND when
  // none.
  absl::StatusOr<killbill::Subscription> ByInstance(
      const std::string& instance_id, KillBillCalls& calls) const;
  absl::StatusOr<killbill::Subscription> Fetch(
      const std::string& subscription_id, KillBillCalls& calls) const;
  // Adds the custom fields in `wanted` the subscription lacks (all of them
  // when `fresh`, without reading first).
  absl::Status EnsureCustomFields(
      const std::string& subscription_id,
      const std::vector<killbill::CustomField>& wanted, bool fresh,
      KillBillCalls& calls) const;
  // Caches a subscription read or written now, and drops its account's list
  // and overview.
  billing::v1::Subscription Remember(const killbill::Subscription& sub,
                                     bool changed) const;

  // cost.*, as last set (SetBusEvents).
  killbill::BusEvents bus_events() const {
    absl::MutexLock lock(&bus_events_mu_);
    return bus_events_;
  }

  killbill::KillBillClient* const client_;
  mutable absl::Mutex bus_events_mu_;
  killbill::BusEvents bus_events_ ABSL_GUARDED_BY(bus_events_mu_);
  ReadCache* const cache_;
};

// Gives Kill Bill's refusals of subscription calls the gRPC code and the field
// the API documents (the mapping in the file comment), keeping Kill Bill's
// code; any other status passes unchanged.
absl::Status Mapped(const absl::Status& status);

// The public form of a Kill Bill subscription.
billing::v1::Subscription ToProto(const killbill::Subscription& sub);

}  // namespace bg::service
