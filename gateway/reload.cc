// GatewayServer::Reload: a configuration reload applied to the running parts
// (gateway_server.h). Kept apart from the assembly in gateway_server.cc.
#include <string>

#include "absl/strings/str_join.h"
#include "dispatch/flow_control.h"
#include "gateway/gateway_server.h"
#include "gateway/logging.h"
#include "metrics/gateway_metrics.h"
#include "service/account_operations.h"
#include "service/subscription_operations.h"
#include "spdlog/spdlog.h"

namespace bg::gateway {

absl::StatusOr<config::ReloadPlan> GatewayServer::Reload(
    const config::GatewayConfig& next) {
  config::ReloadPlan plan = config::PlanReload(running_config(), next);
  if (!plan.needs_restart.empty()) {
    metrics_->RecordConfigReload(metrics::ReloadResult::kRefused);
    return absl::FailedPreconditionError(
        absl::StrCat("changes keys only a restart applies: ",
                     absl::StrJoin(plan.needs_restart, ", "),
                     " (nothing was applied; restore them or restart)"));
  }
  // Each setter takes effect at once; queued jobs and calls under way are
  // kept (a smaller queue.capacity refuses new jobs until the queue is below
  // it).
  flow_->Reconfigure(FlowOptionsFrom(next));
  operations_->SetBusEvents(BusEventsFrom(next));
  subscriptions_->SetBusEvents(BusEventsFrom(next));
  logging::Configure(next.logging);
  reloaded_ = next;
  metrics_->RecordConfigReload(metrics::ReloadResult::kApplied);
  return plan;
}

void GatewayServer::RecordInvalidReload() {
  metrics_->RecordConfigReload(metrics::ReloadResult::kInvalid);
}

}  // namespace bg::gateway
