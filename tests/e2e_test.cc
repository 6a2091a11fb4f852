// End to end: killbill-sim and billing-gateway run as real processes on free
// loopback ports; the test talks to the gateway over gRPC like user-service
// would.
#include <grpcpp/grpcpp.h>

#include <cstdio>
#include <fstream>
#include <string>

#include "billing/v1/billing_gateway.grpc.pb.h"
#include "grpc/health/v1/health.grpc.pb.h"
#include "grpc/reflection/v1alpha/reflection.grpc.pb.h"
#include "gtest/gtest.h"
#include "httplib.h"
#include "nlohmann/json.hpp"
#include "tests/gateway_process.h"
#include "tests/subprocess.h"

namespace bg {
namespace {

using namespace std::chrono_literals;
namespace v1 = billing::v1;

class EndToEnd : public ::testing::Test {
 protected:
  void SetUp() override {
    sim_ = std::make_unique<testing::Subprocess>(
        std::vector<std::string>{BG_SIM_BINARY, "--listen", "127.0.0.1:0"});
    auto sim_port =
        sim_->WaitForLine(R"(listening on 127\.0\.0\.1:(\d+))", 20s);
    ASSERT_TRUE(sim_port.has_value())
        << "sim did not start: " << sim_->output();
    sim_port_ = std::stoi(*sim_port);

    config_path_ = testing::TestFile("gateway.yaml");
    std::ofstream(config_path_)
        << "server:\n  listen: 127.0.0.1:0\n"
        << "metrics:\n  listen: 127.0.0.1:0\n"
        << "killbill:\n  url: http://127.0.0.1:" << sim_port_ << "\n";
    testing::Gateway g = testing::Gateway::Launch(config_path_, 20s);
    ASSERT_TRUE(g.ok()) << "gateway did not start: " << g.process->output();
    ASSERT_NE(g.metrics_port, 0);
    gateway_ = std::move(g.process);
    metrics_port_ = g.metrics_port;
    channel_ = g.channel;
    stub_ = std::move(g.stub);
  }

  std::unique_ptr<grpc::ClientContext> Context() {
    auto ctx = std::make_unique<grpc::ClientContext>();
    ctx->set_deadline(std::chrono::system_clock::now() + 10s);
    return ctx;
  }

  // The account the sim holds under `key`, asked of its Kill Bill API with
  // the key as one query parameter (httplib encodes it); null when none.
  nlohmann::json SimAccountByKey(const std::string& key) {
    httplib::Client sim("127.0.0.1", sim_port_);
    sim.set_basic_auth("admin", "password");
    auto res = sim.Get("/1.0/kb/accounts", {{"externalKey", key}},
                       {{"X-Killbill-ApiKey", "fresh-tenant"},
                        {"X-Killbill-ApiSecret", "fresh-secret"}});
    if (!res || res->status != 200) return nullptr;
    return nlohmann::json::parse(res->body);
  }

  std::unique_ptr<testing::Subprocess> sim_;
  std::unique_ptr<testing::Subprocess> gateway_;
  std::string config_path_;
  int sim_port_ = 0;
  int metrics_port_ = 0;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<v1::BillingGateway::Stub> stub_;
};

TEST_F(EndToEnd, CreateIsIdempotentAndReadable) {
  v1::CreateAccountRequest create;
  create.set_external_key("e2e-customer-1");
  create.set_name("Jane Doe");
  create.set_email("jane@example.com");
  create.add_tags(v1::ACCOUNT_TAG_AUTO_PAY_OFF);

  v1::CreateAccountResponse first;
  grpc::Status s = stub_->CreateAccount(Context().get(), create, &first);
  ASSERT_TRUE(s.ok()) << s.error_message();
  EXPECT_TRUE(first.created());
  EXPECT_EQ(first.external_key(), "e2e-customer-1");
  EXPECT_EQ(first.account_id().size(), 36u);

  v1::CreateAccountResponse again;
  s = stub_->CreateAccount(Context().get(), create, &again);
  ASSERT_TRUE(s.ok()) << s.error_message();
  EXPECT_FALSE(again.created());
  EXPECT_EQ(again.account_id(), first.account_id());

  v1::GetAccountRequest by_key;
  by_key.set_external_key("e2e-customer-1");
  v1::Account account;
  s = stub_->GetAccount(Context().get(), by_key, &account);
  ASSERT_TRUE(s.ok()) << s.error_message();
  EXPECT_EQ(account.account_id(), first.account_id());
  EXPECT_EQ(account.email(), "jane@example.com");
  EXPECT_EQ(account.currency(), "USD");

  v1::GetAccountRequest by_id;
  by_id.set_account_id(first.account_id());
  s = stub_->GetAccount(Context().get(), by_id, &account);
  ASSERT_TRUE(s.ok()) << s.error_message();
  EXPECT_EQ(account.external_key(), "e2e-customer-1");

  v1::GetAccountRequest missing;
  missing.set_external_key("nobody");
  s = stub_->GetAccount(Context().get(), missing, &account);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::NOT_FOUND) << s.error_message();

