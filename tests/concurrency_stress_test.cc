// Concurrency stress tests: the shared flow-control parts and the Kill Bill
// client pool driven from several threads at once, as the dispatcher, the gRPC
// handlers and the health monitor drive them in production.
//
// Written for ThreadSanitizer (scripts/sanitize.sh tsan runs them with
// -fsanitize=thread; any report fails the test), but they run in every build
// and check invariants that a lost update would break: tokens never exceed what
// the rate allows, every admitted job is answered exactly once, the retry
// budget is never overdrawn, the controller's rate stays in bounds and matches
// the bucket, every concurrent registration reaches Kill Bill exactly once.
//
// Time: a FakeClock advanced by its own thread while the workers run (so clock
// reads race with advances, as they would with a real clock), except the client
// test, whose sim needs steady time. Iteration counts are small enough for a
// TSan build on 2 cores (a few seconds).
#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "bench/killbill_sim/killbill_sim.h"
#include "common/clock.h"
#include "flow/admission_queue.h"
#include "flow/circuit_breaker.h"
#include "flow/rate_controller.h"
#include "flow/retry_policy.h"
#include "flow/token_bucket.h"
#include "gtest/gtest.h"
#include "killbill_client/killbill_client.h"
#include "killbill_client/parse.h"

namespace bg::flow {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;

constexpr int kWorkers = 4;

// Runs `body(worker_index)` on kWorkers threads and `ticker()` on one more
// until every worker is done; the ticker is called in a loop (it advances the
// clock).
void RunConcurrently(const std::function<void(int)>& body,
                     const std::function<void()>& ticker = nullptr) {
  std::atomic<int> running{
      kWorkers};  // Lock-free: only a done-counter for the ticker.
  std::vector<std::thread> threads;
  for (int w = 0; w < kWorkers; ++w) {
    threads.emplace_back([&, w] {
      body(w);
      running.fetch_sub(1, std::memory_order_acq_rel);
    });
  }
  if (ticker) {
    threads.emplace_back([&] {
      while (running.load(std::memory_order_acquire) > 0) {
        ticker();
        std::this_thread::yield();
      }
    });
  }
  for (std::thread& t : threads) t.join();
}

TEST(ConcurrencyStress, TokenBucketNeverGrantsMoreThanRateAllows) {
  FakeClock clock;
  constexpr double kRate = 1000, kBurst = 50;
  TokenBucket bucket(&clock, kRate, kBurst);
  std::atomic<int64_t> granted{0}, refunded{0};  // Counters summed after join.
  std::atomic<int64_t> advanced_us{0};
  RunConcurrently(
      [&](int w) {
        for (int i = 0; i < 20000; ++i) {
          if (bucket.TryAcquire(1)) {
            granted.fetch_add(1);
            if (i % 7 ==
                w) {  // Some jobs are cancelled after taking their token.
              bucket.Refund(1);
              refunded.fetch_add(1);
            }
          }
          if (i % 64 == 0) {
            EXPECT_LE(bucket.Available(), kBurst + 1e-9);
            (void)bucket.TimeUntilAvailable(2);
            EXPECT_EQ(bucket.rate(), kRate);
          }
        }
      },
      [&] {
        clock.Advance(std::chrono::microseconds(100));
        advanced_us.fetch_add(100);
      });
  const double allowed =
      kBurst + kRate * static_cast<double>(advanced_us.load()) / 1e6;
  EXPECT_LE(static_cast<double>(granted.load() - refunded.load()),
            allowed + 1e-6);
  EXPECT_GT(granted.load(), 0);
}

TEST(ConcurrencyStress, TokenBucketRateChangesOnSteadyClock) {
  TokenBucket bucket(SteadyClock::Instance(), 100, 10);
  RunConcurrently([&](int w) {
    for (int i = 0; i < 3000; ++i) {
      if (w == 0 && i % 10 == 0) bucket.SetRate(50 + i % 200);
      (void)bucket.TryAcquire(0.5);
      EXPECT_GE(bucket.TimeUntilAvailable(1).count(), 0);
      EXPECT_LE(bucket.Available(), 10 + 1e-9);
    }
  });
  EXPECT_GE(bucket.rate(), 50);
}

CircuitBreaker::Options BreakerOptions() {
  CircuitBreaker::Options o;
  o.window = seconds(1);
  o.min_calls = 5;
  o.open_duration = milliseconds(5);
  o.max_open_duration = milliseconds(40);
  o.half_open_probes = 2;
  o.probe_timeout = milliseconds(20);
  o.slow_call_threshold = milliseconds(50);
  o.health_failures_to_open = 2;
  return o;
}

TEST(ConcurrencyStress, CircuitBreakerTransitionsStayConsistent) {
  FakeClock clock;
  CircuitBreaker breaker(&clock, BreakerOptions());
  std::atomic<uint64_t> to_open{0}, to_half_open{0},
      to_closed{0};  // Callback counters.
  breaker.SetTransitionCallback([&](CircuitBreaker::State from,
                                    CircuitBreaker::State to,
                                    CircuitBreaker::Reason) {
    EXPECT_NE(from, to);
    switch (to) {
      case CircuitBreaker::State::kOpen:
        to_open.fetch_add(1);
        break;
      case CircuitBreaker::State::kHalfOpen:
        to_half_open.fetch_add(1);
        break;
      case CircuitBreaker::State::kClosed:
        to_closed.fetch_add(1);
        break;
    }
  });
  std::atomic<int> allowed{0};
  RunConcurrently(
      [&](int w) {
        std::mt19937 rng(w);
        for (int i = 0; i < 10000; ++i) {
          if (w == 0 && i % 50 == 0) {
            CircuitBreaker::Health h;
            h.reachable = (i / 50) % 5 != 0;
            h.queues_growing = (i / 50) % 3 == 0;
            h.growth = h.queues_growing ? 0.5 : 0;
            breaker.OnHealth(h);
            continue;
          }
          CircuitBreaker::Permit p = breaker.Allow();
          if (!p.allowed) {
            EXPECT_GE(breaker.TimeUntilNextProbe().count(), 0);
            continue;
          }
          allowed.fetch_add(1);
          const auto latency = milliseconds(rng() % 80);
          // Phases of failures and successes so the breaker really moves.
          if ((i / 500) % 2 == 0 && rng() % 3 != 0) {
            breaker.OnFailure(p, latency);
          } else if (rng() % 10 !=
                     0) {  // Some probes are never answered: probe timeout.
            breaker.OnSuccess(p, latency);
          }
        }
      },
      [&] {
        clock.Advance(milliseconds(1));
        breaker.Tick();
        (void)breaker.state();
      });
  EXPECT_GT(allowed.load(), 0);
  EXPECT_GT(to_open.load(), 0u);
  EXPECT_EQ(breaker.transitions(CircuitBreaker::State::kOpen), to_open.load());
  EXPECT_EQ(breaker.transitions(CircuitBreaker::State::kHalfOpen),
            to_half_open.load());
  EXPECT_EQ(breaker.transitions(CircuitBreaker::State::kClosed),
            to_closed.load());
  // Every half-open round starts from open; every close from half-open.
  EXPECT_LE(to_half_open.load(), to_open.load());
  EXPECT_LE(to_closed.load(), to_half_open.load());
}

// A move-only job whose payload ASan would catch if moved-from twice or freed
// twice.
struct StressJob {
  int id = 0;
  Clock::TimePoint deadline;
  std::shared_ptr<std::atomic<bool>> cancelled =
      std::make_shared<std::atomic<bool>>(false);
  std::unique_ptr<int> payload;
  bool IsCancelled() const {
    return cancelled->load(std::memory_order_acquire);
  }
};

TEST(ConcurrencyStress, AdmissionQueueAnswersEveryJobExactlyOnce) {
  FakeClock clock;
  AdmissionOptions options;
  options.capacity = 64;
  options.initial_drain_per_s = 2000;
  options.initial_latency = milliseconds(1);
  AdmissionQueue<StressJob> queue(&clock, options);
  TokenBucket bucket(&clock, 5000, 20);
  CircuitBreaker breaker(&clock, BreakerOptions());

  constexpr int kPerProducer = 5000;
  std::atomic<int> admitted{0}, rejected{0}, ran{0}, expired{0}, cancelled{0};
  std::atomic<int> producers_left{2};
  std::vector<std::atomic<int>> answers(
      2 * kPerProducer);  // Per job id: times answered.
  for (auto& a : answers) a.store(0);
  auto answer = [&](const StressJob& job) {
    ASSERT_NE(job.payload, nullptr);
    EXPECT_EQ(*job.payload, job.id);
    answers[job.id].fetch_add(1);
  };
  auto drop = [&](AdmissionQueue<StressJob>::Dropped& d) {
    for (StressJob& j : d.expired) {
      answer(j);
      expired.fetch_add(1);
    }
    for (StressJob& j : d.cancelled) {
      answer(j);
      cancelled.fetch_add(1);
    }
  };

  RunConcurrently(
      [&](int w) {
        if (w < 2) {  // Producers: the gRPC handlers.
          std::mt19937 rng(w);
          for (int i = 0; i < kPerProducer; ++i) {
            StressJob job;
            job.id = w * kPerProducer + i;
            job.payload = std::make_unique<int>(job.id);
            job.deadline = clock.Now() + milliseconds(5 + rng() % 200);
            auto flag = job.cancelled;
            const Admission a = queue.Admit(std::move(job));
            if (a.admitted) {
              admitted.fetch_add(1);
              if (rng() % 10 == 0) flag->store(true, std::memory_order_release);
            } else {
              EXPECT_GT(a.retry_after.count(), 0);
              answer(job);  // Still ours on rejection.
              rejected.fetch_add(1);
            }
          }
          producers_left.fetch_sub(1);
        } else if (w == 2) {  // Consumer: the dispatcher.
          while (producers_left.load() > 0 || queue.size() > 0) {
            auto r = queue.Pop([&](const StressJob&) {
              if (!bucket.TryAcquire(1)) return false;
              if (!breaker.Allow().allowed) {
                bucket.Refund(1);
                return false;
              }
              return true;
            });
            drop(r.dropped);
            if (r.job) {
              answer(*r.job);
              ran.fetch_add(1);
              queue.ObserveLatency(milliseconds(1));
            }
          }
        } else {  // Housekeeping: the sweeper and the breaker/rate callbacks.
          while (producers_left.load() > 0) {
            auto d = queue.Sweep();
            drop(d);
            queue.SetBreakerOpen(false);
            queue.SetDrainPrior(bucket.rate() / 2);
            (void)queue.PredictedWait();
            (void)queue.DrainPerSecond();
            std::this_thread::yield();
          }
        }
      },
      [&] { clock.Advance(std::chrono::microseconds(200)); });

  for (StressJob& j : queue.DrainAll()) {
    answer(j);
    ran.fetch_add(1);
  }
  EXPECT_EQ(admitted.load() + rejected.load(), 2 * kPerProducer);
  EXPECT_EQ(ran.load() + expired.load() + cancelled.load(), admitted.load());
  for (size_t id = 0; id < answers.size(); ++id) {
    ASSERT_EQ(answers[id].load(), 1) << "job " << id;
  }
  EXPECT_EQ(queue.Admit(StressJob{}).reason, RejectReason::kShuttingDown);
}

TEST(ConcurrencyStress, RateControllerKeepsRateInBounds) {
  FakeClock clock;
  RateController::Options o;
  o.initial = 20;
  o.min = 2;
  o.max = 60;
  o.probe_wait = seconds(1);
  o.max_probe_wait = seconds(4);
  o.fast_cooldown = milliseconds(100);
  RateController controller(&clock, o);
  RunConcurrently(
      [&](int w) {
        std::mt19937 rng(w);
        for (int i = 0; i < 600; ++i) {
          switch (w) {
            case 0: {  // The health monitor.
              CircuitBreaker::Health h;
              h.queues_growing = (i / 40) % 2 == 1;
              h.growth = h.queues_growing ? 0.2 + (rng() % 10) / 10.0 : 0;
              controller.OnHealth(h);
              break;
            }
            case 1:  // The dispatcher's periodic tick.
              EXPECT_GE(controller.Tick(i % 3 != 0), o.min);
              break;
            default: {  // Calls finishing.
              controller.RecordBusEvents(1);
              controller.RecordOutcome(milliseconds(10 + rng() % (i % 100 + 1)),
                                       rng() % 20 == 0);
              const RateController::Snapshot s = controller.snapshot();
              EXPECT_GE(s.rate, o.min);
              EXPECT_LE(s.rate, o.max);
            }
          }
        }
      },
      [&] { clock.Advance(milliseconds(5)); });
  EXPECT_GE(controller.rate(), o.min);
  EXPECT_LE(controller.rate(), o.max);
}

TEST(ConcurrencyStress, RetryBudgetIsNeverOverdrawn) {
  FakeClock clock;  // Frozen: every call and retry falls into one window.
  RetryOptions o;
  o.budget_ratio = 0.1;
  o.budget_min_per_s = 1;
  o.budget_window = seconds(10);
  RetryBudget budget(&clock, o);
  std::atomic<int64_t> calls{0}, retries{0};
  RunConcurrently([&](int w) {
    RetryPolicy policy(
        o, /*seed=*/w);  // A policy is per call sequence, never shared.
    for (int i = 0; i < 20000; ++i) {
      budget.RecordCall();
      calls.fetch_add(1);
      if (i % 3 == 0 && budget.TryAcquireRetry()) {
        retries.fetch_add(1);
        auto delay = policy.NextDelay();
        if (!delay) policy = RetryPolicy(o, i);
      }
      EXPECT_GE(budget.Available(), 0);
    }
  });
  EXPECT_LE(static_cast<double>(retries.load()),
            o.budget_ratio * static_cast<double>(calls.load()) + 10 + 1e-9);
  EXPECT_GT(retries.load(), 10);
}

// The Kill Bill client's keep-alive pool under more callers than connections,
// against the in-process sim: every registration lands exactly once, duplicates
// are ALREADY_EXISTS.
TEST(ConcurrencyStress, KillBillClientPoolAgainstSim) {
  sim::SimOptions sim_options;
  sim_options.host = "127.0.0.1";
  sim_options.port = 0;
  sim::KillBillSim sim(sim_options);
  ASSERT_TRUE(sim.Start().ok());
  sim::SimOptions fast = sim.options();
  fast.model.capacity = 100000;
  fast.model.base_latency = std::chrono::milliseconds(0);
  ASSERT_TRUE(sim.Configure(fast).ok());

  killbill::ClientOptions options;
  options.url = "http://127.0.0.1:" + std::to_string(sim.port());
  options.max_connections =
      3;  // Fewer than callers: Acquire() must wait and hand over.
  auto client = killbill::KillBillClient::Create(options);
  ASSERT_TRUE(client.ok()) << client.status();

  constexpr int kPerWorker = 25;
  std::atomic<int> created{0}, already{0}, failed{0};
  RunConcurrently([&](int w) {
    for (int i = 0; i < kPerWorker; ++i) {
      killbill::NewAccount a;
      // Workers 0/1 and 2/3 race on the same keys.
      a.external_key =
          "stress-" + std::to_string(w / 2) + "-" + std::to_string(i);
      a.name = "Stress Test";
      a.email = "stress@example.com";
      a.currency = "USD";
      auto id = (*client)->CreateAccount(a);
      if (id.ok()) {
        created.fetch_add(1);
        EXPECT_TRUE(killbill::IsUuid(*id));
        EXPECT_TRUE((*client)->AddTags(*id, {killbill::kTagAutoPayOff}).ok());
      } else if (id.status().code() == absl::StatusCode::kAlreadyExists) {
        already.fetch_add(1);
      } else {
        failed.fetch_add(1);
        ADD_FAILURE() << id.status();
      }
      auto account = (*client)->GetAccountByKey(a.external_key);
      EXPECT_TRUE(account.ok()) << account.status();
      if (i % 4 == w % 4) {
        auto health = (*client)->Healthcheck();
        EXPECT_TRUE(health.ok()) << health.status();
      }
    }
  });
  const int keys = (kWorkers / 2) * kPerWorker;
  EXPECT_EQ(created.load(), keys);
  EXPECT_EQ(already.load(), kWorkers * kPerWorker - keys);
  EXPECT_EQ(failed.load(), 0);
  EXPECT_EQ(static_cast<int>(sim.Stats().accounts_created), keys);
  sim.Stop();
}

}  // namespace
}  // namespace bg::flow
