// ReplicaCoordinator: the housekeeping thread of one gateway replica on the
// shared database.
//
// Every `heartbeat_interval` it:
//   * applies the schema migrations until they succeed once (a gateway may
//   start while the
//     database is down; durable calls answer UNAVAILABLE until then), then
//     reports ready();
//   * writes this replica's heartbeat and counts the replicas heard from within
//     `heartbeat_timeout`; this replica's share of the global Kill Bill rate is
//     1 / that count, handed to `set_rate_share` whenever it changes. A dead
//     replica stops beating, so within heartbeat_timeout + heartbeat_interval
//     the others raise their shares; a replica that stops cleanly deletes its
//     row, so the others react at their next beat. While the database is
//     unreachable the last share is kept (the replicas cannot see each other,
//     and keeping the share is what keeps their sum within the global rate);
//   * refreshes the queue gauges (depth, oldest pending age) from the database;
//   * every `purge_every` beats, deletes finished operations older than
//   `retention`, in
//     batches, at most `purge_max_batches` batches a round so one round stays
//     short.
//
// Thread-safety: ready() from any thread; Start/Shutdown from one.
#pragma once

#include <atomic>
#include <functional>
#include <string>
#include <thread>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "common/clock.h"
#include "durable/durable_metrics.h"
#include "durable/pg_session.h"

namespace bg::durable {

struct CoordinatorOptions {
  std::string replica_id;
  Clock::Duration heartbeat_interval = std::chrono::seconds(1);
  Clock::Duration heartbeat_timeout = std::chrono::seconds(5);
  Clock::Duration retention = std::chrono::hours(24 * 7);
  int purge_every = 10;
  int purge_batch = 1000;
  int purge_max_batches = 20;
};

class ReplicaCoordinator {
 public:
  ReplicaCoordinator(Clock* clock, PgSessionOptions session,
                     CoordinatorOptions options, DurableMetrics* metrics,
                     std::function<void(double)> set_rate_share);
  ~ReplicaCoordinator();

  // Migrates once synchronously (so a healthy start is ready at once), then
  // starts the thread. Returns the migration status; the thread keeps retrying
  // when it failed.
  absl::Status Start();
  void Shutdown() ABSL_LOCKS_EXCLUDED(mu_);

  bool ready() const { return ready_.load(std::memory_order_acquire); }
  int live_replicas() const { return live_.load(std::memory_order_relaxed); }

 private:
  void Loop();
  void Beat();

  Clock* const clock_;
  const CoordinatorOptions options_;
  DurableMetrics* const metrics_;
  const std::function<void(double)> set_rate_share_;
  PgSession session_;  // Used by Start() before the thread exists, then by the
                       // thread only.

  // Atomics: read on gRPC and worker threads without a lock; each is a lone
  // value.
  std::atomic<bool> ready_{false};
  std::atomic<int> live_{1};
  int last_live_ = 0;          // Thread only.
  int beats_ = 0;              // Thread only.
  bool beat_failing_ = false;  // Thread only: log failures once per episode.

  absl::Mutex mu_;
  absl::CondVar cv_;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  std::thread thread_;
};

}  // namespace bg::durable
