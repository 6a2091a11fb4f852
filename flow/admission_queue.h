// AdmissionQueue: the bounded FIFO between the gRPC handlers and the
// dispatcher, and the place where a request is told "no" quickly and with a
// useful retry pushback.
//
// Admit() accepts a job only if it can plausibly finish before its deadline.
// clang-format off
//   predicted finish = now + position / drain_rate + expected_latency + deadline_margin
// clang-format on
// where position = jobs ahead of it, drain_rate = jobs/s the dispatcher takes
// off the queue while it has work (DrainRate: measured, with the budget-derived
// prior until measured), expected_latency = EWMA of the Kill Bill time of one
// job (ObserveLatency, fed by the dispatcher). A job is admitted when predicted
// finish <= deadline (equality fits). Otherwise it is rejected with a reason
// and a retry pushback. Each reason says when a retry could be admitted at the
// earliest:
// clang-format off
//   reason               when                          earliest retry
//   kShuttingDown        after Shutdown()/DrainAll()   the minimum (go to another replica)
//   kBreakerOpen         while SetBreakerOpen(true, t) the time until the next probe
//   kQueueFull           size == capacity              time to drain to half the capacity
//   kDeadlineUnmeetable  predicted finish > deadline   time until the queue is short enough
//                                                      for the same deadline budget
// clang-format on
// and, except for kShuttingDown, the pushback is that caller's turn in the
// queue's RetryPushback book (retry_pushback.h): turned-away callers are given
// return times one 1 / drain rate apart (the drain prior while the breaker is
// open, so the herd returns after the probe at the pace the rate will serve),
// never beyond max_retry_pushback (the turns that pile up there are jittered).
// Jobs shed from the queue (Sweep(), Pop()) get their pushback from the same
// book (ShedPushback()).
//
// Fair turns: the book remembers each turn by the request's identity (its
// idempotency key, JobTraits<T>::Key; a retry repeats it), so a caller that
// comes back at its turn is told apart from a newcomer (e.g. a caller that has
// just succeeded and sends its next request at once). In the deadline check:
// clang-format off
//   ahead = jobs queued                      a caller at its turn, or a request without a key
//   ahead = jobs queued + Promised(queued)   a newcomer, or a caller early for its turn
// clang-format on
// Promised (retry_pushback.h) is the number of turns the book holds that fall
// due while the jobs queued ahead drain, at most that many jobs. So while
// callers turned away earlier are coming back for their turns, the places the
// queue frees are theirs: a newcomer is turned away and booked after them
// (its earliest retry is still computed from the jobs queued). A request
// without a key cannot be told apart from a caller at its turn: it is
// admitted first come, first served, as before the book had keys (the gRPC
// methods all have keys; durable attempts have none and keep their own
// retry schedule).
//
// Pop() returns the next runnable job. Jobs whose deadline passed (now +
// deadline_margin >= deadline) or that were cancelled are removed on the way
// and returned separately so the dispatcher can answer them without a Kill
// Bill call. Sweep() does the same over the whole queue (call it periodically
// so a cancelled job in the middle is answered promptly). DrainAll() stops
// admission and hands back every job.
//
// T is the dispatcher's job type; JobTraits<T> says how to read its deadline,
// whether it is cancelled and its key. The default expects `Clock::TimePoint
// deadline`, `bool IsCancelled() const` and, if it has one, a `key`
// convertible to std::string_view (none: no key); specialize JobTraits for
// another shape. The key is hashed before the queue lock is taken.
// IsCancelled() is called under the queue lock: it must be cheap and must not
// call back into the queue.
//
// Thread-safety: every method is safe to call concurrently (internal
// absl::Mutex). The `ready` predicate of Pop() runs under the queue lock (it
// may take tokens from the bucket and a permit from the breaker, which never
// call into the queue).
#pragma once

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstddef>
#include <deque>
#include <optional>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/functional/function_ref.h"
#include "absl/synchronization/mutex.h"
#include "common/clock.h"
#include "flow/drain_rate.h"
#include "flow/retry_pushback.h"