  // The sim saw exactly one account for the key, and the tag call.
  httplib::Client sim("127.0.0.1", sim_port_);
  auto stats = sim.Get("/sim/stats");
  ASSERT_TRUE(stats);
  auto json = nlohmann::json::parse(stats->body);
  EXPECT_EQ(json.at("accounts_created").get<int>(), 1) << stats->body;

  // The metrics page counts what happened.
  httplib::Client metrics("127.0.0.1", metrics_port_);
  auto page = metrics.Get("/metrics");
  ASSERT_TRUE(page);
  EXPECT_NE(
      page->body.find(
          R"(billing_gateway_requests_total{code="OK",method="CreateAccount"} 2)"),
      std::string::npos)
      << page->body;
  EXPECT_NE(
      page->body.find(
          R"(billing_gateway_requests_total{code="NOT_FOUND",method="GetAccount"} 1)"),
      std::string::npos);
}

TEST_F(EndToEnd, InvalidRequestNamesTheFieldAndNeverReachesKillBill) {
  v1::CreateAccountRequest create;
  create.set_external_key("e2e-bad");
  create.set_email("not-an-email");
  v1::CreateAccountResponse response;
  grpc::Status s = stub_->CreateAccount(Context().get(), create, &response);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(s.error_message().rfind("email", 0), 0u) << s.error_message();
  httplib::Client sim("127.0.0.1", sim_port_);
  auto stats = sim.Get("/sim/stats");
  ASSERT_TRUE(stats);
  EXPECT_EQ(
      nlohmann::json::parse(stats->body).at("accounts_created").get<int>(), 0);
}

// External keys that mean something in a URL: each is stored under exactly
// that key (not "a", not "b"), a second create finds it (409, then the lookup
// by key, whose query must be encoded), and GetAccount by key reads it back.
TEST_F(EndToEnd, KeysWithUrlSpecialCharactersRoundTrip) {
  for (const std::string key : {"a&externalKey=b", "a+b", "a%2F", "a#b"}) {
    SCOPED_TRACE(key);
    v1::CreateAccountRequest create;
    create.set_external_key(key);
    create.set_name("Url Key");
    v1::CreateAccountResponse first, again;
    grpc::Status s = stub_->CreateAccount(Context().get(), create, &first);
    ASSERT_TRUE(s.ok()) << s.error_message();
    EXPECT_TRUE(first.created());
    EXPECT_EQ(first.external_key(), key);
    const nlohmann::json stored = SimAccountByKey(key);
    ASSERT_TRUE(stored.is_object()) << "the sim has no account under " << key;
    EXPECT_EQ(stored.value("accountId", ""), first.account_id());
    EXPECT_EQ(stored.value("externalKey", ""), key);

    s = stub_->CreateAccount(Context().get(), create, &again);
    ASSERT_TRUE(s.ok()) << s.error_message();
    EXPECT_FALSE(again.created());
    EXPECT_EQ(again.account_id(), first.account_id());

    v1::GetAccountRequest by_key;
    by_key.set_external_key(key);
    v1::Account account;
    s = stub_->GetAccount(Context().get(), by_key, &account);
    ASSERT_TRUE(s.ok()) << s.error_message();
    EXPECT_EQ(account.account_id(), first.account_id());
    EXPECT_EQ(account.external_key(), key);
  }
  for (const char* other : {"a", "b", "a b", "a/"}) {
    EXPECT_TRUE(SimAccountByKey(other).is_null()) << other;
  }
  httplib::Client sim("127.0.0.1", sim_port_);
  auto stats = sim.Get("/sim/stats");
  ASSERT_TRUE(stats);
  EXPECT_EQ(nlohmann::json::parse(stats->body).at("accounts_total").get<int>(),
            4);
}

// The longest valid notes (4096 characters, two bytes each, with newline and
// tab) and email (254 bytes) reach Kill Bill and come back byte for byte.
TEST_F(EndToEnd, BoundaryValidTextArrivesIntact) {
  std::string notes = "\n\t";
  for (int i = 0; i < 4094; ++i) notes += "\xc3\xa9";
  const std::string email = std::string(242, 'j') + "@example.com";
  ASSERT_EQ(email.size(), 254u);
  const std::string name = std::string(99, 'n') + "\xc3\xa9";  // 100 chars
  v1::CreateAccountRequest create;
  create.set_external_key("e2e-boundary");
  create.set_name(name);
  create.set_email(email);
  create.set_notes(notes);
  v1::CreateAccountResponse created;
  grpc::Status s = stub_->CreateAccount(Context().get(), create, &created);
  ASSERT_TRUE(s.ok()) << s.error_message();

  const nlohmann::json stored = SimAccountByKey("e2e-boundary");
  ASSERT_TRUE(stored.is_object());
  EXPECT_EQ(stored.value("notes", ""), notes);
  EXPECT_EQ(stored.value("email", ""), email);
  EXPECT_EQ(stored.value("name", ""), name);

  v1::GetAccountRequest by_id;
  by_id.set_account_id(created.account_id());
  v1::Account account;
  s = stub_->GetAccount(Context().get(), by_id, &account);
  ASSERT_TRUE(s.ok()) << s.error_message();
  EXPECT_EQ(account.notes(), notes);
  EXPECT_EQ(account.email(), email);
  EXPECT_EQ(account.name(), name);
}

TEST_F(EndToEnd, HealthAndReflectionServices) {
  auto health = grpc::health::v1::Health::NewStub(channel_);
  grpc::health::v1::HealthCheckRequest req;
  grpc::health::v1::HealthCheckResponse resp;
  grpc::Status s = health->Check(Context().get(), req, &resp);
  ASSERT_TRUE(s.ok()) << s.error_message();
  EXPECT_EQ(resp.status(), grpc::health::v1::HealthCheckResponse::SERVING);

  auto reflection =
      grpc::reflection::v1alpha::ServerReflection::NewStub(channel_);
  auto ctx = Context();
  auto stream = reflection->ServerReflectionInfo(ctx.get());
  grpc::reflection::v1alpha::ServerReflectionRequest list;
  list.set_list_services("");
  ASSERT_TRUE(stream->Write(list));
  stream->WritesDone();
  grpc::reflection::v1alpha::ServerReflectionResponse answer;
  ASSERT_TRUE(stream->Read(&answer));
  std::vector<std::string> names;
  for (const auto& svc : answer.list_services_response().service())
    names.push_back(svc.name());
  EXPECT_NE(std::find(names.begin(), names.end(), "billing.v1.BillingGateway"),
            names.end());
  EXPECT_NE(std::find(names.begin(), names.end(), "grpc.health.v1.Health"),
            names.end());
  while (stream->Read(&answer)) {
  }
  EXPECT_TRUE(stream->Finish().ok());
}

TEST_F(EndToEnd, SigtermStopsCleanly) {
  EXPECT_EQ(gateway_->Terminate(15s), std::optional<int>(0))
      << gateway_->output();
}

}  // namespace
}  // namespace bg
