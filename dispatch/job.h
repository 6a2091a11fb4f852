// Job: one admitted gRPC request waiting for, or doing, its Kill Bill calls.
//
// The service builds a Job for each valid request; the dispatcher owns it from
// admission until it is answered exactly once, by `run` (the Kill Bill work,
// which answers the call itself) or by `drop`/`reject` (answered without
// running). A Job is moved between threads but used by one thread at a time.
#pragma once

#include <functional>

#include "absl/status/status.h"
#include "common/clock.h"

namespace bg::dispatch {

// The gRPC methods that become jobs (a metrics label and the job's kind).
enum class Method { kCreateAccount = 0, kGetAccount = 1 };
inline constexpr int kMethodCount = 2;
inline const char* MethodName(Method m) {
  return m == Method::kCreateAccount ? "CreateAccount" : "GetAccount";
}

// The Kill Bill calls a job may make (a metrics label; the healthcheck is the
// health monitor's).
enum class KillBillEndpoint {
  kCreateAccount = 0,
  kGetAccount,
  kAddTags,
  kHealthcheck
};
inline constexpr int kEndpointCount = 4;

class KillBillCalls;

struct Job {
  Method method = Method::kCreateAccount;
  // Kill Bill calls this job is expected to make (create + one per tag); the
  // dispatcher takes that many tokens before starting it. Unforeseen calls (a
  // lookup after 409, a retry) take theirs through KillBillCalls::Admit.
  int expected_calls = 1;
  Clock::TimePoint admitted;
  Clock::TimePoint deadline;
  // True once the caller has gone away (gRPC OnCancel). Read from the
  // dispatcher's threads.
  std::function<bool()> cancelled;
  // Does the Kill Bill work and answers the call.
  std::function<void(KillBillCalls&)> run;
  // Answers the call without running it: a rejection (reason + retry pushback)
  // or a drop.
  std::function<void(const absl::Status& status, const char* reason,
                     Clock::Duration retry_pushback)>
      answer;

  // For AdmissionQueue's JobTraits: cheap, called under the queue lock.
  bool IsCancelled() const { return cancelled && cancelled(); }
};

// What a running job may ask of the dispatcher around each Kill Bill call.
class KillBillCalls {
 public:
  virtual ~KillBillCalls() = default;
  // Called before each Kill Bill call: takes a token (or uses one prepaid at
  // dispatch) and fails with DEADLINE_EXCEEDED/UNAVAILABLE when the call can no
  // longer be made in time.
  virtual absl::Status Admit(KillBillEndpoint endpoint) = 0;
  // Called after each Kill Bill call with its outcome and latency.
  virtual void Record(KillBillEndpoint endpoint, const absl::Status& status,
                      Clock::Duration latency) = 0;
  // Asks the retry policy and budget for one more attempt of an idempotent
  // call; on true, `backoff` is the jittered time to wait first.
  virtual bool MayRetry(Clock::Duration* backoff) = 0;
  virtual Clock::TimePoint deadline() const = 0;
  virtual Clock* clock() const = 0;
};

}  // namespace bg::dispatch
