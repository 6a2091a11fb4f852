// Secrets (Kill Bill tenant key/secret, user, password) never leave the
// process: not in
// --check-config output, logs, the metrics page, nor gRPC error messages — even
// when Kill Bill refuses them and the gateway logs the failures.
#include <grpcpp/grpcpp.h>
#include <httplib.h>
#include <stdlib.h>

#include <fstream>

#include "bench/killbill_sim/killbill_sim.h"
#include "billing/v1/billing_gateway.grpc.pb.h"
#include "gtest/gtest.h"
#include "tests/subprocess.h"

namespace bg {
namespace {

using namespace std::chrono_literals;

// Distinctive values: none can appear by accident.
constexpr const char* kSecrets[] = {"FileApiKeyZq81", "EnvApiSecretWx42",
                                    "EnvUserKp07", "EnvPasswordJm55"};

void ExpectNoSecret(const std::string& where, const std::string& text) {
  for (const char* secret : kSecrets) {
    EXPECT_EQ(text.find(secret), std::string::npos)
        << secret << " leaked in " << where;
  }
}

TEST(Secrets, NeverInCheckConfigLogsMetricsOrErrors) {
  // Kill Bill (the sim) expects other credentials, so every call fails with 401
  // and the healthcheck still works: errors and warnings get logged.
  sim::SimOptions options;
  options.port = 0;
  sim::KillBillSim sim(options);
  ASSERT_TRUE(sim.Start().ok());

  const std::string config = testing::TestFile("gateway.yaml");
  std::ofstream(config) << "server:\n  listen: 127.0.0.1:0\n"
                        << "metrics:\n  listen: 127.0.0.1:0\n"
                        << "logging:\n  level: debug\n"
                        << "killbill:\n  url: http://127.0.0.1:" << sim.port()
                        << "\n"
                        << "  api_key: " << kSecrets[0] << "\n";
  setenv("BILLING_GATEWAY_KILLBILL_API_SECRET", kSecrets[1], 1);
  setenv("BILLING_GATEWAY_KILLBILL_USERNAME", kSecrets[2], 1);
  setenv("BILLING_GATEWAY_KILLBILL_PASSWORD", kSecrets[3], 1);

  {
    testing::Subprocess check(
        {BG_GATEWAY_BINARY, "--config", config, "--check-config"},
        /*capture_stderr=*/true);
    const std::string out = check.ReadAll(10s);
    EXPECT_NE(out.find("<redacted>"), std::string::npos) << out;
    ExpectNoSecret("--check-config", out);
  }

  testing::Subprocess gateway({BG_GATEWAY_BINARY, "--config", config},
                              /*capture_stderr=*/true);
  auto port = gateway.WaitForLine(R"(grpc listening on port (\d+))", 20s);
  ASSERT_TRUE(port.has_value()) << gateway.output();
  auto metrics_port =
      gateway.WaitForLine(R"(metrics listening on port (\d+))", 5s);
  ASSERT_TRUE(metrics_port.has_value());

  auto stub = billing::v1::BillingGateway::NewStub(grpc::CreateChannel(
      "127.0.0.1:" + *port, grpc::InsecureChannelCredentials()));
  for (int i = 0; i < 3; ++i) {
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + 5s);
    billing::v1::CreateAccountRequest req;
    req.set_external_key("secret-test-" + std::to_string(i));
    billing::v1::CreateAccountResponse resp;
    grpc::Status s = stub->CreateAccount(&ctx, req, &resp);
    EXPECT_EQ(s.error_code(), grpc::StatusCode::UNAUTHENTICATED)
        << s.error_message();
    ExpectNoSecret("gRPC error", s.error_message());
    for (const auto& [k, v] : ctx.GetServerTrailingMetadata()) {
      ExpectNoSecret("trailing metadata", std::string(v.data(), v.size()));
    }
  }

  httplib::Client metrics("127.0.0.1", std::stoi(*metrics_port));
  auto page = metrics.Get("/metrics");
  ASSERT_TRUE(page);
  EXPECT_NE(page->body.find("UNAUTHENTICATED"), std::string::npos);
  ExpectNoSecret("/metrics", page->body);

  EXPECT_EQ(gateway.Terminate(15s), std::optional<int>(0));
  const std::string logs = gateway.ReadAll(5s);
  EXPECT_NE(logs.find("effective configuration"), std::string::npos) << logs;
  ExpectNoSecret("logs", logs);
  sim.Stop();
}

}  // namespace
}  // namespace bg
