#include "bench/killbill_sim/killbill_sim.h"

#include <algorithm>
#include <chrono>
#include <random>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/time/clock.h"
#include "bench/killbill_sim/account_store.h"
#include "bench/killbill_sim/sim_http_server.h"
#include "bench/killbill_sim/sim_routes.h"

namespace bg::sim {
namespace {

// Longest a waiting thread sleeps before re-reading the model: bounds the error
// of completion estimates made stale by capacity changes (degradation,
// /sim/config).
constexpr auto kMaxWait = std::chrono::milliseconds(20);

// The kernel queue in front of our accept loop. The loop accepts at once, so
// this only absorbs bursts of simultaneous connects; Tomcat's accept_count is
// enforced by ConnectionWorkers.
int ListenBacklog(const SimOptions& options) {
  return std::max(1024, options.accept_count);
}

}  // namespace

KillBillSim::KillBillSim(const SimOptions& options, const Clock* clock)
    : clock_(clock),
      start_time_(clock->Now()),
      options_(options),
      model_(clock, options.model),
      bus_detector_(options.growth),
      external_bus_detector_(options.growth),
      accounts_(std::make_unique<AccountStore>(std::random_device{}())),
      subscriptions_(std::random_device{}()),
      faults_(options.seed),
      bus_meters_(clock, model_),
      probes_(options.probes, clock->Now()) {
  SimHttpServer::Limits limits;
  limits.max_connections =
      static_cast<size_t>(std::max(1, options.max_connections));
  limits.accept_count = static_cast<size_t>(std::max(0, options.accept_count));
  limits.keep_alive_max_requests =
      static_cast<size_t>(std::max(1, options.keep_alive_max_requests));
  limits.keep_alive_timeout_ms = static_cast<int>(
      std::chrono::milliseconds(options.keep_alive_timeout).count());
  server_ = std::make_unique<SimHttpServer>(limits, [this] {
    connections_rejected_.fetch_add(1, std::memory_order_relaxed);
  });
  routes_ = std::make_unique<SimRoutes>(*this);
  routes_->Register(*server_);
}

KillBillSim::~KillBillSim() { Stop(); }

absl::Status KillBillSim::Start() {
  SimOptions options;
  {
    absl::MutexLock lock(&mu_);
    if (started_) return absl::FailedPreconditionError("already started");
    options = options_;
  }
  absl::Status status = Validate(options);
  if (!status.ok()) return status;
  if (options.port == 0) {
    port_ = server_->bind_to_any_port(options.host);
  } else {
    port_ =
        server_->bind_to_port(options.host, options.port) ? options.port : -1;
  }
  if (port_ <= 0) {
    return absl::UnavailableError(
        absl::StrCat("cannot bind ", options.host, ":", options.port));
  }
  server_->SetListenBacklog(ListenBacklog(options));
  if (options.control_port >= 0) {
    control_server_ = std::make_unique<httplib::Server>();
    routes_->RegisterControl(*control_server_);
    control_port_ =
        options.control_port == 0
            ? control_server_->bind_to_any_port(options.host)
            : (control_server_->bind_to_port(options.host, options.control_port)
                   ? options.control_port
                   : -1);
    if (control_port_ <= 0) {
      server_->CloseListener();
      return absl::UnavailableError(
          absl::StrCat("cannot bind the control port ", options.host, ":",
                       options.control_port));
    }
    control_thread_ =
        std::thread([this] { control_server_->listen_after_bind(); });
  }
  {
    absl::MutexLock lock(&mu_);
    started_ = true;
    listening_ = true;
    options_.port = port_;
    options_.control_port = control_port_;
  }
  listener_ = std::thread([this] { ListenLoop(); });
  prober_ = std::thread([this] { ProbeLoop(); });
  return absl::OkStatus();
}

void KillBillSim::ListenLoop() {
  for (;;) {
    {
      absl::MutexLock lock(&mu_);
      // A refuse outage keeps the listener closed until it ends or is
      // cleared; the probes, while the pod is out of the Service.
      while (!stopping_ && !ServingLocked()) {
        Clock::Duration wait = std::chrono::milliseconds(100);
        if (faults_.RefuseOutageActive(clock_->Now())) {
          wait = std::clamp<Clock::Duration>(
              faults_.outage_until() - clock_->Now(), Clock::Duration::zero(),
              wait);
        }
        listener_cv_.WaitWithTimeout(&mu_, absl::FromChrono(wait));
      }
      if (stopping_) break;
      faults_.EndRefuseOutage();  // it has ended
    }
    // Start() bound the first time; after an outage (or a lost race with one)
    // the socket is closed and is bound again on the same port.
    if (!server_->IsBound()) {
      std::string host;
      {
        absl::MutexLock lock(&mu_);
        host = options_.host;
      }
      if (server_->bind_to_port(host, port_)) {
        absl::MutexLock lock(&mu_);
        server_->SetListenBacklog(ListenBacklog(options_));
      } else {
        absl::MutexLock lock(&mu_);
        listener_cv_.WaitWithTimeout(&mu_, absl::Milliseconds(100));
        continue;
      }
    }
    {
      // A fault or Stop() may have come between the check above and the bind.
      absl::MutexLock lock(&mu_);
      if (stopping_ || faults_.RefuseOutageSet() || !probes_.InService() ||
          !server_->IsBound()) {
        server_->CloseListener();
        listening_ = false;
        continue;
      }
      listening_ = true;
      listener_cv_.SignalAll();
    }
    server_->listen_after_bind();  // returns once the listener is closed
  }
  server_->CloseListener();
}

bool KillBillSim::WaitForListener(absl::Duration timeout) {
  const absl::Time deadline = absl::Now() + timeout;
  absl::MutexLock lock(&mu_);
  while (!listening_ && !stopping_) {
    if (listener_cv_.WaitWithDeadline(&mu_, deadline)) break;
  }
  return listening_ && !stopping_;
}

void KillBillSim::Stop() {
  {
    absl::MutexLock lock(&mu_);
    if (stopping_) return;
    stopping_ = true;
    ++abort_epoch_;
    model_cv_.SignalAll();
    slot_cv_.SignalAll();
    listener_cv_.SignalAll();
    probe_cv_.SignalAll();
    probe_state_cv_.SignalAll();
  }
  server_->CloseListener();
  if (listener_.joinable()) listener_.join();
  if (prober_.joinable()) prober_.join();
  if (control_server_ != nullptr) {
    control_server_->stop();
    if (control_thread_.joinable()) control_thread_.join();
  }
}

bool KillBillSim::ServingLocked() const {
  return !faults_.RefuseOutageActive(clock_->Now()) && probes_.InService();
}

// ---------------------------------------------------------------------------------------
// The kubelet's probes.

void KillBillSim::ProbeLoop() {
  // Longest wait between looks at the schedule: settings changes also wake
  // the loop (probe_cv_), this only bounds a missed wake-up.
  constexpr Clock::Duration kMaxProbeWait = std::chrono::seconds(1);
  for (;;) {
    bool close_listener = false;
    {
      absl::MutexLock lock(&mu_);
      if (stopping_) return;
      const Clock::TimePoint now = clock_->Now();
      ApplyProbeTransitionLocked(probes_.Advance(now), &close_listener);
      if (probes_.ProbeDue(now)) {
        bool readiness_ok = false;
        bool liveness_ok = false;
        // An injected outage is Kill Bill unreachable (refuse) or answering
        // 503 to everyone: the kubelet's probes fail like any caller's.
        const bool outage =
            faults_.RefuseOutageActive(now) || faults_.Outage503Active(now);
        if (probes_.ProcessUp() && !outage) {
          if (WaitForRequestThreadLocked(probes_.options().timeout)) {
            // Two calls, two samples: the readiness probe, the liveness.
            readiness_ok = HealthcheckLocked().healthy();
            liveness_ok = HealthcheckLocked().healthy();
          } else {
            ++probe_timeouts_;
          }
        }
        // Answered (or timed out) now, not when the round began.
        ApplyProbeTransitionLocked(
            probes_.RecordProbe(clock_->Now(), readiness_ok, liveness_ok),
            &close_listener);
      }
      if (!close_listener) {
        const Clock::TimePoint next = probes_.NextEvent();
        const Clock::Duration wait =
            next == Clock::TimePoint::max()
                ? kMaxProbeWait
                : std::clamp<Clock::Duration>(next - clock_->Now(),
                                              Clock::Duration::zero(),
                                              kMaxProbeWait);
        if (wait > Clock::Duration::zero()) {
          probe_cv_.WaitWithTimeout(&mu_, absl::FromChrono(wait));
        }
        continue;
      }
    }
    // Out of the Service: as in a refuse outage, the listener closes (the
    // listener loop keeps it closed until the pod is ready again).
    server_->CloseListener();
    absl::MutexLock lock(&mu_);
    listening_ = false;
    probe_state_cv_.SignalAll();
  }
}

void KillBillSim::ApplyProbeTransitionLocked(const ProbeModel::Transition& t,
                                             bool* close_listener) {
  if (t.restarted) {
    // The process dies: calls in flight die with it; what was in memory
    // (the healthcheck's samples, the rotation flag) is gone.
    ++abort_epoch_;
    in_rotation_ = true;
    bus_detector_ = killbill::QueueGrowthDetector(options_.growth);
    external_bus_detector_ = killbill::QueueGrowthDetector(options_.growth);
    model_cv_.SignalAll();
    slot_cv_.SignalAll();
  }
  if (t.restarted || t.process_up) {
    AdvanceModelLocked();  // the past at the drain in force until now
    model_.set_options(EffectiveModelLocked(options_.model));
    bus_meters_.Observe(model_);
  }
  if (t.left_service || t.restarted) *close_listener = true;
  if (t.ready) listener_cv_.SignalAll();
  if (t.left_service || t.restarted || t.process_up || t.ready) {
    probe_state_cv_.SignalAll();
  }
}

CapacityModelOptions KillBillSim::EffectiveModelLocked(
    const CapacityModelOptions& model) const {
  CapacityModelOptions effective = model;
  if (!probes_.ProcessUp()) effective.bus_drain = 0;
  return effective;
}

bool KillBillSim::WaitForRequestThreadLocked(Clock::Duration timeout) {
  const absl::Time deadline = absl::Now() + absl::FromChrono(timeout);
  const uint64_t epoch = abort_epoch_;
  bool woken = false;
  while (busy_threads_ >= options_.max_threads && !stopping_ &&
         abort_epoch_ == epoch) {
    woken = true;
    if (slot_cv_.WaitWithDeadline(&mu_, deadline)) break;
  }
  const bool got = busy_threads_ < options_.max_threads && !stopping_ &&
                   abort_epoch_ == epoch;
  // A Finish() may have woken this thread rather than a call waiting in
  // Admit(): pass the free thread on.
  if (woken) slot_cv_.Signal();
  return got;
}

bool KillBillSim::WaitForProbes(uint64_t restarts, ProbeModel::Phase phase,
                                absl::Duration timeout) {
  const absl::Time deadline = absl::Now() + timeout;
  absl::MutexLock lock(&mu_);
  // Out of the Service also means the listener is closed already.
  const auto reached = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return probes_.restarts() >= restarts && probes_.phase() == phase &&
           (phase == ProbeModel::Phase::kReady || !listening_);
  };
  while (!stopping_ && !reached()) {
    if (probe_state_cv_.WaitWithDeadline(&mu_, deadline)) break;
  }
  return !stopping_ && reached();
}

