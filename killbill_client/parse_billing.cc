// Parsers of Kill Bill's billing objects: subscriptions, bundles, custom
// fields, invoices, payment methods and the simple catalog. See parse.h.
#include <map>

#include "absl/strings/str_cat.h"
#include "killbill_client/json_fields.h"
#include "killbill_client/parse.h"

namespace bg::killbill {
namespace {

using internal::FindArray;
using internal::Json;
using internal::ParseJson;
using internal::ReadBool;
using internal::ReadDecimal;
using internal::ReadString;

// Reads string fields in order, stopping at the first error.
absl::Status ReadStrings(
    const Json& obj, absl::string_view what,
    std::initializer_list<std::pair<const char*, std::string*>> fields) {
  for (auto [key, out] : fields) {
    if (absl::Status s = ReadString(obj, key, out, what); !s.ok()) return s;
  }
  return absl::OkStatus();
}

absl::Status RequireUuid(const std::string& value, absl::string_view what,
                         absl::string_view key) {
  if (IsUuid(value)) return absl::OkStatus();
  return absl::InternalError(
      absl::StrCat("killbill: ", what, " field '", key, "' is not a UUID"));
}

// The body as a JSON array (of objects, checked by the caller).
absl::StatusOr<Json> ParseArray(absl::string_view body,
                                absl::string_view what) {
  Json json = ParseJson(body);
  if (json.is_discarded())
    return absl::InternalError(
        absl::StrCat("killbill: ", what, " is not JSON"));
  if (!json.is_array()) {
    return absl::InternalError(
        absl::StrCat("killbill: ", what, " is not a JSON array"));
  }
  return json;
}

absl::Status RequireObject(const Json& json, absl::string_view what) {
  if (json.is_object()) return absl::OkStatus();
  return absl::InternalError(
      absl::StrCat("killbill: ", what, " is not a JSON object"));
}

// Kill Bill 0.24 renders some dates as timestamps ("2026-11-30T10:00:00.000Z"):
// the API's dates are the day.
void ToDay(std::string* date) {
  if (date->size() > 10 && (*date)[10] == 'T') date->resize(10);
}

absl::StatusOr<Subscription> SubscriptionFromJson(const Json& json) {
  constexpr absl::string_view kWhat = "subscription";
  if (absl::Status s = RequireObject(json, kWhat); !s.ok()) return s;
  Subscription sub;
  absl::Status s =
      ReadStrings(json, kWhat,
                  {{"subscriptionId", &sub.subscription_id},
                   {"bundleId", &sub.bundle_id},
                   {"accountId", &sub.account_id},
                   {"bundleExternalKey", &sub.bundle_external_key},
                   {"planName", &sub.plan_name},
                   {"productName", &sub.product_name},
                   {"productCategory", &sub.product_category},
                   {"billingPeriod", &sub.billing_period},
                   {"phaseType", &sub.phase_type},
                   {"state", &sub.state},
                   {"startDate", &sub.start_date},
                   {"cancelledDate", &sub.cancelled_date},
                   {"chargedThroughDate", &sub.charged_through_date}});
  if (!s.ok()) return s;
  for (auto [key, value] : {std::pair{"subscriptionId", &sub.subscription_id},
                            {"bundleId", &sub.bundle_id},
                            {"accountId", &sub.account_id}}) {
    if (s = RequireUuid(*value, kWhat, key); !s.ok()) return s;
  }
  for (std::string* date :
       {&sub.start_date, &sub.cancelled_date, &sub.charged_through_date})
    ToDay(date);
  const Json* events = nullptr;
  if (s = FindArray(json, "events", &events, kWhat); !s.ok()) return s;
  if (events != nullptr) {
    for (const Json& e : *events) {
      if (s = RequireObject(e, "subscription event"); !s.ok()) return s;
      SubscriptionEvent event;
      s = ReadStrings(e, "subscription event",
                      {{"eventType", &event.event_type},
                       {"effectiveDate", &event.effective_date},
                       {"phase", &event.phase}});
      if (!s.ok()) return s;
      ToDay(&event.effective_date);
      sub.events.push_back(std::move(event));
    }
  }
  return sub;
}

}  // namespace

absl::StatusOr<Subscription> ParseSubscription(absl::string_view body) {
  const Json json = ParseJson(body);
  if (json.is_discarded())
    return absl::InternalError("killbill: subscription body is not JSON");
  return SubscriptionFromJson(json);
}

absl::StatusOr<std::vector<Bundle>> ParseBundles(absl::string_view body) {
  constexpr absl::string_view kWhat = "bundle";
  auto json = ParseArray(body, "bundles body");
  if (!json.ok()) return json.status();
  std::vector<Bundle> out;
  for (const Json& b : *json) {
    if (absl::Status s = RequireObject(b, kWhat); !s.ok()) return s;
    Bundle bundle;
    absl::Status s = ReadStrings(b, kWhat,
                                 {{"bundleId", &bundle.bundle_id},
                                  {"accountId", &bundle.account_id},
                                  {"externalKey", &bundle.external_key}});
    if (!s.ok()) return s;
    if (s = RequireUuid(bundle.bundle_id, kWhat, "bundleId"); !s.ok()) return s;
    if (s = RequireUuid(bundle.account_id, kWhat, "accountId"); !s.ok())
      return s;
    const Json* subs = nullptr;
    if (s = FindArray(b, "subscriptions", &subs, kWhat); !s.ok()) return s;
    if (subs != nullptr) {
      for (const Json& j : *subs) {
        auto sub = SubscriptionFromJson(j);
        if (!sub.ok()) return sub.status();
        bundle.subscriptions.push_back(*std::move(sub));
      }
    }
    out.push_back(std::move(bundle));
  }
  return out;
}

absl::StatusOr<std::vector<CustomField>> ParseCustomFields(
    absl::string_view body) {
  constexpr absl::string_view kWhat = "custom field";
  auto json = ParseArray(body, "custom fields body");
  if (!json.ok()) return json.status();
  std::vector<CustomField> out;
  for (const Json& f : *json) {
    if (absl::Status s = RequireObject(f, kWhat); !s.ok()) return s;
    CustomField field;
    absl::Status s =
        ReadStrings(f, kWhat, {{"name", &field.name}, {"value", &field.value}});
    if (!s.ok()) return s;
    out.push_back(std::move(field));
  }
  return out;
}

absl::StatusOr<std::vector<Invoice>> ParseInvoices(absl::string_view body) {
  constexpr absl::string_view kWhat = "invoice";
  auto json = ParseArray(body, "invoices body");
  if (!json.ok()) return json.status();
  std::vector<Invoice> out;
  for (const Json& i : *json) {
    if (absl::Status s = RequireObject(i, kWhat); !s.ok()) return s;
    Invoice inv;
    absl::Status s = ReadStrings(i, kWhat,
                                 {{"invoiceId", &inv.invoice_id},
                                  {"invoiceDate", &inv.invoice_date},
                                  {"targetDate", &inv.target_date},
                                  {"currency", &inv.currency},
                                  {"status", &inv.status}});
    if (!s.ok()) return s;
    if (s = RequireUuid(inv.invoice_id, kWhat, "invoiceId"); !s.ok()) return s;
    for (auto [key, value] :
         {std::pair{"amount", &inv.amount}, {"balance", &inv.balance}}) {
      if (s = ReadDecimal(i, key, value, kWhat); !s.ok()) return s;
    }
    // A string in Kill Bill's JSON (a number in some older versions).
    if (auto n = i.find("invoiceNumber"); n != i.end() && !n->is_null()) {
      if (n->is_string()) {
        inv.invoice_number = n->get<std::string>();
      } else if (n->is_number_integer()) {
        inv.invoice_number = n->dump();
      } else {
        return internal::FieldError(kWhat, "invoiceNumber", "a string");
      }
    }
    out.push_back(std::move(inv));
  }
  return out;
}

absl::StatusOr<std::vector<PaymentMethod>> ParsePaymentMethods(
    absl::string_view body) {
  constexpr absl::string_view kWhat = "payment method";
  auto json = ParseArray(body, "payment methods body");
  if (!json.ok()) return json.status();
  std::vector<PaymentMethod> out;
  for (const Json& p : *json) {
    if (absl::Status s = RequireObject(p, kWhat); !s.ok()) return s;
    PaymentMethod pm;
    absl::Status s = ReadStrings(p, kWhat,
                                 {{"paymentMethodId", &pm.payment_method_id},
                                  {"externalKey", &pm.external_key},
                                  {"pluginName", &pm.plugin_name}});
    if (!s.ok()) return s;
    if (s = ReadBool(p, "isDefault", &pm.is_default, kWhat); !s.ok()) return s;
    if (s = RequireUuid(pm.payment_method_id, kWhat, "paymentMethodId");
        !s.ok())
      return s;
    out.push_back(std::move(pm));
  }
  return out;
}

absl::StatusOr<std::vector<CatalogPlan>> ParseCatalog(absl::string_view body) {
  auto json = ParseArray(body, "catalog body");
  if (!json.ok()) return json.status();
  std::map<std::string, CatalogPlan> plans;
  std::vector<std::string> order;
  for (const Json& catalog : *json) {
    if (absl::Status s = RequireObject(catalog, "catalog"); !s.ok()) return s;
    const Json* products = nullptr;
    absl::Status s = FindArray(catalog, "products", &products, "catalog");
    if (!s.ok()) return s;
    if (products == nullptr) continue;
    for (const Json& product : *products) {
      if (s = RequireObject(product, "catalog product"); !s.ok()) return s;
      std::string product_name;
      if (s = ReadString(product, "name", &product_name, "catalog product");
          !s.ok())
        return s;
      const Json* product_plans = nullptr;
      if (s = FindArray(product, "plans", &product_plans, "catalog product");
          !s.ok())
        return s;
      if (product_plans == nullptr) continue;
      for (const Json& p : *product_plans) {
        if (s = RequireObject(p, "catalog plan"); !s.ok()) return s;
        CatalogPlan plan;
        plan.product = product_name;
        s = ReadStrings(
            p, "catalog plan",
            {{"name", &plan.name}, {"billingPeriod", &plan.billing_period}});
        if (!s.ok()) return s;
        if (plan.name.empty()) {
          return absl::InternalError(
              "killbill: catalog plan field 'name' is missing");
        }
        const Json* phases = nullptr;
        if (s = FindArray(p, "phases", &phases, "catalog plan"); !s.ok())
          return s;
        if (phases != nullptr) {
          for (const Json& ph : *phases) {
            if (s = RequireObject(ph, "catalog phase"); !s.ok()) return s;
            std::string type;
            if (s = ReadString(ph, "type", &type, "catalog phase"); !s.ok())
              return s;
            plan.phase_types.push_back(std::move(type));
          }
        }
        if (plans.find(plan.name) == plans.end()) order.push_back(plan.name);
        plans[plan.name] = std::move(plan);
      }
    }
  }
  std::vector<CatalogPlan> out;
  out.reserve(order.size());
  for (const std::string& name : order) out.push_back(std::move(plans[name]));
  return out;
}

}  // namespace bg::killbill
