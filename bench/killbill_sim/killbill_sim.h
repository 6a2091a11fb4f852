// KillBillSim: an in-process HTTP stand-in for Kill Bill 0.24 on cpp-httplib,
// for tests (port 0, in-process) and for the `killbill-sim` binary.
//
// It serves the part of Kill Bill's REST API that billing-gateway uses, with
// Kill Bill's status codes, headers and JSON shapes, and a control surface
// under /sim/ (never under /1.0/):
//
// clang-format off
//   method  path                              answer
//   ------  --------------------------------  ---------------------------------
//   POST    /1.0/kb/accounts                  201, Location of the new account;
//                                             one bus event
//   GET     /1.0/kb/accounts?externalKey=K    the account with that key
//   GET     /1.0/kb/accounts/{id}             the account with that id
//   POST    /1.0/kb/accounts/{id}/tags        201, attaches tag definitions;
//                                             bus_events_per_tag bus events
//                                             per tag added
//   GET     /1.0/kb/accounts/{id}/tags        the account's tags
//   GET     /1.0/kb/accounts/{id}/bundles     its bundles (array, [] if none)
//   GET     /1.0/kb/accounts/{id}/invoices    its invoices; only those with a
//           [?unpaidInvoicesOnly=true]        balance when asked
//   GET     /1.0/kb/accounts/{id}/paymentMethods
//                                             [] (AUTO_PAY_OFF accounts)
//   GET     /1.0/kb/catalog                   [CatalogJson]: SaaSOdoo's
//   GET     /1.0/kb/catalog/simpleCatalog     SaasOdoo catalog (sim_catalog.h)
//   POST    /1.0/kb/subscriptions             201, Location of the new
//                                             subscription (in a new bundle);
//                                             kBusEventsPerSubscription events
//   GET     /1.0/kb/subscriptions/{id}        SubscriptionJson with its events
//   DELETE  /1.0/kb/subscriptions/{id}        204; kBusEventsPerEndOfTermCancel
//           [?entitlementPolicy=...]          or ...PerImmediateCancel events
//   POST    /1.0/kb/subscriptions/{id}/customFields
//                                             201; kBusEventsPerCustomField
//                                             events per field
//   GET     /1.0/kb/subscriptions/{id}/customFields
//   GET     /1.0/kb/bundles?externalKey=K     [BundleJson], 404 code 1084
//   GET     /1.0/healthcheck                  200 healthy / 500, with the real
//                                             queue-growth signal: every call
//                                             is a sample, whoever makes it
//   GET     /1.0/metrics[?pretty=true]        200, Kill Bill's Dropwizard
//                                             registry (bus timers, below);
//                                             no auth; takes no healthcheck
//                                             sample and no capacity. Setting
//                                             `metrics`: on | absent (404 as
//                                             an unknown path) | empty
//   DELETE  /1.0/kb/admin/healthcheck         204, out of rotation
//   PUT     /1.0/kb/admin/healthcheck         204, back in rotation
//   GET     /sim/stats                        SimStats as JSON; takes no
//                                             healthcheck sample (the /sim/
//                                             routes are also served on the
//                                             control listener when
//                                             control_port is set: reachable
//                                             while Kill Bill refuses)
//   POST    /sim/config                       a JSON object of settings (the
//                                             keys of SimOptionsToJson), live
//   POST    /sim/faults                       {"outage": "refuse" | "503",
//                                              "outage_seconds": S,
//                                              "stall_seconds": S,
//                                              "error_rate": p,
//                                              "garbage_rate": p,
//                                              "reset_rate": p,
//                                              "hold_created_seconds": S,
//                                              "clear": true}
// clang-format on
//
// Kubernetes probes (SimOptions::probes, off by default; ProbeModel in
// probe_model.h says what happens when): a thread of this class makes the
// kubelet's readiness and liveness calls of GET /1.0/healthcheck on the probe
// schedule, in-process (no HTTP), each one a sample in the same growth window
// as every HTTP caller's. Like an HTTP call, a probe round first waits for one
// of the max_threads request threads: one it does not get within
// probe_timeout_s fails both probes (no sample), as a kubelet's probe times
// out on a saturated Kill Bill; so does an injected refuse or 503 outage. After
// the failure threshold the pod leaves the Service: the listener is closed
// (connections refused, kept-alive ones closed) until a readiness probe
// succeeds. A restart also aborts the calls in flight (the process died), stops
// the bus drain for probe_restart_s, puts the sim back in rotation and starts
// the healthcheck's sample window empty; the bus backlog, the accounts and the
// subscriptions survive (they are in Kill Bill's database).
//
// GET /1.0/metrics is the registry of Kill Bill's metrics servlet,
// {"version":"4.0.0","gauges":{},"counters":{...},"histograms":{},"meters":{},
// "timers":{...}}, each metric present from its first update:
// clang-format off
//   timers (durations in seconds, rates in calls/s, EwmaMeter)
//     org.killbill.queue.DBBackedQueue.bus_events.rawInsertEntryTime
//         count = main-bus events posted; durations 0 (not modelled)
//     org.killbill.bus.DefaultPersistentBus.bus_events.busHandlersProcessingTime
//         count = main-bus events dispatched (CapacityModel::
//         bus_dispatched_total(): posted - dispatched = the backlog);
//         durations 1 / (bus_drain * capacity factor) at the last dispatch
//     org.killbill.queue.DBBackedQueue.bus_ext_events.rawInsertEntryTime
//     org.killbill.bus.DefaultPersistentBus.bus_ext_events.busHandlersProcessingTime
//         the external bus is not modelled: each main-bus event posts one
//         webhook event dispatched at once, so both are the posted timer
//         with durations 0
//   counters
//     org.killbill.sim.requests   the sim's own, not Kill Bill's: calls that
//                                 reached a /1.0/ route, this one included
// clang-format on
// The dispatch meter sees the bus drain as it happens (BusMeters, observed
// after every advance of the model), so its EWMA ticks see the events of their
// own 5 s however rarely the metrics are read.
//
// Accounts, subscriptions and invoices live in memory (docs/killbill.md lists
// the status and error codes; `accountWithBalance[AndCBA]=true` on the
// account reads adds the unpaid total). The time a call takes comes from
// CapacityModel (processor sharing plus a bus backlog): the handler thread
// submits the call's work and waits on a condition variable until the model,
// advanced on the real clock, says it is done. Each part has one job:
//
// clang-format off
//   client
//     |
//   SimHttpServer   connections: Tomcat-like limits,    sim_http_server.h
//     |             resets, the listener closed
//     |             during a refuse outage
//   SimRoutes       HTTP: parsing, auth, Kill Bill      sim_routes.h
//     |             JSON and error bodies, /sim/ bodies
//   KillBillSim     this facade: lifecycle, the lock,   killbill_sim.h
//     |             admitting a call (faults, stall,
//     |             max_threads), running its work,
//     |             the healthcheck signal
//     +- SimFaults            faults in force, draws    sim_faults.h
//     +- CapacityModel        time a call takes, bus    capacity_model.h
//     +- BusMeters            the bus timers of         bus_meters.h
//     |                       /1.0/metrics
//     +- QueueGrowthDetector  Kill Bill's growth number killbill_client/
//     |                                                   queue_growth.h
//     +- AccountStore         accounts by id and key,   account_store.h
//     |                       their tags
//     +- SubscriptionStore    bundles, subscriptions,   subscription_store.h
//     |                       custom fields, invoices
//     |                       (plans from SimCatalog,   sim_catalog.h)
//     +- ProbeModel           the kubelet's probes:     probe_model.h
//     |                       ready, unready, restarts
//     +- SimCounters          counters behind SimStats  sim_stats.h
// clang-format on
//
// Thread-safety: all public methods are safe from any thread. One absl::Mutex
// guards the model, the accounts, the detectors, the faults and the counters;
// it is never held while doing I/O. The Clock must advance in real time (waits
// are real): FakeClock is for CapacityModel, QueueGrowthDetector and
// ProbeModel tests, not for this class.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/functional/function_ref.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "bench/killbill_sim/bus_meters.h"
#include "bench/killbill_sim/capacity_model.h"
#include "bench/killbill_sim/ewma_meter.h"
#include "bench/killbill_sim/probe_model.h"
#include "bench/killbill_sim/sim_faults.h"
#include "bench/killbill_sim/sim_options.h"
#include "bench/killbill_sim/sim_stats.h"
#include "bench/killbill_sim/subscription_store.h"
#include "common/clock.h"
#include "killbill_client/queue_growth.h"