// ---------------------------------------------------------------------------------------
// A call's envelope: admission, work, end.

bool KillBillSim::StallOrAbort(uint64_t epoch) {
  while (!stopping_ && abort_epoch_ == epoch &&
         clock_->Now() < faults_.stall_until()) {
    model_cv_.WaitWithTimeout(&mu_, absl::FromChrono(std::min<Clock::Duration>(
                                        faults_.stall_until() - clock_->Now(),
                                        std::chrono::milliseconds(100))));
  }
  return !stopping_ && abort_epoch_ == epoch;
}

KillBillSim::Admission KillBillSim::Admit(bool needs_thread) {
  Admission admission;
  absl::MutexLock lock(&mu_);
  ++in_flight_;
  counters_.ApiCall();
  const uint64_t epoch = abort_epoch_;
  if (faults_.Outage503Active(clock_->Now())) {
    admission.verdict = Verdict::kRespond503;
    return admission;
  }
  if (!StallOrAbort(epoch)) {
    admission.verdict = Verdict::kAborted;
    return admission;
  }
  switch (faults_.DrawForCall()) {
    case SimFaults::Draw::kError500:
      admission.verdict = Verdict::kError500;
      return admission;
    case SimFaults::Draw::kGarbage:
      admission.verdict = Verdict::kGarbage;
      return admission;
    case SimFaults::Draw::kReset:
      admission.reset_after = true;
      break;
    case SimFaults::Draw::kNone:
      break;
  }
  // Tomcat's maxThreads: wait FIFO-ish for a request thread.
  while (needs_thread && busy_threads_ >= options_.max_threads && !stopping_ &&
         abort_epoch_ == epoch) {
    slot_cv_.Wait(&mu_);
  }
  if (stopping_ || abort_epoch_ != epoch) {
    admission.verdict = Verdict::kAborted;
  } else if (needs_thread) {
    ++busy_threads_;
    admission.holds_thread = true;
  }
  return admission;
}

