#include "durable/durable_queue.h"

#include <unistd.h>

#include <random>

#include "absl/strings/str_cat.h"
#include "durable/operation_waiter.h"
#include "durable/replica_coordinator.h"
#include "durable/submit_batcher.h"
#include "spdlog/spdlog.h"

namespace bg::durable {

std::string NewReplicaId() {
  char host[256] = {0};
  if (gethostname(host, sizeof(host) - 1) != 0) host[0] = '\0';
  std::random_device rd;
  return absl::StrCat(host[0] ? host : "gateway", "-", getpid(), "-",
                      absl::Hex(static_cast<uint32_t>(rd()), absl::kZeroPad8));
}

DurableQueue::DurableQueue(Clock* clock, DurableOptions options,
                           prometheus::Registry& registry, Executor executor,
                           std::function<void(double)> set_rate_share)
    : clock_(clock),
      options_(std::move(options)),
      replica_id_(NewReplicaId()),
      metrics_(registry) {
  options_.worker.owner = replica_id_;
  CoordinatorOptions c;
  c.replica_id = replica_id_;
  c.heartbeat_interval = options_.heartbeat_interval;
  c.heartbeat_timeout = options_.heartbeat_timeout;
  c.retention = options_.retention;
  coordinator_ = std::make_unique<ReplicaCoordinator>(
      clock_, options_.session, c, &metrics_, std::move(set_rate_share));
  auto ready = [this] { return coordinator_->ready(); };
  worker_ = std::make_unique<DurableWorker>(
      clock_, options_.session, options_.worker, std::move(executor), &metrics_,
      ready, [this] { waiter_->Notify(); });
}

DurableQueue::~DurableQueue() { Shutdown(Clock::Duration(0)); }

absl::Status DurableQueue::Start() {
  absl::Status ready = coordinator_->Start();
  auto is_ready = [this] { return coordinator_->ready(); };
  batcher_ = std::make_unique<SubmitBatcher>(
      clock_, options_.session,
      SubmitBatcher::Options{options_.submit_batch, options_.submit_writers,
                             options_.submit_queue},
      &metrics_, is_ready);
  waiter_ = std::make_unique<OperationWaiter>(clock_, options_.session,
                                              options_.worker.poll_interval,
                                              options_.max_waiters, is_ready);
  worker_->Start();
  return ready;
}

bool DurableQueue::ready() const { return coordinator_->ready(); }

void DurableQueue::Submit(const billing::v1::CreateAccountRequest& request,
                          Clock::TimePoint deadline, Done done) {
  Submission s;
  s.external_key = request.external_key();
  if (!request.SerializeToString(&s.request)) {
    done(absl::InternalError("cannot serialize the request"));
    return;
  }
  batcher_->Submit(std::move(s), deadline, std::move(done));
}

void DurableQueue::Submit(const billing::v1::CreateSubscriptionRequest& request,
                          Clock::TimePoint deadline, Done done) {
  Submission s;
  s.kind = OperationKind::kCreateSubscription;
  s.external_key = request.instance_id();
  s.account_key = request.account().external_key();
  if (!request.SerializeToString(&s.request)) {
    done(absl::InternalError("cannot serialize the request"));
    return;
  }
  batcher_->Submit(std::move(s), deadline, std::move(done));
}

void DurableQueue::Get(int64_t id, Clock::TimePoint wait_until,
                       std::function<bool()> cancelled, Done done,
                       std::optional<Clock::TimePoint> answer_by) {
  waiter_->Wait(id, wait_until, std::move(cancelled), std::move(done),
                answer_by);
}

void DurableQueue::StopClaiming() {
  if (worker_) worker_->StopClaiming();
}

void DurableQueue::Shutdown(Clock::Duration grace) {
  if (stopped_) return;
  stopped_ = true;
  if (batcher_) batcher_->Shutdown();
  if (worker_) worker_->Shutdown(grace);
  if (waiter_) waiter_->Shutdown();
  if (coordinator_) coordinator_->Shutdown();
}

}  // namespace bg::durable