namespace httplib {
class Server;
}  // namespace httplib

namespace bg::sim {

class AccountStore;
class SimHttpServer;
class SimRoutes;
struct SimAccount;

class KillBillSim {
 public:
  // Main-bus events each subscription write posts (Kill Bill 0.24's reading,
  // docs/killbill.md): a base subscription's creation (subscription
  // transitions effective and requested, the entitlement-started blocking
  // state, the first invoice), a custom field, and a cancellation: the
  // "about 2-3" of Kill Bill's END_OF_TERM cancel read as 2 (requested cancel
  // and blocking state; the effective one comes later from the notification
  // queue) and IMMEDIATE as 3 (the effective transition too).
  static constexpr int64_t kBusEventsPerSubscription = 4;
  static constexpr int64_t kBusEventsPerCustomField = 1;
  static constexpr int64_t kBusEventsPerEndOfTermCancel = 2;
  static constexpr int64_t kBusEventsPerImmediateCancel = 3;

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
  // The control listener's bound port (after Start()); -1 without one.
  int control_port() const { return control_port_; }
  // Blocks until the kubelet's probes have restarted Kill Bill at least
  // `restarts` times and the pod is in `phase`, its listener already closed
  // when that phase is out of the Service (false on timeout or Stop()). After
  // kReady the listener reopens a little later: WaitForListener().
  bool WaitForProbes(uint64_t restarts, ProbeModel::Phase phase,
                     absl::Duration timeout);

