// HttpTarget: creates accounts through Kill Bill's REST API, directly or
// through a proxy (nginx, HAProxy), the way the load-test report's scripts did:
//   POST /1.0/kb/accounts  {externalKey, name, email, currency:"USD"}   -> 201
//   + Location POST /1.0/kb/accounts/{id}/tags
//   ["00000000-0000-0000-0000-000000000001"]  (if asked)
// with basic auth, the tenant headers and X-Killbill-CreatedBy. The call's
// deadline bounds both requests together (the client timeout of the report's
// scripts).
//
// A fixed pool of worker threads, each with its own keep-alive httplib::Client,
// runs the calls; Start() queues a call for the next free worker. Workers run
// on 256 KiB stacks so 1,000-2,000 of them fit comfortably. The runner never
// queues more calls than workers.
//
// Thread-safety: Start() from any thread; `done` runs on a worker thread.
#pragma once

#include <pthread.h>

#include <chrono>
#include <cstdint>
#include <deque>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "bench/loadgen/target.h"

namespace bg::loadgen {

struct HttpTargetOptions {
  std::string host = "127.0.0.1";
  int port = 8080;
  int workers = 100;  // concurrent calls at most
  std::chrono::nanoseconds deadline = std::chrono::seconds(30);
  std::string key_prefix;
  bool tag_auto_pay_off = true;
  bool keep_alive = true;
  std::string user = "admin";
  std::string password = "password";
  std::string api_key = "fresh-tenant";
  std::string api_secret = "fresh-secret";
  std::string created_by = "billing-loadgen";
};

class HttpTarget final : public Target {
 public:
  explicit HttpTarget(HttpTargetOptions options);
  ~HttpTarget() override;

  void Start(int64_t seq, Done done) override;
  void Shutdown() override;

 private:
  struct Job {
    int64_t seq;
    Done done;
  };

  static void* WorkerMain(void* self);
  void WorkerLoop();

  const HttpTargetOptions options_;
  std::vector<pthread_t> threads_;
  absl::Mutex mu_;
  std::deque<Job> jobs_ ABSL_GUARDED_BY(mu_);
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
};

// The account id in a Location header, absolute
// (`http://h:p/1.0/kb/accounts/<id>`) or relative (`/1.0/kb/accounts/<id>`):
// the last path segment, without query. Empty if none.
std::string AccountIdFromLocation(const std::string& location);

}  // namespace bg::loadgen
