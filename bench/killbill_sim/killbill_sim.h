// KillBillSim: an in-process HTTP stand-in for Kill Bill 0.24 (see
// /work/shared/KILLBILL.md) built on cpp-httplib, for tests (port 0,
// in-process) and for the `killbill-sim` binary.
//
// Serves the Kill Bill REST subset billing-gateway uses, with Kill Bill's
// status codes, headers and JSON shapes: POST/GET accounts, POST/GET account
// tags, GET /1.0/healthcheck (with the real queue-growth signal,
// QueueGrowthDetector) and DELETE/PUT /1.0/kb/admin/healthcheck. Accounts live
// in memory. The time a call takes comes from CapacityModel (processor sharing
// + bus backlog); a handler thread submits its job and waits on a condition
// variable until the model, advanced on the real clock, says it is done.
// Control and observation live under /sim/ (never /1.0/):
//   GET  /sim/stats   counters, in-flight, bus backlog, settings, faults (adds
//   no
//                     healthcheck sample);
//   POST /sim/config  JSON subset of the settings (capacity, bus_drain,
//   base_latency_ms...); POST /sim/faults
//   {"outage":"refuse"|"503","outage_seconds":S,"stall_seconds":S,
//                      "error_rate":p,"garbage_rate":p,"reset_rate":p,"clear":true}.
// Fault semantics (only /1.0/** calls are affected):
//   outage refuse  the listening socket is closed for outage_seconds (new
//   connections are
//                  refused, kept-alive ones are closed, in-flight calls are
//                  reset and their work abandoned), then the same port is bound
//                  again. /sim/ is unreachable meanwhile, so outage_seconds is
//                  required; ClearFaults() ends it early.
//   outage 503     every call answers 503 (text body) at once, for
//   outage_seconds or until
//                  cleared.
//   stall          calls arriving before the stall ends wait for it, then
//   proceed. error_rate     with probability p: 500 with a Kill Bill error
//   body, no work done. garbage_rate   with probability p: 200, Content-Type
//   application/json, a body that
//                  is not JSON, no work done.
//   reset_rate     with probability p: the call is fully processed (an account
//   IS
//                  created) and then the connection is reset (RST) before any
//                  response byte: the client cannot tell whether it happened.
//
// Thread-safety: all public methods are safe from any thread. One absl::Mutex
// guards the model, the accounts, the detectors, the faults and the counters;
// it is never held while doing I/O. The Clock must advance in real time (waits
// are real): FakeClock is for CapacityModel and QueueGrowthDetector tests, not
// for this class.
#pragma once

#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <random>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "bench/killbill_sim/capacity_model.h"
#include "bench/killbill_sim/sim_options.h"
#include "common/clock.h"
#include "killbill_client/queue_growth.h"
#include "nlohmann/json.hpp"

namespace httplib {
struct Request;
struct Response;
}  // namespace httplib

namespace bg::sim {

class SimHttpServer;

class KillBillSim {
 public:
  explicit KillBillSim(const SimOptions& options,
                       const Clock* clock = SteadyClock::Instance());
  ~KillBillSim();  // Stop()s
  KillBillSim(const KillBillSim&) = delete;
  KillBillSim& operator=(const KillBillSim&) = delete;

  // Binds options.host:options.port (0 = any free port) and serves on
  // background threads. Returns once the socket is listening. Call at most
  // once.
  absl::Status Start();
  // Stops serving: aborts waiting calls, closes the listener, joins every
  // thread. Idempotent.
  void Stop();
  // Blocks until the listening socket is open (false on timeout): after Start()
  // it is; after a refuse outage ends it comes back a little later.
  bool WaitForListener(absl::Duration timeout);
  // The bound port (valid after Start()).
  int port() const { return port_; }

  // The same operations as the /sim/ endpoints, for tests and embedding.
  nlohmann::ordered_json Stats();
  absl::Status Configure(const nlohmann::json& settings);
  absl::Status InjectFaults(const nlohmann::json& faults);
  void ClearFaults();

 private:
  friend class SimHttpServer;
  struct Account {
    nlohmann::ordered_json
        json;  // every field but the balance ones, in Kill Bill order
    std::vector<std::string> tag_definition_ids;
  };
  // What the pre-checks decided for one /1.0/ call.
  enum class FaultAction { kNone, kRespond503, kError500, kGarbage };

