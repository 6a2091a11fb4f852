#include "durable/replica_coordinator.h"

#include "absl/time/time.h"
#include "durable/operation_store.h"
#include "spdlog/spdlog.h"

namespace bg::durable {

ReplicaCoordinator::ReplicaCoordinator(
    Clock* clock, PgSessionOptions session, CoordinatorOptions options,
    DurableMetrics* metrics, std::function<void(double)> set_rate_share)
    : clock_(clock),
      options_(std::move(options)),
      metrics_(metrics),
      set_rate_share_(std::move(set_rate_share)),
      session_(clock, std::move(session)) {}

ReplicaCoordinator::~ReplicaCoordinator() { Shutdown(); }

absl::Status ReplicaCoordinator::Start() {
  OperationStore store(&session_);
  absl::Status migrated = store.Migrate();
  if (migrated.ok()) {
    ready_.store(true, std::memory_order_release);
    Beat();
  }
  metrics_->database_up().Set(migrated.ok() ? 1 : 0);
  thread_ = std::thread([this] { Loop(); });
  return migrated;
}

void ReplicaCoordinator::Shutdown() {
  {
    absl::MutexLock lock(&mu_);
    if (stopping_) return;
    stopping_ = true;
    cv_.Signal();
  }
  if (thread_.joinable()) thread_.join();
  if (ready()) {
    // Leave at once so the other replicas take this share at their next
    // heartbeat.
    OperationStore store(&session_);
    (void)store.RemoveReplica(options_.replica_id);
  }
}

void ReplicaCoordinator::Beat() {
  OperationStore store(&session_);
  if (!ready()) {
    absl::Status migrated = store.Migrate();
    if (!migrated.ok()) {
      metrics_->database_up().Set(0);
      if (beat_failing_) return;
      beat_failing_ = true;
      spdlog::warn("durable: schema migration not applied yet: {}",
                   std::string(migrated.message()));
      return;
    }
    spdlog::info("durable: schema at version {}",
                 OperationStore::LatestVersion());
    ready_.store(true, std::memory_order_release);
  }
  auto live =
      store.Heartbeat(options_.replica_id, options_.heartbeat_timeout,
                      std::max<Clock::Duration>(options_.heartbeat_timeout * 10,
                                                std::chrono::minutes(1)));
  if (!live.ok()) {
    metrics_->database_up().Set(absl::IsUnavailable(live.status()) ? 0 : 1);
    if (!beat_failing_) {  // Once per episode.
      spdlog::warn("durable: heartbeat failed (keeping rate share {:.3f}): {}",
                   last_live_ > 0 ? 1.0 / last_live_ : 1.0,
                   std::string(live.status().message()));
    }
    beat_failing_ = true;
    return;
  }
  if (beat_failing_) spdlog::info("durable: database reachable again");
  beat_failing_ = false;
  metrics_->database_up().Set(1);
  live_.store(*live, std::memory_order_relaxed);
  metrics_->live_replicas().Set(*live);
  if (*live != last_live_) {
    spdlog::info("durable: {} live replica(s); rate share {:.3f}", *live,
                 1.0 / *live);
    last_live_ = *live;
    metrics_->rate_share().Set(1.0 / *live);
    if (set_rate_share_) set_rate_share_(1.0 / *live);
  }
  if (auto stats = store.Stats(); stats.ok()) {
    metrics_->pending().Set(static_cast<double>(stats->pending));
    metrics_->running().Set(static_cast<double>(stats->running));
    metrics_->oldest_pending_age().Set(stats->oldest_pending_age_s);
  }
  if (beats_++ % options_.purge_every == 0) {
    for (int i = 0; i < options_.purge_max_batches; ++i) {
      auto purged =
          store.PurgeFinished(options_.retention, options_.purge_batch);
      if (!purged.ok() || *purged < options_.purge_batch) break;
    }
  }
}

void ReplicaCoordinator::Loop() {
  for (;;) {
    {
      absl::MutexLock lock(&mu_);
      const Clock::TimePoint wake = clock_->Now() + options_.heartbeat_interval;
      while (!stopping_ && clock_->Now() < wake) {
        cv_.WaitWithTimeout(
            &mu_,
            absl::FromChrono(std::chrono::nanoseconds(wake - clock_->Now())));
      }
      if (stopping_) return;
    }
    Beat();
  }
}

}  // namespace bg::durable
