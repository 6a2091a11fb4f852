// RunRecorder: everything one billing-loadgen run observes, and the summary and
// per-second time series computed from it.
//
// Callers pass times as offsets from the start of the run, so the recorder
// reads no clock and its arithmetic is unit-testable. Counted per second of the
// run:
//   sent / not_sent  at the second the arrival was due;
//   ok, rejected, timeout, error  at the second the answer arrived, with the
//   p95 latency of
//                    the ok answers of that second;
//   backlog          the last value the sim-stats poller saw in that second
//   (empty if none); outstanding      calls in flight, sampled by the progress
//   loop.
// Every record also names its operation (operation_mix.h; register_tagged
// when the caller does not say): the summary has the totals over all
// operations and the same counts and latencies per operation.
//
// Thread-safety: every method is safe to call from any thread (one mutex; a few
// thousand records per second at most).
#pragma once

#include <array>
#include <chrono>
#include <cstdint>
#include <map>
#include <optional>
#include <ostream>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "bench/loadgen/latency_stats.h"
#include "bench/loadgen/operation_mix.h"
#include "bench/loadgen/outcome.h"

namespace bg::loadgen {

// What was asked for; copied into the summary so each output row stands alone.
struct RunInfo {
  std::string label;   // free text, e.g. the contender name
  std::string target;  // grpc://... or http://...
  std::string mode;    // closed | open
  int64_t concurrency = 0;
  double rate = 0;
  int64_t planned = 0;  // calls the run intended to make
  std::string mix;      // OperationMix::ToString() of the run
};

// Counts by outcome kind, indexed by OutcomeKind.
using KindCounts = std::array<int64_t, kOutcomeKindCount>;

// One operation's share of a run.
struct OperationSummary {
  int64_t sent = 0;
  KindCounts counts{};  // not_sent included
  std::map<std::string, int64_t> reject_reasons;
  std::map<std::string, int64_t> error_codes;
  LatencySummary ok_latency;

  int64_t attempted() const {
    return sent + counts[static_cast<int>(OutcomeKind::kNotSent)];
  }
  int64_t count(OutcomeKind k) const { return counts[static_cast<int>(k)]; }
  double success_pct() const;
  // ok / elapsed seconds of the run.
  double goodput_per_s(double elapsed_s) const;
};

struct RunSummary {
  RunInfo info;
  int64_t attempted = 0;  // sent + not_sent
  KindCounts counts{};
  std::map<std::string, int64_t> reject_reasons;
  std::map<std::string, int64_t> error_codes;
  double elapsed_s = 0;
  LatencySummary ok_latency;
  LatencySummary rejected_latency;
  // Answers that asked the caller to wait (grpc-retry-pushback-ms /
  // Retry-After).
  int64_t pushback_count = 0;
  double pushback_avg_ms = 0;
  // Indexed by Operation.
  std::array<OperationSummary, kOperationCount> operations{};
  // Arrivals that drew an operation needing an account while the run had
  // none yet, and made a registration instead (counted under it).
  int64_t fallback_registrations = 0;

  const OperationSummary& op(Operation o) const {
    return operations[static_cast<int>(o)];
  }
  // Operations that had at least one arrival.
  int operations_used() const;

  int64_t succeeded() const {
    return counts[static_cast<int>(OutcomeKind::kOk)];
  }
  int64_t failed() const { return attempted - succeeded(); }
  int64_t count(OutcomeKind k) const { return counts[static_cast<int>(k)]; }
  double success_pct() const;
  // Successful creations per second of the run (goodput).
  double goodput_per_s() const;
  // Rejected answers per successful one (0 when nothing succeeded and nothing
  // was rejected; the rejection count when nothing succeeded).
  double rejections_per_success() const;

  // Closed loop: the virtual users, and how long each took from the start of
  // the run to its first success (nearest rank over all callers, seconds;
  // -1 when that rank is a caller that never succeeded).
  int64_t callers = 0;
  int64_t callers_without_success = 0;
  double first_success_p50_s = -1;
  double first_success_p99_s = -1;
};

std::string FormatText(const RunSummary& s);
std::string FormatJson(const RunSummary& s);
std::string FormatCsvHeader();
std::string FormatCsvRow(const RunSummary& s);

// One row of the per-second time series.
struct SecondRow {
  int64_t sent = 0;
  KindCounts counts{};
  LatencyStats ok_latency;
  std::optional<double> backlog;
  int64_t outstanding = 0;
  std::array<int64_t, kOperationCount> ok_by_operation{};
};

class RunRecorder {
 public:
  using Offset = std::chrono::nanoseconds;

  void RecordSent(Offset at, Operation op = Operation::kRegisterTagged);
  void RecordNotSent(Offset at, Operation op = Operation::kRegisterTagged);
  // `at` is when the answer arrived; `latency` is measured from the call's due
  // time.
  void RecordResult(Offset at, std::chrono::microseconds latency,
                    const CallResult& result,
                    Operation op = Operation::kRegisterTagged);
  // An arrival that drew an operation needing an account and found none.
  void RecordFallback();
  void RecordBacklog(Offset at, double backlog);
  void RecordOutstanding(Offset at, int64_t outstanding);
  // The first success of one caller (call once per caller), `at` from the
  // start of the run; the callers are RunInfo::concurrency in closed loop.
  void RecordFirstSuccess(Offset at);

  struct Progress {
    int64_t sent = 0;
    KindCounts counts{};
    std::optional<double> last_backlog;
  };
  Progress progress() const;

  // Summary over everything recorded; `elapsed` is the run's length.
  RunSummary Summarize(const RunInfo& info, Offset elapsed) const;
  // CSV with header
  // `t,sent,ok,rejected,timeout,error,not_sent,p95_ms,backlog,outstanding`,
  // then `ok_<operation>` for each operation (ok answers of that operation in
  // the second), one row per second from 0 to the last second anything was
  // recorded.
  void WriteTimeSeriesCsv(std::ostream& out) const;

 private:
  SecondRow& RowAt(Offset at) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  mutable absl::Mutex mu_;
  int64_t sent_ ABSL_GUARDED_BY(mu_) = 0;
  KindCounts counts_ ABSL_GUARDED_BY(mu_){};
  std::map<std::string, int64_t> reject_reasons_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, int64_t> error_codes_ ABSL_GUARDED_BY(mu_);
  LatencyStats ok_latency_ ABSL_GUARDED_BY(mu_);
  LatencyStats rejected_latency_ ABSL_GUARDED_BY(mu_);
  std::optional<double> last_backlog_ ABSL_GUARDED_BY(mu_);
  int64_t pushback_count_ ABSL_GUARDED_BY(mu_) = 0;
  int64_t pushback_sum_ms_ ABSL_GUARDED_BY(mu_) = 0;
  std::vector<SecondRow> seconds_ ABSL_GUARDED_BY(mu_);

  struct PerOperation {
    int64_t sent = 0;
    KindCounts counts{};
    std::map<std::string, int64_t> reject_reasons;
    std::map<std::string, int64_t> error_codes;
    LatencyStats ok_latency;
  };
  std::array<PerOperation, kOperationCount> ops_ ABSL_GUARDED_BY(mu_);
  int64_t fallbacks_ ABSL_GUARDED_BY(mu_) = 0;
  std::vector<Offset> first_success_ ABSL_GUARDED_BY(mu_);
};

}  // namespace bg::loadgen
