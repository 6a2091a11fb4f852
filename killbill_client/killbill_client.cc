#include "killbill_client/killbill_client.h"

#include <httplib.h>

#include <algorithm>
#include <map>
#include <thread>
#include <utility>

#include "absl/strings/cord.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "killbill_client/parse.h"
#include "nlohmann/json.hpp"

namespace bg::killbill {
namespace {

using Json = nlohmann::json;

// Kill Bill's message, at most kMaxMessageBytes of it: it travels in the gRPC
// status and in a durable operation's error_message, and a peer can send a
// megabyte. Cut on a UTF-8 character boundary.
constexpr size_t kMaxMessageBytes = 1024;
std::string CapMessage(const std::string& message) {
  if (message.size() <= kMaxMessageBytes) return message;
  size_t cut = kMaxMessageBytes;
  while (cut > 0 && (static_cast<unsigned char>(message[cut]) & 0xC0) == 0x80)
    --cut;
  return absl::StrCat(message.substr(0, cut), "... (", message.size() - cut,
                      " more bytes)");
}

absl::Status WithCode(absl::Status status,
                      const std::optional<ErrorBody>& error) {
  if (error && error->code) {
    status.SetPayload(kKillBillCodePayload,
                      absl::Cord(std::to_string(*error->code)));
  }
  return status;
}

}  // namespace

// Enforces whole-call deadlines that httplib cannot (its timeouts are per
// read/write): at a call's deadline it shuts down the socket of that call's
// connection with httplib::Client::stop(), which makes the blocked read or
// write fail at once.
//
// Thread-safety: Arm/Disarm from any thread. stop() is called outside mu_ (it
// may wait for httplib's socket mutex, held while connecting); Disarm() waits
// for a stop() in progress on its own connection, so the connection outlives
// every use the watchdog makes of it.
class KillBillClient::Watchdog {
 public:
  Watchdog() : thread_([this] { Loop(); }) {}
  ~Watchdog() {
    {
      absl::MutexLock lock(&mu_);
      stopping_ = true;
      cv_.SignalAll();
    }
    thread_.join();
  }

  // Watches `conn` until Disarm(id); stops it if still watched at `deadline`.
  // 0 once CutAll() ran: the call must not be sent.
  uint64_t Arm(httplib::Client* conn, Deadline deadline)
      ABSL_LOCKS_EXCLUDED(mu_) {
    absl::MutexLock lock(&mu_);
    if (cut_) return 0;
    const uint64_t id = ++next_id_;
    timers_.emplace(std::pair{deadline, id}, conn);
    cv_.SignalAll();
    return id;
  }

  // Stops watching; true when the deadline had fired (the connection was shut
  // down).
  bool Disarm(uint64_t id, Deadline deadline) ABSL_LOCKS_EXCLUDED(mu_) {
    absl::MutexLock lock(&mu_);
    if (id == 0) return false;
    if (timers_.erase(std::pair{deadline, id}) > 0) return false;
    while (firing_ == id) stopped_cv_.Wait(&mu_);
    return true;
  }

  // Every watched call is due now, and Arm refuses from now on.
  void CutAll() ABSL_LOCKS_EXCLUDED(mu_) {
    absl::MutexLock lock(&mu_);
    cut_ = true;
    cv_.SignalAll();
  }
  bool cut() ABSL_LOCKS_EXCLUDED(mu_) {
    absl::MutexLock lock(&mu_);
    return cut_;
  }

 private:
  void Loop() ABSL_LOCKS_EXCLUDED(mu_) {
    absl::MutexLock lock(&mu_);
    while (!stopping_) {
      const auto now = std::chrono::steady_clock::now();
      if (!timers_.empty() && (cut_ || timers_.begin()->first.first <= now)) {
        auto due = timers_.begin();
        httplib::Client* conn = due->second;
        firing_ = due->first.second;
        timers_.erase(due);
        mu_.Unlock();
        conn->stop();
        mu_.Lock();
        firing_ = 0;
        stopped_cv_.SignalAll();
        continue;
      }
      if (timers_.empty()) {
        cv_.Wait(&mu_);
      } else {
        cv_.WaitWithTimeout(
            &mu_, absl::FromChrono(timers_.begin()->first.first - now));
      }
    }
  }

