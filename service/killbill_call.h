// How an operation makes one Kill Bill call: through KillBillCalls (tokens,
// deadline, metrics, breaker), with a timeout that leaves room for the answer.
// Shared by AccountOperations and SubscriptionOperations.
#pragma once

#include <algorithm>
#include <chrono>
#include <type_traits>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "dispatch/job.h"
#include "flow/admission_queue.h"
#include "killbill_client/killbill_client.h"

namespace bg::service {

// What is left of the caller's deadline, less the time the answer needs to
// travel back (flow::kAnswerMargin, the margin the queue keeps too), as the
// Kill Bill call's timeout (the client caps it at killbill.request_timeout):
// no Kill Bill call outlives the gRPC call it serves, and a stalled Kill Bill
// call ends with the gateway's explicit UNAVAILABLE rather than the caller's
// own DEADLINE_EXCEEDED.
inline Clock::Duration TimeForKillBill(const dispatch::KillBillCalls& calls) {
  return calls.deadline() - calls.clock()->Now() - flow::kAnswerMargin;
}

inline killbill::CallOptions UntilDeadline(
    const dispatch::KillBillCalls& calls) {
  const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
      TimeForKillBill(calls));
  return {std::max(left, std::chrono::milliseconds(1))};
}

// The shortest timeout a Kill Bill call is made with. A shorter one cuts the
// call while Kill Bill still does the work (a create done, its answer lost,
// the caller told UNAVAILABLE at its deadline); with less time left the call
// is not made (EnoughTimeLeft), and a failed call is not retried.
inline constexpr std::chrono::milliseconds kMinKillBillTimeout{20};

// OK when a Kill Bill call made now gets at least kMinKillBillTimeout; else
// UNAVAILABLE, answered before the caller's deadline (a create retried with
// the same external key is safe).
inline absl::Status EnoughTimeLeft(const dispatch::KillBillCalls& calls) {
  const Clock::Duration left = TimeForKillBill(calls);
  if (left >= kMinKillBillTimeout) return absl::OkStatus();
  const auto ms = [](Clock::Duration d) {
    return std::chrono::duration_cast<std::chrono::milliseconds>(d).count();
  };
  return absl::UnavailableError(
      absl::StrCat("not sent to Kill Bill: ", ms(left + flow::kAnswerMargin),
                   " ms left before the caller's deadline, less than the ",
                   ms(kMinKillBillTimeout + flow::kAnswerMargin),
                   " ms a Kill Bill call and its answer need; retry with a "
                   "longer deadline"));
}

// Runs one Kill Bill call through `calls`: admission, timing, recording.
template <typename Fn>
auto Call(dispatch::KillBillCalls& calls, dispatch::KillBillEndpoint endpoint,
          dispatch::Cost cost, Fn fn) -> decltype(fn()) {
  if (absl::Status enough = EnoughTimeLeft(calls); !enough.ok()) return enough;
  if (absl::Status admitted = calls.Admit(endpoint, cost); !admitted.ok())
    return admitted;
  const Clock::TimePoint start = calls.clock()->Now();
  auto result = fn();
  absl::Status status;
  if constexpr (std::is_same_v<decltype(result), absl::Status>) {
    status = result;
  } else {
    status = result.status();
  }
  calls.Record(endpoint, status, calls.clock()->Now() - start);
  return result;
}

// Like Call, and retries an UNAVAILABLE answer while the retry policy, its
// budget and the deadline allow. Only for calls that are idempotent, or made
// so by a key Kill Bill checks (an external key).
template <typename Fn>
auto CallWithRetry(dispatch::KillBillCalls& calls,
                   dispatch::KillBillEndpoint endpoint, dispatch::Cost cost,
                   Fn fn) -> decltype(fn()) {
  for (;;) {
    auto result = Call(calls, endpoint, cost, fn);
    absl::Status status;
    if constexpr (std::is_same_v<decltype(result), absl::Status>) {
      status = result;
    } else {
      status = result.status();
    }
    if (status.ok() || !absl::IsUnavailable(status)) return result;
    // No retry budget is spent on an attempt that could not be made in time.
    const Clock::Duration left = TimeForKillBill(calls);
    if (left < kMinKillBillTimeout) return result;
    Clock::Duration backoff{};
    if (!calls.MayRetry(&backoff)) return result;
    if (left - backoff < kMinKillBillTimeout) return result;
    // Backoff is short (bounded by retry.max_backoff) and only on the worker
    // running this job.
    calls.clock()->SleepUntil(calls.clock()->Now() + backoff);
  }
}

// Kill Bill's numeric error code carried by a status, 0 when none.
int KillBillCode(const absl::Status& status);

}  // namespace bg::service
