// GatewayServer: builds and owns every running part of billing-gateway from a
// GatewayConfig: Kill Bill client, metrics registry and its HTTP exposer,
// dispatcher, the durable queue when `database.url` is set, and the gRPC server
// (callback service, grpc.health.v1, reflection).
//
// Lifetime: Start() once, then Shutdown() once (also done by the destructor).
// Ports given as 0 in the config are chosen by the OS;
// grpc_port()/metrics_port() tell which. Thread-safety: Start/Shutdown from one
// thread; the parts it owns are thread-safe.
#pragma once

#include <memory>
#include <optional>
#include <string>

#include "absl/status/status.h"
#include "common/clock.h"
#include "config/gateway_config.h"
#include "config/reload.h"
#include "dispatch/flow_control.h"
#include "dispatch/health_monitor.h"
#include "killbill_client/types.h"

namespace grpc {
class Server;
}
namespace prometheus {
class Exposer;
}

namespace bg::killbill {
class KillBillClient;
}
namespace bg::durable {
class DurableQueue;
}

namespace bg::service {
class AccountOperations;
class SubscriptionOperations;
struct ReadCache;
class BillingGatewayService;
}  // namespace bg::service
namespace bg::dispatch {
class Dispatcher;
class FlowControl;
class HealthMonitor;
}  // namespace bg::dispatch
namespace bg::metrics {
class GatewayMetrics;
}

namespace bg::gateway {

// The assembly's mapping from config to the parts' options. Tests that run the
// production wiring (flow_simulation_test) build the parts through these.
dispatch::FlowOptions FlowOptionsFrom(const config::GatewayConfig& config);
dispatch::HealthMonitor::Options HealthOptionsFrom(
    const config::GatewayConfig& config);
killbill::BusEvents BusEventsFrom(const config::GatewayConfig& config);

class GatewayServer {
 public:
  GatewayServer(config::GatewayConfig config, Clock* clock);
  ~GatewayServer();

  absl::Status Start();
  // Stops admission (new calls get UNAVAILABLE/shutting_down), drains for the
  // configured grace, answers the rest, then stops the gRPC server and the
  // metrics page.
  void Shutdown();

  int grpc_port() const { return grpc_port_; }
  int metrics_port() const { return metrics_port_; }
  // "in-memory" or "durable (postgresql://host:port/db, replica ID)": never a
  // password.
  std::string QueueMode() const;

  // A configuration reload (SIGHUP; gateway/reload.cc): applies `next`'s
  // tuning keys (config/reload.h) to the running parts and the logger, without
  // dropping queued work or calls under way, and returns what changed. When
  // `next` changes a key a reload cannot apply, nothing is applied and the
  // answer is FailedPrecondition naming every such key. Counts the result on
  // billing_gateway_config_reloads_total (applied, refused). After Start(),
  // from one thread.
  absl::StatusOr<config::ReloadPlan> Reload(const config::GatewayConfig& next);
  // A reload whose file could not be read or parsed: counted as "invalid".
  void RecordInvalidReload();
  // The configuration in force: the constructor's, or the last one Reload()
  // applied.
  const config::GatewayConfig& running_config() const {
    return reloaded_ ? *reloaded_ : config_;
  }

 private:
  const config::GatewayConfig config_;
  Clock* const clock_;
  std::unique_ptr<metrics::GatewayMetrics> metrics_;
  std::unique_ptr<prometheus::Exposer> exposer_;
  std::unique_ptr<killbill::KillBillClient> client_;
  std::unique_ptr<killbill::KillBillClient> health_client_;
  std::unique_ptr<service::ReadCache> cache_;
  std::unique_ptr<service::AccountOperations> operations_;
  std::unique_ptr<service::SubscriptionOperations> subscriptions_;
  std::unique_ptr<dispatch::FlowControl> flow_;
  std::unique_ptr<dispatch::HealthMonitor> health_;
  std::unique_ptr<dispatch::Dispatcher> dispatcher_;
  std::unique_ptr<durable::DurableQueue>
      durable_;  // Null without database.url.
  std::unique_ptr<service::BillingGatewayService> service_;
  std::unique_ptr<grpc::Server> server_;
  int grpc_port_ = 0;
  int metrics_port_ = 0;
  bool stopped_ = false;
  // Set by Reload() (one thread; see there).
  std::optional<config::GatewayConfig> reloaded_;
};

}  // namespace bg::gateway
