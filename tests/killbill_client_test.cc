// KillBillClient against killbill-sim over real HTTP on loopback: every status
// mapping, both Location forms, a Location on another host, and transport
// failures.
#include "killbill_client/killbill_client.h"

#include <httplib.h>

#include <thread>

#include "bench/killbill_sim/killbill_sim.h"
#include "gtest/gtest.h"
#include "killbill_client/parse.h"

namespace bg::killbill {
namespace {

using namespace std::chrono_literals;

class ClientTest : public ::testing::Test {
 protected:
  void SetUp() override {
    sim::SimOptions options;
    options.host = "127.0.0.1";
    options.port = 0;
    sim_ = std::make_unique<sim::KillBillSim>(options);
    ASSERT_TRUE(sim_->Start().ok());
    // Fast sim: these tests are about the protocol, not capacity.
    sim::SimOptions fast = sim_->options();
    fast.model.capacity = 100000;
    fast.model.base_latency = std::chrono::milliseconds(0);
    ASSERT_TRUE(sim_->Configure(fast).ok());
  }

  std::unique_ptr<KillBillClient> Client(ClientOptions o = {}) {
    o.url = "http://127.0.0.1:" + std::to_string(sim_->port());
    auto c = KillBillClient::Create(o);
    EXPECT_TRUE(c.ok()) << c.status();
    return std::move(*c);
  }

  static NewAccount Account(const std::string& key) {
    NewAccount a;
    a.external_key = key;
    a.name = "Jane Doe";
    a.email = "jane@example.com";
    a.currency = "USD";
    return a;
  }

  static std::string KbCode(const absl::Status& s) {
    auto p = s.GetPayload(kKillBillCodePayload);
    return p ? std::string(*p) : "";
  }

