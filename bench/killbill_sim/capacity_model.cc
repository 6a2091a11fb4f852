#include "bench/killbill_sim/capacity_model.h"

#include <algorithm>
#include <cmath>

namespace bg::sim {
namespace {

// Virtual-time comparisons tolerate float rounding of the ns-granular clock.
constexpr double kEpsilon = 1e-9;
// Bus entries: a backlog within this of an integer counts as that integer.
constexpr double kEntryTolerance = 1e-6;

Clock::Duration CeilDuration(double seconds) {
  const double ns = std::ceil(seconds * 1e9);
  if (ns >= 9e18) return Clock::Duration::max();
  return std::max(Clock::Duration(1),
                  std::chrono::duration_cast<Clock::Duration>(
                      std::chrono::nanoseconds(static_cast<int64_t>(ns))));
}

}  // namespace

CapacityModel::CapacityModel(const Clock* clock,
                             const CapacityModelOptions& options)
    : clock_(clock), options_(options), t_(clock->Now()) {}

double CapacityModel::CapacityFactor() const {
  if (!options_.degrade || bus_backlog_ <= options_.degrade_threshold)
    return 1.0;
  const double f = 1.0 - options_.degrade_per_entry *
                             (bus_backlog_ - options_.degrade_threshold);
  return std::clamp(f, options_.degrade_floor, 1.0);
}

void CapacityModel::Enter(JobId id, Job& job) {
  if (job.work <= 0) {
    job.state = State::kDone;
    ++completed_total_;
    return;
  }
  if (in_service_.empty()) v_ = 0;  // keep virtual time small while idle
  job.state = State::kService;
  job.finish_v = v_ + job.work;
  in_service_.emplace(job.finish_v, id);
}

int CapacityModel::SettleAt() {
  int completed = 0;
  while (!in_latency_.empty() && in_latency_.begin()->first <= t_) {
    const JobId id = in_latency_.begin()->second;
    in_latency_.erase(in_latency_.begin());
    Job& job = jobs_.at(id);
    Enter(id, job);
    if (job.state == State::kDone) ++completed;
  }
  while (!in_service_.empty() &&
         in_service_.begin()->first <= v_ + kEpsilon * std::max(1.0, v_)) {
    jobs_.at(in_service_.begin()->second).state = State::kDone;
    in_service_.erase(in_service_.begin());
    ++completed_total_;
    ++completed;
  }
  return completed;
}

int CapacityModel::Advance() {
  const Clock::TimePoint now = clock_->Now();
  int completed = SettleAt();
  while (t_ < now) {
    const double f = CapacityFactor();
    const double rate = options_.capacity * f;
    Clock::TimePoint next = now;
    if (!in_latency_.empty()) next = std::min(next, in_latency_.begin()->first);
    const double n = static_cast<double>(in_service_.size());
    if (n > 0 && rate > 0) {
      const double need = (in_service_.begin()->first - v_) * n / rate;
      const Clock::Duration d = CeilDuration(need);
      if (d < now - t_) next = std::min(next, t_ + d);
    }
    if (options_.degrade && bus_backlog_ > options_.degrade_threshold &&
        kDegradeStep < now - t_) {
      next = std::min(next, t_ + kDegradeStep);
    }
    if (next <= t_) next = t_ + Clock::Duration(1);

    const double dt = ToSeconds(next - t_);
    if (n > 0) v_ += rate * dt / n;
    const double drained = std::min(bus_backlog_, options_.bus_drain * f * dt);
    bus_backlog_ -= drained;
    bus_drained_total_ += drained;
    t_ = next;
    completed += SettleAt();
  }
  return completed;
}

CapacityModel::JobId CapacityModel::Submit(double work) {
  Advance();
  const JobId id = next_id_++;
  Job& job = jobs_[id];
  job.work = work;
  job.enter_service = t_ + options_.base_latency;
  if (options_.base_latency <= Clock::Duration::zero()) {
    Enter(id, job);
  } else {
    in_latency_.emplace(job.enter_service, id);
  }
  return id;
}

bool CapacityModel::IsDone(JobId id) const {
  auto it = jobs_.find(id);
  return it == jobs_.end() || it->second.state == State::kDone;
}

void CapacityModel::Release(JobId id) {
  auto it = jobs_.find(id);
  if (it == jobs_.end()) return;
  auto erase_from = [id](auto& index, auto key) {
    auto [begin, end] = index.equal_range(key);
    for (auto i = begin; i != end; ++i) {
      if (i->second == id) {
        index.erase(i);
        return;
      }
    }
  };
  if (it->second.state == State::kLatency)
    erase_from(in_latency_, it->second.enter_service);
  if (it->second.state == State::kService)
    erase_from(in_service_, it->second.finish_v);
  jobs_.erase(it);
}

Clock::TimePoint CapacityModel::EstimatedCompletion(JobId id) const {
  auto it = jobs_.find(id);
  if (it == jobs_.end() || it->second.state == State::kDone) return t_;
  const Job& job = it->second;
  const double rate = options_.capacity * CapacityFactor();
  if (rate <= 0) return Clock::TimePoint::max();
  if (job.state == State::kLatency) {
    const double n = static_cast<double>(in_service_.size()) + 1;
    return job.enter_service + CeilDuration(job.work * n / rate);
  }
  const double n = static_cast<double>(in_service_.size());
  return t_ + CeilDuration((job.finish_v - v_) * n / rate);
}

void CapacityModel::PostBusEvents(int64_t count) {
  bus_backlog_ += static_cast<double>(count);
  if (count > 0) bus_posted_total_ += static_cast<uint64_t>(count);
}

int64_t CapacityModel::BusBacklog() const {
  return static_cast<int64_t>(std::ceil(bus_backlog_ - kEntryTolerance));
}

uint64_t CapacityModel::bus_dispatched_total() const {
  return static_cast<uint64_t>(
      std::floor(bus_drained_total_ + kEntryTolerance));
}

void CapacityModel::set_options(const CapacityModelOptions& options) {
  Advance();
  options_ = options;
}

}  // namespace bg::sim
