// A real Prometheus (Debian's `prometheus`, 2.42) against a running gateway:
// it scrapes the gateway's /metrics on loopback, loads the repository's rules
// (deploy/prometheus/billing-gateway.rules.yml) and answers, through its HTTP
// API, billing_gateway_ series with the gateway's own values, the recording
// rules computed over them, and every dashboard query as valid PromQL.
//
// Prometheus runs from a temporary directory (its config and TSDB), listens on
// a free loopback port, scrapes every second, and is killed at the end; every
// wait is bounded. Fails (does not skip) when the binary is missing: the test
// command installs it (scripts/setup.sh).
#include <netinet/in.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "tests/durable_harness.h"
#include "tests/promql_refs.h"

namespace bg::testing {
namespace {

constexpr char kPrometheus[] = "/usr/bin/prometheus";
const std::string kRules =
    std::string(BG_SOURCE_DIR) + "/deploy/prometheus/billing-gateway.rules.yml";
const std::string kDashboard =
    std::string(BG_SOURCE_DIR) + "/deploy/grafana/billing-gateway.json";

int FreeLoopbackPort() {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof(addr);
  bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr));
  getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  const int port = ntohs(addr.sin_port);
  close(fd);
  return port;
}

// Prometheus's HTTP API on loopback.
class PrometheusApi {
 public:
  explicit PrometheusApi(int port) : client_("127.0.0.1", port) {
    client_.set_connection_timeout(2, 0);
    client_.set_read_timeout(5, 0);
  }
  // POST /api/v1/query; the parsed answer, or a null json when unreachable.
  nlohmann::json Query(const std::string& promql) {
    auto r = client_.Post("/api/v1/query", httplib::Params{{"query", promql}});
    if (!r) return nullptr;
    return nlohmann::json::parse(r->body, nullptr, /*allow_exceptions=*/false);
  }
  // The result vector of an instant query (empty on error or no data).
  nlohmann::json Vector(const std::string& promql) {
    const nlohmann::json j = Query(promql);
    if (j.is_object() && j.value("status", "") == "success" &&
        j["data"]["resultType"] == "vector") {
      return j["data"]["result"];
    }
    return nlohmann::json::array();
  }
  nlohmann::json Get(const std::string& path) {
    auto r = client_.Get(path.c_str());
    if (!r || r->status != 200) return nullptr;
    return nlohmann::json::parse(r->body, nullptr, false);
  }

 private:
  httplib::Client client_;
};

double SampleValue(const nlohmann::json& sample) {
  return std::stod(sample["value"][1].get<std::string>());
}