  std::unique_ptr<sim::KillBillSim> sim_;
};

TEST_F(ClientTest, CreateGetAndTag) {
  auto client = Client();
  auto id = client->CreateAccount(Account("c-1"));
  ASSERT_TRUE(id.ok()) << id.status();
  EXPECT_TRUE(IsUuid(*id));
  auto by_key = client->GetAccountByKey("c-1");
  ASSERT_TRUE(by_key.ok()) << by_key.status();
  EXPECT_EQ(by_key->account_id, *id);
  EXPECT_EQ(by_key->email, "jane@example.com");
  EXPECT_EQ(by_key->time_zone, "UTC");
  auto by_id = client->GetAccountById(*id);
  ASSERT_TRUE(by_id.ok()) << by_id.status();
  EXPECT_EQ(by_id->external_key, "c-1");
  EXPECT_TRUE(client->AddTags(*id, {kTagAutoPayOff}).ok());
  EXPECT_EQ(sim_->Stats().accounts_created, 1u);
}

TEST_F(ClientTest, DuplicateKeyIsAlreadyExistsWithCode3000) {
  auto client = Client();
  ASSERT_TRUE(client->CreateAccount(Account("dup")).ok());
  auto again = client->CreateAccount(Account("dup"));
  EXPECT_EQ(again.status().code(), absl::StatusCode::kAlreadyExists);
  EXPECT_EQ(KbCode(again.status()), "3000");
  EXPECT_NE(again.status().message().find("Account already exists for key dup"),
            absl::string_view::npos)
      << again.status();
}

TEST_F(ClientTest, UnknownAccountsAreNotFound) {
  auto client = Client();
  auto by_key = client->GetAccountByKey("nobody");
  EXPECT_EQ(by_key.status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(KbCode(by_key.status()), "3003");
  auto by_id = client->GetAccountById("4a7b1e8c-0b1d-4b8e-9f0a-2d9b6a1c3e5f");
  EXPECT_EQ(by_id.status().code(), absl::StatusCode::kNotFound);
}

TEST_F(ClientTest, BadCredentialsAreUnauthenticated) {
  ClientOptions wrong_password;
  wrong_password.password = "nope";
  EXPECT_EQ(Client(wrong_password)->CreateAccount(Account("a")).status().code(),
            absl::StatusCode::kUnauthenticated);
  ClientOptions wrong_tenant;
  wrong_tenant.api_secret = "nope";
  EXPECT_EQ(Client(wrong_tenant)->GetAccountByKey("a").status().code(),
            absl::StatusCode::kUnauthenticated);
  // The secret never shows in what the caller sees.
  auto s = Client(wrong_password)->CreateAccount(Account("a")).status();
  EXPECT_EQ(s.message().find("nope"), absl::string_view::npos) << s;
}

TEST_F(ClientTest, ServerErrorsAndOutagesAreUnavailable) {
  auto client = Client();
  ASSERT_TRUE(sim_->InjectFaults(sim::FaultRequest::ErrorRate(1.0)).ok());
  EXPECT_EQ(client->CreateAccount(Account("e")).status().code(),
            absl::StatusCode::kUnavailable);
  sim_->ClearFaults();
  ASSERT_TRUE(sim_->InjectFaults(sim::FaultRequest::Outage503(30)).ok());
  EXPECT_EQ(client->GetAccountByKey("e").status().code(),
            absl::StatusCode::kUnavailable);
  sim_->ClearFaults();
  EXPECT_TRUE(client->CreateAccount(Account("e")).ok());
}

TEST_F(ClientTest, GarbageBodyIsInternal) {
  auto client = Client();
  ASSERT_TRUE(client->CreateAccount(Account("g")).ok());
  ASSERT_TRUE(sim_->InjectFaults(sim::FaultRequest::GarbageRate(1.0)).ok());
  EXPECT_EQ(client->GetAccountByKey("g").status().code(),
            absl::StatusCode::kInternal);
}

TEST_F(ClientTest, ResetIsUnavailable) {
  auto client = Client();
  ASSERT_TRUE(sim_->InjectFaults(sim::FaultRequest::ResetRate(1.0)).ok());
  EXPECT_EQ(client->CreateAccount(Account("r")).status().code(),
            absl::StatusCode::kUnavailable);
}

TEST_F(ClientTest, StallBeyondRequestTimeoutIsUnavailable) {
  ClientOptions o;
  o.request_timeout = 200ms;
  auto client = Client(o);
  ASSERT_TRUE(sim_->InjectFaults(sim::FaultRequest::Stall(5)).ok());
  auto s = client->GetAccountByKey("s").status();
  EXPECT_EQ(s.code(), absl::StatusCode::kUnavailable) << s;
  sim_->ClearFaults();
}

TEST_F(ClientTest, RelativeLocationIsAccepted) {
  sim::SimOptions relative = sim_->options();
  relative.location_full_url = false;
  ASSERT_TRUE(sim_->Configure(relative).ok());
  auto id = Client()->CreateAccount(Account("rel"));
  ASSERT_TRUE(id.ok()) << id.status();
  EXPECT_TRUE(IsUuid(*id));
}

TEST_F(ClientTest, HealthcheckIsParsedAndOutOfRotationSeen) {
  auto client = Client();
  auto report = client->Healthcheck();
  ASSERT_TRUE(report.ok()) << report.status();
  EXPECT_TRUE(report->healthy);
  EXPECT_EQ(report->http_status, 200);
  EXPECT_FALSE(report->queue_growing.at("bus"));

  httplib::Client admin("127.0.0.1", sim_->port());
  httplib::Headers auth = {{"X-Killbill-ApiKey", "fresh-tenant"},
                           {"X-Killbill-ApiSecret", "fresh-secret"},
                           {"X-Killbill-CreatedBy", "test"}};
  admin.set_basic_auth("admin", "password");
  auto res = admin.Delete("/1.0/kb/admin/healthcheck", auth);
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 204);
  report = client->Healthcheck();
  ASSERT_TRUE(report.ok()) << report.status();
  EXPECT_FALSE(report->healthy);
  EXPECT_TRUE(report->out_of_rotation);
}

TEST_F(ClientTest, BusMetricsReadTheSimsCountersAndTheirAbsence) {
  auto client = Client();
  auto created = client->CreateAccount(Account("metrics-1"));
  ASSERT_TRUE(created.ok()) << created.status();
  ASSERT_TRUE(client->AddTags(*created, {kTagAutoPayOff}).ok());
  auto counters = client->BusMetrics();
  ASSERT_TRUE(counters.ok()) << counters.status();
  EXPECT_TRUE(counters->present);
  const sim::SimStats stats = sim_->Stats();
  EXPECT_EQ(counters->posted, 2);  // the creation and the control tag
  EXPECT_EQ(static_cast<uint64_t>(counters->posted), stats.bus_posted_total);
  EXPECT_LE(counters->dispatched, counters->posted);
  // The two ways a Kill Bill can lack them: no servlet, no bundle.
  for (const sim::MetricsMode how :
       {sim::MetricsMode::kAbsent, sim::MetricsMode::kEmpty}) {
    ASSERT_TRUE(sim_->Configure([how](sim::SimOptions* o) {
                      o->metrics = how;
                      return absl::OkStatus();
                    })
                    .ok());
    counters = client->BusMetrics();
    ASSERT_TRUE(counters.ok()) << counters.status();
    EXPECT_FALSE(counters->present);
  }
}

TEST(ClientTransport, RefusedConnectionIsUnavailable) {
  // Bind then close a port so nothing listens on it.
  httplib::Server probe;
  const int port = probe.bind_to_any_port("127.0.0.1");
  probe.stop();
  ClientOptions o;
  o.url = "http://127.0.0.1:" + std::to_string(port);
  auto client = KillBillClient::Create(o);
  ASSERT_TRUE(client.ok());
  EXPECT_EQ((*client)->Healthcheck().status().code(),
            absl::StatusCode::kUnavailable);
}

// Kill Bill behind a proxy that rewrote Host: the Location names another host.
// The account was created; its id is taken from the path (never followed).
TEST(ClientTransport, LocationOnAnotherHostStillGivesTheId) {
  httplib::Server fake;
  fake.Post(
      "/1.0/kb/accounts", [](const httplib::Request&, httplib::Response& res) {
        res.status = 201;
        res.set_header("Location",
                       "http://kb-behind-proxy.example:8080/1.0/kb/accounts/"
                       "4a7b1e8c-0b1d-4b8e-9f0a-2d9b6a1c3e5f");
      });
  const int port = fake.bind_to_any_port("127.0.0.1");
  std::thread serve([&] { fake.listen_after_bind(); });
  ClientOptions o;
  o.url = "http://127.0.0.1:" + std::to_string(port);
  auto client = KillBillClient::Create(o);
  ASSERT_TRUE(client.ok());
  NewAccount a;
  a.external_key = "k";
  auto id = (*client)->CreateAccount(a);
  ASSERT_TRUE(id.ok()) << id.status();
  EXPECT_EQ(*id, "4a7b1e8c-0b1d-4b8e-9f0a-2d9b6a1c3e5f");
  fake.stop();
  serve.join();
}

TEST(ClientCreate, RefusesBadUrls) {
  for (const char* url : {"", "127.0.0.1:8080", "ftp://x", "http://",
                          "http://x/path", "http://user@x"}) {
    ClientOptions o;
    o.url = url;
    EXPECT_EQ(KillBillClient::Create(o).status().code(),
              absl::StatusCode::kInvalidArgument)
        << url;
  }
}

}  // namespace
}  // namespace bg::killbill