void KillBillSim::Finish(const Admission& admission, const std::string& label,
                         const std::string& outcome, bool aborted) {
  absl::MutexLock lock(&mu_);
  if (admission.holds_thread) {
    --busy_threads_;
    slot_cv_.Signal();
  }
  --in_flight_;
  if (aborted) counters_.CallAborted();
  counters_.Request(label, outcome);
}

bool KillBillSim::RunJob(Work work) {
  absl::MutexLock lock(&mu_);
  const uint64_t epoch = abort_epoch_;
  const double units = work == Work::kCreate ? 1.0
                       : work == Work::kTag  ? options_.model.tag_cost
                                             : options_.model.read_cost;
  AdvanceModelLocked();  // Submit() advances too; the meters see it here
  const CapacityModel::JobId id = model_.Submit(units);
  while (!model_.IsDone(id)) {
    if (stopping_ || abort_epoch_ != epoch) {
      model_.Release(id);  // the server "died": its work is lost
      CurrentConnection()->reset = true;
      return false;
    }
    const Clock::Duration wait = std::clamp<Clock::Duration>(
        model_.EstimatedCompletion(id) - clock_->Now(), Clock::Duration::zero(),
        kMaxWait);
    if (wait > Clock::Duration::zero()) {
      model_cv_.WaitWithTimeout(&mu_, absl::FromChrono(wait));
    }
    if (AdvanceModelLocked() > 0) model_cv_.SignalAll();
  }
  model_.Release(id);
  return true;
}

