// KillBillClient: a typed client for the part of Kill Bill's REST API billing-gateway uses.
//
// It knows HTTP, JSON and Kill Bill's conventions (auth and tenant headers, error bodies,
// Location headers, the healthcheck servlet), and nothing about queues, rates or gRPC.
// Every failure comes back as an absl::Status:
//   409 / code 3000 -> ALREADY_EXISTS        404 -> NOT_FOUND
//   401             -> UNAUTHENTICATED       403 -> PERMISSION_DENIED
//   other 4xx       -> INVALID_ARGUMENT      5xx, timeout, refused, reset -> UNAVAILABLE
//   a body or Location that cannot be understood -> INTERNAL
// Kill Bill's numeric code and message are kept: in the status message and, for the code,
// as the payload kKillBillCodePayload (decimal text).
//
// Connections: a pool of `max_connections` keep-alive connections; a call takes one for its
// duration and blocks until one is free. Callers that cap their own concurrency at or below
// the pool size never wait here.
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

inline constexpr char kKillBillCodePayload[] = "type.billing-gateway/killbill.code";

struct ClientOptions {
  // Base URL, scheme://host[:port] (http or https), no path.
  std::string url = "http://127.0.0.1:8080";
  // Tenant credentials (X-Killbill-ApiKey / X-Killbill-ApiSecret).
  std::string api_key = "fresh-tenant";
  std::string api_secret = "fresh-secret";
  // HTTP basic auth.
  std::string username = "admin";
  std::string password = "password";
  // X-Killbill-CreatedBy on writes (Kill Bill's audit log).
  std::string created_by = "billing-gateway";
  // TCP connect timeout, and the read/write timeout of one request.
  std::chrono::milliseconds connect_timeout{2000};
  std::chrono::milliseconds request_timeout{10000};
  // Keep-alive connections held open; also the most calls in flight at once.
  int max_connections = 16;
  // PEM file of CAs to verify an https Kill Bill against; empty means the system store.
  std::string ca_file;
  // Responses larger than this are refused as INTERNAL (a broken or hostile peer).
  size_t max_response_bytes = 1 << 20;
};

class KillBillClient {
 public:
  // Fails with INVALID_ARGUMENT when the URL is not http(s)://host[:port].
  static absl::StatusOr<std::unique_ptr<KillBillClient>> Create(ClientOptions options);
  ~KillBillClient();

  KillBillClient(const KillBillClient&) = delete;
  KillBillClient& operator=(const KillBillClient&) = delete;

  // POST /1.0/kb/accounts. Returns the new account id (from the Location header).
  absl::StatusOr<std::string> CreateAccount(const NewAccount& account);
  // GET /1.0/kb/accounts?externalKey=.
  absl::StatusOr<Account> GetAccountByKey(const std::string& external_key);
  // GET /1.0/kb/accounts/{id}.
  absl::StatusOr<Account> GetAccountById(const std::string& account_id);
  // POST /1.0/kb/accounts/{id}/tags with tag definition ids.
  absl::Status AddTags(const std::string& account_id, const std::vector<std::string>& tag_ids);
  // GET /1.0/healthcheck (no auth). A 500 answer is a report, not an error.
  absl::StatusOr<HealthReport> Healthcheck();

  const std::string& origin() const { return origin_; }

 private:
  struct Response {
    int status = 0;
    std::string body;
    std::string location;
  };
  class Lease;

  KillBillClient(ClientOptions options, std::string origin);
  std::unique_ptr<httplib::Client> NewConnection() const;
  std::unique_ptr<httplib::Client> Acquire();
  void Release(std::unique_ptr<httplib::Client> conn);
  // Sends one request on a pooled connection; transport failures become UNAVAILABLE.
  absl::StatusOr<Response> Send(const std::string& method, const std::string& path,
                                const std::string& body, bool authenticated);

  const ClientOptions options_;
  const std::string origin_;  // Normalised scheme://host:port of options_.url.

  absl::Mutex mu_;
  std::vector<std::unique_ptr<httplib::Client>> idle_ ABSL_GUARDED_BY(mu_);
  int open_ ABSL_GUARDED_BY(mu_) = 0;
};

// Maps a non-2xx Kill Bill answer to a Status, keeping Kill Bill's code and message.
absl::Status StatusFromResponse(int http_status, absl::string_view body, absl::string_view what);

}  // namespace bg::killbill
