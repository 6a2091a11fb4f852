#include "gateway/gateway_server.h"

#include <grpcpp/ext/proto_server_reflection_plugin.h>
#include <grpcpp/grpcpp.h>
#include <grpcpp/health_check_service_interface.h>
#include <grpcpp/support/server_interceptor.h>

#include <fstream>
#include <iterator>
#include <thread>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "dispatch/dispatcher.h"
#include "dispatch/flow_control.h"
#include "dispatch/health_monitor.h"
#include "durable/durable_queue.h"
#include "gateway/logging.h"
#include "killbill_client/killbill_client.h"
#include "metrics/gateway_metrics.h"
#include "prometheus/exposer.h"
#include "service/account_operations.h"
#include "service/read_cache.h"
#include "service/service.h"
#include "service/subscription_operations.h"
#include "service/validation.h"
#include "spdlog/spdlog.h"

namespace bg::gateway {

// Reads a whole PEM file; the error names the config key, never the contents.
absl::StatusOr<std::string> ReadPem(const std::string& path, const char* key) {
  std::ifstream in(path, std::ios::binary);
  std::string pem((std::istreambuf_iterator<char>(in)),
                  std::istreambuf_iterator<char>());
  if (!in.good() && !in.eof()) {
    return absl::FailedPreconditionError(
        absl::StrCat(key, ": cannot read ", path));
  }
  if (pem.empty())
    return absl::FailedPreconditionError(
        absl::StrCat(key, ": ", path, " is empty"));
  return pem;
}

absl::StatusOr<std::shared_ptr<grpc::ServerCredentials>> ServerCredentialsFrom(
    const config::ServerConfig& server) {
  if (server.tls_cert_file.empty()) return grpc::InsecureServerCredentials();
  auto cert = ReadPem(server.tls_cert_file, "server.tls_cert_file");
  if (!cert.ok()) return cert.status();
  auto key = ReadPem(server.tls_key_file, "server.tls_key_file");
  if (!key.ok()) return key.status();
  grpc::SslServerCredentialsOptions options(
      GRPC_SSL_DONT_REQUEST_CLIENT_CERTIFICATE);
  options.pem_key_cert_pairs.push_back({*key, *cert});
  if (!server.tls_client_ca_file.empty()) {
    auto ca = ReadPem(server.tls_client_ca_file, "server.tls_client_ca_file");
    if (!ca.ok()) return ca.status();
    options.pem_root_certs = *ca;
    options.client_certificate_request =
        GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY;
  }
  return grpc::SslServerCredentials(options);
}

dispatch::FlowOptions FlowOptionsFrom(const config::GatewayConfig& c) {
  dispatch::FlowOptions o;
  o.adjust_interval = c.rate.adjust_interval;
  o.api_calls_per_s = c.rate.api_calls_per_second;

  o.queue = c.queue;
  o.memory = c.memory;
  o.breaker = c.breaker;
  o.retry = c.retry;

  o.rate.mode = c.rate.mode == config::RateMode::kStatic
                    ? flow::RateController::Mode::kStatic
                    : flow::RateController::Mode::kAdaptive;
  o.rate.signal = c.rate.signal;
  o.rate.target_backlog = c.rate.target_backlog;
  o.rate.initial = c.rate.initial;
  o.rate.min = c.rate.min;
  o.rate.max = c.rate.max;
  o.rate.burst = c.rate.burst;
  o.rate.increase_step_per_s =
      c.rate.increase_step / ToSeconds(c.rate.adjust_interval);
  o.rate.fast_cooldown = c.rate.cooldown;

  return o;
}

dispatch::HealthMonitor::Options HealthOptionsFrom(
    const config::GatewayConfig& c) {
  return {c.health.poll_interval, c.health.queue_growth_threshold};
}

killbill::BusEvents BusEventsFrom(const config::GatewayConfig& c) {
  return c.cost;
}

// The interceptors of every call: the per-call debug line (gateway/logging.h).
std::vector<
    std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface>>
RequestLogInterceptors() {
  std::vector<
      std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface>>
      creators;
  creators.push_back(logging::RequestLogInterceptorFactory());
  return creators;
}

GatewayServer::GatewayServer(config::GatewayConfig config, Clock* clock)
    : config_(std::move(config)), clock_(clock) {}

GatewayServer::~GatewayServer() { Shutdown(); }

absl::Status GatewayServer::Start() {
  // Files first: a bad TLS path must fail the start before the database is
  // migrated or any thread runs.
  auto credentials = ServerCredentialsFrom(config_.server);
  if (!credentials.ok()) return credentials.status();
  metrics_ = std::make_unique<metrics::GatewayMetrics>();
  try {
    exposer_ = std::make_unique<prometheus::Exposer>(config_.metrics.listen);
  } catch (const std::exception& e) {
    return absl::UnavailableError(absl::StrCat("metrics.listen ",
                                               config_.metrics.listen,
                                               ": cannot listen: ", e.what()));
  }
  exposer_->RegisterCollectable(metrics_->shared_registry());
  metrics_port_ = exposer_->GetListeningPorts().front();

  auto client = killbill::KillBillClient::Create(config_.killbill);
  if (!client.ok()) return client.status();
  client_ = std::move(*client);
  // The healthcheck has its own connection and timeout, so a saturated pool of
  // account calls never delays the signal that protects Kill Bill.
  killbill::ClientOptions health_options = config_.killbill;
  health_options.max_connections = 1;
  health_options.request_timeout = config_.health.timeout;
  auto health_client = killbill::KillBillClient::Create(health_options);
  if (!health_client.ok()) return health_client.status();
  health_client_ = std::move(*health_client);
  cache_ = std::make_unique<service::ReadCache>(clock_, config_.cache);
  operations_ = std::make_unique<service::AccountOperations>(
      client_.get(), BusEventsFrom(config_), cache_.get());
  subscriptions_ = std::make_unique<service::SubscriptionOperations>(
      client_.get(), BusEventsFrom(config_), cache_.get());

  flow_ = std::make_unique<dispatch::FlowControl>(clock_, metrics_.get(),
                                                  FlowOptionsFrom(config_));
  health_ = std::make_unique<dispatch::HealthMonitor>(
      clock_, metrics_.get(), HealthOptionsFrom(config_),
      [client = health_client_.get()] { return client->Healthcheck(); },
      [client = health_client_.get()] { return client->BusMetrics(); },
      &flow_->breaker(), &flow_->controller());
  health_->Start();
  dispatcher_ = std::make_unique<dispatch::Dispatcher>(
      clock_, flow_.get(),
      dispatch::DispatcherOptions{config_.concurrency.max_in_flight});
  if (!config_.database.session.url.empty()) {
    durable::Executor executor;
    executor.submit = [d = dispatcher_.get()](dispatch::Job job) {
      d->Submit(std::move(job));
    };
    // A stored request passes the edge's validation again before it runs: a
    // row written by another version, or altered in the database, ends FAILED
    // with INVALID_ARGUMENT naming the field, never reaches Kill Bill.
    executor.create_account =
        [ops = operations_.get()](
            const billing::v1::CreateAccountRequest& request,
            dispatch::KillBillCalls& calls)
        -> absl::StatusOr<billing::v1::CreateAccountResponse> {
      if (absl::Status valid = service::ValidateCreateAccount(request);
          !valid.ok()) {
        return valid;
      }
      return ops->CreateAccount(request, calls);
    };
    executor.cost_of = [ops = operations_.get()](
                           const billing::v1::CreateAccountRequest& request) {
      return ops->CostOf(request);
    };
    executor.create_subscription =
        [ops = subscriptions_.get()](
            const billing::v1::CreateSubscriptionRequest& request,
            dispatch::KillBillCalls& calls)
        -> absl::StatusOr<billing::v1::CreateSubscriptionResponse> {
      if (absl::Status valid = service::ValidateCreateSubscription(request);
          !valid.ok()) {
        return valid;
      }
      return ops->CreateSubscription(request, calls);
    };
    executor.subscription_cost_of =
        [ops = subscriptions_.get()](
            const billing::v1::CreateSubscriptionRequest& request) {
          return ops->CostOf(request);
        };
    executor.killbill_code = [](const absl::Status& status) -> std::string {
      auto code = status.GetPayload(killbill::kKillBillCodePayload);
      return code ? std::string(*code) : std::string();
    };
    // config_.database is passed as parsed: the queue fills worker.owner with
    // its replica id.
    durable_ = std::make_unique<durable::DurableQueue>(
        clock_, config_.database, metrics_->registry(), std::move(executor),
        [f = flow_.get()](double fraction) { f->SetRateShare(fraction); });
    if (absl::Status ready = durable_->Start(); !ready.ok()) {
      // Not fatal: synchronous calls work, durable ones answer UNAVAILABLE
      // until it connects.
      spdlog::warn(
          "database not ready at start (retrying in the background): {}",
          std::string(ready.message()));
    }
  }
  service_ = std::make_unique<service::BillingGatewayService>(
      clock_, dispatcher_.get(), operations_.get(), subscriptions_.get(),
      config_.cache, metrics_.get(), config_.server.default_deadline,
      durable_.get());

  grpc::EnableDefaultHealthCheckService(true);
  grpc::reflection::InitProtoReflectionServerBuilderPlugin();
  grpc::ServerBuilder builder;
  builder.AddListeningPort(config_.server.listen, *credentials, &grpc_port_);
  builder.SetMaxReceiveMessageSize(config_.server.max_message_bytes);
  builder.SetMaxSendMessageSize(config_.server.max_message_bytes);
  builder.RegisterService(service_.get());
  builder.experimental().SetInterceptorCreators(RequestLogInterceptors());
  server_ = builder.BuildAndStart();
  if (!server_ || grpc_port_ == 0) {
    return absl::UnavailableError(absl::StrCat(
        "server.listen ", config_.server.listen, ": cannot listen"));
  }
  return absl::OkStatus();
}

void GatewayServer::Shutdown() {
  if (stopped_) return;
  stopped_ = true;
  // Also after a Start() that failed half-way: whatever it started is stopped
  // here, in this order, never left to the members' destructors (the
  // dispatcher's queued durable jobs call back into the durable worker).
  if (server_) server_->GetHealthCheckService()->SetServingStatus(false);
  // Durable work stops being claimed first (what is left stays in the database
  // for the next start or another replica); admission stops next so nothing new
  // is queued; the drain answers every queued call; then the durable outcomes
  // of the drained jobs are recorded. A start that failed has no callers to
  // drain for: no grace.
  if (durable_) durable_->StopClaiming();
  if (dispatcher_) {
    dispatcher_->Shutdown(
        server_ ? config_.server.shutdown_grace : Clock::Duration::zero(),
        [this] { client_->CutCallsInFlight(); });
  }
  // The metrics endpoint served through the drain; stopping it takes up to 2 s
  // (civetweb's accept loop wakes every 2 s to see the stop flag), so it stops
  // alongside the rest rather than after it.
  std::thread stop_metrics([this] { exposer_.reset(); });
  // The poll in progress may be stuck in Kill Bill as well: cut it.
  if (health_client_) health_client_->CutCallsInFlight();
  if (health_) health_->Stop();
  if (durable_) durable_->Shutdown(std::chrono::seconds(5));
  if (server_) {
    // Every call has had its answer by now (the drain answered the queued
    // ones, the durable queue's shutdown its submits and waits), so this
    // deadline only ends the wait for idle client connections, which gRPC
    // counts as work in progress.
    server_->Shutdown(std::chrono::system_clock::now() +
                      std::chrono::milliseconds(100));
    server_->Wait();
  }
  stop_metrics.join();
}

std::string GatewayServer::QueueMode() const {
  if (!durable_) return "in-memory (no database configured)";
  return absl::StrCat("durable (",
                      config::DatabaseTarget(config_.database.session.url),
                      ", replica ", durable_->replica_id(), ")");
}

}  // namespace bg::gateway
