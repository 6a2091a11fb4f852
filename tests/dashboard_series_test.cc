// The Grafana dashboard (deploy/grafana/billing-gateway.json) and the
// Prometheus rules (deploy/prometheus/billing-gateway.rules.yml) name only
// series a running gateway exports, with label values it really uses.
//
// Two gateways in front of one killbill-sim, each driven with a few calls: one
// on the in-memory queue and one in durable mode on a throwaway PostgreSQL
// (tests/pg_fixture.h). Every expression is checked against the durable
// gateway's live /metrics (it exports everything); those that name no
// billing_gateway_durable_* series are checked against the in-memory one too,
// and the durable series are checked to be absent there (the dashboard's
// durable row is empty without a database, as it says).
#include <set>
#include <string>
#include <vector>

#include "tests/durable_harness.h"
#include "tests/pg_fixture.h"
#include "tests/promql_refs.h"

namespace bg::testing {
namespace {

const std::string kDashboard =
    std::string(BG_SOURCE_DIR) + "/deploy/grafana/billing-gateway.json";
const std::string kRules =
    std::string(BG_SOURCE_DIR) + "/deploy/prometheus/billing-gateway.rules.yml";

TEST(PromqlRefs, FindsSeriesMatchersAndGroupingLabels) {
  const PromqlRefs r = ParsePromql(
      "histogram_quantile(0.99, sum by (le, method) "
      "(rate(billing_gateway_x_bucket{instance=~\"$instance\", "
      "outcome=\"ok\"}[$__rate_interval]))) > 0.5 and on (job) "
      "up{job=\"a\"} offset 5m or max without(instance) (b:c:d)");
  EXPECT_EQ(r.series,
            (std::set<std::string>{"billing_gateway_x_bucket", "up", "b:c:d"}));
  EXPECT_EQ(r.grouping,
            (std::set<std::string>{"le", "method", "job", "instance"}));
  ASSERT_EQ(r.matchers.size(), 3u);
  EXPECT_EQ(r.matchers[1].series, "billing_gateway_x_bucket");
  EXPECT_EQ(r.matchers[1].label, "outcome");
  EXPECT_EQ(r.matchers[1].op, "=");
  EXPECT_EQ(r.matchers[1].value, "ok");
  EXPECT_EQ(r.matchers[2].series, "up");
}

TEST(PromqlRefs, ReportsWhatAPageLacks) {
  const ExportedSeries page = ParseExposition(
      "# TYPE billing_gateway_breaker_state gauge\n"
      "billing_gateway_breaker_state{state=\"open\"} 0\n"
      "billing_gateway_breaker_state{state=\"closed\"} 1\n"
      "billing_gateway_queue_depth 3\n");
  EXPECT_TRUE(
      MissingReferences(
          "max by (state) (billing_gateway_breaker_state{state=\"open\","
          " instance=~\"$instance\"}) + billing_gateway_queue_depth",
          page, {})
          .empty());
  EXPECT_TRUE(MissingReferences(
                  "billing_gateway_breaker_state{state=~\"clo.*\"}", page, {})
                  .empty());
  EXPECT_EQ(MissingReferences("billing_gateway_breaker_state{state=\"opened\"}",
                              page, {})
                .size(),
            1u);
  EXPECT_EQ(MissingReferences("billing_gatway_queue_depth", page, {}).size(),
            1u);
  EXPECT_EQ(MissingReferences("sum by (reason) (billing_gateway_queue_depth)",
                              page, {})
                .size(),
            1u);
  EXPECT_EQ(MissingReferences("billing_gateway:x:rate5m", page, {}).size(), 1u);
  EXPECT_TRUE(MissingReferences("billing_gateway:x:rate5m", page,
                                {"billing_gateway:x:rate5m"})
                  .empty());
}

std::string GatewayYaml(int sim_port, const std::string& database_url) {
  std::string yaml =
      "server:\n  listen: 127.0.0.1:0\n  shutdown_grace: 1s\n"
      "metrics:\n  listen: 127.0.0.1:0\n"
      "logging:\n  level: warn\n"
      "killbill:\n  url: http://127.0.0.1:" +
      std::to_string(sim_port) + "\n";
  if (!database_url.empty())
    yaml += "database:\n  url: \"" + database_url + "\"\n";
  return yaml;
}

// A registration with its tag, a read, a subscription and an overview.
void Drive(v1::BillingGateway::Stub* stub, const std::string& key) {
  v1::CreateAccountRequest create = CreateRequest(key);
  create.add_tags(v1::ACCOUNT_TAG_AUTO_PAY_OFF);
  v1::CreateAccountResponse created;
  ASSERT_TRUE(stub->CreateAccount(Context().get(), create, &created).ok());
  v1::GetAccountRequest get;
  get.set_external_key(key);
  v1::Account account;
  ASSERT_TRUE(stub->GetAccount(Context().get(), get, &account).ok());
  v1::CreateSubscriptionRequest sub;
  sub.mutable_account()->set_external_key(key);
  sub.set_plan_name("basic-monthly");
  sub.set_instance_id(key + "-odoo");
  v1::CreateSubscriptionResponse subscribed;
  ASSERT_TRUE(stub->CreateSubscription(Context().get(), sub, &subscribed).ok());
  v1::GetBillingOverviewRequest overview_req;
  overview_req.mutable_account()->set_external_key(key);
  v1::BillingOverview overview;
  ASSERT_TRUE(
      stub->GetBillingOverview(Context().get(), overview_req, &overview).ok());
}

bool Durable(const std::string& expr) {
  for (const std::string& s : ParsePromql(expr).series) {
    if (s.rfind("billing_gateway_durable_", 0) == 0) return true;
  }
  return false;
}

TEST(DashboardSeries, EverySeriesTheDashboardAndTheRulesNameIsExported) {
  // Fails (does not skip) without PostgreSQL: the test command installs it.
  if (auto missing = PgFixture::MissingBinaries()) FAIL() << *missing;
  PgFixture pg;
  ASSERT_EQ(pg.Start(), "");
  Sim sim = Sim::Start({});
  ASSERT_NE(sim.port, 0);
  Gateway memory =
      Gateway::Start(TestFile("memory.yaml"), GatewayYaml(sim.port, ""));
  ASSERT_TRUE(memory.ok()) << memory.process->output();
  Gateway durable =
      Gateway::Start(TestFile("durable.yaml"), GatewayYaml(sim.port, pg.Url()));
  ASSERT_TRUE(durable.ok()) << durable.process->output();

  Drive(memory.stub.get(), "dash-memory");
  Drive(durable.stub.get(), "dash-durable");
  v1::Operation op;
  ASSERT_TRUE(durable.stub
                  ->SubmitCreateAccount(Context().get(),
                                        CreateRequest("dash-async"), &op)
                  .ok());
  ASSERT_TRUE(WaitFinished(durable.stub.get(), op.operation_id(), 20s, &op));
  EXPECT_EQ(op.state(), v1::OPERATION_STATE_SUCCEEDED);
  // Kill Bill's queue-growth series appear after the first healthcheck poll.
  for (Gateway* g : {&memory, &durable}) {
    ASSERT_TRUE(WaitUntil(
        [&] {
          return g->Metrics().find("billing_gateway_killbill_queue_growth{") !=
                 std::string::npos;
        },
        10s));
  }
  const ExportedSeries memory_page = ParseExposition(memory.Metrics());
  const ExportedSeries durable_page = ParseExposition(durable.Metrics());
  ASSERT_GT(memory_page.size(), 20u);

  const nlohmann::json dashboard = nlohmann::json::parse(ReadText(kDashboard));
  const RulesFile rules = LoadRules(kRules);
  std::vector<std::string> exprs = DashboardExpressions(dashboard);
  const size_t dashboard_count = exprs.size();
  exprs.insert(exprs.end(), rules.expressions.begin(), rules.expressions.end());
  ASSERT_GE(dashboard_count, 30u);
  ASSERT_GE(rules.expressions.size(), 12u);

  std::set<std::string> named;
  for (size_t i = 0; i < exprs.size(); ++i) {
    const std::string& expr = exprs[i];
    SCOPED_TRACE((i < dashboard_count ? "dashboard: " : "rules: ") + expr);
    const PromqlRefs refs = ParsePromql(expr);
    EXPECT_FALSE(refs.series.empty());
    named.insert(refs.series.begin(), refs.series.end());
    for (const std::string& m :
         MissingReferences(expr, durable_page, rules.recorded)) {
      ADD_FAILURE() << "durable gateway: " << m;
    }
    if (!Durable(expr)) {
      for (const std::string& m :
           MissingReferences(expr, memory_page, rules.recorded)) {
        ADD_FAILURE() << "in-memory gateway: " << m;
      }
    } else {
      for (const std::string& s : refs.series) {
        if (s.rfind("billing_gateway_durable_", 0) == 0) {
          EXPECT_EQ(memory_page.count(s), 0u)
              << s << " is exported without a database";
        }
      }
    }
  }
  // The alerts the operator guide promises, by the series they watch.
  for (const char* series :
       {"billing_gateway_killbill_bus_backlog", "billing_gateway_breaker_state",
        "billing_gateway_request_duration_seconds_count",
        "billing_gateway_rate_drain_estimate_events_per_second", "up",
        "billing_gateway_durable_oldest_pending_age_seconds",
        "billing_gateway_killbill_queue_growth"}) {
    EXPECT_EQ(named.count(series), 1u) << series << " is watched by nothing";
  }
}

}  // namespace
}  // namespace bg::testing
