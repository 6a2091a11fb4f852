// HttpTarget: makes each operation through Kill Bill's REST API, directly or
// through a proxy (nginx, HAProxy), the way the load-test report's scripts and
// SaaSOdoo's billing-service do:
//   register_tagged / register_untagged:
//     POST /1.0/kb/accounts  {externalKey, name, email, currency:"USD"}  -> 201
//     + Location; register_tagged then
//     POST /1.0/kb/accounts/{id}/tags ["00000000-0000-0000-0000-000000000001"]
//   subscribe (on an account of this run, by its external key K):
//     GET  /1.0/kb/accounts?externalKey=K                       -> 200
//     accountId POST /1.0/kb/subscriptions {accountId, planName:
//     "basic-monthly",
//          bundleExternalKey: INSTANCE}          -> 201 + Location .../{subId}
//     POST /1.0/kb/subscriptions/{subId}/customFields
//          [{"name": "instance_id", "value": INSTANCE}]                 -> 201
//   overview:
//     GET /1.0/kb/accounts?externalKey=K&accountWithBalanceAndCBA=true -> 200
//     GET /1.0/kb/accounts/{id}/bundles, /paymentMethods and
//         /invoices?unpaidInvoicesOnly=true                       -> 200 each
// with basic auth and the tenant headers; writes also carry
// X-Killbill-CreatedBy. The call's deadline bounds all its requests together
// (the client timeout of the report's scripts).
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

  void Start(const CallSpec& call, Done done) override;
  void Shutdown() override;

 private:
  struct Job {
    CallSpec call;
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
// the last path segment, without query. Empty if none. Also reads the
// subscription id of `.../1.0/kb/subscriptions/<id>`.
std::string AccountIdFromLocation(const std::string& location);

}  // namespace bg::loadgen
