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

void HttpTarget::Start(int64_t seq, Done done) {
  absl::MutexLock lock(&mu_);
  jobs_.push_back(Job{seq, std::move(done)});
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
  const httplib::Headers headers = {
      {"X-Killbill-ApiKey", options_.api_key},
      {"X-Killbill-ApiSecret", options_.api_secret},
      {"X-Killbill-CreatedBy", options_.created_by},
      {"Accept", "application/json"},
  };
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
    CallResult result;
    const std::string key = absl::StrCat(options_.key_prefix, job.seq);
    const nlohmann::json body = {
        {"externalKey", key},
        {"name", absl::StrCat("Load Test ", job.seq)},
        {"email", absl::StrCat("loadgen-", job.seq, "@example.com")},
        {"currency", "USD"}};
    SetTimeouts(client, deadline - Clock::now());
    auto res = client.Post("/1.0/kb/accounts", headers, body.dump(),
                           "application/json");
    if (!res) {
      result = TransportFailure(res.error(), deadline);
    } else if (res->status != 201) {
      result = ClassifyHttpStatus(res->status, Header(*res, "Retry-After"));
      if (result.kind ==
          OutcomeKind::kOk) {  // a 2xx other than 201: no Location contract
        result.kind = OutcomeKind::kError;
        result.detail = absl::StrCat("http_", res->status);
      }
    } else if (!options_.tag_auto_pay_off) {
      result.kind = OutcomeKind::kOk;
    } else {
      const std::string id =
          AccountIdFromLocation(res->get_header_value("Location"));
      if (id.empty()) {
        result.kind = OutcomeKind::kError;
        result.detail = "http_no_location";
      } else {
        const auto remaining = deadline - Clock::now();
        if (remaining <= std::chrono::milliseconds(0)) {
          result.kind = OutcomeKind::kTimeout;
        } else {
          SetTimeouts(client, remaining);
          auto tag = client.Post(absl::StrCat("/1.0/kb/accounts/", id, "/tags"),
                                 headers, kAutoPayOffTag, "application/json");
          if (!tag) {
            result = TransportFailure(tag.error(), deadline);
          } else {
            result =
                ClassifyHttpStatus(tag->status, Header(*tag, "Retry-After"));
          }
        }
      }
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