int KillBillSim::AdvanceModelLocked() {
  const int completed = model_.Advance();
  bus_meters_.Observe(model_);
  return completed;
}

void KillBillSim::PostBusEventsLocked(int64_t count) {
  AdvanceModelLocked();
  model_.PostBusEvents(count);
  bus_meters_.Posted(model_,
                     static_cast<uint64_t>(std::max<int64_t>(0, count)));
}

void KillBillSim::CountRequest(const std::string& label,
                               const std::string& outcome) {
  absl::MutexLock lock(&mu_);
  counters_.Request(label, outcome);
}

// ---------------------------------------------------------------------------------------
// Kill Bill operations.

absl::StatusOr<std::string> KillBillSim::CreateAccount(SimAccount account) {
  absl::MutexLock lock(&mu_);
  const std::string key = account.external_key;
  absl::StatusOr<const SimAccount*> stored =
      accounts_->Create(std::move(account));
  if (!stored.ok()) {
    counters_.Conflict();
    faults_.Conflict(key);
    return stored.status();
  }
  counters_.AccountCreated();
  PostBusEventsLocked(1);  // AccountCreationInternalEvent, same transaction
  return (*stored)->id;
}

bool KillBillSim::HoldCreated(const std::string& external_key) {
  absl::MutexLock lock(&mu_);
  const uint64_t epoch = abort_epoch_;
  if (!faults_.HoldsCreated(clock_->Now())) return true;
  faults_.Held(external_key);
  while (!stopping_ && abort_epoch_ == epoch &&
         faults_.HoldsCreated(clock_->Now())) {
    model_cv_.WaitWithTimeout(&mu_,
                              absl::FromChrono(std::min<Clock::Duration>(
                                  faults_.hold_created_until() - clock_->Now(),
                                  std::chrono::milliseconds(100))));
  }
  faults_.Released();
  return !stopping_ && abort_epoch_ == epoch;
}

