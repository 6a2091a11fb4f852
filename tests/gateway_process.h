// Gateway: billing-gateway as a process for end-to-end tests (started on a
// config file, its gRPC and metrics ports read from its log, a channel and stub
// ready), shared by the e2e, fault and durable tests.
#pragma once

#include <grpcpp/grpcpp.h>

#include <chrono>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include "billing/v1/billing_gateway.grpc.pb.h"
#include "httplib.h"
#include "tests/subprocess.h"

namespace bg::testing {

struct Gateway {
  std::unique_ptr<Subprocess> process;
  int grpc_port = 0;
  int metrics_port = 0;
  std::shared_ptr<grpc::Channel> channel;
  std::unique_ptr<billing::v1::BillingGateway::Stub> stub;

  // Writes `yaml` (the whole config file) to `config_path`, then Launch().
  static Gateway Start(const std::string& config_path,
                       const std::string& yaml) {
    std::ofstream(config_path) << yaml;
    return Launch(config_path);
  }
  // Starts billing-gateway on `config_path` and waits (bounded) until it says
  // which ports it bound; ok() is false if it never did.
  static Gateway Launch(
      const std::string& config_path,
      std::chrono::milliseconds startup = std::chrono::seconds(30)) {
    Gateway g;
    g.process = std::make_unique<Subprocess>(
        std::vector<std::string>{BG_GATEWAY_BINARY, "--config", config_path});
    auto grpc_port =
        g.process->WaitForLine(R"(grpc listening on port (\d+))", startup);
    if (!grpc_port) return g;
    auto metrics_port = g.process->WaitForLine(
        R"(metrics listening on port (\d+))", std::chrono::seconds(5));
    g.grpc_port = std::stoi(*grpc_port);
    if (metrics_port) g.metrics_port = std::stoi(*metrics_port);
    g.channel = grpc::CreateChannel("127.0.0.1:" + *grpc_port,
                                    grpc::InsecureChannelCredentials());
    g.stub = billing::v1::BillingGateway::NewStub(g.channel);
    return g;
  }

  bool ok() const { return grpc_port != 0; }
  // SIGKILL (no shutdown code runs) and reap.
  void Kill() { process.reset(); }

  std::string Metrics() const {
    httplib::Client c("127.0.0.1", metrics_port);
    auto r = c.Get("/metrics");
    return r ? r->body : "";
  }
  // Value of the first sample line starting with `series` ("" prefix match), or
  // -1.
  double Metric(const std::string& series) const {
    const std::string page = Metrics();
    size_t at = 0;
    while ((at = page.find(series, at)) != std::string::npos) {
      if (at == 0 || page[at - 1] == '\n') {
        const size_t space = page.find(' ', at + series.size());
        const size_t eol = page.find('\n', at);
        if (space != std::string::npos && space < eol) {
          return std::stod(page.substr(space + 1, eol - space - 1));
        }
      }
      at += series.size();
    }
    return -1;
  }
};

}  // namespace bg::testing
