// Job: one admitted request (a gRPC call, or a durable operation's attempt)
// waiting for, or doing, its Kill Bill calls; and KillBillCalls, what a running
// job may ask around each of those calls.
//
// The edge (service/, durable/) builds a Job for each valid request, with the
// Cost its operation declares; the dispatcher owns it from admission until it
// is answered exactly once, by `run` (the Kill Bill work, which answers the
// call itself) or by `answer` (a rejection or a drop, without running). A Job
// is moved between threads but used by one thread at a time.
//
// This header is the whole contract between the edge and the dispatcher:
// durable/ depends on it and not on the dispatcher.
#pragma once

#include <functional>
#include <string>

#include "absl/status/status.h"
#include "common/clock.h"

namespace bg::dispatch {

// The gRPC methods that become jobs (a metrics label and the job's kind).
enum class Method {
  kCreateAccount = 0,
  kGetAccount,
  kCreateSubscription,
  kGetSubscription,
  kListSubscriptions,
  kCancelSubscription,
  kGetBillingOverview
};
inline constexpr int kMethodCount = 7;
inline const char* MethodName(Method m) {
  static constexpr const char* kNames[kMethodCount] = {
      "CreateAccount",     "GetAccount",        "CreateSubscription",
      "GetSubscription",   "ListSubscriptions", "CancelSubscription",
      "GetBillingOverview"};
  return kNames[static_cast<int>(m)];
}

// The Kill Bill calls a job may make (a metrics label; the healthcheck and the
// metrics are the health monitor's). Names in metrics/gateway_metrics.cc.
enum class KillBillEndpoint {
  kCreateAccount = 0,
  kGetAccount,
  kAddTags,
  kHealthcheck,
  kMetrics,
  kCreateSubscription,
  kGetSubscription,
  kGetBundles,
  kCancelSubscription,
  kAddCustomFields,
  kGetCustomFields,
  kGetInvoices,
  kGetPaymentMethods,
  kGetCatalog
};
inline constexpr int kEndpointCount = 14;

// What a piece of Kill Bill work spends of Kill Bill's two limits: its API
// (every HTTP call, reads included) and its main bus (the events writes post,
// drained at a fixed rate whatever the API does). Declared by the operation
// that does the work (service/account_operations.h), never assumed by the
// flow control: a registration with a tag and an untagged create differ by a
// factor of two on the bus.
struct Cost {
  int calls = 0;       // Kill Bill HTTP calls
  int bus_events = 0;  // main-bus events those calls post when they succeed

  Cost& operator+=(const Cost& o) {
    calls += o.calls;
    bus_events += o.bus_events;
    return *this;
  }
  friend bool operator==(const Cost& a, const Cost& b) {
    return a.calls == b.calls && a.bus_events == b.bus_events;
  }
};

class KillBillCalls;

struct Job {
  Method method = Method::kCreateAccount;
  // What the job is expected to spend: the dispatcher takes that many tokens
  // of each budget before starting it. Unforeseen calls (a lookup after 409, a
  // retry) take theirs through KillBillCalls::Admit.
  Cost cost{1, 0};
  Clock::TimePoint admitted;
  Clock::TimePoint deadline;
  // The request's identity across the caller's retries (its method and
  // idempotency key, e.g. "CreateAccount/cust-42"), by which the admission
  // queue's pushback book recognises a caller coming back at its turn. Empty
  // when the request has none: the caller is a newcomer at every arrival.
  std::string key;
  // True once the caller has gone away (gRPC OnCancel). Read from the
  // dispatcher's threads.
  std::function<bool()> cancelled;
  // Does the Kill Bill work and answers the call.
  std::function<void(KillBillCalls&)> run;
  // Answers the call without running it: a rejection (reason + retry pushback)
  // or a drop.
  std::function<void(const absl::Status& status, const char* reason,
                     Clock::Duration retry_pushback)>
      answer;

  // For AdmissionQueue's JobTraits: cheap, called under the queue lock.
  bool IsCancelled() const { return cancelled && cancelled(); }
};

// What a running job may ask of the dispatcher around each Kill Bill call.
class KillBillCalls {
 public:
  virtual ~KillBillCalls() = default;
  // Called before each Kill Bill call with that call's own cost: spends what
  // was prepaid at dispatch, waits (never past the deadline) for tokens beyond
  // it, and fails with DEADLINE_EXCEEDED when the call can no longer be made in
  // time.
  virtual absl::Status Admit(KillBillEndpoint endpoint, Cost cost) = 0;
  // Called after each admitted Kill Bill call with its outcome and latency.
  virtual void Record(KillBillEndpoint endpoint, const absl::Status& status,
                      Clock::Duration latency) = 0;
  // Asks the retry policy and budget for one more attempt of an idempotent
  // call; on true, `backoff` is the jittered time to wait first.
  virtual bool MayRetry(Clock::Duration* backoff) = 0;
  virtual Clock::TimePoint deadline() const = 0;
  virtual Clock* clock() const = 0;
};

}  // namespace bg::dispatch
