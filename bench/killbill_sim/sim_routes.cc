#include "bench/killbill_sim/sim_routes.h"

#include <algorithm>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/time/civil_time.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "bench/killbill_sim/account_store.h"
#include "bench/killbill_sim/killbill_sim.h"
#include "bench/killbill_sim/sim_catalog.h"
#include "bench/killbill_sim/sim_http_server.h"
#include "bench/killbill_sim/sim_options_json.h"
#include "bench/killbill_sim/subscription_store.h"
#include "httplib.h"
#include "nlohmann/json.hpp"

namespace bg::sim {
namespace {

using Json = nlohmann::json;
using OJson = nlohmann::ordered_json;

constexpr char kJson[] = "application/json";
constexpr char kAccountApiException[] =
    "org.killbill.billing.account.api.AccountApiException";
constexpr char kIllegalArgument[] = "java.lang.IllegalArgumentException";
constexpr char kJsonParseException[] =
    "com.fasterxml.jackson.core.JsonParseException";
constexpr char kObjectDoesNotExist[] =
    "org.killbill.billing.callcontext.InternalCallContextFactory$"
    "ObjectDoesNotExist";
// Subscription errors, by the class Kill Bill's exception mappers serialize
// (jaxrs/mappers): creation errors surface as the subscription base's cause,
// reads as SubscriptionApiException, cancellations as EntitlementApiException.
constexpr char kSubscriptionBaseApiException[] =
    "org.killbill.billing.subscription.api.user.SubscriptionBaseApiException";
constexpr char kSubscriptionApiException[] =
    "org.killbill.billing.entitlement.api.SubscriptionApiException";
constexpr char kEntitlementApiException[] =
    "org.killbill.billing.entitlement.api.EntitlementApiException";
constexpr char kCatalogApiException[] =
    "org.killbill.billing.catalog.api.CatalogApiException";
constexpr char kCustomFieldApiException[] =
    "org.killbill.billing.util.api.CustomFieldApiException";
// Kill Bill's ErrorCode values (killbill-api).
constexpr int kAccountDoesNotExistForId = 3002;
constexpr int kSubCreateBadPhase = 1011;
constexpr int kSubCreateActiveBundleKeyExists = 1014;
constexpr int kSubCreateBpExists = 1015;
constexpr int kSubCancelBadState = 1031;
constexpr int kSubInvalidSubscriptionId = 1082;
constexpr int kSubGetInvalidBundleKey = 1084;
constexpr int kCatNoSuchPlan = 2021;
constexpr int kCustomFieldAlreadyExists = 9000;
// The catalog's only price list.
constexpr char kDefaultPriceList[] = "DEFAULT";
constexpr char kQueuesCheck[] =
    "org.killbill.billing.server.healthchecks.KillbillQueuesHealthcheck";
// What Dropwizard's servlets send so that nothing caches a reading.
constexpr char kNoCache[] = "must-revalidate,no-cache,no-store";
// Kill Bill's error body; nulls are written out.
std::string ErrorBody(const std::string& class_name, const Json& code,
                      const std::string& message) {
  OJson body;
  body["className"] = class_name;
  body["code"] = code;
  body["message"] = message;
  body["causeClassName"] = nullptr;
  body["causeMessage"] = nullptr;
  body["stackTrace"] = Json::array();
  return body.dump();
}

void SendError(httplib::Response& res, int status,
               const std::string& class_name, const Json& code,
               const std::string& message) {
  res.status = status;
  res.set_content(ErrorBody(class_name, code, message), kJson);
}

// The servlet container's HTML error page (Tomcat 9 layout).
void SendHtmlError(httplib::Response& res, int status,
                   const std::string& reason, const std::string& message) {
  res.status = status;
  res.set_content(
      absl::StrCat(
          "<!doctype html><html lang=\"en\"><head><title>HTTP Status ", status,
          " \xE2\x80\x93 ", reason, "</title></head><body><h1>HTTP Status ",
          status, " \xE2\x80\x93 ", reason,
          "</h1><hr class=\"line\" /><p><b>Type</b> Status Report</p><p><b>"
          "Message</b> ",
          message,
          "</p><hr class=\"line\" /><h3>Apache "
          "Tomcat/9.0.54</h3></body></html>"),
      "text/html;charset=utf-8");
}

// Every unhealthy result carries this, exception or not (a Kill Bill quirk).
OJson ThrowableQuirk(const char* check_class) {
  const std::string frame =
      absl::StrCat(check_class, ".check(", check_class, ".java)");
  OJson cause;
  cause["type"] = "java.lang.Throwable";
  cause["message"] = nullptr;
  cause["stack"] = Json::array({frame});
  OJson error;
  error["type"] = "java.lang.Throwable";
  error["message"] = "java.lang.Throwable";
  error["stack"] = Json::array({frame});
  error["cause"] = cause;
  return error;
}

bool ParamIsTrue(const httplib::Request& req, const char* name) {
  return req.has_param(name) && req.get_param_value(name) == "true";
}

// What Kill Bill's call context factory throws for an unknown object id.
void SendObjectDoesNotExist(httplib::Response& res, const std::string& id,
                            const char* type) {
  SendError(res, 404, kObjectDoesNotExist, nullptr,
            absl::StrCat("Object id=", id, " type=", type, " doesn't exist!"));
}

void SendAccountNotFound(httplib::Response& res, const std::string& id) {
  SendObjectDoesNotExist(res, id, "ACCOUNT");
}

void SendSubscriptionNotFound(httplib::Response& res, const char* class_name,
                              const std::string& id) {
  SendError(res, 404, class_name, kSubInvalidSubscriptionId,
            "Unknown subscription matching id " + id);
}

// A JSON request body; on a parse error sends Kill Bill's 400 and returns
// false. An empty body parses as null.
bool ParseBody(const httplib::Request& req, httplib::Response& res,
               Json* body) {
  try {
    *body = req.body.empty() ? Json() : Json::parse(req.body);
    return true;
  } catch (const Json::exception& e) {
    SendError(res, 400, kJsonParseException, nullptr, e.what());
    return false;
  }
}

// A string member of a JSON object, "" when absent, null or not a string.
std::string TextField(const Json& object, const char* name) {
  if (!object.is_object()) return "";
  auto it = object.find(name);
  return it != object.end() && it->is_string() ? it->get<std::string>()
                                               : std::string();
}

// Today in UTC: Kill Bill's subscriptions start on the calendar day of the
// call (accounts in UTC, as SaaSOdoo's are).
absl::CivilDay Today() {
  return absl::ToCivilDay(absl::Now(), absl::UTCTimeZone());
}

std::string Day(absl::CivilDay day) { return absl::FormatCivilTime(day); }

// The fields Kill Bill returns for an account, in its order, from a creation
// body: what the client sent, or Kill Bill's default. accountId and
// externalKey hold their places; RenderAccount fills them in.
OJson AccountFields(const Json& body) {
  OJson a;
  auto copy = [&](const char* name, const Json& fallback) {
    auto it = body.find(name);
    a[name] = it != body.end() && !it->is_null() ? *it : fallback;
  };
  a["accountId"] = nullptr;
  copy("name", nullptr);
  copy("firstNameLength", nullptr);
  a["externalKey"] = nullptr;
  copy("email", nullptr);
  copy("billCycleDayLocal", 0);
  copy("currency", nullptr);
  copy("parentAccountId", nullptr);
  copy("isPaymentDelegatedToParent", false);
  copy("paymentMethodId", nullptr);
  copy("referenceTime", absl::FormatTime("%Y-%m-%dT%H:%M:%E3SZ", absl::Now(),
                                         absl::UTCTimeZone()));
  copy("timeZone", "UTC");
  for (const char* field :
       {"address1", "address2", "postalCode", "company", "city", "state",
        "country", "locale", "phone", "notes"}) {
    copy(field, nullptr);
  }
  copy("isMigrated", false);
  return a;
}

bool WithBalance(const httplib::Request& req) {
  return ParamIsTrue(req, "accountWithBalance") ||
         ParamIsTrue(req, "accountWithBalanceAndCBA");
}

// `balance`: the account's, used only when the request asks for it.
OJson RenderAccount(const SimAccount& account, const httplib::Request& req,
                    double balance) {
  OJson out = account.fields;
  out["accountId"] = account.id;
  out["externalKey"] = account.external_key;
  const bool with_cba = ParamIsTrue(req, "accountWithBalanceAndCBA");
  out["accountBalance"] = WithBalance(req) ? Json(balance) : Json(nullptr);
  out["accountCBA"] = with_cba ? Json(0) : Json(nullptr);
  out["auditLogs"] = Json::array();
  return out;
}

// ---------------------------------------------------------------------------------------
// Catalog, subscriptions, bundles, custom fields and invoices: Kill Bill's
// JSON classes (jaxrs/json), fields in their order, nulls written out.

OJson Price(double value) {
  return OJson{{"currency", SaasOdooCatalog().currency}, {"value", value}};
}

// CatalogJson.PhaseJson.
OJson RenderPhase(const CatalogPlan& plan, bool trial) {
  OJson phase;
  phase["type"] = trial ? "TRIAL" : "EVERGREEN";
  phase["prices"] =
      trial ? OJson::array() : OJson::array({Price(plan.recurring_price)});
  phase["fixedPrices"] = trial ? OJson::array({Price(0)}) : OJson::array();
  phase["duration"] = trial
                          ? OJson{{"unit", "DAYS"}, {"number", plan.trial_days}}
                          : OJson{{"unit", "UNLIMITED"}, {"number", -1}};
  phase["usages"] = OJson::array();
  return phase;
}

// GET /1.0/kb/catalog: a list of CatalogJson, one per catalog version.
OJson RenderCatalog() {
  const SimCatalog& catalog = SaasOdooCatalog();
  OJson products = OJson::array();
  OJson plan_names = OJson::array();
  for (const std::string& product_name : catalog.products) {
    OJson product;
    product["type"] = "BASE";
    product["name"] = product_name;
    product["prettyName"] = product_name;
    OJson plans = OJson::array();
    for (const CatalogPlan& plan : catalog.plans) {
      if (plan.product != product_name) continue;
      OJson p;
      p["name"] = plan.name;
      p["prettyName"] = plan.name;
      p["recurringBillingMode"] = "IN_ADVANCE";
      p["billingPeriod"] = plan.billing_period;
      OJson phases = OJson::array();
      if (plan.has_trial()) phases.push_back(RenderPhase(plan, true));
      phases.push_back(RenderPhase(plan, false));
      p["phases"] = phases;
      plans.push_back(p);
      plan_names.push_back(plan.name);
    }
    product["plans"] = plans;
    product["included"] = OJson::array();
    product["available"] = OJson::array();
    products.push_back(product);
  }
  OJson out;
  out["name"] = catalog.name;
  out["effectiveDate"] = catalog.effective_date;
  out["currencies"] = OJson::array({catalog.currency});
  out["units"] = OJson::array();
  out["products"] = products;
  out["priceLists"] =
      OJson::array({OJson{{"name", kDefaultPriceList}, {"plans", plan_names}}});
  return OJson::array({out});
}

// Kill Bill's SubscriptionEventJson service name and state per event type.
std::pair<const char*, const char*> EventService(const std::string& type) {
  if (type == "START_ENTITLEMENT")
    return {"entitlement-service", "ENT_STARTED"};
  if (type == "STOP_ENTITLEMENT")
    return {"entitlement-service", "ENT_CANCELLED"};
  if (type == "START_BILLING") return {"billing-service", "START_BILLING"};
  if (type == "STOP_BILLING") return {"billing-service", "STOP_BILLING"};
  return {"entitlement+billing-service", "PHASE"};
}

// PhasePriceJson: one per phase of the plan.
OJson RenderPrices(const CatalogPlan& plan) {
  OJson prices = OJson::array();
  auto add = [&](const std::string& phase_name, const char* type,
                 const Json& fixed, const Json& recurring) {
    OJson p;
    p["planName"] = plan.name;
    p["phaseName"] = phase_name;
    p["phaseType"] = type;
    p["fixedPrice"] = fixed;
    p["recurringPrice"] = recurring;
    p["usagePrices"] = OJson::array();
    prices.push_back(p);
  };
  if (plan.has_trial()) add(plan.TrialPhaseName(), "TRIAL", 0, nullptr);
  add(plan.EvergreenPhaseName(), "EVERGREEN", nullptr, plan.recurring_price);
  return prices;
}

OJson RenderSubscription(const SimSubscription& s, absl::CivilDay today) {
  const CatalogPlan& plan = s.plan;
  OJson out;
  out["accountId"] = s.account_id;
  out["bundleId"] = s.bundle_id;
  out["subscriptionId"] = s.id;
  out["externalKey"] = s.external_key;
  out["bundleExternalKey"] = s.bundle_external_key;
  out["startDate"] = Day(s.start);
  out["productName"] = plan.product;
  out["productCategory"] = "BASE";
  out["billingPeriod"] = plan.billing_period;
  out["phaseType"] = s.InTrialOn(today) ? "TRIAL" : "EVERGREEN";
  out["priceList"] = kDefaultPriceList;
  out["planName"] = plan.name;
  out["state"] = s.CancelledOn(today) ? "CANCELLED" : "ACTIVE";
  out["sourceType"] = "NATIVE";
  out["cancelledDate"] = s.cancelled ? Json(Day(*s.cancelled)) : Json();
  out["chargedThroughDate"] = Day(s.charged_through);
  out["billingStartDate"] = Day(s.start);
  out["billingEndDate"] = s.cancelled ? Json(Day(*s.cancelled)) : Json();
  out["billCycleDayLocal"] = s.evergreen_start.day();
  out["quantity"] = 1;
  OJson events = OJson::array();
  for (const SimSubscriptionEvent& e : s.events) {
    const auto [service, state] = EventService(e.type);
    OJson event;
    event["eventId"] = e.id;
    event["billingPeriod"] = plan.billing_period;
    event["effectiveDate"] = Day(e.effective);
    event["catalogEffectiveDate"] = SaasOdooCatalog().effective_date;
    event["plan"] = plan.name;
    event["product"] = plan.product;
    event["priceList"] = kDefaultPriceList;
    event["eventType"] = e.type;
    event["isBlockedBilling"] = e.type == "STOP_BILLING";
    event["isBlockedEntitlement"] = e.type == "STOP_ENTITLEMENT";
    event["serviceName"] = service;
    event["serviceStateName"] = state;
    event["phase"] = e.phase;
    event["auditLogs"] = OJson::array();
    events.push_back(event);
  }
  out["events"] = events;
  out["prices"] = RenderPrices(plan);
  out["priceOverrides"] = OJson::array();
  out["auditLogs"] = OJson::array();
  return out;
}

// BundleJson.
OJson RenderBundle(const SimBundleView& view, absl::CivilDay today) {
  OJson out;
  out["accountId"] = view.bundle.account_id;
  out["bundleId"] = view.bundle.id;
  out["externalKey"] = view.bundle.external_key;
  OJson subscriptions = OJson::array();
  for (const SimSubscription& s : view.subscriptions) {
    subscriptions.push_back(RenderSubscription(s, today));
  }
  out["subscriptions"] = subscriptions;
  out["timeline"] = nullptr;
  out["auditLogs"] = OJson::array();
  return out;
}

OJson RenderBundles(const std::vector<SimBundleView>& bundles) {
  const absl::CivilDay today = Today();
  OJson out = OJson::array();
  for (const SimBundleView& view : bundles) {
    out.push_back(RenderBundle(view, today));
  }
  return out;
}

// InvoiceJson with its InvoiceItemJson items.
OJson RenderInvoice(const SimInvoice& invoice) {
  OJson items = OJson::array();
  for (const SimInvoiceItem& item : invoice.items) {
    OJson i;
    i["invoiceItemId"] = item.id;
    i["invoiceId"] = invoice.id;
    i["linkedInvoiceItemId"] = nullptr;
    i["accountId"] = invoice.account_id;
    i["childAccountId"] = nullptr;
    i["bundleId"] = invoice.bundle_id;
    i["subscriptionId"] = invoice.subscription_id;
    i["productName"] = invoice.product;
    i["planName"] = invoice.plan_name;
    i["phaseName"] = item.phase;
    i["usageName"] = nullptr;
    i["prettyProductName"] = invoice.product;
    i["prettyPlanName"] = invoice.plan_name;
    i["prettyPhaseName"] = item.phase;
    i["prettyUsageName"] = nullptr;
    i["itemType"] = item.type;
    i["description"] = item.phase;
    i["startDate"] = Day(item.start);
    i["endDate"] = item.end ? Json(Day(*item.end)) : Json();
    i["amount"] = item.amount;
    i["rate"] = item.type == "RECURRING" ? Json(item.amount) : Json();
    i["currency"] = invoice.currency;
    i["quantity"] = nullptr;
    i["itemDetails"] = nullptr;
    i["catalogEffectiveDate"] = SaasOdooCatalog().effective_date;
    i["childItems"] = nullptr;
    i["auditLogs"] = OJson::array();
    items.push_back(i);
  }
  OJson out;
  out["amount"] = invoice.amount;
  out["currency"] = invoice.currency;
  out["status"] = "COMMITTED";
  out["creditAdj"] = 0.0;
  out["refundAdj"] = 0.0;
  out["invoiceId"] = invoice.id;
  out["invoiceDate"] = Day(invoice.date);
  out["targetDate"] = Day(invoice.date);
  out["invoiceNumber"] = std::to_string(invoice.number);
  out["balance"] = invoice.balance;
  out["accountId"] = invoice.account_id;
  out["bundleKeys"] = invoice.bundle_external_key;
  out["credits"] = OJson::array();
  out["items"] = items;
  out["trackingIds"] = OJson::array();
  out["isParentInvoice"] = false;
  out["parentInvoiceId"] = nullptr;
  out["parentAccountId"] = nullptr;
  out["auditLogs"] = OJson::array();
  return out;
}

// CustomFieldJson, on a subscription.
OJson RenderCustomField(const std::string& object_id,
                        const SimCustomField& field) {
  OJson out;
  out["customFieldId"] = field.id;
  out["objectId"] = object_id;
  out["objectType"] = "SUBSCRIPTION";
  out["name"] = field.name;
  out["value"] = field.value;
  out["auditLogs"] = OJson::array();
  return out;
}

// ---------------------------------------------------------------------------------------
// GET /1.0/metrics: Dropwizard's MetricRegistry as metrics-json 4.0 writes it.

constexpr char kMetricsJsonVersion[] = "4.0.0";
// Kill Bill's bus timers (killbill_sim.h) and the sim's own counter.
constexpr char kBusInsertTimer[] =
    "org.killbill.queue.DBBackedQueue.bus_events.rawInsertEntryTime";
constexpr char kBusHandlerTimer[] =
    "org.killbill.bus.DefaultPersistentBus.bus_events."
    "busHandlersProcessingTime";
constexpr char kExtBusInsertTimer[] =
    "org.killbill.queue.DBBackedQueue.bus_ext_events.rawInsertEntryTime";
constexpr char kExtBusHandlerTimer[] =
    "org.killbill.bus.DefaultPersistentBus.bus_ext_events."
    "busHandlersProcessingTime";
constexpr char kSimRequestsCounter[] = "org.killbill.sim.requests";

// The registry with no metric: sections in Dropwizard's order.
OJson EmptyRegistry() {
  OJson registry;
  registry["version"] = kMetricsJsonVersion;
  for (const char* section :
       {"gauges", "counters", "histograms", "meters", "timers"}) {
    registry[section] = OJson::object();
  }
  return registry;
}

// A timer whose every recorded duration is `seconds` (so stddev 0).
OJson TimerJson(const EwmaMeter::Rates& rates, double seconds) {
  OJson t;
  t["count"] = rates.count;
  for (const char* field :
       {"max", "mean", "min", "p50", "p75", "p95", "p98", "p99", "p999"}) {
    t[field] = seconds;
  }
  t["stddev"] = 0.0;
  t["m15_rate"] = rates.m15_rate;
  t["m1_rate"] = rates.m1_rate;
  t["m5_rate"] = rates.m5_rate;
  t["mean_rate"] = rates.mean_rate;
  t["duration_units"] = "seconds";
  t["rate_units"] = "calls/second";
  return t;
}

// ---------------------------------------------------------------------------------------
// /sim/ bodies.

OJson FaultStateToJson(const FaultState& f) {
  OJson j;
  j["outage"] = f.outage == OutageMode::kNone ? Json(nullptr)
                                              : Json(OutageModeName(f.outage));
  j["outage_remaining_s"] = f.outage_remaining_s;
  j["stall_remaining_s"] = f.stall_remaining_s;
  j["error_rate"] = f.error_rate;
  j["garbage_rate"] = f.garbage_rate;
  j["reset_rate"] = f.reset_rate;
  j["hold_created_remaining_s"] = f.hold_created_remaining_s;
  j["holding_now"] = f.holding_now;
  j["held_total"] = f.held_total;
  OJson held = OJson::object();
  for (const auto& [key, h] : f.held_keys) {
    held[key] = OJson{{"conflicts_after", h.conflicts_after}};
  }
  j["held_keys"] = held;
  return j;
}

OJson StatsToJson(const SimStats& stats) {
  OJson s;
  s["uptime_s"] = stats.uptime_s;
  s["accounts_created"] = stats.accounts_created;
  s["accounts_total"] = stats.accounts_total;
  s["conflicts_409"] = stats.conflicts_409;
  s["tag_calls_ok"] = stats.tag_calls_ok;
  s["subscriptions_total"] = stats.subscriptions_total;
  s["in_flight"] = stats.in_flight;
  s["busy_threads"] = stats.busy_threads;
  s["in_service"] = stats.in_service;
  s["bus_backlog"] = stats.bus_backlog;
  s["bus_backlog_exact"] = stats.bus_backlog_exact;
  s["bus_posted_total"] = stats.bus_posted_total;
  s["bus_drained_total"] = stats.bus_drained_total;
  s["bus_dispatched_total"] = stats.bus_dispatched_total;
  s["capacity_factor"] = stats.capacity_factor;
  s["effective_capacity"] = stats.effective_capacity;
  s["healthcheck_calls"] = stats.healthcheck_calls;
  s["healthcheck_unhealthy_total"] = stats.healthcheck_unhealthy_total;
  s["healthcheck_last_message"] = stats.healthcheck_last_message;
  s["bus_slope_last"] = stats.bus_slope_last;
  s["healthcheck_window_points"] = stats.healthcheck_window_points;
  s["in_rotation"] = stats.in_rotation;
  s["connections_rejected"] = stats.connections_rejected;
  s["aborted_calls"] = stats.aborted_calls;
  s["probe_phase"] = stats.probe_phase;
  s["probe_calls"] = stats.probe_calls;
  s["probe_failures"] = stats.probe_failures;
  s["probe_timeouts"] = stats.probe_timeouts;
  s["probe_unready_periods"] = stats.probe_unready_periods;
  s["probe_unready_seconds"] = stats.probe_unready_seconds;
  s["probe_restarts"] = stats.probe_restarts;
  s["probe_restart_at_s"] = stats.probe_restart_at_s;
  OJson intervals = OJson::array();
  for (const auto& [start, end] : stats.probe_unready_intervals_s) {
    intervals.push_back(OJson::array({start, end}));
  }
  s["probe_unready_intervals_s"] = intervals;
  OJson requests = OJson::object();
  for (const auto& [label, outcomes] : stats.requests) {
    OJson by_outcome = OJson::object();
    for (const auto& [outcome, count] : outcomes) by_outcome[outcome] = count;
    requests[label] = by_outcome;
  }
  s["requests"] = requests;
  s["settings"] = SimOptionsToJson(stats.settings);
  s["faults"] = FaultStateToJson(stats.faults);
  return s;
}

// The body of POST /sim/faults. Unknown keys and wrong types are errors;
// ranges are SimFaults::Apply's to check.
absl::StatusOr<FaultRequest> ParseFaultRequest(const Json& faults) {
  if (!faults.is_object()) {
    return absl::InvalidArgumentError("faults must be a JSON object");
  }
  FaultRequest request;
  try {
    for (const auto& [key, value] : faults.items()) {
      if (key == "clear") {
        request.clear = value.get<bool>();
      } else if (key == "outage") {
        const std::string outage = value.get<std::string>();
        if (outage == "refuse") {
          request.outage = OutageMode::kRefuse;
        } else if (outage == "503") {
          request.outage = OutageMode::k503;
        } else if (!outage.empty()) {
          return absl::InvalidArgumentError(
              "outage must be \"refuse\" or \"503\"");
        }
      } else if (key == "outage_seconds") {
        request.outage_seconds = value.get<double>();
      } else if (key == "stall_seconds") {
        request.stall_seconds = value.get<double>();
      } else if (key == "error_rate") {
        request.error_rate = value.get<double>();
      } else if (key == "garbage_rate") {
        request.garbage_rate = value.get<double>();
      } else if (key == "reset_rate") {
        request.reset_rate = value.get<double>();
      } else if (key == "hold_created_seconds") {
        request.hold_created_seconds = value.get<double>();
      } else {
        return absl::InvalidArgumentError("unknown fault '" + key + "'");
      }
    }
  } catch (const Json::exception& e) {  // a value of the wrong type
    return absl::InvalidArgumentError(e.what());
  }
  return request;
}

// A /sim/ control body: empty = {}. On a parse error fills `res` (400) and
// returns false.
bool ParseControlBody(const httplib::Request& req, httplib::Response& res,
                      Json* parsed) {
  try {
    *parsed = req.body.empty() ? Json::object() : Json::parse(req.body);
    return true;
  } catch (const Json::exception& e) {
    res.status = 400;
    res.set_content(OJson{{"error", e.what()}}.dump(), kJson);
    return false;
  }
}

void SendControlError(httplib::Response& res, const absl::Status& status) {
  res.status = 400;
  res.set_content(OJson{{"error", std::string(status.message())}}.dump(),
                  kJson);
}

}  // namespace

// ---------------------------------------------------------------------------------------
// Routing and the per-call envelope.

void SimRoutes::Register(httplib::Server& s) {
  using httplib::Request;
  using httplib::Response;
  // Anything unknown: counted, then Jersey's bare 404.
  auto not_found = [this](const Request&, Response& res) {
    res.status = 404;
    sim_.CountRequest("other", "404");
  };
  // Kill Bill's routes: method, path pattern, the label /sim/stats counts it
  // under, the handler. Kill Bill 0.24 serves the JSON catalog at
  // /1.0/kb/catalog (what its official clients call); /catalog/simpleCatalog
  // is the older path, kept for clients written against it. Same body.
  using Handler = void (SimRoutes::*)(const Request&, Response&);
  struct Route {
    const char* method;
    const char* pattern;
    const char* label;
    Handler handler;
  };
  static constexpr Route kRoutes[] = {
      {"POST", "/1.0/kb/accounts", "POST /1.0/kb/accounts",
       &SimRoutes::CreateAccount},
      {"GET", "/1.0/kb/accounts", "GET /1.0/kb/accounts",
       &SimRoutes::GetAccountByKey},
      {"GET", R"(/1.0/kb/accounts/([^/]+))", "GET /1.0/kb/accounts/{id}",
       &SimRoutes::GetAccount},
      {"POST", R"(/1.0/kb/accounts/([^/]+)/tags)",
       "POST /1.0/kb/accounts/{id}/tags", &SimRoutes::AddTags},
      {"GET", R"(/1.0/kb/accounts/([^/]+)/tags)",
       "GET /1.0/kb/accounts/{id}/tags", &SimRoutes::GetTags},
      {"GET", R"(/1.0/kb/accounts/([^/]+)/bundles)",
       "GET /1.0/kb/accounts/{id}/bundles", &SimRoutes::GetAccountBundles},
      {"GET", R"(/1.0/kb/accounts/([^/]+)/invoices)",
       "GET /1.0/kb/accounts/{id}/invoices", &SimRoutes::GetAccountInvoices},
      {"GET", R"(/1.0/kb/accounts/([^/]+)/paymentMethods)",
       "GET /1.0/kb/accounts/{id}/paymentMethods",
       &SimRoutes::GetPaymentMethods},
      {"POST", "/1.0/kb/subscriptions", "POST /1.0/kb/subscriptions",
       &SimRoutes::CreateSubscription},
      {"GET", R"(/1.0/kb/subscriptions/([^/]+))",
       "GET /1.0/kb/subscriptions/{id}", &SimRoutes::GetSubscription},
      {"DELETE", R"(/1.0/kb/subscriptions/([^/]+))",
       "DELETE /1.0/kb/subscriptions/{id}", &SimRoutes::CancelSubscription},
      {"POST", R"(/1.0/kb/subscriptions/([^/]+)/customFields)",
       "POST /1.0/kb/subscriptions/{id}/customFields",
       &SimRoutes::AddCustomFields},
      {"GET", R"(/1.0/kb/subscriptions/([^/]+)/customFields)",
       "GET /1.0/kb/subscriptions/{id}/customFields",
       &SimRoutes::GetCustomFields},
      {"GET", "/1.0/kb/bundles", "GET /1.0/kb/bundles",
       &SimRoutes::GetBundlesByKey},
      {"GET", "/1.0/kb/catalog", "GET /1.0/kb/catalog", &SimRoutes::GetCatalog},
      {"GET", "/1.0/kb/catalog/simpleCatalog",
       "GET /1.0/kb/catalog/simpleCatalog", &SimRoutes::GetCatalog},
      {"GET", "/1.0/healthcheck", "GET /1.0/healthcheck",
       &SimRoutes::Healthcheck},
      {"DELETE", "/1.0/kb/admin/healthcheck",
       "DELETE /1.0/kb/admin/healthcheck", &SimRoutes::TakeOutOfRotation},
      {"PUT", "/1.0/kb/admin/healthcheck", "PUT /1.0/kb/admin/healthcheck",
       &SimRoutes::PutInRotation},
  };
  for (const Route& r : kRoutes) {
    auto serve = [this, r](const Request& req, Response& res) {
      Serve(r.label, req, res, true, [&] { (this->*r.handler)(req, res); });
    };
    const std::string method = r.method;
    if (method == "GET") s.Get(r.pattern, serve);
    if (method == "POST") s.Post(r.pattern, serve);
    if (method == "PUT") s.Put(r.pattern, serve);
    if (method == "DELETE") s.Delete(r.pattern, serve);
  }
  s.Get("/1.0/metrics", [this, not_found](const Request& req, Response& res) {
    // A Kill Bill without the metrics servlet: an unknown path.
    if (sim_.options().metrics == MetricsMode::kAbsent) {
      not_found(req, res);
      return;
    }
    Serve("GET /1.0/metrics", req, res, true, [&] { Metrics(req, res); });
  });

  RegisterControl(s);

  s.Get(".*", not_found);
  s.Post(".*", not_found);
  s.Put(".*", not_found);
  s.Delete(".*", not_found);
}

void SimRoutes::RegisterControl(httplib::Server& s) {
  using httplib::Request;
  using httplib::Response;
  s.Get("/sim/stats",
        [this](const Request&, Response& res) { SimStatsRoute(res); });
  s.Post("/sim/config", [this](const Request& req, Response& res) {
    SimConfigRoute(req, res);
  });
  s.Post("/sim/faults", [this](const Request& req, Response& res) {
    SimFaultsRoute(req, res);
  });
}

bool SimRoutes::CheckAuth(const httplib::Request& req, httplib::Response& res,
                          bool tenant, bool created_by) {
  const SimOptions options = sim_.options();
  const std::string& user = options.user;
  const std::string& password = options.password;
  const std::string& api_key = options.api_key;
  const std::string& api_secret = options.api_secret;
  const std::string expected =
      "Basic " + absl::Base64Escape(user + ":" + password);
  const std::string got = req.get_header_value("Authorization");
  bool authorized = got == expected;
  if (!authorized && absl::StartsWithIgnoreCase(got, "basic ")) {
    std::string decoded;
    authorized = absl::Base64Unescape(got.substr(6), &decoded) &&
                 decoded == user + ":" + password;
  }
  if (!authorized) {
    res.set_header("WWW-Authenticate", "BASIC realm=\"application\"");
    SendHtmlError(res, 401, "Unauthorized",
                  "The request has not been applied because it lacks valid "
                  "authentication "
                  "credentials for the target resource.");
    return false;
  }
  if (tenant) {
    if (!req.has_header("X-Killbill-ApiKey") ||
        !req.has_header("X-Killbill-ApiSecret")) {
      SendHtmlError(res, 401, "Unauthorized",
                    "Make sure to set the X-Killbill-ApiKey and "
                    "X-Killbill-ApiSecret headers");
      return false;
    }
    if (req.get_header_value("X-Killbill-ApiKey") != api_key ||
        req.get_header_value("X-Killbill-ApiSecret") != api_secret) {
      SendHtmlError(res, 401, "Unauthorized",
                    absl::StrCat("Unable to find tenant for apiKey=",
                                 req.get_header_value("X-Killbill-ApiKey")));
      return false;
    }
  }
  if (created_by && !req.has_header("X-Killbill-CreatedBy")) {
    SendError(res, 400, kIllegalArgument, nullptr,
              "Header X-Killbill-CreatedBy needs to be set");
    return false;
  }
  return true;
}

std::string SimRoutes::Location(const httplib::Request& req,
                                const std::string& path) const {
  if (!sim_.options().location_full_url) return path;
  std::string host = req.get_header_value("Host");
  if (host.empty()) host = absl::StrCat(req.local_addr, ":", req.local_port);
  return absl::StrCat("http://", host, path);
}

void SimRoutes::Serve(const char* label, const httplib::Request& req,
                      httplib::Response& res, bool needs_thread,
                      const std::function<void()>& handler) {
  const KillBillSim::Admission admission = sim_.Admit(needs_thread);
  bool aborted = admission.verdict == KillBillSim::Verdict::kAborted;
  std::string outcome;
  switch (admission.verdict) {
    case KillBillSim::Verdict::kRespond503:
      res.status = 503;
      res.set_content("Service Unavailable", "text/plain");
      break;
    case KillBillSim::Verdict::kError500:
      SendError(res, 500, "java.lang.RuntimeException", nullptr,
                "killbill-sim injected error");
      break;
    case KillBillSim::Verdict::kGarbage:
      res.status = 200;
      res.set_content("}{ killbill-sim garbage \x01\x02 <html>", kJson);
      outcome = "garbage";
      break;
    case KillBillSim::Verdict::kAborted:
      break;
    case KillBillSim::Verdict::kServe:
      handler();
      // The handler's work may have been abandoned by an outage (RunJob marks
      // the connection to be reset).
      if (CurrentConnection() != nullptr && CurrentConnection()->reset) {
        aborted = true;
      }
      break;
  }
  if (aborted || admission.reset_after) {
    if (ConnectionContext* connection = CurrentConnection()) {
      connection->reset = true;
    }
    outcome = aborted ? "aborted" : "reset";
  }
  if (outcome.empty()) outcome = std::to_string(res.status);
  sim_.Finish(admission, label, outcome, aborted);
}

// ---------------------------------------------------------------------------------------
// Kill Bill endpoints.

void SimRoutes::CreateAccount(const httplib::Request& req,
                              httplib::Response& res) {
  if (!CheckAuth(req, res, true, true)) return;
  if (req.body.empty()) {
    SendError(res, 400, kIllegalArgument, nullptr,
              "AccountJson body should be specified");
    return;
  }
  Json body;
  try {
    body = Json::parse(req.body);
  } catch (const Json::exception& e) {
    SendError(res, 400, "com.fasterxml.jackson.core.JsonParseException",
              nullptr, e.what());
    return;
  }
  if (!body.is_object()) {
    SendError(res, 400, kIllegalArgument, nullptr,
              "AccountJson body should be specified");
    return;
  }
  auto text_field = [&body](const char* name) -> std::string {
    auto it = body.find(name);
    return it != body.end() && it->is_string() ? it->get<std::string>()
                                               : std::string();
  };
  SimAccount account;
  account.external_key = text_field("externalKey");
  if (account.external_key.size() > 255) {
    SendError(res, 400, kAccountApiException, 5,
              "External key exceeded 255 characters");
    return;
  }

  if (!sim_.RunJob(KillBillSim::Work::kCreate)) return;

  account.id = text_field("accountId");
  account.fields = AccountFields(body);
  const std::string key = account.external_key;
  absl::StatusOr<std::string> id = sim_.CreateAccount(std::move(account));
  if (!id.ok()) {  // AlreadyExists: the message is the key
    SendError(
        res, 409, kAccountApiException, 3000,
        "Account already exists for key " + std::string(id.status().message()));
    return;
  }
  if (!sim_.HoldCreated(key)) {
    if (ConnectionContext* connection = CurrentConnection()) {
      connection->reset = true;
    }
    return;
  }
  res.status = 201;
  res.set_header("Location", Location(req, "/1.0/kb/accounts/" + *id));
}

void SimRoutes::GetAccountByKey(const httplib::Request& req,
                                httplib::Response& res) {
  if (!CheckAuth(req, res, true, false)) return;
  const std::string key = req.get_param_value("externalKey");
  if (!sim_.RunJob(KillBillSim::Work::kRead)) return;
  SimAccount account;
  if (!sim_.FindAccountByKey(key, &account)) {
    SendError(res, 404, kAccountApiException, 3003,
              "Account does not exist for key " + key);
    return;
  }
  const double balance = WithBalance(req) ? sim_.AccountBalance(account.id) : 0;
  res.status = 200;
  res.set_content(RenderAccount(account, req, balance).dump(), kJson);
}

void SimRoutes::GetAccount(const httplib::Request& req,
                           httplib::Response& res) {
  if (!CheckAuth(req, res, true, false)) return;
  const std::string id = req.matches[1];
  if (!sim_.RunJob(KillBillSim::Work::kRead)) return;
  SimAccount account;
  if (!sim_.FindAccount(id, &account)) {
    SendAccountNotFound(res, id);
    return;
  }
  const double balance = WithBalance(req) ? sim_.AccountBalance(account.id) : 0;
  res.status = 200;
  res.set_content(RenderAccount(account, req, balance).dump(), kJson);
}

void SimRoutes::AddTags(const httplib::Request& req, httplib::Response& res) {
  if (!CheckAuth(req, res, true, true)) return;
  const std::string id = req.matches[1];
  Json body;
  try {
    body = req.body.empty() ? Json() : Json::parse(req.body);
  } catch (const Json::exception& e) {
    SendError(res, 400, "com.fasterxml.jackson.core.JsonParseException",
              nullptr, e.what());
    return;
  }
  std::vector<std::string> tag_ids;
  if (body.is_array()) {
    for (const auto& item : body) {
      if (item.is_string()) tag_ids.push_back(item.get<std::string>());
    }
  }
  if (tag_ids.empty()) {
    SendError(res, 400, kIllegalArgument, nullptr,
              "TagList body should be specified");
    return;
  }
  if (!sim_.RunJob(KillBillSim::Work::kTag)) return;
  if (!sim_.AddTags(id, tag_ids).ok()) {
    SendAccountNotFound(res, id);
    return;
  }
  res.status = 201;
  res.set_header("Location", Location(req, "/1.0/kb/accounts/" + id + "/tags"));
}

void SimRoutes::GetTags(const httplib::Request& req, httplib::Response& res) {
  if (!CheckAuth(req, res, true, false)) return;
  const std::string id = req.matches[1];
  SimAccount account;
  if (!sim_.FindAccount(id, &account)) {
    SendAccountNotFound(res, id);
    return;
  }
  OJson out = OJson::array();
  for (const auto& tag : account.tag_definition_ids) {
    OJson t;
    t["tagId"] = nullptr;
    t["objectType"] = "ACCOUNT";
    t["objectId"] = id;
    t["tagDefinitionId"] = tag;
    t["tagDefinitionName"] =
        tag == "00000000-0000-0000-0000-000000000001"   ? "AUTO_PAY_OFF"
        : tag == "00000000-0000-0000-0000-000000000004" ? "WRITTEN_OFF"
                                                        : nullptr;
    t["auditLogs"] = Json::array();
    out.push_back(t);
  }
  res.status = 200;
  res.set_content(out.dump(), kJson);
}

bool SimRoutes::KnownAccount(const std::string& id, httplib::Response& res) {
  SimAccount account;
  if (sim_.FindAccount(id, &account)) return true;
  SendAccountNotFound(res, id);
  return false;
}

void SimRoutes::GetAccountBundles(const httplib::Request& req,
                                  httplib::Response& res) {
  if (!CheckAuth(req, res, true, false)) return;
  const std::string id = req.matches[1];
  if (!sim_.RunJob(KillBillSim::Work::kRead)) return;
  if (!KnownAccount(id, res)) return;
  std::vector<SimBundleView> bundles = sim_.AccountBundles(id);
  if (req.has_param("externalKey")) {  // Kill Bill's optional filter
    const std::string key = req.get_param_value("externalKey");
    bundles.erase(std::remove_if(bundles.begin(), bundles.end(),
                                 [&](const SimBundleView& b) {
                                   return b.bundle.external_key != key;
                                 }),
                  bundles.end());
  }
  res.status = 200;
  res.set_content(RenderBundles(bundles).dump(), kJson);
}

void SimRoutes::GetAccountInvoices(const httplib::Request& req,
                                   httplib::Response& res) {
  if (!CheckAuth(req, res, true, false)) return;
  const std::string id = req.matches[1];
  if (!sim_.RunJob(KillBillSim::Work::kRead)) return;
  if (!KnownAccount(id, res)) return;
  OJson out = OJson::array();
  for (const SimInvoice& invoice :
       sim_.AccountInvoices(id, ParamIsTrue(req, "unpaidInvoicesOnly"))) {
    out.push_back(RenderInvoice(invoice));
  }
  res.status = 200;
  res.set_content(out.dump(), kJson);
}

void SimRoutes::GetPaymentMethods(const httplib::Request& req,
                                  httplib::Response& res) {
  if (!CheckAuth(req, res, true, false)) return;
  const std::string id = req.matches[1];
  if (!sim_.RunJob(KillBillSim::Work::kRead)) return;
  if (!KnownAccount(id, res)) return;
  // SaaSOdoo's accounts never get a payment method (AUTO_PAY_OFF).
  res.status = 200;
  res.set_content("[]", kJson);
}

void SimRoutes::CreateSubscription(const httplib::Request& req,
                                   httplib::Response& res) {
  if (!CheckAuth(req, res, true, true)) return;
  Json body;
  if (!ParseBody(req, res, &body)) return;
  if (!body.is_object()) {
    SendError(res, 400, kIllegalArgument, nullptr,
              "SubscriptionJson body should be specified");
    return;
  }
  SubscriptionRequest request;
  request.account_id = TextField(body, "accountId");
  const std::string plan_name = TextField(body, "planName");
  request.phase_type = TextField(body, "phaseType");
  request.bundle_external_key = TextField(body, "bundleExternalKey");
  request.external_key = TextField(body, "externalKey");
  // Kill Bill's own checks name the field; the sim takes only planName, not
  // the product / billing period / price list triplet.
  if (request.account_id.empty()) {
    SendError(res, 400, kIllegalArgument, nullptr,
              "SubscriptionJson accountId needs to be set");
    return;
  }
  if (plan_name.empty()) {
    SendError(res, 400, kIllegalArgument, nullptr,
              "SubscriptionJson planName needs to be set");
    return;
  }

  if (!sim_.RunJob(KillBillSim::Work::kCreate)) return;

  // Kill Bill loads the account first, then resolves the plan.
  SimAccount account;
  if (!sim_.FindAccount(request.account_id, &account)) {
    SendError(res, 404, kAccountApiException, kAccountDoesNotExistForId,
              "Account does not exist for id " + request.account_id);
    return;
  }
  const CatalogPlan* plan = SaasOdooCatalog().FindPlan(plan_name);
  if (plan == nullptr) {
    SendError(res, 400, kCatalogApiException, kCatNoSuchPlan,
              "Could not find any plans named '" + plan_name + "'");
    return;
  }
  request.plan = *plan;
  request.today = Today();
  absl::StatusOr<SimSubscription> created = sim_.CreateSubscription(request);
  if (!created.ok()) {
    const std::string detail(created.status().message());
    switch (created.status().code()) {
      case absl::StatusCode::kNotFound:  // the account went away meanwhile
        SendError(res, 404, kAccountApiException, kAccountDoesNotExistForId,
                  "Account does not exist for id " + detail);
        return;
      case absl::StatusCode::kAlreadyExists:
        SendError(res, 400, kSubscriptionBaseApiException, kSubCreateBpExists,
                  "Subscription bundle " + detail +
                      " already has a base subscription");
        return;
      case absl::StatusCode::kFailedPrecondition:
        SendError(
            res, 400, kSubscriptionBaseApiException,
            kSubCreateActiveBundleKeyExists,
            "Active bundle with external key " + detail + " already exists");
        return;
      default:  // InvalidArgument: a phase the plan does not have
        SendError(res, 400, kSubscriptionBaseApiException, kSubCreateBadPhase,
                  "Can't create plan initial phase " + detail);
        return;
    }
  }
  res.status = 201;
  res.set_header("Location",
                 Location(req, "/1.0/kb/subscriptions/" + created->id));
}

void SimRoutes::GetSubscription(const httplib::Request& req,
                                httplib::Response& res) {
  if (!CheckAuth(req, res, true, false)) return;
  const std::string id = req.matches[1];
  if (!sim_.RunJob(KillBillSim::Work::kRead)) return;
  SimSubscription subscription;
  if (!sim_.FindSubscription(id, &subscription)) {
    SendSubscriptionNotFound(res, kSubscriptionApiException, id);
    return;
  }
  res.status = 200;
  res.set_content(RenderSubscription(subscription, Today()).dump(), kJson);
}

void SimRoutes::CancelSubscription(const httplib::Request& req,
                                   httplib::Response& res) {
  if (!CheckAuth(req, res, true, true)) return;
  const std::string id = req.matches[1];
  // billingPolicy, useRequestedDateForBilling, callCompletion and
  // callTimeoutSec are accepted and have no effect: billing follows the
  // entitlement, and the call completes before it answers.
  CancelPolicy policy = CancelPolicy::kEndOfTerm;  // the catalog's default
  const std::string entitlement_policy =
      req.get_param_value("entitlementPolicy");
  if (entitlement_policy == "IMMEDIATE") {
    policy = CancelPolicy::kImmediate;
  } else if (!entitlement_policy.empty() &&
             entitlement_policy != "END_OF_TERM") {
    SendError(res, 400, kIllegalArgument, nullptr,
              "Invalid entitlementPolicy " + entitlement_policy);
    return;
  }
  if (!sim_.RunJob(KillBillSim::Work::kCreate)) return;
  absl::Status status = sim_.CancelSubscription(id, policy, Today());
  if (absl::IsNotFound(status)) {
    SendSubscriptionNotFound(res, kEntitlementApiException, id);
    return;
  }
  if (!status.ok()) {  // FailedPrecondition: already cancelled
    SendError(res, 500, kEntitlementApiException, kSubCancelBadState,
              absl::StrCat("Subscription ", id, " is in state ",
                           status.message(), ": Failed to cancel"));
    return;
  }
  res.status = 204;
}

void SimRoutes::AddCustomFields(const httplib::Request& req,
                                httplib::Response& res) {
  if (!CheckAuth(req, res, true, true)) return;
  const std::string id = req.matches[1];
  Json body;
  if (!ParseBody(req, res, &body)) return;
  if (!body.is_array() || body.empty()) {
    SendError(res, 400, kIllegalArgument, nullptr,
              "CustomFieldJson body should be specified");
    return;
  }
  std::vector<SimCustomField> fields;
  for (const Json& item : body) {
    SimCustomField field;
    field.name = TextField(item, "name");
    field.value = TextField(item, "value");
    if (field.name.empty() || field.value.empty()) {
      SendError(res, 400, kIllegalArgument, nullptr,
                field.name.empty() ? "CustomFieldJson name needs to be set"
                                   : "CustomFieldJson value needs to be set");
      return;
    }
    fields.push_back(std::move(field));
  }
  if (!sim_.RunJob(KillBillSim::Work::kTag)) return;
  absl::Status status = sim_.AddCustomFields(id, std::move(fields));
  if (absl::IsNotFound(status)) {
    SendObjectDoesNotExist(res, id, "SUBSCRIPTION");
    return;
  }
  if (!status.ok()) {  // AlreadyExists: the message is the field's id
    SendError(
        res, 400, kCustomFieldApiException, kCustomFieldAlreadyExists,
        absl::StrCat("The custom field ", status.message(), " already exists"));
    return;
  }
  res.status = 201;
  res.set_header("Location", Location(req, "/1.0/kb/subscriptions/" + id +
                                               "/customFields"));
}

void SimRoutes::GetCustomFields(const httplib::Request& req,
                                httplib::Response& res) {
  if (!CheckAuth(req, res, true, false)) return;
  const std::string id = req.matches[1];
  if (!sim_.RunJob(KillBillSim::Work::kRead)) return;
  SimSubscription subscription;
  if (!sim_.FindSubscription(id, &subscription)) {
    SendObjectDoesNotExist(res, id, "SUBSCRIPTION");
    return;
  }
  OJson out = OJson::array();
  for (const SimCustomField& field : subscription.custom_fields) {
    out.push_back(RenderCustomField(id, field));
  }
  res.status = 200;
  res.set_content(out.dump(), kJson);
}

void SimRoutes::GetBundlesByKey(const httplib::Request& req,
                                httplib::Response& res) {
  if (!CheckAuth(req, res, true, false)) return;
  const std::string key = req.get_param_value("externalKey");
  if (!sim_.RunJob(KillBillSim::Work::kRead)) return;
  const std::vector<SimBundleView> bundles = sim_.BundlesByKey(key);
  if (bundles.empty()) {
    SendError(res, 404, kSubscriptionApiException, kSubGetInvalidBundleKey,
              "Could not find a bundle matching key " + key);
    return;
  }
  res.status = 200;
  res.set_content(RenderBundles(bundles).dump(), kJson);
}

void SimRoutes::GetCatalog(const httplib::Request& req,
                           httplib::Response& res) {
  if (!CheckAuth(req, res, true, false)) return;
  if (!sim_.RunJob(KillBillSim::Work::kRead)) return;
  res.status = 200;
  res.set_content(RenderCatalog().dump(), kJson);
}

void SimRoutes::Healthcheck(const httplib::Request&, httplib::Response& res) {
  const KillBillSim::HealthcheckAnswer answer = sim_.Healthcheck();
  OJson main;
  main["healthy"] = answer.in_rotation;
  main["message"] = answer.in_rotation ? "OK" : "Out of rotation";
  if (!answer.in_rotation) {
    main["error"] = ThrowableQuirk(
        "org.killbill.billing.server.healthchecks.KillbillHealthcheck");
  }
  OJson plugins;
  plugins["healthy"] = true;
  OJson queues;
  queues["healthy"] = answer.growing_message.empty();
  if (!answer.growing_message.empty()) {
    queues["message"] = answer.growing_message;
    queues["error"] = ThrowableQuirk(kQueuesCheck);
  }
  queues["bus"] = OJson{{"growing", answer.bus_growing}};
  queues["externalBus"] = OJson{{"growing", answer.external_bus_growing}};

  OJson body;
  body["org.killbill.billing.server.healthchecks.KillbillHealthcheck"] = main;
  body["org.killbill.billing.server.healthchecks.KillbillPluginsHealthcheck"] =
      plugins;
  body[kQueuesCheck] = queues;
  res.status = answer.healthy() ? 200 : 500;
  res.set_header("Cache-Control", kNoCache);
  res.set_content(body.dump(), kJson);
}

void SimRoutes::Metrics(const httplib::Request& req, httplib::Response& res) {
  const KillBillSim::MetricsAnswer answer = sim_.Metrics();
  if (answer.mode == MetricsMode::kAbsent) {  // set meanwhile
    res.status = 404;
    return;
  }
  // Dropwizard's MetricsServlet: Boolean.parseBoolean(pretty), Jackson's
  // default pretty printer (indented; nlohmann's indent differs in spacing
  // only).
  const bool pretty =
      req.has_param("pretty") &&
      absl::EqualsIgnoreCase(req.get_param_value("pretty"), "true");
  OJson registry = EmptyRegistry();
  if (answer.mode == MetricsMode::kOn) {
    // A metric exists from its first update; names sort as in the registry's
    // TreeMaps.
    std::map<std::string, OJson> counters;
    if (answer.requests > 0) {
      counters[kSimRequestsCounter] = OJson{{"count", answer.requests}};
    }
    std::map<std::string, OJson> timers;
    if (answer.bus_posted.count > 0) {
      const OJson posted = TimerJson(answer.bus_posted, 0.0);
      timers[kBusInsertTimer] = posted;
      timers[kExtBusInsertTimer] = posted;
      // Webhook events are dispatched as they are posted.
      timers[kExtBusHandlerTimer] = posted;
    }
    if (answer.bus_dispatched.count > 0) {
      timers[kBusHandlerTimer] =
          TimerJson(answer.bus_dispatched, answer.bus_handler_seconds);
    }
    for (auto& [name, counter] : counters) registry["counters"][name] = counter;
    for (auto& [name, timer] : timers) registry["timers"][name] = timer;
  }
  res.status = 200;
  res.set_header("Cache-Control", kNoCache);
  res.set_content(registry.dump(pretty ? 2 : -1), kJson);
}

void SimRoutes::SetRotation(bool in_rotation, const httplib::Request& req,
                            httplib::Response& res) {
  // Admin calls need basic auth; they are not tenant-scoped.
  if (!CheckAuth(req, res, false, false)) return;
  sim_.SetRotation(in_rotation);
  res.status = 204;
}

// ---------------------------------------------------------------------------------------
// Control.

void SimRoutes::SimStatsRoute(httplib::Response& res) {
  res.set_content(StatsToJson(sim_.Stats()).dump(), kJson);
}

void SimRoutes::SimConfigRoute(const httplib::Request& req,
                               httplib::Response& res) {
  Json settings;
  if (!ParseControlBody(req, res, &settings)) return;
  absl::Status status = sim_.Configure([&settings](SimOptions* options) {
    return ApplyJson(settings, options);
  });
  if (!status.ok()) {
    SendControlError(res, status);
    return;
  }
  res.set_content(SimOptionsToJson(sim_.options()).dump(), kJson);
}

void SimRoutes::SimFaultsRoute(const httplib::Request& req,
                               httplib::Response& res) {
  Json faults;
  if (!ParseControlBody(req, res, &faults)) return;
  absl::StatusOr<FaultRequest> request = ParseFaultRequest(faults);
  absl::Status status =
      request.ok() ? sim_.InjectFaults(*request) : request.status();
  if (!status.ok()) {
    SendControlError(res, status);
    return;
  }
  res.set_content(FaultStateToJson(sim_.Stats().faults).dump(), kJson);
}

}  // namespace bg::sim
