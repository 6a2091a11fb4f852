#include "bench/loadgen/http_target.h"

#include <httplib.h>

#include <cstdio>
#include <cstdlib>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "nlohmann/json.hpp"

namespace bg::loadgen {
namespace {

using Clock = std::chrono::steady_clock;

constexpr size_t kWorkerStackBytes = 256 * 1024;
constexpr char kAutoPayOffTag[] = "[\"00000000-0000-0000-0000-000000000001\"]";

void SetTimeouts(httplib::Client& client, std::chrono::nanoseconds remaining) {
  const auto us =
      std::chrono::duration_cast<std::chrono::microseconds>(remaining).count();
  const time_t sec = static_cast<time_t>(us / 1000000);
  const time_t usec = static_cast<time_t>(us % 1000000);
  client.set_connection_timeout(sec, usec);
  client.set_read_timeout(sec, usec);
  client.set_write_timeout(sec, usec);
}

std::optional<absl::string_view> Header(const httplib::Response& res,
                                        const char* name) {
  if (!res.has_header(name)) return std::nullopt;
  const auto& headers = res.headers;
  auto it = headers.find(name);
  return absl::string_view(it->second);
}

// A transport failure: a timeout when the deadline is (nearly) used up, else an
// error.
CallResult TransportFailure(httplib::Error error, Clock::time_point deadline) {
  CallResult r;
  const bool timing_error = error == httplib::Error::Read ||
                            error == httplib::Error::Write ||
                            error == httplib::Error::ConnectionTimeout ||
                            error == httplib::Error::Connection;
  if (timing_error &&
      Clock::now() + std::chrono::milliseconds(50) >= deadline) {
    r.kind = OutcomeKind::kTimeout;
    return r;
  }
  r.kind = OutcomeKind::kError;
  r.detail =
      absl::StrCat("http_", absl::AsciiStrToLower(httplib::to_string(error)));
  return r;
}

// One request of a call: sent within what is left of the call's deadline.
struct Exchange {
  httplib::Client& client;
  Clock::time_point deadline;

