// PlanReload: which keys a re-read configuration file changes and which of
// them only a restart applies (config/reload.h).
#include <string>
#include <vector>

#include "config/reload.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace bg::config {
namespace {

using ::testing::ElementsAre;
using ::testing::IsEmpty;

GatewayConfig Parse(const std::string& yaml) {
  auto c = ParseConfig(yaml, "test.yaml", Environment::Empty());
  EXPECT_TRUE(c.ok()) << c.status();
  return c.ok() ? *c : GatewayConfig{};
}

TEST(ReloadPlanTest, TheSameFileChangesNothing) {
  const GatewayConfig a = Parse("rate: {initial: 12}\n");
  const ReloadPlan plan = PlanReload(a, Parse("rate: {initial: 12}\n"));
  EXPECT_THAT(plan.changes, IsEmpty());
  EXPECT_THAT(plan.needs_restart, IsEmpty());
}

TEST(ReloadPlanTest, TuningKeysAreListedWithTheirValues) {
  const ReloadPlan plan = PlanReload(
      Parse(""), Parse("rate: {mode: adaptive, initial: 20, max: 60}\n"
                       "queue: {capacity: 500}\n"
                       "cost: {tag_bus_events: 2}\n"
                       "breaker: {min_calls: 5}\n"
                       "logging: {level: debug, format: json}\n"));
  EXPECT_THAT(
      plan.changes,
      ElementsAre("logging.level: info -> debug",
                  "logging.format: text -> json",
                  "queue.capacity: 10000 -> 500", "cost.tag_bus_events: 1 -> 2",
                  "rate.initial: 10 -> 20", "rate.max: 50 -> 60",
                  "breaker.min_calls: 10 -> 5"));
  EXPECT_THAT(plan.needs_restart, IsEmpty());
}

TEST(ReloadPlanTest, ListenAddressesTlsAndTheDatabaseNeedARestart) {
  const ReloadPlan plan = PlanReload(
      Parse("server: {listen: \"127.0.0.1:0\"}\nrate: {initial: 5}\n"),
      Parse("server:\n"
            "  listen: \"127.0.0.1:7000\"\n"
            "  tls_cert_file: /etc/cert.pem\n"
            "  tls_key_file: /etc/key.pem\n"
            "metrics: {listen: \"127.0.0.1:9999\"}\n"
            "database: {url: \"postgresql://db@127.0.0.1/billing\"}\n"
            "rate: {initial: 6}\n"));
  EXPECT_THAT(
      plan.needs_restart,
      ElementsAre("server.listen", "metrics.listen", "server.tls_cert_file",
                  "server.tls_key_file", "database.url"));
  EXPECT_EQ(plan.changes.front(),
            "server.listen: \"127.0.0.1:0\" -> \"127.0.0.1:7000\"");
  EXPECT_EQ(plan.changes.size(), 6u);  // rate.initial too
}

TEST(ReloadPlanTest, AChangedSecretIsNamedWithoutItsValue) {
  const ReloadPlan plan = PlanReload(Parse("killbill: {password: one}\n"),
                                     Parse("killbill: {password: two}\n"));
  EXPECT_THAT(plan.changes, ElementsAre("killbill (a secret)"));
  EXPECT_THAT(plan.needs_restart, ElementsAre("killbill"));
  const ReloadPlan db = PlanReload(
      Parse("database: {url: \"postgresql://u:one@127.0.0.1/b\"}\n"),
      Parse("database: {url: \"postgresql://u:two@127.0.0.1/b\"}\n"));
  EXPECT_THAT(db.changes, ElementsAre("database.url (a secret)"));
  for (const std::string& change : db.changes) {
    EXPECT_EQ(change.find("two"), std::string::npos);
  }
}

TEST(ReloadPlanTest, RateModeSignalAndIntervalAreFixed) {
  EXPECT_FALSE(IsReloadable("rate.mode"));
  EXPECT_FALSE(IsReloadable("rate.signal"));
  EXPECT_FALSE(IsReloadable("rate.adjust_interval"));
  EXPECT_TRUE(IsReloadable("rate.initial"));
  EXPECT_TRUE(IsReloadable("rate.api_calls_per_second"));
  EXPECT_TRUE(IsReloadable("breaker.window"));
  EXPECT_TRUE(IsReloadable("queue.capacity"));
  EXPECT_TRUE(IsReloadable("queue.max_resident_mb"));
  EXPECT_FALSE(IsReloadable("concurrency.max_in_flight"));
  EXPECT_FALSE(IsReloadable("killbill.url"));
  EXPECT_FALSE(IsReloadable("server.shutdown_grace"));
  const ReloadPlan plan =
      PlanReload(Parse(""), Parse("rate: {mode: static, signal: healthcheck}"));
  EXPECT_THAT(plan.needs_restart, ElementsAre("rate.mode", "rate.signal"));
}

}  // namespace
}  // namespace bg::config
