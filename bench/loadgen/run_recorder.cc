#include "bench/loadgen/run_recorder.h"

#include <algorithm>
#include <cmath>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "nlohmann/json.hpp"

namespace bg::loadgen {
namespace {

// A run is at most hours long; anything later is clamped to keep a bad offset
// from allocating gigabytes.
constexpr int64_t kMaxSeconds = 24 * 3600;

std::string JoinCounts(const std::map<std::string, int64_t>& m) {
  return absl::StrJoin(m, ";", [](std::string* out, const auto& kv) {
    absl::StrAppend(out, kv.first, ":", kv.second);
  });
}

nlohmann::json LatencyJson(const LatencySummary& l) {
  return {{"count", l.count},   {"avg_ms", l.avg_ms}, {"p50_ms", l.p50_ms},
          {"p95_ms", l.p95_ms}, {"p99_ms", l.p99_ms}, {"max_ms", l.max_ms}};
}

}  // namespace

double OperationSummary::success_pct() const {
  const int64_t n = attempted();
  return n > 0 ? 100.0 * static_cast<double>(count(OutcomeKind::kOk)) /
                     static_cast<double>(n)
               : 0.0;
}

double OperationSummary::goodput_per_s(double elapsed_s) const {
  return elapsed_s > 0
             ? static_cast<double>(count(OutcomeKind::kOk)) / elapsed_s
             : 0.0;
}

int RunSummary::operations_used() const {
  int n = 0;
  for (const auto& o : operations) n += o.attempted() > 0 ? 1 : 0;
  return n;
}

double RunSummary::success_pct() const {
  return attempted > 0 ? 100.0 * static_cast<double>(succeeded()) /
                             static_cast<double>(attempted)
                       : 0.0;
}

double RunSummary::goodput_per_s() const {
  return elapsed_s > 0 ? static_cast<double>(succeeded()) / elapsed_s : 0.0;
}

double RunSummary::rejections_per_success() const {
  const double rejected = static_cast<double>(count(OutcomeKind::kRejected));
  return succeeded() > 0 ? rejected / static_cast<double>(succeeded())
                         : rejected;
}

namespace {
// "12.3 s", or "never" for -1.
std::string FirstSuccessText(double s) {
  return s < 0 ? "never" : absl::StrFormat("%.1f s", s);
}
}  // namespace

std::string FormatText(const RunSummary& s) {
  std::string out;
  absl::StrAppendFormat(&out, "run       %s%s (%s loop",
                        s.info.label.empty() ? "" : s.info.label + " ",
                        s.info.target, s.info.mode);
  if (s.info.mode == "closed") {
    absl::StrAppendFormat(&out, ", %d concurrent)\n", s.info.concurrency);
  } else {
    absl::StrAppendFormat(&out, ", %.1f/s)\n", s.info.rate);
  }
  absl::StrAppendFormat(&out, "attempted %d   succeeded %d   failed %d\n",
                        s.attempted, s.succeeded(), s.failed());
  absl::StrAppendFormat(
      &out,
      "failed by kind: rejected %d   timeout %d   error %d   not_sent %d\n",
      s.count(OutcomeKind::kRejected), s.count(OutcomeKind::kTimeout),
      s.count(OutcomeKind::kError), s.count(OutcomeKind::kNotSent));
  if (!s.reject_reasons.empty()) {
    absl::StrAppend(&out, "  reject reasons: ", JoinCounts(s.reject_reasons),
                    "\n");
  }
  if (!s.error_codes.empty()) {
    absl::StrAppend(&out, "  error codes:    ", JoinCounts(s.error_codes),
                    "\n");
  }
  absl::StrAppendFormat(
      &out, "success   %.1f %%   rate %.1f/s (%.0f/min)   elapsed %.1f s\n",
      s.success_pct(), s.goodput_per_s(), s.goodput_per_s() * 60, s.elapsed_s);
  absl::StrAppendFormat(&out, "rejections per success %.2f\n",
                        s.rejections_per_success());
  if (s.callers > 0) {
    absl::StrAppendFormat(
        &out,
        "first success of each of %d callers: p50 %s   p99 %s   never %d\n",
        s.callers, FirstSuccessText(s.first_success_p50_s),
        FirstSuccessText(s.first_success_p99_s), s.callers_without_success);
  }
  const auto& ok = s.ok_latency;
  if (s.operations_used() > 1 || s.fallback_registrations > 0) {
    absl::StrAppendFormat(&out, "mix       %s   fallback registrations %d\n",
                          s.info.mix, s.fallback_registrations);
    absl::StrAppend(&out,
                    "  operation          attempted       ok rejected  timeout "
                    "   error not_sent  goodput/s   p50 ms   p99 ms\n");
    for (int i = 0; i < kOperationCount; ++i) {
      const OperationSummary& o = s.operations[i];
      if (o.attempted() == 0) continue;
      absl::StrAppendFormat(
          &out, "  %-17s %10d %8d %8d %8d %8d %8d %10.2f %8.0f %8.0f\n",
          OperationName(static_cast<Operation>(i)), o.attempted(),
          o.count(OutcomeKind::kOk), o.count(OutcomeKind::kRejected),
          o.count(OutcomeKind::kTimeout), o.count(OutcomeKind::kError),
          o.count(OutcomeKind::kNotSent), o.goodput_per_s(s.elapsed_s),
          o.ok_latency.p50_ms, o.ok_latency.p99_ms);
      if (!o.error_codes.empty()) {
        absl::StrAppend(&out, "    error codes: ", JoinCounts(o.error_codes),
                        "\n");
      }
    }
  }
  absl::StrAppendFormat(&out,
                        "ok latency ms:       avg %.0f   p50 %.0f   p95 %.0f   "
                        "p99 %.0f   max %.0f\n",
                        ok.avg_ms, ok.p50_ms, ok.p95_ms, ok.p99_ms, ok.max_ms);
  if (s.rejected_latency.count > 0) {
    const auto& rj = s.rejected_latency;
    absl::StrAppendFormat(&out,
                          "rejected latency ms: avg %.1f   p50 %.1f   p95 %.1f "
                          "  p99 %.1f   max %.1f\n",
                          rj.avg_ms, rj.p50_ms, rj.p95_ms, rj.p99_ms,
                          rj.max_ms);
  }
  // The load-test report's own table row.
  absl::StrAppend(&out,
                  "| Concurrent | Total | Success | Rate | Throughput | P95 |\n"
                  "|---|---|---|---|---|---|\n");
  absl::StrAppendFormat(&out,
                        "| %d | %d | %.0f%% | %.1f/sec | %.0f/min | %.0fms |\n",
                        s.info.concurrency, s.attempted, s.success_pct(),
                        s.goodput_per_s(), s.goodput_per_s() * 60, ok.p95_ms);
  return out;
}

std::string FormatJson(const RunSummary& s) {
  nlohmann::json j;
  j["label"] = s.info.label;
  j["target"] = s.info.target;
  j["mode"] = s.info.mode;
  j["concurrency"] = s.info.concurrency;
  j["rate"] = s.info.rate;
  j["planned"] = s.info.planned;
  j["attempted"] = s.attempted;
  j["succeeded"] = s.succeeded();
  j["failed"] = s.failed();
  nlohmann::json by_kind;
  for (int k = 1; k < kOutcomeKindCount; ++k) {
    by_kind[std::string(OutcomeKindName(static_cast<OutcomeKind>(k)))] =
        s.counts[k];
  }
  j["failed_by_kind"] = by_kind;
  j["reject_reasons"] = s.reject_reasons;
  j["error_codes"] = s.error_codes;
  j["success_pct"] = s.success_pct();
  j["elapsed_s"] = s.elapsed_s;
  j["goodput_per_s"] = s.goodput_per_s();
  j["goodput_per_min"] = s.goodput_per_s() * 60;
  j["ok_latency"] = LatencyJson(s.ok_latency);
  j["rejected_latency"] = LatencyJson(s.rejected_latency);
  j["pushback_count"] = s.pushback_count;
  j["pushback_avg_ms"] = s.pushback_avg_ms;
  j["mix"] = s.info.mix;
  j["fallback_registrations"] = s.fallback_registrations;
  j["rejections_per_success"] = s.rejections_per_success();
  j["callers"] = s.callers;
  j["callers_without_success"] = s.callers_without_success;
  j["first_success_p50_s"] = s.first_success_p50_s;
  j["first_success_p99_s"] = s.first_success_p99_s;
  nlohmann::json ops = nlohmann::json::object();
  for (int i = 0; i < kOperationCount; ++i) {
    const OperationSummary& o = s.operations[i];
    if (o.attempted() == 0) continue;
    nlohmann::json oj;
    oj["attempted"] = o.attempted();
    oj["sent"] = o.sent;
    oj["ok"] = o.count(OutcomeKind::kOk);
    oj["rejected"] = o.count(OutcomeKind::kRejected);
    oj["timeout"] = o.count(OutcomeKind::kTimeout);
    oj["error"] = o.count(OutcomeKind::kError);
    oj["not_sent"] = o.count(OutcomeKind::kNotSent);
    oj["success_pct"] = o.success_pct();
    oj["goodput_per_s"] = o.goodput_per_s(s.elapsed_s);
    oj["reject_reasons"] = o.reject_reasons;
    oj["error_codes"] = o.error_codes;
    oj["ok_latency"] = LatencyJson(o.ok_latency);
    ops[std::string(OperationName(static_cast<Operation>(i)))] = oj;
  }
  j["operations"] = ops;
  return j.dump(2) + "\n";
}

std::string FormatCsvHeader() {
  std::string per_op;
  for (int i = 0; i < kOperationCount; ++i) {
    const absl::string_view n = OperationName(static_cast<Operation>(i));
    absl::StrAppend(&per_op, ",", n, "_attempted,", n, "_ok,", n, "_rejected,",
                    n, "_timeout,", n, "_error,", n, "_not_sent,", n,
                    "_success_pct,", n, "_goodput_per_s,", n, "_p50_ms,", n,
                    "_p99_ms,", n, "_error_codes");
  }
  return "label,target,mode,concurrency,rate,planned,attempted,succeeded,"
         "failed,rejected,"
         "timeout,error,not_sent,success_pct,goodput_per_s,goodput_per_min,"
         "elapsed_s,"
         "avg_ms,p50_ms,p95_ms,p99_ms,max_ms,rej_count,rej_p50_ms,rej_p99_ms,"
         "rej_max_ms,"
         "reject_reasons,error_codes,pushback_count,pushback_avg_ms,mix,"
         "fallback_registrations" +
         per_op +
         ",rejections_per_success,callers,callers_without_success,"
         "first_success_p50_s,first_success_p99_s\n";
}

std::string FormatCsvRow(const RunSummary& s) {
  const auto& ok = s.ok_latency;
  const auto& rj = s.rejected_latency;
  // Labels and maps never contain commas (reasons and codes are identifiers);
  // strip any to keep the row parseable by awk.
  auto clean = [](std::string v) {
    std::replace(v.begin(), v.end(), ',', ' ');
    return v;
  };
  std::string per_op;
  for (const OperationSummary& o : s.operations) {
    absl::StrAppendFormat(
        &per_op, ",%d,%d,%d,%d,%d,%d,%.2f,%.2f,%.1f,%.1f,%s", o.attempted(),
        o.count(OutcomeKind::kOk), o.count(OutcomeKind::kRejected),
        o.count(OutcomeKind::kTimeout), o.count(OutcomeKind::kError),
        o.count(OutcomeKind::kNotSent), o.success_pct(),
        o.goodput_per_s(s.elapsed_s), o.ok_latency.p50_ms, o.ok_latency.p99_ms,
        clean(JoinCounts(o.error_codes)));
  }
  // The mix is written with ';' between entries to stay one CSV field.
  std::string mix = s.info.mix;
  std::replace(mix.begin(), mix.end(), ',', ';');
  return absl::StrFormat(
      "%s,%s,%s,%d,%.2f,%d,%d,%d,%d,%d,%d,%d,%d,%.2f,%.2f,%.1f,%.2f,%.1f,%.1f,%"
      ".1f,%.1f,%.1f,"
      "%d,%.2f,%.2f,%.2f,%s,%s,%d,%.1f,%s,%d%s%s\n",
      clean(s.info.label), clean(s.info.target), s.info.mode,
      s.info.concurrency, s.info.rate, s.info.planned, s.attempted,
      s.succeeded(), s.failed(), s.count(OutcomeKind::kRejected),
      s.count(OutcomeKind::kTimeout), s.count(OutcomeKind::kError),
      s.count(OutcomeKind::kNotSent), s.success_pct(), s.goodput_per_s(),
      s.goodput_per_s() * 60, s.elapsed_s, ok.avg_ms, ok.p50_ms, ok.p95_ms,
      ok.p99_ms, ok.max_ms, rj.count, rj.p50_ms, rj.p99_ms, rj.max_ms,
      clean(JoinCounts(s.reject_reasons)), clean(JoinCounts(s.error_codes)),
      s.pushback_count, s.pushback_avg_ms, mix, s.fallback_registrations,
      per_op,
      absl::StrFormat(",%.3f,%d,%d,%.2f,%.2f", s.rejections_per_success(),
                      s.callers, s.callers_without_success,
                      s.first_success_p50_s, s.first_success_p99_s));
}

SecondRow& RunRecorder::RowAt(Offset at) {
  int64_t sec = std::chrono::duration_cast<std::chrono::seconds>(at).count();
  sec = std::clamp<int64_t>(sec, 0, kMaxSeconds);
  if (static_cast<int64_t>(seconds_.size()) <= sec) seconds_.resize(sec + 1);
  return seconds_[sec];
}

void RunRecorder::RecordSent(Offset at, Operation op) {
  absl::MutexLock lock(&mu_);
  ++sent_;
  ++ops_[static_cast<int>(op)].sent;
  ++RowAt(at).sent;
}

void RunRecorder::RecordNotSent(Offset at, Operation op) {
  absl::MutexLock lock(&mu_);
  const int k = static_cast<int>(OutcomeKind::kNotSent);
  ++counts_[k];
  ++ops_[static_cast<int>(op)].counts[k];
  ++RowAt(at).counts[k];
}

void RunRecorder::RecordFallback() {
  absl::MutexLock lock(&mu_);
  ++fallbacks_;
}

void RunRecorder::RecordResult(Offset at, std::chrono::microseconds latency,
                               const CallResult& result, Operation op) {
  absl::MutexLock lock(&mu_);
  const int k = static_cast<int>(result.kind);
  ++counts_[k];
  PerOperation& per_op = ops_[static_cast<int>(op)];
  ++per_op.counts[k];
  SecondRow& row = RowAt(at);
  ++row.counts[k];
  if (result.pushback.count() > 0) {
    ++pushback_count_;
    pushback_sum_ms_ += result.pushback.count();
  }
  switch (result.kind) {
    case OutcomeKind::kOk:
      ok_latency_.Add(latency);
      row.ok_latency.Add(latency);
      per_op.ok_latency.Add(latency);
      ++row.ok_by_operation[static_cast<int>(op)];
      break;
    case OutcomeKind::kRejected:
      rejected_latency_.Add(latency);
      ++reject_reasons_[result.detail];
      ++per_op.reject_reasons[result.detail];
      break;
    case OutcomeKind::kError:
      ++error_codes_[result.detail];
      ++per_op.error_codes[result.detail];
      break;
    case OutcomeKind::kTimeout:
    case OutcomeKind::kNotSent:
      break;
  }
}

void RunRecorder::RecordBacklog(Offset at, double backlog) {
  absl::MutexLock lock(&mu_);
  RowAt(at).backlog = backlog;
  last_backlog_ = backlog;
}

void RunRecorder::RecordFirstSuccess(Offset at) {
  absl::MutexLock lock(&mu_);
  first_success_.push_back(at);
}

void RunRecorder::RecordOutstanding(Offset at, int64_t outstanding) {
  absl::MutexLock lock(&mu_);
  RowAt(at).outstanding = outstanding;
}

RunRecorder::Progress RunRecorder::progress() const {
  absl::MutexLock lock(&mu_);
  return Progress{sent_, counts_, last_backlog_};
}

RunSummary RunRecorder::Summarize(const RunInfo& info, Offset elapsed) const {
  absl::MutexLock lock(&mu_);
  RunSummary s;
  s.info = info;
  s.counts = counts_;
  s.attempted = sent_ + counts_[static_cast<int>(OutcomeKind::kNotSent)];
  s.reject_reasons = reject_reasons_;
  s.error_codes = error_codes_;
  s.elapsed_s = std::chrono::duration<double>(elapsed).count();
  s.ok_latency = bg::loadgen::Summarize(ok_latency_);
  s.rejected_latency = bg::loadgen::Summarize(rejected_latency_);
  if (info.mode == "closed") {
    s.callers = info.concurrency;
    std::vector<Offset> firsts = first_success_;
    std::sort(firsts.begin(), firsts.end());
    const int64_t with = static_cast<int64_t>(firsts.size());
    s.callers_without_success = std::max<int64_t>(0, s.callers - with);
    // Nearest rank over all callers; the ones that never succeeded rank last.
    auto rank = [&](double p) {
      const int64_t r = static_cast<int64_t>(
          std::ceil(p / 100 * static_cast<double>(s.callers)));
      const int64_t i = std::max<int64_t>(r, 1) - 1;
      return i < with ? std::chrono::duration<double>(firsts[i]).count() : -1.0;
    };
    if (s.callers > 0) {
      s.first_success_p50_s = rank(50);
      s.first_success_p99_s = rank(99);
    }
  }
  s.pushback_count = pushback_count_;
  s.pushback_avg_ms = pushback_count_ > 0
                          ? static_cast<double>(pushback_sum_ms_) /
                                static_cast<double>(pushback_count_)
                          : 0.0;
  for (int i = 0; i < kOperationCount; ++i) {
    const PerOperation& p = ops_[i];
    OperationSummary& o = s.operations[i];
    o.sent = p.sent;
    o.counts = p.counts;
    o.reject_reasons = p.reject_reasons;
    o.error_codes = p.error_codes;
    o.ok_latency = bg::loadgen::Summarize(p.ok_latency);
  }
  s.fallback_registrations = fallbacks_;
  return s;
}

void RunRecorder::WriteTimeSeriesCsv(std::ostream& out) const {
  absl::MutexLock lock(&mu_);
  out << "t,sent,ok,rejected,timeout,error,not_sent,p95_ms,backlog,"
         "outstanding";
  for (int i = 0; i < kOperationCount; ++i) {
    out << ",ok_" << OperationName(static_cast<Operation>(i));
  }
  out << '\n';
  for (size_t t = 0; t < seconds_.size(); ++t) {
    const SecondRow& r = seconds_[t];
    out << t << ',' << r.sent;
    for (int k = 0; k < kOutcomeKindCount; ++k) out << ',' << r.counts[k];
    out << ',';
    if (!r.ok_latency.empty())
      out << absl::StrFormat("%.1f", r.ok_latency.PercentileMs(95));
    out << ',';
    if (r.backlog) out << absl::StrFormat("%.1f", *r.backlog);
    out << ',' << r.outstanding;
    for (int64_t n : r.ok_by_operation) out << ',' << n;
    out << '\n';
  }
}

}  // namespace bg::loadgen