namespace bg::flow {

enum class RejectReason {
  kQueueFull,
  kDeadlineUnmeetable,
  kBreakerOpen,
  kShuttingDown
};
// Bounded label value for metrics and the rejection detail ("queue_full", ...).
const char* RejectReasonName(RejectReason reason);

// Time the gateway keeps for an answer's way back to its caller: a job is run
// only when it can finish this long before the caller's deadline, and a Kill
// Bill call's timeout ends this long before it (service/killbill_call.h), so
// the caller hears the gateway's answer, not its own DEADLINE_EXCEEDED.
inline constexpr std::chrono::milliseconds kAnswerMargin{50};

// `queue.capacity` (YAML) sets `capacity`; the other fields have no key. These
// defaults are the gateway's: config/ has no other.
struct AdmissionOptions {
  // Most jobs waiting. Bounds memory and the worst wait (capacity / drain
  // rate); the deadline check usually rejects before the queue is full.
  size_t capacity = 10000;
  // Time reserved for the answer's way back to the caller; a job is only
  // admitted/run when it can finish this long before its deadline.
  Clock::Duration deadline_margin = kAnswerMargin;
  // The predicted queue wait is multiplied by this before it is compared with
  // the deadline: the drain rate is measured over the last seconds and the rate
  // controller may lower it after admission, so a job admitted with no slack
  // would often be shed later. Higher rejects earlier and sheds less.
  double wait_safety_factor = 1.25;
  // Expected Kill Bill time per job before any is measured.
  Clock::Duration initial_latency = std::chrono::milliseconds(200);
  // EWMA weight of a new latency sample. Higher follows faster and jitters
  // more.
  double latency_ewma_alpha = 0.2;
  // Drain rate (jobs/s) before any is measured; replaced by SetDrainPrior().
  double initial_drain_per_s = 5.0;
  DrainRate::Options drain;
  // Bounds of every retry pushback: not so short that callers hammer, not so
  // long that they give up on a gateway that has recovered. The maximum is
  // also the furthest the RetryPushback book reaches: callers turned away while
  // more are booked than the rate serves in this time all return within it
  // (jittered over its last 20 %), so it should cover the turns a storm needs
  // (1,000 callers at ~25 registrations/s: 40 s).
  Clock::Duration min_retry_pushback = std::chrono::milliseconds(100);
  Clock::Duration max_retry_pushback = std::chrono::seconds(60);
};

struct Admission {
  bool admitted = false;
  RejectReason reason =
      RejectReason::kQueueFull;    // meaningful only when !admitted
  Clock::Duration retry_after{0};  // meaningful only when !admitted
  Clock::Duration predicted_wait{
      0};  // queue wait + expected latency at decision time
};

template <typename T, typename = void>
struct HasKey : std::false_type {};
template <typename T>
struct HasKey<T, std::void_t<decltype(std::string_view(std::declval<T>().key))>>
    : std::true_type {};

template <typename T>
struct JobTraits {
  static Clock::TimePoint Deadline(const T& job) { return job.deadline; }
  static bool Cancelled(const T& job) { return job.IsCancelled(); }
  // The request's identity across retries (empty: none).
  static std::string_view Key(const T& job) {
    if constexpr (HasKey<T>::value) {
      return std::string_view(job.key);
    } else {
      return {};
    }
  }
};

// The arithmetic of admission, shared by every AdmissionQueue<T>
// (admission_queue.cc).
class AdmissionPolicy {
 public:
  // `pushback_seed`: the RetryPushback jitter's seed (0: a random one).
  AdmissionPolicy(Clock* clock, const AdmissionOptions& options,
                  uint64_t pushback_seed = 0);

  // Decision for a job with `deadline` and `ahead` jobs in front of it, from
  // the caller with `identity` (RetryPushback::Identity; 0: none).
  Admission Decide(Clock::TimePoint now, Clock::TimePoint deadline,
                   size_t ahead, bool shutting_down, uint64_t identity = 0);
  Clock::Duration PredictedWait(size_t ahead);
  // The caller's turn in the book, `earliest` at the soonest (see the file
  // comment).
  Clock::Duration Pushback(Clock::Duration earliest, uint64_t identity = 0);

  void SetBreakerOpen(bool open, Clock::TimePoint next_probe_at, size_t queued);
  bool breaker_open() const { return breaker_open_; }
  void ObserveLatency(Clock::Duration latency);
  Clock::Duration expected_latency() const;
  DrainRate& drain() { return drain_; }
  const AdmissionOptions& options() const { return opt_; }
  void SetCapacity(size_t capacity) { opt_.capacity = capacity; }

