#include <chrono>

#include "bench/loadgen/arrival_schedule.h"
#include "bench/loadgen/outcome.h"
#include "gtest/gtest.h"

namespace bg::loadgen {
namespace {

using std::chrono::milliseconds;
using std::chrono::nanoseconds;
using std::chrono::seconds;

TEST(ArrivalScheduleTest, EvenlySpacedAtRate) {
  const ArrivalSchedule s(30, seconds(10), 0);
  ASSERT_EQ(s.size(), 300);
  EXPECT_EQ(s.DueAt(0), nanoseconds(0));
  EXPECT_EQ(s.DueAt(1), nanoseconds(33333333));
  EXPECT_EQ(s.DueAt(30), seconds(1));
  EXPECT_EQ(s.DueAt(299), nanoseconds(9966666667));
  // Strictly increasing: no two arrivals collapse into one instant.
  for (int64_t i = 1; i < s.size(); ++i)
    EXPECT_GT(s.DueAt(i), s.DueAt(i - 1)) << i;
}

TEST(ArrivalScheduleTest, FractionalRateRoundsCountDown) {
  EXPECT_EQ(ArrivalSchedule(2.5, seconds(3), 0).size(), 7);
  EXPECT_EQ(ArrivalSchedule(0.5, seconds(1), 0).size(), 0);
  EXPECT_EQ(ArrivalSchedule(25, milliseconds(1500), 0).size(), 37);
}

TEST(ArrivalScheduleTest, SpikeIsAllAtZero) {
  const ArrivalSchedule s(0, seconds(0), 2000);
  ASSERT_EQ(s.size(), 2000);
  EXPECT_EQ(s.DueAt(0), nanoseconds(0));
  EXPECT_EQ(s.DueAt(1999), nanoseconds(0));
}

TEST(ArrivalScheduleTest, BurstThenRate) {
  const ArrivalSchedule s(10, seconds(2), 5);
  ASSERT_EQ(s.size(), 25);
  EXPECT_EQ(s.DueAt(4), nanoseconds(0));
  EXPECT_EQ(s.DueAt(5), nanoseconds(0));  // first paced arrival is also at t=0
  EXPECT_EQ(s.DueAt(6), milliseconds(100));
  EXPECT_EQ(s.DueAt(24), milliseconds(1900));
}

TEST(ArrivalScheduleTest, NegativeInputsMeanEmpty) {
  EXPECT_EQ(ArrivalSchedule(-5, seconds(10), -3).size(), 0);
  EXPECT_EQ(ArrivalSchedule(5, seconds(-10), 0).size(), 0);
}

TEST(ParseDurationFlagTest, PlainNumbersAreSeconds) {
  EXPECT_EQ(ParseDurationFlag("30"), seconds(30));
  EXPECT_EQ(ParseDurationFlag("0.5"), milliseconds(500));
  EXPECT_EQ(ParseDurationFlag("30s"), seconds(30));
  EXPECT_EQ(ParseDurationFlag("250ms"), milliseconds(250));
  EXPECT_EQ(ParseDurationFlag("2m"), seconds(120));
  EXPECT_EQ(ParseDurationFlag(" 1h "), seconds(3600));
  EXPECT_FALSE(ParseDurationFlag("-1"));
  EXPECT_FALSE(ParseDurationFlag("-1s"));
  EXPECT_FALSE(ParseDurationFlag("soon"));
  EXPECT_FALSE(ParseDurationFlag("inf"));
  EXPECT_FALSE(ParseDurationFlag(""));
}

}  // namespace
}  // namespace bg::loadgen