  absl::Mutex mu_;
  absl::CondVar cv_;          // Signalled on Arm, CutAll and on shutdown.
  absl::CondVar stopped_cv_;  // Signalled when a stop() has returned.
  std::map<std::pair<Deadline, uint64_t>, httplib::Client*> timers_
      ABSL_GUARDED_BY(mu_);
  uint64_t next_id_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t firing_ ABSL_GUARDED_BY(mu_) =
      0;  // Timer whose stop() runs now, 0 for none.
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  bool cut_ ABSL_GUARDED_BY(mu_) = false;
  std::thread thread_;
};

absl::Status StatusFromResponse(int http_status, absl::string_view body,
                                absl::string_view what) {
  std::optional<ErrorBody> error = ParseErrorBody(body);
  std::string detail = absl::StrCat("killbill: ", what, ": HTTP ", http_status);
  if (error) {
    if (error->code) absl::StrAppend(&detail, " code ", *error->code);
    if (!error->message.empty())
      absl::StrAppend(&detail, ": ", CapMessage(error->message));
  }
  const std::optional<ErrorBody>& code = error;
  if (http_status == 409)
    return WithCode(absl::AlreadyExistsError(detail), code);
  if (http_status == 404) return WithCode(absl::NotFoundError(detail), code);
  if (http_status == 401)
    return WithCode(absl::UnauthenticatedError(detail), code);
  if (http_status == 403)
    return WithCode(absl::PermissionDeniedError(detail), code);
  // Kill Bill's request timeout (callCompletion=true, 408) is transient.
  if (http_status == 408) return WithCode(absl::UnavailableError(detail), code);
  // Kill Bill answers these business rules with a 500: a subscription that is
  // not in a state to be changed (1021) or cancelled (1031). Not a sick
  // server: retrying cannot help.
  if (http_status >= 500 && error && error->code &&
      (*error->code == 1021 || *error->code == 1031))
    return WithCode(absl::FailedPreconditionError(detail), code);
  if (http_status >= 500) return WithCode(absl::UnavailableError(detail), code);
  if (http_status >= 400)
    return WithCode(absl::InvalidArgumentError(detail), code);
  return absl::InternalError(absl::StrCat(detail, " (unexpected status)"));
}

absl::StatusOr<std::unique_ptr<KillBillClient>> KillBillClient::Create(
    ClientOptions options) {
  const std::string& url = options.url;
  const bool http = absl::StartsWith(url, "http://");
  const bool https = absl::StartsWith(url, "https://");
  const size_t host_start = http ? 7 : 8;
  if ((!http && !https) || url.size() <= host_start ||
      url.find('/', host_start) != std::string::npos ||
      url.find_first_of("?#@ ", host_start) != std::string::npos) {
    return absl::InvalidArgumentError(
        "killbill.url must be http://host[:port] or https://host[:port] "
        "without a path");
  }
  if (options.max_connections < 1) {
    return absl::InvalidArgumentError(
        "killbill.max_connections must be at least 1");
  }
  std::string origin = url;
  return std::unique_ptr<KillBillClient>(
      new KillBillClient(std::move(options), origin));
}

KillBillClient::KillBillClient(ClientOptions options, std::string origin)
    : options_(std::move(options)),
      origin_(std::move(origin)),
      watchdog_(std::make_unique<Watchdog>()) {}

void KillBillClient::CutCallsInFlight() { watchdog_->CutAll(); }

// No call may be running when the client is destroyed.
KillBillClient::~KillBillClient() = default;

std::unique_ptr<httplib::Client> KillBillClient::NewConnection() const {
  auto conn = std::make_unique<httplib::Client>(options_.url);
  conn->set_keep_alive(true);
  // Without it each keep-alive exchange waits ~40 ms for Nagle + delayed ACK.
  conn->set_tcp_nodelay(true);
  conn->set_follow_location(false);
  conn->set_connection_timeout(options_.connect_timeout);
  conn->set_read_timeout(options_.request_timeout);
  conn->set_write_timeout(options_.request_timeout);
  if (!options_.ca_file.empty()) conn->set_ca_cert_path(options_.ca_file);
  conn->enable_server_certificate_verification(true);
  return conn;
}

bool KillBillClient::Acquire(Deadline deadline,
                             std::unique_ptr<httplib::Client>* conn,
                             bool* open_new) {
  absl::MutexLock lock(&mu_);
  const bool free = mu_.AwaitWithTimeout(
      absl::Condition(
          +[](KillBillClient* self) ABSL_EXCLUSIVE_LOCKS_REQUIRED(self->mu_) {
            return !self->idle_.empty() ||
                   self->open_ < self->options_.max_connections;
          },
          this),
      absl::FromChrono(deadline - std::chrono::steady_clock::now()));
  if (!free) return false;
  if (!idle_.empty()) {
    *conn = std::move(idle_.back());
    idle_.pop_back();
    *open_new = false;
    return true;
  }
  ++open_;
  *open_new = true;  // The caller opens the connection outside the lock.
  return true;
}

void KillBillClient::Release(std::unique_ptr<httplib::Client> conn) {
  absl::MutexLock lock(&mu_);
  if (conn) {
    idle_.push_back(std::move(conn));
  } else {
    --open_;
  }
}

absl::StatusOr<KillBillClient::Response> KillBillClient::Send(
    const std::string& method, const std::string& path, const std::string& body,
    bool authenticated, const CallOptions& call, absl::string_view reason) {
  using Ms = std::chrono::milliseconds;
  const Ms timeout = call.timeout > Ms::zero()
                         ? std::min(call.timeout, options_.request_timeout)
                         : options_.request_timeout;
  const auto start = std::chrono::steady_clock::now();
  const Deadline deadline = start + timeout;
  auto what = [&] { return absl::StrCat("killbill: ", method, " ", path); };
  auto timed_out = [&] {
    return absl::UnavailableError(absl::StrCat(
        what(), ": no complete answer within ", timeout.count(), " ms"));
  };

  std::unique_ptr<httplib::Client> conn;
  bool open_new = false;
  if (!Acquire(deadline, &conn, &open_new)) {
    return absl::UnavailableError(absl::StrCat(
        what(), ": no free connection within ", timeout.count(), " ms"));
  }
  if (open_new) conn = NewConnection();
  // This call's share of its deadline, for httplib's per-operation timeouts;
  // the watchdog enforces the total.
  const auto left = std::max<std::chrono::microseconds>(
      std::chrono::duration_cast<std::chrono::microseconds>(
          deadline - std::chrono::steady_clock::now()),
      std::chrono::microseconds(1000));
  conn->set_connection_timeout(
      std::min<std::chrono::microseconds>(options_.connect_timeout, left));
  conn->set_read_timeout(left);
  conn->set_write_timeout(left);

  httplib::Request req;
  req.method = method;
  req.path = path;
  req.headers.emplace("Accept", "application/json");
  if (authenticated) {
    req.headers.insert(httplib::make_basic_authentication_header(
        options_.username, options_.password));
    req.headers.emplace("X-Killbill-ApiKey", options_.api_key);
    req.headers.emplace("X-Killbill-ApiSecret", options_.api_secret);
  }
  if (method == "POST" || method == "DELETE") {
    req.headers.emplace("X-Killbill-CreatedBy", options_.created_by);
    if (!reason.empty())
      req.headers.emplace("X-Killbill-Reason", std::string(reason));
  }
  if (method == "POST") {
    req.headers.emplace("Content-Type", "application/json");
    req.body = body;
  }
  Response out;
  bool too_large = false;
  bool late = false;
  req.content_receiver = [&](const char* data, size_t len, uint64_t, uint64_t) {
    if (out.body.size() + len > options_.max_response_bytes) {
      too_large = true;
      return false;
    }
    // Checked here too (not only by the watchdog) so a drip ends at the first
    // byte late.
    if (std::chrono::steady_clock::now() >= deadline) {
      late = true;
      return false;
    }
    out.body.append(data, len);
    return true;
  };
  httplib::Response res;
  httplib::Error error = httplib::Error::Success;
  const uint64_t timer = watchdog_->Arm(conn.get(), deadline);
  if (timer == 0) {
    Release(std::move(conn));
    return absl::UnavailableError(
        absl::StrCat(what(), ": not sent: the gateway is shutting down"));
  }
  const bool sent = conn->send(req, res, error);
  const bool stopped = watchdog_->Disarm(timer, deadline);
  if (!sent || stopped) {
    // A connection that failed mid-request, or that the watchdog shut, is not
    // reused: drop it and free its slot.
    conn.reset();
    Release(nullptr);
  } else {
    Release(std::move(conn));
  }
  if (!sent) {
    if (too_large) {
      return absl::InternalError(absl::StrCat(what(), ": response larger than ",
                                              options_.max_response_bytes,
                                              " bytes"));
    }
    // Past connecting, the request may have reached Kill Bill and been done
    // there: say so, for the callers that must know (a create's `created`).
    auto unanswered = [](absl::Status status) {
      status.SetPayload(kUnansweredPayload, absl::Cord("1"));
      return status;
    };
    if (stopped && watchdog_->cut()) {
      return unanswered(absl::UnavailableError(
          absl::StrCat(what(), ": cut: the gateway is shutting down")));
    }
    // httplib's own per-read timeout was set to the time left, so it may fire a
    // hair before the deadline: count that as the call's timeout too.
    if (late || stopped ||
        std::chrono::steady_clock::now() + Ms(20) >= deadline) {
      return unanswered(timed_out());
    }
    absl::Status failed = absl::UnavailableError(
        absl::StrCat(what(), ": ", httplib::to_string(error)));
    return error == httplib::Error::Connection ? failed : unanswered(failed);
  }
  out.status = res.status;
  out.location = res.get_header_value("Location");
  return out;
}

absl::StatusOr<std::string> KillBillClient::CreateAccount(
    const NewAccount& account, const CallOptions& call) {
  Json body = Json::object();
  for (auto [key, value] : {std::pair{"externalKey", &account.external_key},
                            {"name", &account.name},
                            {"email", &account.email},
                            {"currency", &account.currency},
                            {"company", &account.company},
                            {"notes", &account.notes}}) {
    if (!value->empty()) body[key] = *value;
  }
  auto res = Send("POST", "/1.0/kb/accounts", body.dump(), true, call);
  if (!res.ok()) return res.status();
  if (res->status != 201)
    return StatusFromResponse(res->status, res->body, "create account");
  return AccountIdFromLocation(res->location);
}

absl::StatusOr<Account> KillBillClient::GetAccountByKey(
    const std::string& external_key, const CallOptions& call) {
  auto res =
      Send("GET", "/1.0/kb/accounts?externalKey=" + PercentEncode(external_key),
           "", true, call);
  if (!res.ok()) return res.status();
  if (res->status != 200)
    return StatusFromResponse(res->status, res->body, "get account");
  absl::StatusOr<Account> account = ParseAccount(res->body);
  // Never hand out another key's account (a proxy or Kill Bill dropping or
  // mangling the query would answer with some other account).
  if (account.ok() && account->external_key != external_key) {
    return absl::InternalError(
        "Kill Bill answered the lookup by externalKey with an account under "
        "another externalKey");
  }
  return account;
}

absl::StatusOr<Account> KillBillClient::GetAccountById(
    const std::string& account_id, const CallOptions& call) {
  if (!IsUuid(account_id))
    return absl::InvalidArgumentError("account_id is not a UUID");
  auto res = Send("GET", "/1.0/kb/accounts/" + account_id, "", true, call);
  if (!res.ok()) return res.status();
  if (res->status != 200)
    return StatusFromResponse(res->status, res->body, "get account");
  return ParseAccount(res->body);
}

absl::Status KillBillClient::AddTags(const std::string& account_id,
                                     const std::vector<std::string>& tag_ids,
                                     const CallOptions& call) {
  if (!IsUuid(account_id))
    return absl::InvalidArgumentError("account_id is not a UUID");
  auto res = Send("POST", "/1.0/kb/accounts/" + account_id + "/tags",
                  Json(tag_ids).dump(), true, call);
  if (!res.ok()) return res.status();
  if (res->status != 201)
    return StatusFromResponse(res->status, res->body, "add tags");
  return absl::OkStatus();
}

absl::StatusOr<HealthReport> KillBillClient::Healthcheck(
    const CallOptions& call) {
  auto res = Send("GET", "/1.0/healthcheck", "", false, call);
  if (!res.ok()) return res.status();
  return ParseHealthReport(res->status, res->body);
}

absl::StatusOr<BusCounters> KillBillClient::BusMetrics(
    const CallOptions& call) {
  auto res = Send("GET", "/1.0/metrics", "", false, call);
  if (!res.ok()) return res.status();
  if (res->status == 404) return BusCounters{};
  if (res->status != 200)
    return StatusFromResponse(res->status, res->body, "metrics");
  return ParseBusCounters(res->body);
}

}  // namespace bg::killbill
