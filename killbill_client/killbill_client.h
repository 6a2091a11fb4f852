// KillBillClient: a typed client for the part of Kill Bill's REST API
// billing-gateway uses: accounts, subscriptions and what the billing overview
// reads, the healthcheck and the bus metrics.
//
// It knows HTTP, JSON and Kill Bill's conventions (auth and tenant headers,
// error bodies, Location headers, the healthcheck servlet), and nothing about
// queues, rates or gRPC. Every failure comes back as an absl::Status:
//   409 / code 3000 -> ALREADY_EXISTS        404 -> NOT_FOUND
//   401             -> UNAUTHENTICATED       403 -> PERMISSION_DENIED
//   other 4xx       -> INVALID_ARGUMENT
//   5xx, 408, timeout, refused, reset -> UNAVAILABLE
//   500 with code 1021 or 1031 (a subscription not in a state to be changed
//   or cancelled: business rules Kill Bill answers with a 500)
//                   -> FAILED_PRECONDITION
//   a body or Location that cannot be understood, an answer over
//   max_response_bytes -> INTERNAL
// Kill Bill's numeric code and message are kept: in the status message and, for
// the code, as the payload kKillBillCodePayload (decimal text).
//
// Connections: a pool of `max_connections` keep-alive connections; a call takes
// one for its duration and waits (within its timeout) until one is free.
// Callers that cap their own concurrency at or below the pool size never wait
// here.
//
// Time: every call is bounded as a whole, from waiting for a connection to the
// last byte of the answer, by `request_timeout` or the shorter
// CallOptions::timeout. httplib's own read timeout is per read, so a peer that
// drips a byte now and then could stretch a call without end; a watchdog thread
// shuts the socket of any call still running at its deadline (the connection is
// then discarded, never reused). A call cut this way is UNAVAILABLE.
//
// Thread-safety: every method is safe to call from many threads at once.
#pragma once

#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "killbill_client/types.h"

namespace httplib {
class Client;
}

namespace bg::killbill {

inline constexpr char kKillBillCodePayload[] =
    "type.billing-gateway/killbill.code";
// Payload (any value) on an UNAVAILABLE call that was sent, or may have been,
// and got no answer (timeout, connection lost or reset, cut at shutdown): Kill
// Bill may have done it. Absent when the connection could not be made.
inline constexpr char kUnansweredPayload[] =
    "type.billing-gateway/killbill.unanswered";

// The `killbill.*` YAML keys set the fields of the same name (ranges in
// config/gateway.yaml); max_response_bytes has no key. These defaults are the
// gateway's: config/ has no other.
struct ClientOptions {
  // Base URL, scheme://host[:port] (http or https), no path. config/ drops a
  // single trailing '/'.
  std::string url = "http://127.0.0.1:8080";
  // Tenant credentials (X-Killbill-ApiKey / X-Killbill-ApiSecret). The four
  // secrets may come from BILLING_GATEWAY_KILLBILL_{API_KEY,API_SECRET,
  // USERNAME,PASSWORD}, which override the file (config/gateway_config.h).
  std::string api_key = "fresh-tenant";
  std::string api_secret = "fresh-secret";
  // HTTP basic auth.
  std::string username = "admin";
  std::string password = "password";
  // X-Killbill-CreatedBy on writes (Kill Bill's audit log).
  std::string created_by = "billing-gateway";
  // TCP (and TLS) connect timeout; also bounded by the call's own timeout.
  std::chrono::milliseconds connect_timeout{2000};
  // Whole-call timeout: waiting for a pooled connection, connecting, sending
  // the request and reading the entire answer. Enforced as a total, not per
  // read (see "Time" above).
  std::chrono::milliseconds request_timeout{10000};
  // Keep-alive connections held open; also the most calls in flight at once.
  int max_connections = 16;
  // PEM file of CAs to verify an https Kill Bill against; empty means the
  // system store.
  std::string ca_file;
  // Responses larger than this are refused as INTERNAL (a broken or hostile
  // peer).
  size_t max_response_bytes = 1 << 20;
};

// Per-call settings; the default-constructed value means "the client's
// options".
struct CallOptions {
  // Time limit of this call as a whole (see ClientOptions::request_timeout).
  // Zero or negative means request_timeout; a longer value is capped at
  // request_timeout. Callers with a deadline pass what is left of it, so no
  // Kill Bill call outlives its caller.
  std::chrono::milliseconds timeout{0};
};

class KillBillClient {
 public:
  // Fails with INVALID_ARGUMENT when the URL is not http(s)://host[:port].
  static absl::StatusOr<std::unique_ptr<KillBillClient>> Create(
      ClientOptions options);
  ~KillBillClient();

  KillBillClient(const KillBillClient&) = delete;
  KillBillClient& operator=(const KillBillClient&) = delete;

  // POST /1.0/kb/accounts. Returns the new account id (from the Location
  // header).
  absl::StatusOr<std::string> CreateAccount(const NewAccount& account,
                                            const CallOptions& call = {});
  // GET /1.0/kb/accounts?externalKey=.
  absl::StatusOr<Account> GetAccountByKey(const std::string& external_key,
                                          const CallOptions& call = {});
  // GET /1.0/kb/accounts/{id}.
  absl::StatusOr<Account> GetAccountById(const std::string& account_id,
                                         const CallOptions& call = {});
  // POST /1.0/kb/accounts/{id}/tags with tag definition ids.
  absl::Status AddTags(const std::string& account_id,
                       const std::vector<std::string>& tag_ids,
                       const CallOptions& call = {});
  // GET /1.0/kb/accounts?externalKey=&accountWithBalanceAndCBA=true, or by id
  // when `account_id` is set: the account with `balance` and `credit`.
  absl::StatusOr<Account> GetAccountWithBalance(const std::string& external_key,
                                                const std::string& account_id,
                                                const CallOptions& call = {});

