// Plain Kill Bill data types shared by the client, its parsers and their
// callers.
//
// Value types only: no I/O, no locking. Field meanings follow Kill Bill's REST
// API (see docs/killbill.md); empty strings stand for Kill Bill's nulls.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace bg::killbill {

// What POST /1.0/kb/accounts is sent. Empty fields are left out of the JSON
// body.
struct NewAccount {
  std::string external_key;
  std::string name;
  std::string email;
  std::string currency;
  std::string company;
  std::string notes;
};

// An account as GET /1.0/kb/accounts answers it (the fields the platform uses).
struct Account {
  std::string account_id;
  std::string external_key;
  std::string name;
  std::string email;
  std::string currency;
  std::string company;
  std::string notes;
  std::string time_zone;
  int bill_cycle_day_local = 0;
};

// One entry of the healthcheck body, e.g. KillbillQueuesHealthcheck.
struct HealthCheckResult {
  std::string name;  // Key as sent: fully qualified or short class name.
  bool healthy = false;
  std::string message;  // Empty when Kill Bill sent none.
};

// GET /1.0/healthcheck, parsed.
struct HealthReport {
  int http_status = 0;
  bool healthy = false;          // HTTP 200 and every check listed healthy.
  bool out_of_rotation = false;  // KillbillHealthcheck says "Out of rotation".
  std::vector<HealthCheckResult> checks;
  // Queue name -> {"growing": bool} detail of KillbillQueuesHealthcheck.
  std::map<std::string, bool> queue_growing;
  // Queue name -> the growth number printed in "Growing queues: bus (0.51)".
  // Only queues named in the message appear. The number is backlog growth in
  // entries per 100 ms (0.51 = about 5.1 entries/s); see docs/killbill.md.
  std::map<std::string, double> queue_growth;
};

// GET /1.0/metrics (Kill Bill's Dropwizard registry), the main bus's two
// counters since Kill Bill started: events posted
// (org.killbill.queue.DBBackedQueue.bus_events.rawInsertEntryTime, count) and
// events dispatched to their handlers
// (org.killbill.bus.DefaultPersistentBus.bus_events.busHandlersProcessingTime,
// count). posted - dispatched is the bus backlog; while a backlog exists the
// dispatch rate is the bus's capacity. See docs/killbill.md.
struct BusCounters {
  // False when Kill Bill serves no metrics: 404 (no metrics servlet) or every
  // section empty (the killbill-metrics bundle is not installed).
  bool present = false;
  // A timer appears only after its first update: absent counts as 0.
  int64_t posted = 0;
  int64_t dispatched = 0;
};

// Main-bus events Kill Bill posts per write (read from Kill Bill 0.24: the
// account creation event; one control-tag creation event per tag). The bus
// drains a fixed number of events per second, so this, not the number of HTTP
// calls, is what a write costs the bus. Configurable (`cost.*`) because another
// Kill Bill version, or plugins listening on the bus, may post more.
struct BusEvents {
  int per_account = 1;
  int per_tag = 1;
};

// The fixed ids of Kill Bill's system tag definitions.
inline constexpr char kTagAutoPayOff[] = "00000000-0000-0000-0000-000000000001";
inline constexpr char kTagAutoInvoicingOff[] =
    "00000000-0000-0000-0000-000000000002";
inline constexpr char kTagOverdueEnforcementOff[] =
    "00000000-0000-0000-0000-000000000003";
inline constexpr char kTagWrittenOff[] = "00000000-0000-0000-0000-000000000004";

}  // namespace bg::killbill