 private:
  AdmissionOptions opt_;
  DrainRate drain_;
  double latency_s_;
  bool breaker_open_ = false;
  Clock::TimePoint next_probe_at_;
  RetryPushback pushback_;
};

template <typename T, typename Traits = JobTraits<T>>
class AdmissionQueue {
 public:
  struct Dropped {
    std::vector<T> expired;
    std::vector<T> cancelled;
  };
  struct PopResult {
    std::optional<T> job;  // next runnable job, if any (and `ready` agreed)
    Dropped dropped;       // removed without running; answer them
  };

  // `pushback_seed`: the jitter's seed (0: a random one; tests pass theirs).
  AdmissionQueue(Clock* clock, AdmissionOptions options,
                 uint64_t pushback_seed = 0)
      : clock_(clock),
        policy_(clock, options, pushback_seed),
        capacity_(options.capacity) {}
  AdmissionQueue(const AdmissionQueue&) = delete;
  AdmissionQueue& operator=(const AdmissionQueue&) = delete;

  // Moves from `job` only when admitted; on rejection the caller still owns it
  // and answers it with the returned reason and pushback.
  Admission Admit(T&& job) {
    const uint64_t identity = RetryPushback::Identity(Traits::Key(job));
    absl::MutexLock lock(&mu_);
    const Clock::TimePoint now = clock_->Now();
    Admission a;
    if (queue_.size() >= policy_.options().capacity && !shutting_down_ &&
        !policy_.breaker_open()) {
      a.reason = RejectReason::kQueueFull;
      const size_t half = policy_.options().capacity / 2;
      a.retry_after =
          policy_.Pushback(policy_.PredictedWait(queue_.size() - half) -
                               policy_.expected_latency(),
                           identity);
      return a;
    }
    a = policy_.Decide(now, Traits::Deadline(job), queue_.size(),
                       shutting_down_, identity);
    if (!a.admitted) return a;
    queue_.push_back(std::move(job));
    UpdateBusyLocked();
    return a;
  }

  // Takes the next runnable job if `ready(job)` says the dispatcher can run it
  // now (e.g. tokens for its cost were taken); expired/cancelled jobs met
  // before it are returned in `dropped` either way.
  PopResult Pop(absl::FunctionRef<bool(const T&)> ready) {
    PopResult r;
    absl::MutexLock lock(&mu_);
    const Clock::TimePoint now = clock_->Now();
    while (!queue_.empty()) {
      T& head = queue_.front();
      if (DropIfDeadLocked(now, head, &r.dropped)) {
        queue_.pop_front();
        continue;
      }
      if (ready(head)) {
        r.job.emplace(std::move(head));
        queue_.pop_front();
        policy_.drain().RecordDrained();
      }
      break;
    }
    UpdateBusyLocked();
    return r;
  }
  PopResult Pop() {
    return Pop([](const T&) { return true; });
  }

  // Removes expired and cancelled jobs anywhere in the queue. `horizon`: also
  // sheds jobs that would expire within it, so a caller sweeping every
  // `horizon` answers them before their deadline rather than after.
  //
  // While the breaker is closed it also sheds (into `expired`) the jobs that
  // can no longer finish in time at the rate the queue is paced at now, the
  // drain prior (token bucket rate / calls per job): predicted finish = now +
  // jobs kept ahead / prior + expected latency + deadline margin, walking in
  // FIFO order so a shed job frees its place for the ones behind it. A job
  // admitted before the rate controller cut the rate would otherwise wait
  // until just before its deadline and only then hear "no"; now its caller
  // hears it at the cut. The measured drain is not used here: it lags a cut by
  // its window and reads low during half-open probing. While the breaker is
  // open, queued jobs wait as long as their deadlines allow.
  Dropped Sweep(Clock::Duration horizon = Clock::Duration::zero()) {
    Dropped d;
    absl::MutexLock lock(&mu_);
    const Clock::TimePoint now = clock_->Now();
    const double pace = policy_.breaker_open() ? 0.0 : policy_.drain().prior();
    const Clock::Duration fixed =
        policy_.expected_latency() + policy_.options().deadline_margin;
    std::deque<T> keep;
    for (T& job : queue_) {
      if (DropIfDeadLocked(now + horizon, job, &d)) continue;
      if (pace > 0 &&
          now + FromSeconds(static_cast<double>(keep.size()) / pace) + fixed >
              Traits::Deadline(job)) {
        d.expired.push_back(std::move(job));
        continue;
      }
      keep.push_back(std::move(job));
    }
    queue_.swap(keep);
    UpdateBusyLocked();
    return d;
  }

