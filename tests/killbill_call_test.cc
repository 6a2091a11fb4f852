// How an operation spends the time left before its caller's deadline on Kill
// Bill calls (service/killbill_call.h), under a fake clock: a call gets what is
// left less the answer margin, is not made when that is too short to be
// answered, and is not retried into a timeout.
#include "service/killbill_call.h"

#include <chrono>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "gtest/gtest.h"

namespace bg::service {
namespace {

using dispatch::KillBillCalls;
using dispatch::KillBillEndpoint;
using std::chrono::milliseconds;

// Calls admitted at once; retries allowed after `backoff`; the deadline is
// `budget` after construction.
class DeadlineCalls : public KillBillCalls {
 public:
  DeadlineCalls(Clock::Duration budget, Clock::Duration backoff)
      : deadline_(clock_.Now() + budget), backoff_(backoff) {}
  absl::Status Admit(KillBillEndpoint, dispatch::Cost) override {
    ++admitted;
    return absl::OkStatus();
  }
  void Record(KillBillEndpoint, const absl::Status&, Clock::Duration) override {
    ++recorded;
  }
  bool MayRetry(Clock::Duration* backoff) override {
    ++retries_asked;
    *backoff = backoff_;
    return true;
  }
  Clock::TimePoint deadline() const override { return deadline_; }
  Clock* clock() const override { return &clock_; }
  FakeClock& fake() { return clock_; }

  int admitted = 0;
  int recorded = 0;
  int retries_asked = 0;

 private:
  mutable FakeClock clock_;
  const Clock::TimePoint deadline_;
  const Clock::Duration backoff_;
};

constexpr dispatch::Cost kCreate{1, 1};

TEST(KillBillCall, GetsTheTimeLeftLessTheAnswerMargin) {
  DeadlineCalls calls(milliseconds(1000), milliseconds(0));
  std::vector<milliseconds> timeouts;
  absl::Status s = Call(calls, KillBillEndpoint::kCreateAccount, kCreate, [&] {
    timeouts.push_back(UntilDeadline(calls).timeout);
    return absl::OkStatus();
  });
  EXPECT_TRUE(s.ok()) << s;
  EXPECT_EQ(timeouts, std::vector<milliseconds>{milliseconds(1000) -
                                                flow::kAnswerMargin});
}

// 60 ms left: 10 ms for the call once the answer's 50 ms are kept. Such a call
// is cut while Kill Bill still does the work (a create done, its answer lost),
// so it is not made: no token spent, nothing recorded, UNAVAILABLE at once.
TEST(KillBillCall, IsNotMadeWithoutTimeForItAndItsAnswer) {
  DeadlineCalls calls(milliseconds(60), milliseconds(0));
  int made = 0;
  absl::Status s = Call(calls, KillBillEndpoint::kCreateAccount, kCreate, [&] {
    ++made;
    return absl::OkStatus();
  });
  EXPECT_EQ(made, 0);
  EXPECT_EQ(calls.admitted, 0);
  EXPECT_EQ(calls.recorded, 0);
  EXPECT_TRUE(absl::IsUnavailable(s)) << s;
  EXPECT_TRUE(absl::StrContains(s.message(), "60 ms left")) << s;
  // The boundary: kMinKillBillTimeout for the call itself is enough.
  DeadlineCalls enough(flow::kAnswerMargin + kMinKillBillTimeout,
                       milliseconds(0));
  EXPECT_TRUE(Call(enough, KillBillEndpoint::kCreateAccount, kCreate, [&] {
                ++made;
                return absl::OkStatus();
              }).ok());
  EXPECT_EQ(made, 1);
}

// Each attempt takes 30 ms and fails; retries wait 5 ms. With 120 ms to the
// deadline the second attempt still gets 35 ms, a third would get 0: the job
// answers the second attempt's own error at 65 ms, before the deadline,
// instead of retrying with 1 ms timeouts until the deadline has passed.
TEST(KillBillCall, IsNotRetriedIntoTheCallersDeadline) {
  DeadlineCalls calls(milliseconds(120), milliseconds(5));
  const Clock::TimePoint start = calls.fake().Now();
  std::vector<milliseconds> timeouts;
  absl::Status s =
      CallWithRetry(calls, KillBillEndpoint::kCreateAccount, kCreate, [&] {
        timeouts.push_back(UntilDeadline(calls).timeout);
        calls.fake().Advance(milliseconds(30));
        return absl::UnavailableError(
            absl::StrCat("attempt ", timeouts.size(), " failed"));
      });
  EXPECT_EQ(timeouts,
            (std::vector<milliseconds>{milliseconds(70), milliseconds(35)}));
  EXPECT_EQ(s.message(), "attempt 2 failed");
  EXPECT_EQ(calls.fake().Now() - start, milliseconds(65));
  EXPECT_EQ(calls.admitted, calls.recorded);
  // The retry budget was asked once (for the second attempt): at 65 ms no
  // attempt fits even without a backoff, so none is asked for.
  EXPECT_EQ(calls.retries_asked, 1);
}

}  // namespace
}  // namespace bg::service