  // The same operations as the /sim/ endpoints, for tests and embedding.
  SimStats Stats();
  // The settings in force (port: the bound one once started).
  SimOptions options() const;
  // Replaces the settings. Host, port and connection limits cannot change
  // while running; a change of the growth options restarts the healthcheck
  // regression. On error nothing changes.
  absl::Status Configure(const SimOptions& options);
  // Edits the settings in place: `edit` runs on a copy under the lock, and the
  // copy is applied as Configure(SimOptions) would if `edit` returns OK.
  absl::Status Configure(absl::FunctionRef<absl::Status(SimOptions*)> edit);
  absl::Status InjectFaults(const FaultRequest& faults);
  void ClearFaults();

 private:
  friend class SimRoutes;

  // What the pre-checks decided for one /1.0/ call.
  enum class Verdict { kServe, kRespond503, kError500, kGarbage, kAborted };
  struct Admission {
    Verdict verdict = Verdict::kServe;
    // reset_rate hit: serve the call, then reset the connection.
    bool reset_after = false;
    // The call holds one of the max_threads request threads.
    bool holds_thread = false;
  };
  // What a call costs in the capacity model: 1 unit, tag_cost or read_cost.
  enum class Work { kCreate, kTag, kRead };
  // One GET /1.0/healthcheck, in Kill Bill's terms.
  struct HealthcheckAnswer {
    bool in_rotation = true;
    // A queue is reported growing only when the queue check is enabled.
    bool bus_growing = false;
    bool external_bus_growing = false;
    // "Growing queues: bus (0.51)", or "" when no queue grows.
    std::string growing_message;
    bool healthy() const { return in_rotation && growing_message.empty(); }
  };
  // One GET /1.0/metrics: what the registry holds (see the file comment).
  struct MetricsAnswer {
    MetricsMode mode = MetricsMode::kOn;
    // org.killbill.sim.requests.
    uint64_t requests = 0;
    // Main-bus events posted (the rawInsertEntryTime timers and the external
    // bus's dispatch timer) and dispatched (busHandlersProcessingTime).
    EwmaMeter::Rates bus_posted;
    EwmaMeter::Rates bus_dispatched;
    // Duration of one main-bus handler call.
    double bus_handler_seconds = 0;
  };

