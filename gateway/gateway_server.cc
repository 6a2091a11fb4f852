#include "gateway/gateway_server.h"

#include <grpcpp/ext/proto_server_reflection_plugin.h>
#include <grpcpp/grpcpp.h>
#include <grpcpp/health_check_service_interface.h>

#include "absl/strings/str_cat.h"
#include "gateway/account_operations.h"
#include "gateway/dispatcher.h"
#include "gateway/metrics.h"
#include "gateway/service.h"
#include "killbill_client/killbill_client.h"
#include "prometheus/exposer.h"
#include "spdlog/spdlog.h"

namespace bg::gateway {

GatewayServer::GatewayServer(config::GatewayConfig config, Clock* clock)
    : config_(std::move(config)), clock_(clock) {}

GatewayServer::~GatewayServer() { Shutdown(); }

absl::Status GatewayServer::Start() {
  metrics_ = std::make_unique<GatewayMetrics>();
  try {
    exposer_ = std::make_unique<prometheus::Exposer>(config_.metrics.listen);
  } catch (const std::exception& e) {
    return absl::UnavailableError(
        absl::StrCat("metrics.listen ", config_.metrics.listen, ": cannot listen: ", e.what()));
  }
  exposer_->RegisterCollectable(metrics_->shared_registry());
  metrics_port_ = exposer_->GetListeningPorts().front();

  killbill::ClientOptions kb;
  kb.url = config_.killbill.url;
  kb.api_key = config_.killbill.api_key;
  kb.api_secret = config_.killbill.api_secret;
  kb.username = config_.killbill.username;
  kb.password = config_.killbill.password;
  kb.created_by = config_.killbill.created_by;
  kb.connect_timeout = config_.killbill.connect_timeout;
  kb.request_timeout = config_.killbill.request_timeout;
  kb.max_connections = config_.killbill.max_connections;
  kb.ca_file = config_.killbill.ca_file;
  auto client = killbill::KillBillClient::Create(kb);
  if (!client.ok()) return client.status();
  client_ = std::move(*client);
  operations_ = std::make_unique<AccountOperations>(client_.get());

  DispatcherOptions dispatch;
  dispatch.queue_capacity = config_.queue.capacity;
  dispatch.max_in_flight = config_.concurrency.max_in_flight;
  dispatcher_ = std::make_unique<Dispatcher>(clock_, metrics_.get(), dispatch);
  service_ = std::make_unique<BillingGatewayService>(clock_, dispatcher_.get(), operations_.get(),
                                                     metrics_.get(),
                                                     config_.server.default_deadline);

  grpc::EnableDefaultHealthCheckService(true);
  grpc::reflection::InitProtoReflectionServerBuilderPlugin();
  grpc::ServerBuilder builder;
  builder.AddListeningPort(config_.server.listen, grpc::InsecureServerCredentials(), &grpc_port_);
  builder.SetMaxReceiveMessageSize(config_.server.max_message_bytes);
  builder.SetMaxSendMessageSize(config_.server.max_message_bytes);
  builder.RegisterService(service_.get());
  server_ = builder.BuildAndStart();
  if (!server_ || grpc_port_ == 0) {
    return absl::UnavailableError(
        absl::StrCat("server.listen ", config_.server.listen, ": cannot listen"));
  }
  return absl::OkStatus();
}

void GatewayServer::Shutdown() {
  if (stopped_ || !server_) return;
  stopped_ = true;
  server_->GetHealthCheckService()->SetServingStatus(false);
  // Admission stops first so nothing new is queued; the drain answers every queued call.
  dispatcher_->Shutdown(config_.server.shutdown_grace);
  server_->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(1));
  server_->Wait();
  exposer_.reset();
}

}  // namespace bg::gateway