bool KillBillSim::FindAccount(const std::string& id, SimAccount* out) {
  absl::MutexLock lock(&mu_);
  const SimAccount* account = accounts_->Find(id);
  if (account == nullptr) return false;
  *out = *account;
  return true;
}

bool KillBillSim::FindAccountByKey(const std::string& external_key,
                                   SimAccount* out) {
  absl::MutexLock lock(&mu_);
  const SimAccount* account = accounts_->FindByExternalKey(external_key);
  if (account == nullptr) return false;
  *out = *account;
  return true;
}

absl::Status KillBillSim::AddTags(const std::string& id,
                                  const std::vector<std::string>& tag_ids) {
  absl::MutexLock lock(&mu_);
  absl::StatusOr<int> added = accounts_->AddTags(id, tag_ids);
  if (!added.ok()) return added.status();
  counters_.TagCallSucceeded();
  // ControlTagCreation events, committed with the tags.
  const int64_t events =
      static_cast<int64_t>(*added) * options_.bus_events_per_tag;
  if (events > 0) {
    PostBusEventsLocked(events);
  }
  return absl::OkStatus();
}

double KillBillSim::AccountBalance(const std::string& account_id) {
  absl::MutexLock lock(&mu_);
  return subscriptions_.AccountBalance(account_id);
}

absl::StatusOr<SimSubscription> KillBillSim::CreateSubscription(
    const SubscriptionRequest& request) {
  absl::MutexLock lock(&mu_);
  if (accounts_->Find(request.account_id) == nullptr) {
    return absl::NotFoundError(request.account_id);
  }
  absl::StatusOr<const SimSubscription*> created =
      subscriptions_.Create(request);
  if (!created.ok()) return created.status();
  PostBusEventsLocked(kBusEventsPerSubscription);
  return **created;
}

bool KillBillSim::FindSubscription(const std::string& id,
                                   SimSubscription* out) {
  absl::MutexLock lock(&mu_);
  const SimSubscription* subscription = subscriptions_.Find(id);
  if (subscription == nullptr) return false;
  *out = *subscription;
  return true;
}

absl::Status KillBillSim::CancelSubscription(const std::string& id,
                                             CancelPolicy policy,
                                             absl::CivilDay today) {
  absl::MutexLock lock(&mu_);
  absl::StatusOr<const SimSubscription*> cancelled =
      subscriptions_.Cancel(id, policy, today);
  if (!cancelled.ok()) return cancelled.status();
  PostBusEventsLocked(policy == CancelPolicy::kImmediate
                          ? kBusEventsPerImmediateCancel
                          : kBusEventsPerEndOfTermCancel);
  return absl::OkStatus();
}

absl::Status KillBillSim::AddCustomFields(const std::string& subscription_id,
                                          std::vector<SimCustomField> fields) {
  absl::MutexLock lock(&mu_);
  const int64_t count = static_cast<int64_t>(fields.size());
  absl::Status status =
      subscriptions_.AddCustomFields(subscription_id, std::move(fields));
  if (!status.ok()) return status;
  PostBusEventsLocked(count * kBusEventsPerCustomField);
  return absl::OkStatus();
}

std::vector<SimBundleView> KillBillSim::BundlesByKey(const std::string& key) {
  absl::MutexLock lock(&mu_);
  return subscriptions_.BundlesByKey(key);
}

