#include "flow/memory_guard.h"

#include <chrono>
#include <cstdint>

#include "gtest/gtest.h"

namespace bg::flow {
namespace {

using std::chrono::milliseconds;

constexpr uint64_t kMiB = 1024 * 1024;

// A process whose resident memory the test sets; counts reads and releases.
struct FakeProcess {
  uint64_t resident = 0;
  // What a release brings resident memory down to (0: unchanged).
  uint64_t after_release = 0;
  int reads = 0;
  int releases = 0;
  MemoryGuard::Process AsProcess() {
    return {[this] {
              ++reads;
              return resident;
            },
            [this] {
              ++releases;
              if (after_release != 0) resident = after_release;
            }};
  }
};

MemoryGuard::Options Bound(size_t mb) {
  MemoryGuard::Options o;
  o.max_resident_mb = mb;
  o.read_interval = milliseconds(50);
  o.per_call_bytes = kMiB;  // round figures: one call, one MiB
  o.release_interval = std::chrono::seconds(1);
  return o;
}

TEST(MemoryGuardTest, OffAdmitsEverythingWithoutReading) {
  FakeClock clock;
  FakeProcess process;
  process.resident = 10'000 * kMiB;
  MemoryGuard guard(&clock, Bound(0), process.AsProcess());
  for (int i = 0; i < 1000; ++i) ASSERT_TRUE(guard.Admit()) << i;
  EXPECT_EQ(process.reads, 0);
  EXPECT_EQ(process.releases, 0);
}

TEST(MemoryGuardTest, RefusesAtTheBoundAndAdmitsBelowIt) {
  FakeClock clock;
  FakeProcess process;
  process.resident = 99 * kMiB;
  MemoryGuard guard(&clock, Bound(100), process.AsProcess());
  EXPECT_TRUE(guard.Admit());  // 99 MiB < 100 MiB
  clock.Advance(milliseconds(50));
  process.resident = 100 * kMiB;
  EXPECT_FALSE(guard.Admit());  // at the bound: refused
  EXPECT_EQ(process.releases, 1);
  process.resident = 80 * kMiB;
  clock.Advance(milliseconds(49));
  EXPECT_FALSE(guard.Admit()) << "the reading is cached for read_interval";
  clock.Advance(milliseconds(1));
  EXPECT_TRUE(guard.Admit()) << "read again: back under the bound";
}

TEST(MemoryGuardTest, ReadsAtMostOncePerInterval) {
  FakeClock clock;
  FakeProcess process;
  process.resident = 10 * kMiB;
  MemoryGuard::Options o = Bound(1000);
  o.per_call_bytes = 1;
  MemoryGuard guard(&clock, o, process.AsProcess());
  for (int i = 0; i < 500; ++i) ASSERT_TRUE(guard.Admit());
  EXPECT_EQ(process.reads, 1);
  clock.Advance(milliseconds(49));
  for (int i = 0; i < 500; ++i) ASSERT_TRUE(guard.Admit());
  EXPECT_EQ(process.reads, 1);
  clock.Advance(milliseconds(1));
  EXPECT_TRUE(guard.Admit());
  EXPECT_EQ(process.reads, 2);
  EXPECT_EQ(guard.Resident(), 10 * kMiB);
  EXPECT_EQ(process.reads, 2);
}

TEST(MemoryGuardTest, CountsCallsAdmittedBetweenReads) {
  // A burst between two reads: 90 MiB read, 1 MiB per call, bound 100 MiB:
  // ten calls fit (90 + 9 < 100 for the tenth); at the eleventh the estimate
  // reaches the bound, so the guard releases and reads again: the ten calls
  // did take their 10 MiB, it refuses.
  FakeClock clock;
  FakeProcess process;
  process.resident = 90 * kMiB;
  MemoryGuard guard(&clock, Bound(100), process.AsProcess());
  for (int i = 0; i < 10; ++i) ASSERT_TRUE(guard.Admit()) << i;
  EXPECT_EQ(process.reads, 1);
  process.resident = 100 * kMiB;
  EXPECT_FALSE(guard.Admit());
  EXPECT_EQ(process.reads, 2);
  EXPECT_EQ(process.releases, 1);
  // The next reading: the queue drained a little, 95 MiB. Five calls fit; the
  // sixth is refused on the estimate alone (no read, no release: both were
  // done less than their interval ago).
  process.resident = 95 * kMiB;
  clock.Advance(milliseconds(50));
  for (int i = 0; i < 5; ++i) ASSERT_TRUE(guard.Admit()) << i;
  EXPECT_EQ(process.reads, 3);
  EXPECT_FALSE(guard.Admit());
  EXPECT_EQ(process.reads, 3);
  EXPECT_EQ(process.releases, 1);
}

TEST(MemoryGuardTest, ReleasesFreeMemoryAtMostOncePerInterval) {
  FakeClock clock;
  FakeProcess process;
  process.resident = 150 * kMiB;
  MemoryGuard guard(&clock, Bound(100), process.AsProcess());
  EXPECT_FALSE(guard.Admit());
  EXPECT_EQ(process.releases, 1);
  for (int i = 0; i < 10; ++i) {
    clock.Advance(milliseconds(50));
    EXPECT_FALSE(guard.Admit());
  }
  EXPECT_EQ(process.releases, 1) << "500 ms: no second release yet";
  // The calls that held the memory were answered; glibc kept their pages
  // until the next release gives them back.
  process.after_release = 40 * kMiB;
  clock.Advance(milliseconds(500));
  EXPECT_TRUE(guard.Admit());
  EXPECT_EQ(process.releases, 2);
  EXPECT_EQ(guard.Resident(), 40 * kMiB);
}

TEST(MemoryGuardTest, ResidentGivesFreeMemoryBackWhenOverTheBound) {
  // No call arrives after a burst: the periodic Resident() (FlowControl::Tick)
  // releases what the answered calls freed.
  FakeClock clock;
  FakeProcess process;
  process.resident = 150 * kMiB;
  process.after_release = 60 * kMiB;
  MemoryGuard guard(&clock, Bound(100), process.AsProcess());
  EXPECT_EQ(guard.Resident(), 60 * kMiB);
  EXPECT_EQ(process.releases, 1);
  process.resident = 150 * kMiB;
  clock.Advance(milliseconds(500));
  EXPECT_EQ(guard.Resident(), 150 * kMiB) << "no release twice in a second";
  EXPECT_EQ(process.releases, 1);
  clock.Advance(milliseconds(500));
  EXPECT_EQ(guard.Resident(), 60 * kMiB);
  EXPECT_EQ(process.releases, 2);
  // Under the bound, or with no bound, nothing is released.
  clock.Advance(std::chrono::seconds(5));
  EXPECT_EQ(guard.Resident(), 60 * kMiB);
  guard.SetBound(0);
  process.resident = 150 * kMiB;
  clock.Advance(std::chrono::seconds(5));
  EXPECT_EQ(guard.Resident(), 150 * kMiB);
  EXPECT_EQ(process.releases, 2);
}

TEST(MemoryGuardTest, UnreadableMemoryAdmits) {
  FakeClock clock;
  FakeProcess process;  // resident 0: /proc unreadable
  MemoryGuard guard(&clock, Bound(100), process.AsProcess());
  EXPECT_TRUE(guard.Admit());
}

TEST(MemoryGuardTest, SetBoundAppliesToTheNextAdmission) {
  FakeClock clock;
  FakeProcess process;
  process.resident = 120 * kMiB;
  MemoryGuard guard(&clock, Bound(100), process.AsProcess());
  EXPECT_FALSE(guard.Admit());
  guard.SetBound(200);
  EXPECT_EQ(guard.bound_bytes(), 200 * kMiB);
  EXPECT_TRUE(guard.Admit());
  guard.SetBound(0);
  process.resident = 10'000 * kMiB;
  clock.Advance(milliseconds(50));
  EXPECT_TRUE(guard.Admit());
}

TEST(MemoryGuardTest, TheOwnProcessReadsARealFigure) {
  FakeClock clock;
  MemoryGuard guard(&clock, Bound(100));
  const uint64_t resident = guard.Resident();
  EXPECT_GT(resident, 1 * kMiB);
  EXPECT_LT(resident, 100'000 * kMiB);
}

}  // namespace
}  // namespace bg::flow