  void RegisterRoutes();
  void ListenLoop();
  bool StallOrAbort(uint64_t epoch) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  // Wraps a /1.0/ handler: counting, faults, the max_threads limit.
  void Serve(const char* label, const httplib::Request& req,
             httplib::Response& res, bool needs_thread,
             const std::function<void()>& handler);
  // What a call costs in the capacity model: 1 unit, tag_cost or read_cost.
  enum class Work { kCreate, kTag, kRead };
  // Runs one call's work through the model. False if the call was aborted
  // (outage/stop): the connection is then marked to be reset.
  bool RunJob(Work work);
  // Kill Bill's 404 for an unknown account id.
  static void SendAccountNotFound(httplib::Response& res,
                                  const std::string& id);
  // Auth checks; on failure fills `res` and returns false.
  bool CheckAuth(const httplib::Request& req, httplib::Response& res,
                 bool tenant, bool created_by);

  void CreateAccount(const httplib::Request& req, httplib::Response& res);
  void GetAccountByKey(const httplib::Request& req, httplib::Response& res);
  void GetAccount(const httplib::Request& req, httplib::Response& res);
  void AddTags(const httplib::Request& req, httplib::Response& res);
  void GetTags(const httplib::Request& req, httplib::Response& res);
  void Healthcheck(const httplib::Request& req, httplib::Response& res);
  void SetRotation(bool in_rotation, const httplib::Request& req,
                   httplib::Response& res);

  std::string NewUuid() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  std::string Location(const httplib::Request& req,
                       const std::string& path) const;
  nlohmann::ordered_json RenderAccount(const Account& account,
                                       const httplib::Request& req) const;
  nlohmann::ordered_json FaultsJson() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void CountRequest(const std::string& label, const std::string& outcome)
      ABSL_LOCKS_EXCLUDED(mu_);

  const Clock* const clock_;
  const Clock::TimePoint start_time_;
  std::unique_ptr<SimHttpServer> server_;
  std::thread listener_;
  int port_ = 0;
  // Connections closed at once because max_connections + accept_count were
  // exceeded; atomic because it is bumped on the accept thread, which must not
  // take mu_.
  std::atomic<uint64_t> connections_rejected_{0};

  mutable absl::Mutex mu_;
  // Signalled when model jobs complete, faults change or the sim stops.
  absl::CondVar model_cv_;
  // Signalled when a request thread (max_threads) frees up.
  absl::CondVar slot_cv_;
  // Wakes the listener loop (outage end, clear, stop).
  absl::CondVar listener_cv_;

  SimOptions options_ ABSL_GUARDED_BY(mu_);
  CapacityModel model_ ABSL_GUARDED_BY(mu_);
  killbill::QueueGrowthDetector bus_detector_ ABSL_GUARDED_BY(mu_);
  killbill::QueueGrowthDetector external_bus_detector_ ABSL_GUARDED_BY(mu_);
  bool in_rotation_ ABSL_GUARDED_BY(mu_) = true;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  bool started_ ABSL_GUARDED_BY(mu_) = false;
  // The listening socket is bound (connections are accepted by the kernel).
  bool listening_ ABSL_GUARDED_BY(mu_) = false;
  // Bumped when in-flight calls must be abandoned (refuse outage, stop).
  uint64_t abort_epoch_ ABSL_GUARDED_BY(mu_) = 0;
  int busy_threads_ ABSL_GUARDED_BY(mu_) = 0;
  int in_flight_ ABSL_GUARDED_BY(mu_) = 0;

  std::unordered_map<std::string, Account> accounts_ ABSL_GUARDED_BY(mu_);
  std::unordered_map<std::string, std::string> id_by_key_ ABSL_GUARDED_BY(mu_);

  // Faults.
  std::string outage_mode_ ABSL_GUARDED_BY(mu_);  // "", "refuse", "503"
  Clock::TimePoint outage_until_ ABSL_GUARDED_BY(mu_);
  Clock::TimePoint stall_until_ ABSL_GUARDED_BY(mu_);
  double error_rate_ ABSL_GUARDED_BY(mu_) = 0;
  double garbage_rate_ ABSL_GUARDED_BY(mu_) = 0;
  double reset_rate_ ABSL_GUARDED_BY(mu_) = 0;
  std::mt19937_64 fault_rng_ ABSL_GUARDED_BY(mu_);
  std::mt19937_64 id_rng_ ABSL_GUARDED_BY(mu_);

  // Counters.
  uint64_t accounts_created_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t conflicts_409_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t tags_added_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t healthcheck_calls_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t healthcheck_unhealthy_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t aborted_calls_ ABSL_GUARDED_BY(mu_) = 0;
  std::string last_health_message_ ABSL_GUARDED_BY(mu_);
  // label -> outcome (HTTP status, "reset" or "garbage") -> count
  std::map<std::string, std::map<std::string, uint64_t>> requests_
      ABSL_GUARDED_BY(mu_);
};

}  // namespace bg::sim