std::vector<SimBundleView> KillBillSim::AccountBundles(
    const std::string& account_id) {
  absl::MutexLock lock(&mu_);
  return subscriptions_.AccountBundles(account_id);
}

std::vector<SimInvoice> KillBillSim::AccountInvoices(
    const std::string& account_id, bool unpaid_only) {
  absl::MutexLock lock(&mu_);
  return subscriptions_.AccountInvoices(account_id, unpaid_only);
}

KillBillSim::HealthcheckAnswer KillBillSim::Healthcheck() {
  absl::MutexLock lock(&mu_);
  return HealthcheckLocked();
}

KillBillSim::HealthcheckAnswer KillBillSim::HealthcheckLocked() {
  AdvanceModelLocked();
  const int64_t t_ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                           clock_->Now() - start_time_)
                           .count();
  // Every call is a sample, whoever makes it (Kill Bill 0.24).
  const auto bus =
      bus_detector_.Sample(t_ms, static_cast<double>(model_.BusBacklog()));
  const auto external = external_bus_detector_.Sample(t_ms, 0.0);

  HealthcheckAnswer answer;
  answer.in_rotation = in_rotation_;
  const bool check_queues = options_.queue_healthcheck;
  answer.bus_growing = check_queues && bus.growing;
  answer.external_bus_growing = check_queues && external.growing;
  std::vector<std::string> growing;
  if (answer.bus_growing) {
    growing.push_back("bus (" + killbill::JavaDoubleToString(bus.slope) + ")");
  }
  if (answer.external_bus_growing) {
    growing.push_back("externalBus (" +
                      killbill::JavaDoubleToString(external.slope) + ")");
  }
  if (!growing.empty()) {
    answer.growing_message = "Growing queues: " + absl::StrJoin(growing, ", ");
  }
  counters_.Healthcheck(answer.healthy(), answer.growing_message);
  return answer;
}

KillBillSim::MetricsAnswer KillBillSim::Metrics() {
  absl::MutexLock lock(&mu_);
  MetricsAnswer answer;
  answer.mode = options_.metrics;
  if (answer.mode != MetricsMode::kOn) return answer;
  // Bookkeeping only (as GET /sim/stats): no job, no healthcheck sample.
  AdvanceModelLocked();
  answer.requests = counters_.api_calls();
  answer.bus_posted = bus_meters_.ReadPosted();
  answer.bus_dispatched = bus_meters_.ReadDispatched();
  answer.bus_handler_seconds = bus_meters_.handler_seconds();
  return answer;
}

void KillBillSim::SetRotation(bool in_rotation) {
  absl::MutexLock lock(&mu_);
  in_rotation_ = in_rotation;
}

// ---------------------------------------------------------------------------------------
// Control.

SimStats KillBillSim::Stats() {
  absl::MutexLock lock(&mu_);
  // No healthcheck sample: observing must not disturb the signal.
  AdvanceModelLocked();
  SimStats s;
  counters_.Report(&s);
  s.uptime_s = ToSeconds(clock_->Now() - start_time_);
  s.accounts_total = accounts_->size();
  s.subscriptions_total = subscriptions_.size();
  s.in_flight = in_flight_;
  s.busy_threads = busy_threads_;
  s.in_service = model_.InService();
  s.bus_backlog = model_.BusBacklog();
  s.bus_backlog_exact = model_.BusBacklogExact();
  s.bus_posted_total = model_.bus_posted_total();
  s.bus_drained_total = model_.bus_drained_total();
  s.bus_dispatched_total = model_.bus_dispatched_total();
  s.capacity_factor = model_.CapacityFactor();
  s.effective_capacity = options_.model.capacity * model_.CapacityFactor();
  s.bus_slope_last = bus_detector_.last().slope;
  s.healthcheck_window_points = bus_detector_.points();
  s.in_rotation = in_rotation_;
  s.connections_rejected =
      connections_rejected_.load(std::memory_order_relaxed);
  s.settings = options_;
  s.faults = faults_.State(clock_->Now());
  const Clock::TimePoint now = clock_->Now();
  const auto uptime = [this](Clock::TimePoint t) {
    return ToSeconds(t - start_time_);
  };
  s.probe_phase = ProbeModel::PhaseName(probes_.phase());
  s.probe_calls = probes_.probe_calls();
  s.probe_failures = probes_.probe_failures();
  s.probe_timeouts = probe_timeouts_;
  s.probe_unready_periods = probes_.unready_periods();
  s.probe_unready_seconds = ToSeconds(probes_.UnreadyTime(now));
  s.probe_restarts = probes_.restarts();
  for (const Clock::TimePoint t : probes_.restart_times()) {
    s.probe_restart_at_s.push_back(uptime(t));
  }
  for (const auto& [start, end] : probes_.unready_intervals()) {
    s.probe_unready_intervals_s.emplace_back(
        uptime(start), end == Clock::TimePoint::max() ? -1.0 : uptime(end));
  }
  return s;
}

