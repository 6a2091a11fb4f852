// AccountOperations: the Kill Bill work behind each gRPC method, written as
// sequences of Kill Bill calls that each pass through KillBillCalls (tokens,
// deadline, metrics, breaker).
//
// CreateAccount is "optimistic create" as SaaSOdoo's billing-service does it,
// made safe:
//   POST account -> 201: created; 409/3000: look the account up by key (created
//   = false); then POST tags when asked. A create that failed with UNAVAILABLE
//   is retried (the external key makes it idempotent: a retry that meets 409
//   finds the first attempt's account), within the retry budget and the
//   caller's deadline.
//
// Thread-safety: stateless apart from the client, which is thread-safe, and
// the bus events (under a mutex: SetBusEvents); call from any thread.
#pragma once

#include <optional>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "billing/v1/billing_gateway.pb.h"
#include "dispatch/job.h"
#include "killbill_client/killbill_client.h"
#include "service/read_cache.h"

namespace bg::service {

using dispatch::KillBillCalls;
using dispatch::KillBillEndpoint;

// An answer from the ReadCache, and how old it is.
template <typename Response>
struct Cached {
  Response value;
  Clock::Duration age;
};

class AccountOperations {
 public:
  // `cache` may be null (no cache); it must outlive this object.
  explicit AccountOperations(killbill::KillBillClient* client,
                             killbill::BusEvents bus_events = {},
                             ReadCache* cache = nullptr)
      : client_(client), bus_events_(bus_events), cache_(cache) {}

  // A configuration reload (cost.*): requests costed or run from now on use
  // these events.
  void SetBusEvents(killbill::BusEvents bus_events) {
    absl::MutexLock lock(&bus_events_mu_);
    bus_events_ = bus_events;
  }

  absl::StatusOr<billing::v1::CreateAccountResponse> CreateAccount(
      const billing::v1::CreateAccountRequest& request,
      KillBillCalls& calls) const;
  absl::StatusOr<billing::v1::Account> GetAccount(
      const billing::v1::GetAccountRequest& request,
      KillBillCalls& calls) const;

  // The cached account, if one at most `max_age` old is there.
  std::optional<Cached<billing::v1::Account>> FromCache(
      const billing::v1::GetAccountRequest& request,
      Clock::Duration max_age) const;

  // What a valid request is expected to spend (the tokens taken at dispatch):
  // the create, and one tag call posting one event per tag.
  dispatch::Cost CostOf(const billing::v1::CreateAccountRequest& request) const;
  static dispatch::Cost CostOf(const billing::v1::GetAccountRequest&) {
    return kRead;
  }

 private:
  static constexpr dispatch::Cost kRead{1, 0};

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

// The public form of a Kill Bill account.
billing::v1::Account ToProto(const killbill::Account& account);
// Stores the account (by id and key) and its key -> id pair; no-op for a null
// cache.
void RememberAccount(ReadCache* cache, const billing::v1::Account& account);

// The Kill Bill tag definition id for a proto tag (valid values only).
const char* TagDefinitionId(billing::v1::AccountTag tag);

}  // namespace bg::service