  // Refuses new jobs from now on (kShuttingDown); queued jobs stay for the
  // dispatcher.
  void Shutdown() {
    absl::MutexLock lock(&mu_);
    shutting_down_ = true;
  }
  // Shutdown() and hands back every queued job, in FIFO order.
  std::vector<T> DrainAll() {
    absl::MutexLock lock(&mu_);
    shutting_down_ = true;
    std::vector<T> all;
    all.reserve(queue_.size());
    for (T& job : queue_) all.push_back(std::move(job));
    queue_.clear();
    UpdateBusyLocked();
    return all;
  }

  // Called on breaker transitions: while open, new jobs get kBreakerOpen with
  // the time to `next_probe_at` as pushback, and the stalled queue does not
  // count as slow draining.
  void SetBreakerOpen(bool open, Clock::TimePoint next_probe_at = {}) {
    absl::MutexLock lock(&mu_);
    policy_.SetBreakerOpen(open, next_probe_at, queue_.size());
  }
  // Kill Bill time of one finished job (all its calls), for the latency EWMA.
  void ObserveLatency(Clock::Duration latency) {
    absl::MutexLock lock(&mu_);
    policy_.ObserveLatency(latency);
  }
  // Drain rate to assume until measured: token bucket rate / Kill Bill calls
  // per job.
  void SetDrainPrior(double jobs_per_s) {
    absl::MutexLock lock(&mu_);
    policy_.drain().SetPrior(jobs_per_s);
  }

  size_t size() const {
    absl::MutexLock lock(&mu_);
    return queue_.size();
  }
  size_t capacity() const { return capacity_.load(std::memory_order_relaxed); }
  // A configuration reload: admission compares with the new capacity from now
  // on. Jobs already queued stay, also beyond a smaller capacity.
  void SetCapacity(size_t capacity) {
    absl::MutexLock lock(&mu_);
    policy_.SetCapacity(capacity);
    capacity_.store(capacity, std::memory_order_relaxed);
  }
  double DrainPerSecond() {
    absl::MutexLock lock(&mu_);
    return policy_.drain().PerSecond();
  }
  Clock::Duration ExpectedLatency() const {
    absl::MutexLock lock(&mu_);
    return policy_.expected_latency();
  }
  // The pushback for `job`, shed from the queue (it can no longer finish in
  // time): its caller's turn in the book, from the minimum on.
  Clock::Duration ShedPushback(const T& job) {
    const uint64_t identity = RetryPushback::Identity(Traits::Key(job));
    absl::MutexLock lock(&mu_);
    return policy_.Pushback(Clock::Duration::zero(), identity);
  }
  // Predicted queue wait + latency for a job admitted now (for metrics/tests).
  Clock::Duration PredictedWait() {
    absl::MutexLock lock(&mu_);
    return policy_.PredictedWait(queue_.size());
  }

 private:
  bool DropIfDeadLocked(Clock::TimePoint now, T& job, Dropped* d)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (Traits::Cancelled(job)) {
      d->cancelled.push_back(std::move(job));
      return true;
    }
    // A job that could not finish even if it started now is shed, so its caller
    // hears "no" before its deadline instead of timing out.
    if (now + policy_.options().deadline_margin + policy_.expected_latency() >=
        Traits::Deadline(job)) {
      d->expired.push_back(std::move(job));
      return true;
    }
    return false;
  }
  void UpdateBusyLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    policy_.drain().SetBusy(!queue_.empty() && !policy_.breaker_open());
  }

  Clock* const clock_;
  mutable absl::Mutex mu_;
  AdmissionPolicy policy_ ABSL_GUARDED_BY(mu_);
  std::atomic<size_t> capacity_;
  std::deque<T> queue_ ABSL_GUARDED_BY(mu_);
  bool shutting_down_ ABSL_GUARDED_BY(mu_) = false;
};

}  // namespace bg::flow
