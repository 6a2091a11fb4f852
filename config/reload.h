// Reload planning: which keys a re-read configuration file changes, and
// whether a running gateway can apply them without a restart (SIGHUP).
//
// Reloadable (the tuning keys): logging.*, queue.capacity,
// queue.max_resident_mb, cost.*, rate.*
// except rate.mode, rate.signal and rate.adjust_interval, and breaker.*.
// Every other key (listen addresses, TLS files, the Kill Bill connection and
// its secrets, the database, the cache, concurrency, health polling, retries,
// deadlines) is fixed for the life of the process: a file that changes one of
// them is refused as a whole, so the running configuration is always one
// file's, never a mix.
//
// Keys are compared on DescribeForLog's lines, so a value is quoted as the
// effective configuration prints it; a secret (printed "<redacted>") that
// changed is reported as "killbill (a secret)" / "database.url (a secret)"
// without its value.
//
// Pure functions over values; thread-safe.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "config/gateway_config.h"

namespace bg::config {

struct ReloadPlan {
  // Every key whose effective value differs, as "key: old -> new" (secrets:
  // "killbill (a secret)"), in DescribeForLog order.
  std::vector<std::string> changes;
  // The keys among them a reload cannot apply ("server.listen"), same order.
  std::vector<std::string> needs_restart;
};

// Whether a running gateway applies `key` ("section.key") on a reload.
bool IsReloadable(std::string_view key);

// What replacing `running` with `next` changes.
ReloadPlan PlanReload(const GatewayConfig& running, const GatewayConfig& next);

}  // namespace bg::config