  // Sends with `send` and returns the response when its status is `expected`
  // (0: any 2xx). Otherwise sets *result (timeout when no time is left,
  // transport failure, rejection or error by status) and returns nullopt.
  template <typename Send>
  std::optional<httplib::Response> Run(int expected, Send send,
                                       CallResult* result) {
    const auto remaining = deadline - Clock::now();
    if (remaining <= std::chrono::milliseconds(0)) {
      *result = CallResult{};
      result->kind = OutcomeKind::kTimeout;
      return std::nullopt;
    }
    SetTimeouts(client, remaining);
    httplib::Result res = send(client);
    if (!res) {
      *result = TransportFailure(res.error(), deadline);
      return std::nullopt;
    }
    const bool as_expected = expected == 0
                                 ? res->status >= 200 && res->status < 300
                                 : res->status == expected;
    if (as_expected) return std::move(*res);
    *result = ClassifyHttpStatus(res->status, Header(*res, "Retry-After"));
    if (result->kind == OutcomeKind::kOk) {  // a 2xx other than expected
      result->kind = OutcomeKind::kError;
      result->detail = absl::StrCat("http_", res->status);
    }
    return std::nullopt;
  }
};

CallResult Error(const char* detail) {
  CallResult r;
  r.kind = OutcomeKind::kError;
  r.detail = detail;
  return r;
}

CallResult Ok() {
  CallResult r;
  r.kind = OutcomeKind::kOk;
  return r;
}

// The `accountId` of GET /1.0/kb/accounts?externalKey=...; empty if none.
std::string AccountIdFromBody(const std::string& body) {
  const auto j =
      nlohmann::json::parse(body, nullptr, /*allow_exceptions=*/false);
  if (!j.is_object()) return "";
  const auto it = j.find("accountId");
  if (it == j.end() || !it->is_string()) return "";
  return it->get<std::string>();
}

// register_tagged / register_untagged: POST the account, then (tagged) its
// AUTO_PAY_OFF tag.
CallResult Register(Exchange& ex, const httplib::Headers& headers,
                    const std::string& key_prefix, const CallSpec& call) {
  const nlohmann::json body = {
      {"externalKey", AccountKey(key_prefix, call.seq)},
      {"name", absl::StrCat("Load Test ", call.seq)},
      {"email", absl::StrCat("loadgen-", call.seq, "@example.com")},
      {"currency", "USD"}};
  CallResult result;
  auto created = ex.Run(
      201,
      [&](httplib::Client& c) {
        return c.Post("/1.0/kb/accounts", headers, body.dump(),
                      "application/json");
      },
      &result);
  if (!created) return result;
  if (call.op != Operation::kRegisterTagged) return Ok();
  const std::string id =
      AccountIdFromLocation(created->get_header_value("Location"));
  if (id.empty()) return Error("http_no_location");
  auto tagged = ex.Run(
      0,
      [&](httplib::Client& c) {
        return c.Post(absl::StrCat("/1.0/kb/accounts/", id, "/tags"), headers,
                      kAutoPayOffTag, "application/json");
      },
      &result);
  return tagged ? Ok() : result;
}

// GET /1.0/kb/accounts?externalKey=K[&query]: the account id, or nullopt with
// *result set.
std::optional<std::string> LookUpAccount(Exchange& ex,
                                         const httplib::Headers& headers,
                                         const std::string& key,
                                         const char* extra_query,
                                         CallResult* result) {
  auto found = ex.Run(
      200,
      [&](httplib::Client& c) {
        return c.Get(
            absl::StrCat("/1.0/kb/accounts?externalKey=", key, extra_query),
            headers);
      },
      result);
  if (!found) return std::nullopt;
  std::string id = AccountIdFromBody(found->body);
  if (id.empty()) {
    *result = Error("http_no_account_id");
    return std::nullopt;
  }
  return id;
}

// subscribe: look the account up by key, POST the subscription, POST its
// instance_id custom field.
CallResult Subscribe(Exchange& ex, const httplib::Headers& read_headers,
                     const httplib::Headers& write_headers,
                     const std::string& key_prefix, const CallSpec& call) {
  CallResult result;
  const std::optional<std::string> account_id = LookUpAccount(
      ex, read_headers, AccountKey(key_prefix, call.account_seq), "", &result);
  if (!account_id) return result;
  const std::string instance = InstanceId(key_prefix, call.seq);
  const nlohmann::json body = {{"accountId", *account_id},
                               {"planName", kSubscribePlan},
                               {"bundleExternalKey", instance}};
  auto created = ex.Run(
      201,
      [&](httplib::Client& c) {
        return c.Post("/1.0/kb/subscriptions", write_headers, body.dump(),
                      "application/json");
      },
      &result);
  if (!created) return result;
  const std::string id =
      AccountIdFromLocation(created->get_header_value("Location"));
  if (id.empty()) return Error("http_no_location");
  const nlohmann::json fields =
      nlohmann::json::array({{{"name", "instance_id"}, {"value", instance}}});
  auto field = ex.Run(
      201,
      [&](httplib::Client& c) {
        return c.Post(
            absl::StrCat("/1.0/kb/subscriptions/", id, "/customFields"),
            write_headers, fields.dump(), "application/json");
      },
      &result);
  return field ? Ok() : result;
}

// overview: the account with balance and credit, then its bundles, payment
// methods and unpaid invoices.
CallResult Overview(Exchange& ex, const httplib::Headers& headers,
                    const std::string& key_prefix, const CallSpec& call) {
  CallResult result;
  const std::optional<std::string> account_id =
      LookUpAccount(ex, headers, AccountKey(key_prefix, call.account_seq),
                    "&accountWithBalanceAndCBA=true", &result);
  if (!account_id) return result;
  for (const char* tail :
       {"/bundles", "/paymentMethods", "/invoices?unpaidInvoicesOnly=true"}) {
    auto read = ex.Run(
        200,
        [&](httplib::Client& c) {
          return c.Get(absl::StrCat("/1.0/kb/accounts/", *account_id, tail),
                       headers);
        },
        &result);
    if (!read) return result;
  }
  return Ok();
}

}  // namespace

std::string AccountIdFromLocation(const std::string& location) {
  std::string path = location.substr(0, location.find_first_of("?#"));
  while (!path.empty() && path.back() == '/') path.pop_back();
  const size_t slash = path.rfind('/');
  if (slash == std::string::npos) return "";
  return path.substr(slash + 1);
}

HttpTarget::HttpTarget(HttpTargetOptions options)
    : options_(std::move(options)) {
  const int n = options_.workers > 0 ? options_.workers : 1;
  pthread_attr_t attr;
  pthread_attr_init(&attr);
  pthread_attr_setstacksize(&attr, kWorkerStackBytes);
  for (int i = 0; i < n; ++i) {
    pthread_t t;
    if (pthread_create(&t, &attr, &HttpTarget::WorkerMain, this) != 0) {
      std::fprintf(stderr,
                   "billing-loadgen: could not start HTTP worker %d of %d\n", i,
                   n);
      break;
    }
    threads_.push_back(t);
  }
  pthread_attr_destroy(&attr);
}

HttpTarget::~HttpTarget() { Shutdown(); }

void HttpTarget::Start(const CallSpec& call, Done done) {
  absl::MutexLock lock(&mu_);
  jobs_.push_back(Job{call, std::move(done)});
}

void HttpTarget::Shutdown() {
  {
    absl::MutexLock lock(&mu_);
    if (stopping_ && threads_.empty()) return;
    stopping_ = true;
  }
  for (pthread_t t : threads_) pthread_join(t, nullptr);
  threads_.clear();
}

void* HttpTarget::WorkerMain(void* self) {
  static_cast<HttpTarget*>(self)->WorkerLoop();
  return nullptr;
}

void HttpTarget::WorkerLoop() {
  httplib::Client client(options_.host, options_.port);
  client.set_keep_alive(options_.keep_alive);
  // Without it every keep-alive exchange waits ~40 ms for Nagle + delayed ACK.
  client.set_tcp_nodelay(true);
  client.set_basic_auth(options_.user.c_str(), options_.password.c_str());
  const httplib::Headers read_headers = {
      {"X-Killbill-ApiKey", options_.api_key},
      {"X-Killbill-ApiSecret", options_.api_secret},
      {"Accept", "application/json"},
  };
  httplib::Headers write_headers = read_headers;
  write_headers.emplace("X-Killbill-CreatedBy", options_.created_by);
  for (;;) {
    Job job;
    {
      absl::MutexLock lock(&mu_);
      mu_.Await(absl::Condition(
          +[](HttpTarget* t) ABSL_EXCLUSIVE_LOCKS_REQUIRED(t->mu_) {
            return t->stopping_ || !t->jobs_.empty();
          },
          this));
      if (jobs_.empty()) return;  // stopping and drained
      job = std::move(jobs_.front());
      jobs_.pop_front();
    }
    const Clock::time_point deadline = Clock::now() + options_.deadline;
    Exchange ex{client, deadline};
    CallResult result;
    switch (job.call.op) {
      case Operation::kRegisterTagged:
      case Operation::kRegisterUntagged:
        result = Register(ex, write_headers, options_.key_prefix, job.call);
        break;
      case Operation::kSubscribe:
        result = Subscribe(ex, read_headers, write_headers, options_.key_prefix,
                           job.call);
        break;
      case Operation::kOverview:
        result = Overview(ex, read_headers, options_.key_prefix, job.call);
        break;
    }
    // A 2xx that arrived after the deadline would have been a timeout for the
    // report's scripts too (their client gave up at the same moment).
    if (result.kind == OutcomeKind::kOk && Clock::now() > deadline) {
      result.kind = OutcomeKind::kTimeout;
    }
    job.done(result);
  }
}

}  // namespace bg::loadgen
