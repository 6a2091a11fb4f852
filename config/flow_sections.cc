// The flow-control sections: queue (flow::AdmissionOptions), concurrency,
// rate, health, breaker (flow::CircuitBreaker::Options) and retry
// (flow::RetryOptions): their keys, the order relations between them (rate
// min <= initial <= max, breaker and retry backoffs), their DescribeForLog
// lines and equality.
#include <tuple>

#include "config/sections.h"

namespace bg::config {

std::string_view RateSignalName(RateSignal signal) {
  return signal == RateSignal::kHealthcheck ? "healthcheck" : "auto";
}

std::string_view RateModeName(RateMode mode) {
  switch (mode) {
    case RateMode::kStatic:
      return "static";
    case RateMode::kAdaptive:
      return "adaptive";
  }
  return "unknown";
}

namespace internal {
namespace {

constexpr double kMaxRate = 100000;

// queue.max_resident_mb: 0 (off) or a bound the process's idle footprint
// (about 25 MiB) leaves room under.
constexpr int64_t kMinResidentMb = 64;
constexpr int64_t kMaxResidentMb = 1 << 20;  // 1 TiB

Field ResidentMbField(size_t* out) {
  return {"max_resident_mb", "an integer",
          [out](const std::string& text) -> std::optional<std::string> {
            int64_t value;
            if (std::optional<std::string> error =
                    ParseInt(text, 0, kMaxResidentMb, value))
              return error;
            if (value != 0 && value < kMinResidentMb) {
              return absl::StrCat("must be 0 (no bound) or between ",
                                  kMinResidentMb, " and ", kMaxResidentMb,
                                  " (MiB), got ", value);
            }
            *out = static_cast<size_t>(value);
            return std::nullopt;
          }};
}

}  // namespace

std::vector<Section> FlowSections(GatewayConfig& c) {
  using absl::Hours;
  using absl::Milliseconds;
  using absl::Minutes;
  const absl::Duration kZero = absl::ZeroDuration();
  const absl::Duration kOneMs = Milliseconds(1);
  const DoubleRange kRate{0, false, kMaxRate};
  const DoubleRange kShare{0, false, 1};
  return {
      {"queue",
       {IntField("capacity", &c.queue.capacity, 1, 1000000),
        ResidentMbField(&c.memory.max_resident_mb)}},
      {"cost",
       {IntField("account_bus_events", &c.cost.per_account, 0, 1000),
        IntField("tag_bus_events", &c.cost.per_tag, 0, 1000),
        IntField("subscription_bus_events", &c.cost.per_subscription, 0, 1000),
        IntField("custom_field_bus_events", &c.cost.per_custom_field, 0, 1000),
        IntField("cancel_bus_events", &c.cost.per_cancel, 0, 1000)}},
      {"concurrency",
       {IntField("max_in_flight", &c.concurrency.max_in_flight, 1, 1024)}},
      {"cache",
       {DurationField("fresh", &c.cache.fresh, kZero, Hours(1)),
        DurationField("catalog_fresh", &c.cache.catalog_fresh, kZero,
                      Hours(24 * 7)),
        DurationField("stale", &c.cache.stale, kZero, Hours(24 * 7)),
        IntField("max_entries", &c.cache.max_entries, 0, 10000000)}},
      {"rate",
       {
           EnumField<RateMode>("mode", &c.rate.mode,
                               {{"static", RateMode::kStatic},
                                {"adaptive", RateMode::kAdaptive}}),
           EnumField<RateSignal>("signal", &c.rate.signal,
                                 {{"auto", RateSignal::kAuto},
                                  {"healthcheck", RateSignal::kHealthcheck}}),
           DoubleField("target_backlog", &c.rate.target_backlog,
                       {0, true, kMaxRate}),
           DoubleField("initial", &c.rate.initial, kRate),
           DoubleField("min", &c.rate.min, kRate),
           DoubleField("max", &c.rate.max, kRate),
           DoubleField("burst", &c.rate.burst, {1, true, kMaxRate}),
           DoubleField("increase_step", &c.rate.increase_step, kRate),
           DurationField("adjust_interval", &c.rate.adjust_interval,
                         Milliseconds(10), Minutes(1)),
           DurationField("cooldown", &c.rate.cooldown, kZero, Hours(1)),
           DoubleField("api_calls_per_second", &c.rate.api_calls_per_second,
                       kRate),
       }},
      {"health",
       {
           DurationField("poll_interval", &c.health.poll_interval,
                         Milliseconds(10), Minutes(1)),
           DurationField("timeout", &c.health.timeout, kOneMs, Minutes(1)),
           DoubleField("queue_growth_threshold",
                       &c.health.queue_growth_threshold, {0, false, 1000}),
       }},
      {"breaker",
       {
           DoubleField("failure_rate_threshold",
                       &c.breaker.failure_rate_threshold, kShare),
           DurationField("slow_call_threshold", &c.breaker.slow_call_threshold,
                         kOneMs, Minutes(10)),
           DoubleField("slow_call_rate_threshold",
                       &c.breaker.slow_call_rate_threshold, kShare),
           DurationField("window", &c.breaker.window, Milliseconds(100),
                         Hours(1)),
           IntField("min_calls", &c.breaker.min_calls, 1, 100000),
           DurationField("open_duration", &c.breaker.open_duration, kOneMs,
                         Hours(1)),
           DurationField("max_open_duration", &c.breaker.max_open_duration,
                         kOneMs, Hours(1)),
           IntField("half_open_probes", &c.breaker.half_open_probes, 1, 1000),
           DurationField("probe_timeout", &c.breaker.probe_timeout, kOneMs,
                         Minutes(10)),
       }},
      {"retry",
       {
           IntField("max_attempts", &c.retry.max_attempts, 1, 10),
           DurationField("initial_backoff", &c.retry.initial_backoff, kOneMs,
                         Minutes(1)),
           DurationField("max_backoff", &c.retry.max_backoff, kOneMs,
                         Minutes(10)),
           DoubleField("budget_ratio", &c.retry.budget_ratio, {0, true, 1}),
       }},
  };
}

absl::Status CheckFlowSections(const GatewayConfig& c,
                               const Positions& positions) {
  const auto number = [](double v) { return FormatDouble(v); };
  const auto duration = [](auto v) { return FormatDuration(v); };
  absl::Status checks[] = {
      positions.CheckOrder("rate.min", c.rate.min, "rate.max", c.rate.max,
                           number),
      positions.CheckOrder("rate.min", c.rate.min, "rate.initial",
                           c.rate.initial, number),
      positions.CheckOrder("rate.initial", c.rate.initial, "rate.max",
                           c.rate.max, number),
      positions.CheckOrder("breaker.open_duration", c.breaker.open_duration,
                           "breaker.max_open_duration",
                           c.breaker.max_open_duration, duration),
      positions.CheckOrder("retry.initial_backoff", c.retry.initial_backoff,
                           "retry.max_backoff", c.retry.max_backoff, duration),
  };
  for (absl::Status& s : checks) {
    if (!s.ok()) return s;
  }
  return absl::OkStatus();
}

void DescribeFlowSections(const GatewayConfig& c, std::string& out) {
  const auto d = [](auto v) { return FormatDuration(v); };
  const auto n = FormatDouble;
  absl::StrAppend(&out, "queue:\n", "  capacity: ", c.queue.capacity, "\n",
                  "  max_resident_mb: ", c.memory.max_resident_mb, "\n");
  absl::StrAppend(&out, "cost:\n",                                     //
                  "  account_bus_events: ", c.cost.per_account, "\n",  //
                  "  tag_bus_events: ", c.cost.per_tag, "\n",          //
                  "  subscription_bus_events: ", c.cost.per_subscription,
                  "\n",  //
                  "  custom_field_bus_events: ", c.cost.per_custom_field,
                  "\n",  //
                  "  cancel_bus_events: ", c.cost.per_cancel, "\n");
  absl::StrAppend(&out, "cache:\n",                                     //
                  "  fresh: ", d(c.cache.fresh), "\n",                  //
                  "  catalog_fresh: ", d(c.cache.catalog_fresh), "\n",  //
                  "  stale: ", d(c.cache.stale), "\n",                  //
                  "  max_entries: ", c.cache.max_entries, "\n");
  absl::StrAppend(&out, "concurrency:\n",
                  "  max_in_flight: ", c.concurrency.max_in_flight, "\n");
  absl::StrAppend(&out, "rate:\n",                                      //
                  "  mode: ", ToAbsl(RateModeName(c.rate.mode)), "\n",  //
                  "  signal: ", ToAbsl(RateSignalName(c.rate.signal)), "\n",
                  "  target_backlog: ", n(c.rate.target_backlog), "\n",
                  "  initial: ", n(c.rate.initial), "\n",                  //
                  "  min: ", n(c.rate.min), "\n",                          //
                  "  max: ", n(c.rate.max), "\n",                          //
                  "  burst: ", n(c.rate.burst), "\n",                      //
                  "  increase_step: ", n(c.rate.increase_step), "\n",      //
                  "  adjust_interval: ", d(c.rate.adjust_interval), "\n",  //
                  "  cooldown: ", d(c.rate.cooldown), "\n",                //
                  "  api_calls_per_second: ", n(c.rate.api_calls_per_second),
                  "\n");
  absl::StrAppend(
      &out, "health:\n",                                     //
      "  poll_interval: ", d(c.health.poll_interval), "\n",  //
      "  timeout: ", d(c.health.timeout), "\n",              //
      "  queue_growth_threshold: ", n(c.health.queue_growth_threshold), "\n");
  absl::StrAppend(
      &out, "breaker:\n",  //
      "  failure_rate_threshold: ", n(c.breaker.failure_rate_threshold),
      "\n",                                                               //
      "  slow_call_threshold: ", d(c.breaker.slow_call_threshold), "\n",  //
      "  slow_call_rate_threshold: ", n(c.breaker.slow_call_rate_threshold),
      "\n",                                                           //
      "  window: ", d(c.breaker.window), "\n",                        //
      "  min_calls: ", c.breaker.min_calls, "\n",                     //
      "  open_duration: ", d(c.breaker.open_duration), "\n",          //
      "  max_open_duration: ", d(c.breaker.max_open_duration), "\n",  //
      "  half_open_probes: ", c.breaker.half_open_probes, "\n",       //
      "  probe_timeout: ", d(c.breaker.probe_timeout), "\n");
  absl::StrAppend(&out, "retry:\n",                                         //
                  "  max_attempts: ", c.retry.max_attempts, "\n",           //
                  "  initial_backoff: ", d(c.retry.initial_backoff), "\n",  //
                  "  max_backoff: ", d(c.retry.max_backoff), "\n",          //
                  "  budget_ratio: ", n(c.retry.budget_ratio), "\n");
}

namespace {

auto Tie(const RateConfig& r) {
  return std::tie(r.mode, r.signal, r.target_backlog, r.initial, r.min, r.max,
                  r.burst, r.increase_step, r.adjust_interval, r.cooldown,
                  r.api_calls_per_second);
}
auto Tie(const HealthConfig& h) {
  return std::tie(h.poll_interval, h.timeout, h.queue_growth_threshold);
}

auto Tie(const flow::DrainRate::Options& d) {
  BG_EXPECT_SIZE(flow::DrainRate::Options, 16);
  return std::tie(d.window, d.min_busy);
}
auto Tie(const flow::AdmissionOptions& q) {
  BG_EXPECT_SIZE(flow::AdmissionOptions, 80);
  return std::tuple_cat(
      std::tie(q.capacity, q.deadline_margin, q.wait_safety_factor,
               q.initial_latency, q.latency_ewma_alpha, q.initial_drain_per_s),
      Tie(q.drain), std::tie(q.min_retry_pushback, q.max_retry_pushback));
}
auto Tie(const flow::MemoryGuard::Options& m) {
  BG_EXPECT_SIZE(flow::MemoryGuard::Options, 32);
  return std::tie(m.max_resident_mb, m.read_interval, m.per_call_bytes,
                  m.release_interval);
}
auto Tie(const flow::CircuitBreaker::Options& b) {
  BG_EXPECT_SIZE(flow::CircuitBreaker::Options, 88);
  return std::tie(b.failure_rate_threshold, b.slow_call_threshold,
                  b.slow_call_rate_threshold, b.window, b.min_calls,
                  b.open_duration, b.max_open_duration, b.half_open_probes,
                  b.probe_timeout, b.health_failures_to_open,
                  b.growth_open_threshold);
}
auto Tie(const flow::RetryOptions& r) {
  BG_EXPECT_SIZE(flow::RetryOptions, 56);
  return std::tie(r.max_attempts, r.initial_backoff, r.max_backoff, r.jitter,
                  r.budget_ratio, r.budget_min_per_s, r.budget_window);
}
}  // namespace

bool SameFlowSections(const GatewayConfig& a, const GatewayConfig& b) {
  return Tie(a.queue) == Tie(b.queue) && Tie(a.memory) == Tie(b.memory) &&
         a.cost.per_account == b.cost.per_account &&
         a.cost.per_tag == b.cost.per_tag &&
         a.cost.per_subscription == b.cost.per_subscription &&
         a.cost.per_custom_field == b.cost.per_custom_field &&
         a.cost.per_cancel == b.cost.per_cancel &&
         a.cache.fresh == b.cache.fresh &&
         a.cache.catalog_fresh == b.cache.catalog_fresh &&
         a.cache.stale == b.cache.stale &&
         a.cache.max_entries == b.cache.max_entries &&
         a.concurrency.max_in_flight == b.concurrency.max_in_flight &&
         Tie(a.rate) == Tie(b.rate) && Tie(a.health) == Tie(b.health) &&
         Tie(a.breaker) == Tie(b.breaker) && Tie(a.retry) == Tie(b.retry);
}

}  // namespace internal
}  // namespace bg::config
