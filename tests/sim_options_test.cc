// Tests of SimOptions adapters: YAML file, JSON settings, validation,
// rendering.
#include "bench/killbill_sim/sim_options.h"

#include "bench/killbill_sim/sim_options_json.h"
#include "gtest/gtest.h"

namespace bg::sim {
namespace {

TEST(SimOptionsTest, DefaultsAreTheReportsKillBill) {
  SimOptions o;
  EXPECT_EQ(o.api_key, "fresh-tenant");
  EXPECT_EQ(o.api_secret, "fresh-secret");
  EXPECT_EQ(o.user, "admin");
  EXPECT_EQ(o.password, "password");
  EXPECT_DOUBLE_EQ(o.model.capacity, 30);
  EXPECT_DOUBLE_EQ(o.model.bus_drain, 25);
  EXPECT_EQ(o.growth.window, 60);
  EXPECT_TRUE(o.location_full_url);
  EXPECT_EQ(o.max_threads, 200);
  EXPECT_TRUE(Validate(o).ok());
}

TEST(SimOptionsTest, LoadsYamlFileNestedAndFlat) {
  SimOptions o;
  ASSERT_TRUE(LoadYamlFile("tests/testdata/sim/sim.yaml", &o).ok());
  EXPECT_EQ(o.port, 0);
  EXPECT_FALSE(o.location_full_url);
  EXPECT_DOUBLE_EQ(o.model.capacity, 45.5);
  EXPECT_DOUBLE_EQ(o.model.bus_drain, 12);
  EXPECT_EQ(o.model.base_latency, std::chrono::milliseconds(7));
  EXPECT_FALSE(o.model.degrade);
  EXPECT_EQ(o.growth.window, 30);
  EXPECT_EQ(o.api_key, "other-tenant");
  EXPECT_EQ(o.max_threads, 50);
}

TEST(SimOptionsTest, RejectsBadYamlAndUnknownKeys) {
  SimOptions o;
  EXPECT_FALSE(ApplyYaml("capacity: [1, 2", &o).ok());  // syntax
  EXPECT_FALSE(ApplyYaml("capacityy: 3", &o).ok());     // typo
  EXPECT_FALSE(ApplyYaml("capacity: fast", &o).ok());   // type
  EXPECT_FALSE(ApplyYaml("capacity: 0", &o).ok());      // range
  EXPECT_FALSE(LoadYamlFile("/nonexistent.yaml", &o).ok());
  EXPECT_DOUBLE_EQ(o.model.capacity, 30);  // untouched on error
}

TEST(SimOptionsTest, JsonRoundTrip) {
  SimOptions o;
  ASSERT_TRUE(
      ApplyJson({{"capacity", 60}, {"bus_drain", 50.5}, {"base_latency_ms", 0}},
                &o)
          .ok());
  EXPECT_DOUBLE_EQ(o.model.capacity, 60);
  EXPECT_EQ(o.model.base_latency, Clock::Duration::zero());
  const auto j = SimOptionsToJson(o);
  EXPECT_DOUBLE_EQ(j["bus_drain"].get<double>(), 50.5);
  EXPECT_FALSE(j.contains("password"));
  EXPECT_FALSE(ApplyJson({{"bus_drain", -1}}, &o).ok());
  EXPECT_FALSE(ApplyJson(nlohmann::json::array(), &o).ok());
}

TEST(SimOptionsTest, BusEventsPerTag) {
  SimOptions o;
  EXPECT_EQ(o.bus_events_per_tag, 1);  // Kill Bill 0.24
  EXPECT_EQ(SimOptionsToJson(o)["bus_events_per_tag"], 1);
  ASSERT_TRUE(ApplyYaml("bus_events_per_tag: 0", &o).ok());
  EXPECT_EQ(o.bus_events_per_tag, 0);
  ASSERT_TRUE(ApplyYaml("model:\n  bus_events_per_tag: 2\n", &o).ok());
  EXPECT_EQ(o.bus_events_per_tag, 2);
  ASSERT_TRUE(ApplyJson({{"bus_events_per_tag", 1}}, &o).ok());
  EXPECT_EQ(o.bus_events_per_tag, 1);
  EXPECT_FALSE(ApplyJson({{"bus_events_per_tag", -1}}, &o).ok());
  EXPECT_FALSE(ApplyJson({{"bus_events_per_tag", "many"}}, &o).ok());
  EXPECT_EQ(o.bus_events_per_tag, 1);  // untouched on error
}

TEST(SimOptionsTest, Metrics) {
  SimOptions o;
  EXPECT_EQ(o.metrics, MetricsMode::kOn);
  EXPECT_EQ(SimOptionsToJson(o)["metrics"], "on");
  ASSERT_TRUE(ApplyYaml("metrics: absent", &o).ok());
  EXPECT_EQ(o.metrics, MetricsMode::kAbsent);
  // YAML 1.1 reads an unquoted `on` as a boolean; the setting reads the word.
  ASSERT_TRUE(ApplyYaml("metrics: on", &o).ok());
  EXPECT_EQ(o.metrics, MetricsMode::kOn);
  ASSERT_TRUE(ApplyYaml("model:\n  metrics: \"empty\"\n", &o).ok());
  EXPECT_EQ(o.metrics, MetricsMode::kEmpty);
  EXPECT_EQ(SimOptionsToJson(o)["metrics"], "empty");
  ASSERT_TRUE(ApplyJson({{"metrics", "on"}}, &o).ok());
  EXPECT_EQ(o.metrics, MetricsMode::kOn);

  const absl::Status off = ApplyYaml("metrics: off", &o);
  EXPECT_EQ(off.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(
      off.message(),
      R"(setting 'metrics': must be "on", "absent" or "empty", got "off")");
  const absl::Status number = ApplyJson({{"metrics", 1}}, &o);
  EXPECT_FALSE(number.ok());
  EXPECT_NE(number.message().find("setting 'metrics'"), std::string::npos)
      << number.message();
  EXPECT_FALSE(ApplyJson({{"metrics", "On"}}, &o).ok());  // names are exact
  EXPECT_EQ(o.metrics, MetricsMode::kOn);                 // untouched on error
  o.metrics = static_cast<MetricsMode>(7);
  EXPECT_FALSE(Validate(o).ok());
}

// Text settings keep their YAML scalars as written.
TEST(SimOptionsTest, TextSettingsStayText) {
  SimOptions o;
  ASSERT_TRUE(ApplyYaml("api_key: 12345\nuser: yes\n", &o).ok());
  EXPECT_EQ(o.api_key, "12345");
  EXPECT_EQ(o.user, "yes");
  ASSERT_TRUE(ApplyYaml("degrade: no", &o).ok());  // a boolean stays one
  EXPECT_FALSE(o.model.degrade);
}

}  // namespace
}  // namespace bg::sim