  // Subscriptions and what hangs off them (killbill_billing.cc).
  // POST /1.0/kb/subscriptions. Returns the new subscription id (Location).
  absl::StatusOr<std::string> CreateSubscription(const NewSubscription& sub,
                                                 const CallOptions& call = {});
  // GET /1.0/kb/subscriptions/{id}.
  absl::StatusOr<Subscription> GetSubscription(
      const std::string& subscription_id, const CallOptions& call = {});
  // GET /1.0/kb/bundles?externalKey=: NOT_FOUND when no bundle has the key.
  absl::StatusOr<std::vector<Bundle>> GetBundlesByKey(
      const std::string& external_key, const CallOptions& call = {});
  // GET /1.0/kb/accounts/{id}/bundles (an empty list for none).
  absl::StatusOr<std::vector<Bundle>> GetAccountBundles(
      const std::string& account_id, const CallOptions& call = {});
  // DELETE /1.0/kb/subscriptions/{id} with both policies END_OF_TERM, or
  // IMMEDIATE; `reason` goes to X-Killbill-Reason when not empty.
  absl::Status CancelSubscription(const std::string& subscription_id,
                                  bool immediate, const std::string& reason,
                                  const CallOptions& call = {});
  // POST /1.0/kb/subscriptions/{id}/customFields.
  absl::Status AddCustomFields(const std::string& subscription_id,
                               const std::vector<CustomField>& fields,
                               const CallOptions& call = {});
  // GET /1.0/kb/subscriptions/{id}/customFields.
  absl::StatusOr<std::vector<CustomField>> GetCustomFields(
      const std::string& subscription_id, const CallOptions& call = {});
  // GET /1.0/kb/accounts/{id}/invoices?unpaidInvoicesOnly=true.
  absl::StatusOr<std::vector<Invoice>> GetUnpaidInvoices(
      const std::string& account_id, const CallOptions& call = {});
  // GET /1.0/kb/accounts/{id}/paymentMethods.
  absl::StatusOr<std::vector<PaymentMethod>> GetPaymentMethods(
      const std::string& account_id, const CallOptions& call = {});
  // GET /1.0/kb/catalog (the JSON catalog, every version).
  absl::StatusOr<std::vector<CatalogPlan>> GetCatalog(
      const CallOptions& call = {});

  // GET /1.0/healthcheck (no auth). A 500 answer is a report, not an error.
  absl::StatusOr<HealthReport> Healthcheck(const CallOptions& call = {});

  // GET /1.0/metrics (no auth): the main bus's counters. A 404 (no metrics
  // servlet) is `present = false`, not an error.
  absl::StatusOr<BusCounters> BusMetrics(const CallOptions& call = {});

  const std::string& origin() const { return origin_; }

  // For shutdown once its grace is over: shuts the socket of every call in
  // flight (answered UNAVAILABLE "cut") and answers every later call
  // UNAVAILABLE without sending it. Cannot be undone.
  void CutCallsInFlight();

 private:
  struct Response {
    int status = 0;
    std::string body;
    std::string location;
  };
  class Watchdog;
  using Deadline = std::chrono::steady_clock::time_point;

  KillBillClient(ClientOptions options, std::string origin);
  std::unique_ptr<httplib::Client> NewConnection() const;
  // Takes an idle connection, or a slot to open one (sets *open_new), waiting
  // until `deadline` at most; false when none freed up in time.
  bool Acquire(Deadline deadline, std::unique_ptr<httplib::Client>* conn,
               bool* open_new) ABSL_LOCKS_EXCLUDED(mu_);
  void Release(std::unique_ptr<httplib::Client> conn) ABSL_LOCKS_EXCLUDED(mu_);
  // Sends one request on a pooled connection, all of it within the call's
  // timeout; transport failures and timeouts become UNAVAILABLE, an oversized
  // answer INTERNAL.
  absl::StatusOr<Response> Send(const std::string& method,
                                const std::string& path,
                                const std::string& body, bool authenticated,
                                const CallOptions& call,
                                absl::string_view reason = {});
  // GETs `path` (authenticated) and parses a 200 with `parse`; any other
  // status becomes an error through StatusFromResponse.
  template <typename Parse>
  auto GetParsed(const std::string& path, const char* what, Parse parse,
                 const CallOptions& call) -> decltype(parse(""));

  const ClientOptions options_;
  const std::string origin_;  // Normalised scheme://host:port of options_.url.
  const std::unique_ptr<Watchdog> watchdog_;

  absl::Mutex mu_;
  std::vector<std::unique_ptr<httplib::Client>> idle_ ABSL_GUARDED_BY(mu_);
  int open_ ABSL_GUARDED_BY(mu_) = 0;
};

// Maps a non-2xx Kill Bill answer to a Status, keeping Kill Bill's code and
// message.
absl::Status StatusFromResponse(int http_status, absl::string_view body,
                                absl::string_view what);

}  // namespace bg::killbill