  // The operations SimRoutes serves. Each takes the lock itself.
  //
  // Pre-checks of a /1.0/ call, in order: a 503 outage, a stall (waited out),
  // the injected rates, then a request thread when `needs_thread`
  // (max_threads, FIFO-ish). A refuse outage or Stop() meanwhile aborts it.
  Admission Admit(bool needs_thread) ABSL_LOCKS_EXCLUDED(mu_);
  // Ends a call Admit() let in or turned away: frees its thread and counts
  // `outcome` (status, "reset", "garbage", "aborted") under `label`.
  void Finish(const Admission& admission, const std::string& label,
              const std::string& outcome, bool aborted)
      ABSL_LOCKS_EXCLUDED(mu_);
  // Runs one call's work through the model. False if the call was aborted
  // (refuse outage, Stop()): the connection is then marked to be reset.
  bool RunJob(Work work) ABSL_LOCKS_EXCLUDED(mu_);
  // Stores a new account and posts its creation event on the bus, in one
  // transaction. AlreadyExists (message: the key) when its external key is
  // taken. Returns its id.
  // The hold_created fault (sim_faults.h): holds the 201 of the account just
  // created under `external_key` while the fault lasts. False: the call was
  // abandoned meanwhile (Stop(), a refuse outage): reset its connection.
  bool HoldCreated(const std::string& external_key) ABSL_LOCKS_EXCLUDED(mu_);
  absl::StatusOr<std::string> CreateAccount(SimAccount account)
      ABSL_LOCKS_EXCLUDED(mu_);
  // Copies the account into *out; false when unknown.
  bool FindAccount(const std::string& id, SimAccount* out)
      ABSL_LOCKS_EXCLUDED(mu_);
  bool FindAccountByKey(const std::string& external_key, SimAccount* out)
      ABSL_LOCKS_EXCLUDED(mu_);
  // Attaches tag definitions to an account and posts bus_events_per_tag
  // events per tag it did not have, in one transaction. NotFound when
  // unknown.
  absl::Status AddTags(const std::string& id,
                       const std::vector<std::string>& tag_ids)
      ABSL_LOCKS_EXCLUDED(mu_);
  // Sum of the balances of the account's invoices (0 when it has none).
  double AccountBalance(const std::string& account_id) ABSL_LOCKS_EXCLUDED(mu_);

  // Subscriptions (SubscriptionStore says what each decides). The write
  // operations post their kBusEventsPer* events in the same transaction.
  //
  // Creates a subscription for request.account_id; NotFound when that
  // account is unknown, else the store's errors. Returns a copy.
  absl::StatusOr<SimSubscription> CreateSubscription(
      const SubscriptionRequest& request) ABSL_LOCKS_EXCLUDED(mu_);
  // Copies the subscription into *out; false when unknown.
  bool FindSubscription(const std::string& id, SimSubscription* out)
      ABSL_LOCKS_EXCLUDED(mu_);
  absl::Status CancelSubscription(const std::string& id, CancelPolicy policy,
                                  absl::CivilDay today)
      ABSL_LOCKS_EXCLUDED(mu_);
  absl::Status AddCustomFields(const std::string& subscription_id,
                               std::vector<SimCustomField> fields)
      ABSL_LOCKS_EXCLUDED(mu_);
  std::vector<SimBundleView> BundlesByKey(const std::string& key)
      ABSL_LOCKS_EXCLUDED(mu_);
  std::vector<SimBundleView> AccountBundles(const std::string& account_id)
      ABSL_LOCKS_EXCLUDED(mu_);
  std::vector<SimInvoice> AccountInvoices(const std::string& account_id,
                                          bool unpaid_only)
      ABSL_LOCKS_EXCLUDED(mu_);

  // Samples both queues' detectors and counts the answer.
  HealthcheckAnswer Healthcheck() ABSL_LOCKS_EXCLUDED(mu_);
  HealthcheckAnswer HealthcheckLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Reads the metrics registry (mode `on`): brings the model to now, takes no
  // healthcheck sample and submits no work.
  MetricsAnswer Metrics() ABSL_LOCKS_EXCLUDED(mu_);
  void SetRotation(bool in_rotation) ABSL_LOCKS_EXCLUDED(mu_);
  void CountRequest(const std::string& label, const std::string& outcome)
      ABSL_LOCKS_EXCLUDED(mu_);

