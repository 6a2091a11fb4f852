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
  // Only when asked for (accountWithBalanceAndCBA=true): what the account owes
  // and its credit, decimal text ("9.00"); empty otherwise.
  std::string balance;
  std::string credit;
};

// What POST /1.0/kb/subscriptions is sent (a base plan by name). Empty fields
// are left out.
struct NewSubscription {
  std::string account_id;
  std::string plan_name;
  std::string phase_type;           // "TRIAL", "EVERGREEN" or "" (catalog's)
  std::string bundle_external_key;  // the platform's instance id
};

// One entry of a subscription's events[] (the fields the gateway reads).
struct SubscriptionEvent {
  std::string event_type;      // START_ENTITLEMENT, PHASE, STOP_BILLING, ...
  std::string effective_date;  // YYYY-MM-DD
  std::string phase;           // phase name, e.g. "basic-monthly-trial"
};

// A subscription as GET /1.0/kb/subscriptions/{id} answers it. Dates are
// YYYY-MM-DD, empty for Kill Bill's nulls.
struct Subscription {
  std::string subscription_id;
  std::string bundle_id;
  std::string account_id;
  std::string bundle_external_key;
  std::string plan_name;
  std::string product_name;
  std::string product_category;
  std::string billing_period;
  std::string phase_type;  // TRIAL, DISCOUNT, FIXEDTERM, EVERGREEN
  std::string state;       // PENDING, ACTIVE, BLOCKED, CANCELLED, EXPIRED
  std::string start_date;
  std::string cancelled_date;
  std::string charged_through_date;
  std::vector<SubscriptionEvent> events;
};

// A bundle: the subscriptions held under one external key (the platform's
// instance id).
struct Bundle {
  std::string bundle_id;
  std::string account_id;
  std::string external_key;
  std::vector<Subscription> subscriptions;
};

struct CustomField {
  std::string name;
  std::string value;
};

// Amounts are decimal text as Kill Bill sent them.
struct Invoice {
  std::string invoice_id;
  std::string invoice_number;
  std::string invoice_date;
  std::string target_date;
  std::string amount;
  std::string balance;
  std::string currency;
  std::string status;
};

struct PaymentMethod {
  std::string payment_method_id;
  std::string external_key;
  bool is_default = false;
  std::string plugin_name;
};

// One plan of the catalog (GET /1.0/kb/catalog), with the types
// of its phases in order (e.g. {"TRIAL", "EVERGREEN"}).
struct CatalogPlan {
  std::string name;
  std::string product;
  std::string billing_period;
  std::vector<std::string> phase_types;
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
// account creation event; one control-tag creation event per tag; see
// docs/killbill.md for subscriptions). The bus
// drains a fixed number of events per second, so this, not the number of HTTP
// calls, is what a write costs the bus. Configurable (`cost.*`) because another
// Kill Bill version, or plugins listening on the bus, may post more.
struct BusEvents {
  int per_account = 1;
  int per_tag = 1;
  // A base subscription: subscription transition effective + requested, the
  // entitlement-started blocking state, then its first invoice.
  int per_subscription = 4;
  // Each custom field on a subscription (instance_id, metadata).
  int per_custom_field = 1;
  // A cancellation: 2 to 3 events depending on the policy; the larger is
  // charged, so a cancel never overfeeds the bus.
  int per_cancel = 3;
};

// The fixed ids of Kill Bill's system tag definitions.
inline constexpr char kTagAutoPayOff[] = "00000000-0000-0000-0000-000000000001";
inline constexpr char kTagAutoInvoicingOff[] =
    "00000000-0000-0000-0000-000000000002";
inline constexpr char kTagOverdueEnforcementOff[] =
    "00000000-0000-0000-0000-000000000003";
inline constexpr char kTagWrittenOff[] = "00000000-0000-0000-0000-000000000004";

}  // namespace bg::killbill
