// KillBillClient's subscription, bundle, custom-field, invoice, payment-method,
// catalog and balance calls. See killbill_client.h.
#include "absl/strings/str_cat.h"
#include "killbill_client/killbill_client.h"
#include "killbill_client/parse.h"
#include "nlohmann/json.hpp"

namespace bg::killbill {
namespace {

using Json = nlohmann::json;

constexpr char kSubscriptions[] = "/1.0/kb/subscriptions";

absl::Status RequireUuid(const std::string& id, const char* name) {
  if (IsUuid(id)) return absl::OkStatus();
  return absl::InvalidArgumentError(absl::StrCat(name, " is not a UUID"));
}

}  // namespace

template <typename Parse>
auto KillBillClient::GetParsed(const std::string& path, const char* what,
                               Parse parse, const CallOptions& call)
    -> decltype(parse("")) {
  auto res = Send("GET", path, "", true, call);
  if (!res.ok()) return res.status();
  if (res->status != 200)
    return StatusFromResponse(res->status, res->body, what);
  return parse(res->body);
}

absl::StatusOr<Account> KillBillClient::GetAccountWithBalance(
    const std::string& external_key, const std::string& account_id,
    const CallOptions& call) {
  std::string path;
  if (!account_id.empty()) {
    if (absl::Status s = RequireUuid(account_id, "account_id"); !s.ok())
      return s;
    path = absl::StrCat("/1.0/kb/accounts/", account_id,
                        "?accountWithBalanceAndCBA=true");
  } else {
    path = absl::StrCat(
        "/1.0/kb/accounts?externalKey=", PercentEncode(external_key),
        "&accountWithBalanceAndCBA=true");
  }
  return GetParsed(path, "get account", ParseAccount, call);
}

absl::StatusOr<std::string> KillBillClient::CreateSubscription(
    const NewSubscription& sub, const CallOptions& call) {
  if (absl::Status s = RequireUuid(sub.account_id, "account_id"); !s.ok())
    return s;
  Json body = {{"accountId", sub.account_id}, {"planName", sub.plan_name}};
  if (!sub.phase_type.empty()) body["phaseType"] = sub.phase_type;
  if (!sub.bundle_external_key.empty())
    body["bundleExternalKey"] = sub.bundle_external_key;
  auto res = Send("POST", kSubscriptions, body.dump(), true, call);
  if (!res.ok()) return res.status();
  if (res->status != 201)
    return StatusFromResponse(res->status, res->body, "create subscription");
  return IdFromLocation(res->location, kSubscriptions);
}

absl::StatusOr<Subscription> KillBillClient::GetSubscription(
    const std::string& subscription_id, const CallOptions& call) {
  if (absl::Status s = RequireUuid(subscription_id, "subscription_id"); !s.ok())
    return s;
  return GetParsed(absl::StrCat(kSubscriptions, "/", subscription_id),
                   "get subscription", ParseSubscription, call);
}

absl::StatusOr<std::vector<Bundle>> KillBillClient::GetBundlesByKey(
    const std::string& external_key, const CallOptions& call) {
  return GetParsed(
      absl::StrCat("/1.0/kb/bundles?externalKey=", PercentEncode(external_key)),
      "get bundles", ParseBundles, call);
}

absl::StatusOr<std::vector<Bundle>> KillBillClient::GetAccountBundles(
    const std::string& account_id, const CallOptions& call) {
  if (absl::Status s = RequireUuid(account_id, "account_id"); !s.ok()) return s;
  return GetParsed(absl::StrCat("/1.0/kb/accounts/", account_id, "/bundles"),
                   "get account bundles", ParseBundles, call);
}

absl::Status KillBillClient::CancelSubscription(
    const std::string& subscription_id, bool immediate,
    const std::string& reason, const CallOptions& call) {
  if (absl::Status s = RequireUuid(subscription_id, "subscription_id"); !s.ok())
    return s;
  const char* policy = immediate ? "IMMEDIATE" : "END_OF_TERM";
  auto res = Send(
      "DELETE",
      absl::StrCat(kSubscriptions, "/", subscription_id,
                   "?entitlementPolicy=", policy, "&billingPolicy=", policy),
      "", true, call, reason);
  if (!res.ok()) return res.status();
  if (res->status != 204 && res->status != 200)
    return StatusFromResponse(res->status, res->body, "cancel subscription");
  return absl::OkStatus();
}

absl::Status KillBillClient::AddCustomFields(
    const std::string& subscription_id, const std::vector<CustomField>& fields,
    const CallOptions& call) {
  if (absl::Status s = RequireUuid(subscription_id, "subscription_id"); !s.ok())
    return s;
  Json body = Json::array();
  for (const CustomField& f : fields)
    body.push_back({{"name", f.name}, {"value", f.value}});
  auto res =
      Send("POST",
           absl::StrCat(kSubscriptions, "/", subscription_id, "/customFields"),
           body.dump(), true, call);
  if (!res.ok()) return res.status();
  if (res->status != 201)
    return StatusFromResponse(res->status, res->body, "add custom fields");
  return absl::OkStatus();
}

absl::StatusOr<std::vector<CustomField>> KillBillClient::GetCustomFields(
    const std::string& subscription_id, const CallOptions& call) {
  if (absl::Status s = RequireUuid(subscription_id, "subscription_id"); !s.ok())
    return s;
  return GetParsed(
      absl::StrCat(kSubscriptions, "/", subscription_id, "/customFields"),
      "get custom fields", ParseCustomFields, call);
}

absl::StatusOr<std::vector<Invoice>> KillBillClient::GetUnpaidInvoices(
    const std::string& account_id, const CallOptions& call) {
  if (absl::Status s = RequireUuid(account_id, "account_id"); !s.ok()) return s;
  return GetParsed(absl::StrCat("/1.0/kb/accounts/", account_id,
                                "/invoices?unpaidInvoicesOnly=true"),
                   "get unpaid invoices", ParseInvoices, call);
}

absl::StatusOr<std::vector<PaymentMethod>> KillBillClient::GetPaymentMethods(
    const std::string& account_id, const CallOptions& call) {
  if (absl::Status s = RequireUuid(account_id, "account_id"); !s.ok()) return s;
  return GetParsed(
      absl::StrCat("/1.0/kb/accounts/", account_id, "/paymentMethods"),
      "get payment methods", ParsePaymentMethods, call);
}

absl::StatusOr<std::vector<CatalogPlan>> KillBillClient::GetCatalog(
    const CallOptions& call) {
  return GetParsed("/1.0/kb/catalog", "get catalog", ParseCatalog, call);
}

}  // namespace bg::killbill