SimOptions KillBillSim::options() const {
  absl::MutexLock lock(&mu_);
  return options_;
}

absl::Status KillBillSim::Configure(const SimOptions& options) {
  absl::MutexLock lock(&mu_);
  return ConfigureLocked(options);
}

absl::Status KillBillSim::Configure(
    absl::FunctionRef<absl::Status(SimOptions*)> edit) {
  absl::MutexLock lock(&mu_);
  SimOptions candidate = options_;
  absl::Status status = edit(&candidate);
  if (!status.ok()) return status;
  return ConfigureLocked(candidate);
}

absl::Status KillBillSim::ConfigureLocked(const SimOptions& candidate) {
  absl::Status status = Validate(candidate);
  if (!status.ok()) return status;
  if (candidate.host != options_.host || candidate.port != options_.port ||
      candidate.max_connections != options_.max_connections ||
      candidate.accept_count != options_.accept_count ||
      candidate.keep_alive_max_requests != options_.keep_alive_max_requests ||
      candidate.keep_alive_timeout != options_.keep_alive_timeout ||
      candidate.control_port != options_.control_port) {
    return absl::InvalidArgumentError(
        "host, port and connection limits cannot change while running");
  }
  const auto& g0 = options_.growth;
  const auto& g1 = candidate.growth;
  if (g0.window != g1.window || g0.alpha != g1.alpha ||
      g0.growing_threshold != g1.growing_threshold) {
    // A new regression from scratch.
    bus_detector_ = killbill::QueueGrowthDetector(g1);
    external_bus_detector_ = killbill::QueueGrowthDetector(g1);
  }
  if (candidate.seed != options_.seed) faults_.Reseed(candidate.seed);
  AdvanceModelLocked();         // the past at the old drain rate
  bool close_listener = false;  // turning the probes off never closes it
  const ProbeModel::Transition probe_change =
      probes_.Configure(candidate.probes, clock_->Now());
  options_ = candidate;
  ApplyProbeTransitionLocked(probe_change, &close_listener);
  model_.set_options(EffectiveModelLocked(candidate.model));
  probe_cv_.SignalAll();
  bus_meters_.Observe(model_);  // the drain rate from now
  model_cv_.SignalAll();        // completion estimates changed
  slot_cv_.SignalAll();         // max_threads may have grown
  return absl::OkStatus();
}

absl::Status KillBillSim::InjectFaults(const FaultRequest& faults) {
  {
    absl::MutexLock lock(&mu_);
    absl::Status status = faults_.Apply(faults, clock_->Now());
    if (!status.ok()) return status;
    if (faults.outage == OutageMode::kRefuse) {
      ++abort_epoch_;  // in-flight calls die with the server
    }
    model_cv_.SignalAll();
    slot_cv_.SignalAll();
    listener_cv_.SignalAll();
  }
  if (faults.outage == OutageMode::kRefuse) {
    server_->CloseListener();
    absl::MutexLock lock(&mu_);
    listening_ = false;
  }
  return absl::OkStatus();
}

void KillBillSim::ClearFaults() {
  absl::Status status = InjectFaults(FaultRequest::Clear());
  (void)status;  // clearing cannot fail
}

}  // namespace bg::sim
