// Microbenchmarks of the flow-control hot paths (ns/op), on the real steady
// clock.
#include <chrono>
#include <memory>

#include "benchmark/benchmark.h"
#include "common/clock.h"
#include "flow/admission_queue.h"
#include "flow/circuit_breaker.h"
#include "flow/rate_controller.h"
#include "flow/token_bucket.h"

namespace bg::flow {
namespace {

void BM_TokenBucketTryAcquire(benchmark::State& state) {
  TokenBucket bucket(SteadyClock::Instance(), 1e12, 1e12);
  for (auto _ : state) benchmark::DoNotOptimize(bucket.TryAcquire(1));
}
BENCHMARK(BM_TokenBucketTryAcquire)->ThreadRange(1, 4);

void BM_TokenBucketTryAcquireEmpty(benchmark::State& state) {
  TokenBucket bucket(SteadyClock::Instance(), 1e-9, 1);
  bucket.TryAcquire(1);
  for (auto _ : state) benchmark::DoNotOptimize(bucket.TryAcquire(1));
}
BENCHMARK(BM_TokenBucketTryAcquireEmpty);

void BM_CircuitBreakerAllowOnSuccess(benchmark::State& state) {
  static CircuitBreaker* breaker =
      new CircuitBreaker(SteadyClock::Instance(), CircuitBreaker::Options{});
  for (auto _ : state) {
    CircuitBreaker::Permit p = breaker->Allow();
    breaker->OnSuccess(p, std::chrono::milliseconds(20));
  }
}
BENCHMARK(BM_CircuitBreakerAllowOnSuccess)->ThreadRange(1, 4);

struct BenchJob {
  Clock::TimePoint deadline;
  bool IsCancelled() const { return false; }
};

void BM_AdmissionAdmitPop(benchmark::State& state) {
  AdmissionOptions o;
  o.capacity = 1 << 20;
  AdmissionQueue<BenchJob> queue(SteadyClock::Instance(), o);
  const Clock::TimePoint far =
      SteadyClock::Instance()->Now() + std::chrono::hours(1);
  // A standing backlog, as under load.
  for (int i = 0; i < state.range(0); ++i) queue.Admit(BenchJob{far});
  for (auto _ : state) {
    benchmark::DoNotOptimize(queue.Admit(BenchJob{far}));
    benchmark::DoNotOptimize(queue.Pop());
  }
}
BENCHMARK(BM_AdmissionAdmitPop)->Arg(0)->Arg(1000);

// One healthcheck poll through the rate controller's model, with a full
// history; the growing case runs the drain fit (the expensive path, once per
// poll interval).
void BM_RateControllerPoll(benchmark::State& state) {
  FakeClock clock;
  RateController controller(&clock, RateController::Options{});
  CircuitBreaker::Health quiet, growing;
  growing.queues_growing = true;
  growing.growth = 0.3;
  for (int i = 0; i < 200; ++i) {
    controller.RecordBusEvents(25);
    clock.Advance(std::chrono::seconds(1));
    controller.OnHealth(quiet);
  }
  for (auto _ : state) {
    controller.RecordBusEvents(25);
    clock.Advance(std::chrono::seconds(1));
    controller.OnHealth(state.range(0) ? growing : quiet);
  }
}
BENCHMARK(BM_RateControllerPoll)->Arg(0)->Arg(1)->Unit(benchmark::kMicrosecond);

}  // namespace
}  // namespace bg::flow