  // model_.Advance(), then the bus meters see the drain. Every advance of
  // the model goes through here.
  int AdvanceModelLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Posts `count` main-bus events now (the model advanced first).
  void PostBusEventsLocked(int64_t count) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  void ListenLoop();
  // The kubelet: runs probes_ on the real clock until Stop().
  void ProbeLoop();
  // Acts on what probes_ decided (restart, process up, back in the Service).
  // Sets *close_listener when the pod left the Service: the caller closes
  // the listener without holding mu_.
  void ApplyProbeTransitionLocked(const ProbeModel::Transition& t,
                                  bool* close_listener)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // The capacity model's settings in force: `model`, with no bus drain while
  // Kill Bill's process is down.
  CapacityModelOptions EffectiveModelLocked(const CapacityModelOptions& model)
      const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Waits (releasing mu_) until a request thread is free, at most `timeout`
  // of real time; false on timeout, a restart or Stop(). Takes no thread: a
  // probe's call is short, but it queues like any other.
  bool WaitForRequestThreadLocked(Clock::Duration timeout)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Kill Bill's listener may be open: in the Service and no refuse outage.
  bool ServingLocked() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Waits out a stall; false if the call must be abandoned meanwhile.
  bool StallOrAbort(uint64_t epoch) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::Status ConfigureLocked(const SimOptions& candidate)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const Clock* const clock_;
  const Clock::TimePoint start_time_;
  std::unique_ptr<SimHttpServer> server_;
  std::unique_ptr<SimRoutes> routes_;
  std::thread listener_;
  int port_ = 0;
  // The control listener (/sim/ only) and its thread; null without one.
  std::unique_ptr<httplib::Server> control_server_;
  std::thread control_thread_;
  int control_port_ = -1;
  std::thread prober_;
  // Connections closed at once because max_connections + accept_count were
  // exceeded; atomic because it is bumped on the accept thread, which must not
  // take mu_.
  std::atomic<uint64_t> connections_rejected_{0};

  mutable absl::Mutex mu_;
  // Signalled when model jobs complete, faults change or the sim stops.
  absl::CondVar model_cv_;
  // Signalled when a request thread (max_threads) frees up.
  absl::CondVar slot_cv_;
  // Wakes the listener loop (outage end, clear, back in the Service, stop).
  absl::CondVar listener_cv_;
  // Wakes the probe loop (settings changed, stop); signalled with
  // probe_state_cv_'s waiters on every probe transition.
  absl::CondVar probe_cv_;
  absl::CondVar probe_state_cv_;

  SimOptions options_ ABSL_GUARDED_BY(mu_);
  CapacityModel model_ ABSL_GUARDED_BY(mu_);
  killbill::QueueGrowthDetector bus_detector_ ABSL_GUARDED_BY(mu_);
  killbill::QueueGrowthDetector external_bus_detector_ ABSL_GUARDED_BY(mu_);
  const std::unique_ptr<AccountStore> accounts_ ABSL_PT_GUARDED_BY(mu_);
  SubscriptionStore subscriptions_ ABSL_GUARDED_BY(mu_);
  SimFaults faults_ ABSL_GUARDED_BY(mu_);
  SimCounters counters_ ABSL_GUARDED_BY(mu_);
  // GET /1.0/metrics: main-bus events posted and dispatched.
  BusMeters bus_meters_ ABSL_GUARDED_BY(mu_);
  ProbeModel probes_ ABSL_GUARDED_BY(mu_);
  uint64_t probe_timeouts_ ABSL_GUARDED_BY(mu_) = 0;
  bool in_rotation_ ABSL_GUARDED_BY(mu_) = true;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  bool started_ ABSL_GUARDED_BY(mu_) = false;
  // The listening socket is bound (connections are accepted by the kernel).
  bool listening_ ABSL_GUARDED_BY(mu_) = false;
  // Bumped when in-flight calls must be abandoned (refuse outage, stop).
  uint64_t abort_epoch_ ABSL_GUARDED_BY(mu_) = 0;
  int busy_threads_ ABSL_GUARDED_BY(mu_) = 0;
  int in_flight_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace bg::sim