TEST(PrometheusRoundTrip, ScrapesTheGatewayAndEvaluatesTheRepositorysRules) {
  ASSERT_EQ(access(kPrometheus, X_OK), 0)
      << kPrometheus
      << " missing: install the Debian package `prometheus` (scripts/setup.sh)";
  Sim sim = Sim::Start({});
  ASSERT_NE(sim.port, 0);
  Gateway gateway =
      Gateway::Start(TestFile("gateway.yaml"),
                     "server:\n  listen: 127.0.0.1:0\n  shutdown_grace: 1s\n"
                     "metrics:\n  listen: 127.0.0.1:0\n"
                     "logging:\n  level: warn\n"
                     "killbill:\n  url: http://127.0.0.1:" +
                         std::to_string(sim.port) + "\n");
  ASSERT_TRUE(gateway.ok()) << gateway.process->output();
  ASSERT_NE(gateway.metrics_port, 0);

  std::string dir = TestFile("prometheus-XXXXXX");
  ASSERT_NE(mkdtemp(dir.data()), nullptr);
  struct Cleanup {
    std::string dir;
    ~Cleanup() { std::filesystem::remove_all(dir); }
  } cleanup{dir};
  const int port = FreeLoopbackPort();
  std::ofstream(dir + "/prometheus.yml")
      << "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n"
         "  evaluation_interval: 1s\n"
         "rule_files:\n  - \""
      << kRules
      << "\"\n"
         "scrape_configs:\n  - job_name: billing-gateway\n"
         "    static_configs:\n      - targets: [\"127.0.0.1:"
      << gateway.metrics_port << "\"]\n";
  Subprocess prometheus(
      {kPrometheus, "--config.file=" + dir + "/prometheus.yml",
       "--storage.tsdb.path=" + dir + "/data",
       "--web.listen-address=127.0.0.1:" + std::to_string(port),
       "--log.level=info"},
      /*capture_stderr=*/true);
  ASSERT_TRUE(
      prometheus.WaitForLine("Server is ready to receive web requests", 30s)
          .has_value())
      << prometheus.output();
  PrometheusApi api(port);

  // A billing_gateway_ series comes back with the gateway's own value.
  nlohmann::json capacity;
  ASSERT_TRUE(WaitUntil(
      [&] {
        capacity = api.Vector(
            "billing_gateway_queue_capacity{job=\"billing-gateway\"}");
        return !capacity.empty();
      },
      20s, 200ms))
      << prometheus.output();
  EXPECT_EQ(SampleValue(capacity[0]),
            gateway.Metric("billing_gateway_queue_capacity"));
  EXPECT_EQ(capacity[0]["metric"]["instance"],
            "127.0.0.1:" + std::to_string(gateway.metrics_port));
  nlohmann::json up = api.Vector("up{job=\"billing-gateway\"}");
  ASSERT_EQ(up.size(), 1u);
  EXPECT_EQ(SampleValue(up[0]), 1);

  // Calls made now show in Prometheus within a few scrapes.
  constexpr int kCalls = 5;
  for (int i = 0; i < kCalls; ++i) {
    v1::CreateAccountResponse r;
    ASSERT_TRUE(gateway.stub
                    ->CreateAccount(Context().get(),
                                    CreateRequest("prom-" + std::to_string(i)),
                                    &r)
                    .ok());
  }
  EXPECT_TRUE(WaitUntil(
      [&] {
        nlohmann::json v = api.Vector(
            "billing_gateway_requests_total{method=\"CreateAccount\", "
            "code=\"OK\"}");
        return v.size() == 1 && SampleValue(v[0]) == kCalls;
      },
      20s, 200ms));

  // The repository's rules are loaded, evaluate without error, and the
  // recording rules produce series from the scraped data.
  EXPECT_TRUE(WaitUntil(
      [&] {
        nlohmann::json rules = api.Get("/api/v1/rules");
        if (rules.is_null()) return false;
        int ok = 0;
        for (const auto& group : rules["data"]["groups"]) {
          for (const auto& rule : group["rules"]) {
            if (rule.value("health", "") == "err") {
              ADD_FAILURE() << rule.dump();
              return true;
            }
            if (rule.value("health", "") == "ok") ++ok;
          }
        }
        return ok == static_cast<int>(LoadRules(kRules).expressions.size());
      },
      20s, 250ms))
      << api.Get("/api/v1/rules").dump();
  nlohmann::json answers;
  EXPECT_TRUE(WaitUntil(
      [&] {
        answers = api.Vector("billing_gateway:answers:rate5m{outcome=\"ok\"}");
        return answers.size() == 1 && SampleValue(answers[0]) > 0;
      },
      20s, 250ms));
  // Gateway up, breaker closed, Kill Bill healthy: no alert fires.
  nlohmann::json alerts = api.Vector("ALERTS{alertstate=\"firing\"}");
  EXPECT_TRUE(alerts.empty()) << alerts.dump();

  // Every dashboard query is valid PromQL for this Prometheus (Grafana's
  // variables replaced as Grafana would).
  const nlohmann::json dashboard = nlohmann::json::parse(ReadText(kDashboard));
  for (std::string expr : DashboardExpressions(dashboard)) {
    for (auto [from, to] : std::vector<std::pair<std::string, std::string>>{
             {"$__rate_interval", "1m"}, {"$instance", ".*"}}) {
      for (size_t at; (at = expr.find(from)) != std::string::npos;)
        expr.replace(at, from.size(), to);
    }
    const nlohmann::json j = api.Query(expr);
    EXPECT_TRUE(j.is_object() && j.value("status", "") == "success")
        << expr << " -> " << j.dump();
  }
}

}  // namespace
}  // namespace bg::testing
