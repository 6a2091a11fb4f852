// TLS: the gateway's gRPC server with TLS and mutual TLS, and the Kill Bill
// client over HTTPS with CA verification. Certificates are made at test time
// with openssl.
#include <grpcpp/grpcpp.h>
#include <httplib.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <mutex>
#include <sstream>
#include <thread>

#include "billing/v1/billing_gateway.grpc.pb.h"
#include "grpc/health/v1/health.grpc.pb.h"
#include "gtest/gtest.h"
#include "killbill_client/killbill_client.h"
#include "tests/subprocess.h"

namespace bg {
namespace {

using namespace std::chrono_literals;

std::string ReadFile(const std::string& path) {
  std::ifstream in(path);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

// A CA, a server certificate for 127.0.0.1/localhost and a client certificate,
// both signed by the CA, plus an unrelated CA; a server certificate of the CA
// for another name (wrongname: other.example only) and a client certificate
// of the unrelated CA (stranger). Made once for the whole test binary.
class Pki : public ::testing::Environment {
 public:
  static std::string dir;
  void SetUp() override {
    // One directory per process: ctest runs each test case as its own process,
    // in parallel.
    dir = ::testing::TempDir() + "/bg_tls_pki." + std::to_string(getpid());
    const std::string script =
        "set -e; rm -rf " + dir + "; mkdir -p " + dir + "; cd " + dir +
        "; exec >/dev/null 2>&1"
        "; openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=test-ca "
        "-keyout ca.key -out ca.crt"
        "; openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "
        "/CN=other-ca "
        "-keyout other.key -out other.crt"
        "; printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\\n' > san.ext"
        "; openssl req -newkey rsa:2048 -nodes -subj /CN=localhost -keyout "
        "server.key "
        "-out server.csr"
        "; openssl x509 -req -in server.csr -CA ca.crt -CAkey ca.key "
        "-CAcreateserial -days 2 "
        "-extfile san.ext -out server.crt"
        "; openssl req -newkey rsa:2048 -nodes -subj /CN=user-service -keyout "
        "client.key "
        "-out client.csr"
        "; openssl x509 -req -in client.csr -CA ca.crt -CAkey ca.key "
        "-CAcreateserial -days 2 "
        "-out client.crt"
        // A server certificate from the right CA for another name only.
        "; printf 'subjectAltName=DNS:other.example\\n' > other-san.ext"
        "; openssl req -newkey rsa:2048 -nodes -subj /CN=other.example "
        "-keyout wrongname.key -out wrongname.csr"
        "; openssl x509 -req -in wrongname.csr -CA ca.crt -CAkey ca.key "
        "-CAcreateserial -days 2 -extfile other-san.ext -out wrongname.crt"
        // A client certificate signed by the unrelated CA.
        "; openssl req -newkey rsa:2048 -nodes -subj /CN=user-service "
        "-keyout stranger.key -out stranger.csr"
        "; openssl x509 -req -in stranger.csr -CA other.crt -CAkey other.key "
        "-CAcreateserial -days 2 -out stranger.crt";
    ASSERT_EQ(std::system(("bash -c \"" + script + "\"").c_str()), 0)
        << "openssl failed";
  }
};
std::string Pki::dir;

class GatewayTls : public ::testing::Test {
 protected:
  // Starts the gateway with TLS (and mutual TLS when `mutual`); Kill Bill is
  // not needed to answer the health service.
  void Start(bool mutual) {
    const std::string config = testing::TestFile("gateway.yaml");
    std::ofstream(config) << "server:\n  listen: 127.0.0.1:0\n"
                          << "  tls_cert_file: " << Pki::dir << "/server.crt\n"
                          << "  tls_key_file: " << Pki::dir << "/server.key\n"
                          << (mutual ? "  tls_client_ca_file: " + Pki::dir +
                                           "/ca.crt\n"
                                     : "")
                          << "metrics:\n  listen: 127.0.0.1:0\n"
                          << "killbill:\n  url: http://127.0.0.1:9\n";
    gateway_ = std::make_unique<testing::Subprocess>(
        std::vector<std::string>{BG_GATEWAY_BINARY, "--config", config});
    auto port = gateway_->WaitForLine(R"(grpc listening on port (\d+))", 20s);
    ASSERT_TRUE(port.has_value()) << gateway_->output();
    target_ = "localhost:" + *port;
  }

  // The health service's Check over `creds`; `name` overrides the host name
  // the client expects in the server's certificate ("" = the target's).
  grpc::Status Check(std::shared_ptr<grpc::ChannelCredentials> creds,
                     const std::string& name = "") {
    grpc::ChannelArguments args;
    if (!name.empty()) args.SetSslTargetNameOverride(name);
    auto stub = grpc::health::v1::Health::NewStub(
        grpc::CreateCustomChannel(target_, creds, args));
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + 5s);
    grpc::health::v1::HealthCheckRequest req;
    grpc::health::v1::HealthCheckResponse resp;
    return stub->Check(&ctx, req, &resp);
  }

  grpc::SslCredentialsOptions Options(bool with_client_cert,
                                      const char* ca = "ca.crt",
                                      const std::string& client = "client") {
    grpc::SslCredentialsOptions o;
    o.pem_root_certs = ReadFile(Pki::dir + "/" + ca);
    if (with_client_cert) {
      o.pem_private_key = ReadFile(Pki::dir + "/" + client + ".key");
      o.pem_cert_chain = ReadFile(Pki::dir + "/" + client + ".crt");
    }
    return o;
  }

  std::unique_ptr<testing::Subprocess> gateway_;
  std::string target_;
};

TEST_F(GatewayTls, ServesTlsAndRefusesPlaintextAndUnknownCa) {
  Start(/*mutual=*/false);
  EXPECT_TRUE(Check(grpc::SslCredentials(Options(false))).ok());
  EXPECT_EQ(Check(grpc::InsecureChannelCredentials()).error_code(),
            grpc::StatusCode::UNAVAILABLE);
  EXPECT_EQ(
      Check(grpc::SslCredentials(Options(false, "other.crt"))).error_code(),
      grpc::StatusCode::UNAVAILABLE);
}

TEST_F(GatewayTls, MutualTlsNeedsAClientCertificateFromTheCa) {
  Start(/*mutual=*/true);
  EXPECT_TRUE(Check(grpc::SslCredentials(Options(true))).ok());
  EXPECT_EQ(Check(grpc::SslCredentials(Options(false))).error_code(),
            grpc::StatusCode::UNAVAILABLE);
}

TEST_F(GatewayTls, AServerCertificateForAnotherNameIsRefused) {
  Start(/*mutual=*/false);
  // The client expects other.example; the server's certificate (same CA) is
  // for localhost and 127.0.0.1 only.
  EXPECT_TRUE(Check(grpc::SslCredentials(Options(false)), "localhost").ok());
  EXPECT_EQ(
      Check(grpc::SslCredentials(Options(false)), "other.example").error_code(),
      grpc::StatusCode::UNAVAILABLE);
}

TEST_F(GatewayTls, AClientCertificateFromAnotherCaIsRefused) {
  Start(/*mutual=*/true);
  EXPECT_TRUE(Check(grpc::SslCredentials(Options(true))).ok());
  EXPECT_EQ(Check(grpc::SslCredentials(Options(true, "ca.crt", "stranger")))
                .error_code(),
            grpc::StatusCode::UNAVAILABLE);
}

TEST(GatewayTlsConfig, UnreadableCertificateIsRefusedAtStart) {
  const std::string config = testing::TestFile("missing.yaml");
  std::ofstream(config) << "server:\n  listen: 127.0.0.1:0\n"
                        << "  tls_cert_file: /nonexistent/server.crt\n"
                        << "  tls_key_file: /nonexistent/server.key\n"
                        << "metrics:\n  listen: 127.0.0.1:0\n";
  testing::Subprocess gateway({BG_GATEWAY_BINARY, "--config", config});
  EXPECT_FALSE(gateway.WaitForLine("grpc listening", 10s).has_value());
  EXPECT_NE(gateway.Terminate(10s), std::optional<int>(0));
}

// The Kill Bill client over HTTPS verifies the server against killbill.ca_file.
class KillBillHttps : public ::testing::Test {
 protected:
  void SetUp() override { Serve("server"); }
  // Serves Kill Bill's healthcheck and account creation over HTTPS with the
  // certificate `cert` (.crt/.key in Pki::dir).
  void Serve(const std::string& cert) {
    if (server_) TearDown();
    server_ = std::make_unique<httplib::SSLServer>(
        (Pki::dir + "/" + cert + ".crt").c_str(),
        (Pki::dir + "/" + cert + ".key").c_str());
    server_->Get("/1.0/healthcheck", [](const httplib::Request&,
                                        httplib::Response& res) {
      res.set_content(
          R"({"KillbillHealthcheck":{"healthy":true,"message":"OK"}})",
          "application/json");
    });
    server_->Post("/1.0/kb/accounts", [this](const httplib::Request& req,
                                             httplib::Response& res) {
      std::lock_guard<std::mutex> lock(mu_);
      created_body_ = req.body;
      res.status = 201;
      res.set_header("Location",
                     "/1.0/kb/accounts/0f5e1f8e-2f7b-4c39-9a6e-5b8f2f1d7c11");
    });
    port_ = server_->bind_to_any_port("127.0.0.1");
    thread_ = std::thread([this] { server_->listen_after_bind(); });
    // stop() before the loop runs would be lost (and join() would hang).
    ASSERT_TRUE(
        testing::WaitUntil([this] { return server_->is_running(); }, 10s, 1ms));
  }
  void TearDown() override {
    server_->stop();
    thread_.join();
  }
  absl::StatusOr<killbill::HealthReport> Poll(const std::string& ca) {
    killbill::ClientOptions o;
    o.url = "https://localhost:" + std::to_string(port_);
    o.ca_file = Pki::dir + "/" + ca;
    auto client = killbill::KillBillClient::Create(o);
    EXPECT_TRUE(client.ok());
    return (*client)->Healthcheck();
  }
  std::unique_ptr<httplib::SSLServer> server_;
  int port_ = 0;
  std::thread thread_;
  std::mutex mu_;
  std::string created_body_;  // guarded by mu_: the last POST's body
};

TEST_F(KillBillHttps, TrustedCaVerifies) {
  auto report = Poll("ca.crt");
  ASSERT_TRUE(report.ok()) << report.status();
  EXPECT_TRUE(report->healthy);
}

TEST_F(KillBillHttps, UnknownCaIsRefused) {
  EXPECT_EQ(Poll("other.crt").status().code(), absl::StatusCode::kUnavailable);
}

TEST_F(KillBillHttps, AServerCertificateForAnotherNameIsRefused) {
  Serve("wrongname");  // right CA, but for other.example, not localhost
  EXPECT_EQ(Poll("ca.crt").status().code(), absl::StatusCode::kUnavailable);
}

// A whole create over HTTPS: a caller over mutual TLS, the gateway (a real
// process) to Kill Bill over HTTPS verified against killbill.ca_file.
TEST_F(KillBillHttps, CreateAccountEndToEndOverTls) {
  const std::string config = testing::TestFile("gateway.yaml");
  std::ofstream(config) << "server:\n  listen: 127.0.0.1:0\n"
                        << "  tls_cert_file: " << Pki::dir << "/server.crt\n"
                        << "  tls_key_file: " << Pki::dir << "/server.key\n"
                        << "  tls_client_ca_file: " << Pki::dir << "/ca.crt\n"
                        << "metrics:\n  listen: 127.0.0.1:0\n"
                        << "killbill:\n  url: https://localhost:" << port_
                        << "\n  ca_file: " << Pki::dir << "/ca.crt\n"
                        << "rate:\n  mode: static\n";
  testing::Subprocess gateway({BG_GATEWAY_BINARY, "--config", config});
  auto port = gateway.WaitForLine(R"(grpc listening on port (\d+))", 20s);
  ASSERT_TRUE(port.has_value()) << gateway.output();
  grpc::SslCredentialsOptions o;
  o.pem_root_certs = ReadFile(Pki::dir + "/ca.crt");
  o.pem_private_key = ReadFile(Pki::dir + "/client.key");
  o.pem_cert_chain = ReadFile(Pki::dir + "/client.crt");
  auto stub = billing::v1::BillingGateway::NewStub(
      grpc::CreateChannel("localhost:" + *port, grpc::SslCredentials(o)));
  billing::v1::CreateAccountRequest req;
  req.set_external_key("tls-1");
  req.set_name("Over TLS");
  req.set_email("tls@example.com");
  billing::v1::CreateAccountResponse resp;
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + 10s);
  grpc::Status s = stub->CreateAccount(&ctx, req, &resp);
  ASSERT_TRUE(s.ok()) << s.error_message() << "\n" << gateway.output();
  EXPECT_TRUE(resp.created());
  EXPECT_EQ(resp.account_id(), "0f5e1f8e-2f7b-4c39-9a6e-5b8f2f1d7c11");
  std::lock_guard<std::mutex> lock(mu_);
  EXPECT_NE(created_body_.find("\"externalKey\":\"tls-1\""), std::string::npos)
      << created_body_;
  EXPECT_EQ(gateway.Terminate(10s), std::optional<int>(0));
}

}  // namespace
}  // namespace bg

int main(int argc, char** argv) {
  ::testing::InitGoogleTest(&argc, argv);
  ::testing::AddGlobalTestEnvironment(new bg::Pki);
  return RUN_ALL_TESTS();
}
