#include "service/subscription_operations.h"

#include <algorithm>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "service/killbill_call.h"

namespace bg::service {
namespace {

namespace v1 = billing::v1;
using dispatch::KillBillEndpoint;

constexpr dispatch::Cost kRead{1, 0};
constexpr char kInstanceIdField[] = "instance_id";

// Kill Bill codes the subscription calls give a meaning of their own.
constexpr int kCodeNoSuchPhase = 1011;             // the plan has no such phase
constexpr int kCodeBaseSubscriptionExists = 1015;  // SUB_CREATE_BP_EXISTS
constexpr int kCodeBundleKeyOfOtherAccount = 1014;
constexpr int kCodeAlreadyCancelled = 1031;  // SUB_CANCEL_BAD_STATE
constexpr int kCodeNoSuchSubscription = 1082;
constexpr int kCodeNoSuchPlan = 2021;  // CAT_NO_SUCH_PLAN
constexpr int kCodeNoSuchAccountId = 3002;
constexpr int kCodeNoSuchAccountKey = 3003;
constexpr int kCodeCustomFieldExists = 9000;

// `status` with another code and message, keeping Kill Bill's code payload.
absl::Status Remapped(const absl::Status& status, absl::StatusCode code,
                      absl::string_view message) {
  absl::Status out(code, message);
  if (auto payload = status.GetPayload(killbill::kKillBillCodePayload))
    out.SetPayload(killbill::kKillBillCodePayload, *payload);
  return out;
}

}  // namespace

absl::Status Mapped(const absl::Status& status) {
  switch (KillBillCode(status)) {
    case kCodeNoSuchPlan:
      return Remapped(status, absl::StatusCode::kInvalidArgument,
                      absl::StrCat("plan_name: ", status.message()));
    case kCodeBundleKeyOfOtherAccount:
      return Remapped(status, absl::StatusCode::kFailedPrecondition,
                      absl::StrCat("instance_id: used by another account's "
                                   "subscription: ",
                                   status.message()));
    case kCodeNoSuchPhase:
      return Remapped(status, absl::StatusCode::kInvalidArgument,
                      absl::StrCat("phase: ", status.message()));
    case kCodeNoSuchSubscription:
    case kCodeNoSuchAccountId:
    case kCodeNoSuchAccountKey:
      return Remapped(status, absl::StatusCode::kNotFound, status.message());
    default:
      return status;
  }
}

namespace {

v1::PhaseType PhaseOf(const std::string& type) {
  if (type == "TRIAL") return v1::PHASE_TYPE_TRIAL;
  if (type == "DISCOUNT") return v1::PHASE_TYPE_DISCOUNT;
  if (type == "FIXEDTERM") return v1::PHASE_TYPE_FIXEDTERM;
  if (type == "EVERGREEN") return v1::PHASE_TYPE_EVERGREEN;
  return v1::PHASE_TYPE_UNSPECIFIED;
}

v1::SubscriptionState StateOf(const std::string& state) {
  if (state == "PENDING") return v1::SUBSCRIPTION_STATE_PENDING;
  if (state == "ACTIVE") return v1::SUBSCRIPTION_STATE_ACTIVE;
  if (state == "BLOCKED") return v1::SUBSCRIPTION_STATE_BLOCKED;
  if (state == "CANCELLED") return v1::SUBSCRIPTION_STATE_CANCELLED;
  if (state == "EXPIRED") return v1::SUBSCRIPTION_STATE_EXPIRED;
  return v1::SUBSCRIPTION_STATE_UNSPECIFIED;
}

bool IsTrialPhase(const std::string& phase_name) {
  return absl::EndsWith(phase_name, "-trial");
}

// True when the subscription is, or ever was, in a trial phase.
bool HadTrial(const killbill::Subscription& sub) {
  if (sub.phase_type == "TRIAL") return true;
  return std::any_of(sub.events.begin(), sub.events.end(),
                     [](const auto& e) { return IsTrialPhase(e.phase); });
}

// The subscription a bundle lookup stands for: the first one not cancelled,
// else the last.
const killbill::Subscription* Representative(
    const std::vector<killbill::Bundle>& bundles) {
  const killbill::Subscription* last = nullptr;
  for (const auto& bundle : bundles) {
    for (const auto& sub : bundle.subscriptions) {
      if (sub.state != "CANCELLED") return &sub;
      last = &sub;
    }
  }
  return last;
}

// ListSubscriptions without include_cancelled: the ones not CANCELLED.
void DropCancelled(v1::ListSubscriptionsResponse* list) {
  auto* subs = list->mutable_subscriptions();
  subs->erase(std::remove_if(subs->begin(), subs->end(),
                             [](const v1::Subscription& s) {
                               return s.state() ==
                                      v1::SUBSCRIPTION_STATE_CANCELLED;
                             }),
              subs->end());
}

v1::Invoice ToProto(const killbill::Invoice& i) {
  v1::Invoice out;
  out.set_invoice_id(i.invoice_id);
  out.set_invoice_number(i.invoice_number);
  out.set_invoice_date(i.invoice_date);
  out.set_target_date(i.target_date);
  out.set_amount(i.amount);
  out.set_balance(i.balance);
  out.set_currency(i.currency);
  out.set_status(i.status);
  return out;
}

v1::PaymentMethod ToProto(const killbill::PaymentMethod& p) {
  v1::PaymentMethod out;
  out.set_payment_method_id(p.payment_method_id);
  out.set_external_key(p.external_key);
  out.set_is_default(p.is_default);
  out.set_plugin_name(p.plugin_name);
  return out;
}

}  // namespace

v1::Subscription ToProto(const killbill::Subscription& sub) {
  v1::Subscription out;
  out.set_subscription_id(sub.subscription_id);
  out.set_bundle_id(sub.bundle_id);
  out.set_account_id(sub.account_id);
  out.set_instance_id(sub.bundle_external_key);
  out.set_plan_name(sub.plan_name);
  out.set_product_name(sub.product_name);
  out.set_billing_period(sub.billing_period);
  out.set_phase(PhaseOf(sub.phase_type));
  out.set_state(StateOf(sub.state));
  out.set_start_date(sub.start_date);
  // Kill Bill has no trial-end field: it is the date of the phase change
  // that leaves the trial phase.
  if (HadTrial(sub)) {
    for (const auto& e : sub.events) {
      if (e.event_type == "PHASE" && !IsTrialPhase(e.phase)) {
        out.set_trial_end_date(e.effective_date);
        break;
      }
    }
  }
  out.set_cancelled_date(sub.cancelled_date);
  out.set_charged_through_date(sub.charged_through_date);
  return out;
}

dispatch::Cost SubscriptionOperations::CostOf(
    const v1::CreateSubscriptionRequest& request) const {
  // POST subscription, POST custom fields, GET subscription.
  return {3, bus_events().per_subscription +
                 bus_events().per_custom_field *
                     (1 + static_cast<int>(request.metadata_size()))};
}

absl::StatusOr<std::string> SubscriptionOperations::AccountId(
    const v1::AccountRef& ref, KillBillCalls& calls) const {
  if (ref.has_account_id()) return ref.account_id();
  if (cache_ != nullptr) {
    if (auto hit =
            cache_->account_ids.Find(ref.external_key(), ReadCache::kForever))
      return hit->value;
  }
  auto account = Call(calls, KillBillEndpoint::kGetAccount, kRead, [&] {
    return client_->GetAccountByKey(ref.external_key(), UntilDeadline(calls));
  });
  if (!account.ok()) {
    if (absl::IsNotFound(account.status())) {
      return Remapped(account.status(), absl::StatusCode::kNotFound,
                      absl::StrCat("account: no Kill Bill account has "
                                   "external_key '",
                                   ref.external_key(), "'"));
    }
    return account.status();
  }
  RememberAccount(cache_, ToProto(*account));
  return account->account_id;
}

absl::StatusOr<std::vector<killbill::CatalogPlan>>
SubscriptionOperations::Catalog(KillBillCalls& calls) const {
  if (cache_ != nullptr) {
    if (auto hit = cache_->catalog.Find("", cache_->options.catalog_fresh))
      return hit->value;
  }
  auto catalog = Call(calls, KillBillEndpoint::kGetCatalog, kRead, [&] {
    return client_->GetCatalog(UntilDeadline(calls));
  });
  if (!catalog.ok()) {
    // An older catalog beats no answer: plans change with a deployment.
    if (cache_ != nullptr) {
      if (auto hit = cache_->catalog.Find("", cache_->options.stale))
        return hit->value;
    }
    return catalog.status();
  }
  if (cache_ != nullptr) cache_->catalog.Put("", *catalog);
  return catalog;
}

absl::StatusOr<killbill::Subscription> SubscriptionOperations::ByInstance(
    const std::string& instance_id, KillBillCalls& calls) const {
  auto bundles = Call(calls, KillBillEndpoint::kGetBundles, kRead, [&] {
    return client_->GetBundlesByKey(instance_id, UntilDeadline(calls));
  });
  const killbill::Subscription* sub =
      bundles.ok() ? Representative(*bundles) : nullptr;
  if (bundles.ok() ? sub == nullptr : absl::IsNotFound(bundles.status())) {
    return absl::NotFoundError(absl::StrCat(
        "instance_id: no subscription for instance '", instance_id, "'"));
  }
  if (!bundles.ok()) return bundles.status();
  return *sub;
}

absl::StatusOr<killbill::Subscription> SubscriptionOperations::Fetch(
    const std::string& subscription_id, KillBillCalls& calls) const {
  auto sub = Call(calls, KillBillEndpoint::kGetSubscription, kRead, [&] {
    return client_->GetSubscription(subscription_id, UntilDeadline(calls));
  });
  if (!sub.ok()) return Mapped(sub.status());
  return sub;
}

absl::Status SubscriptionOperations::EnsureCustomFields(
    const std::string& subscription_id,
    const std::vector<killbill::CustomField>& wanted, bool fresh,
    KillBillCalls& calls) const {
  std::vector<killbill::CustomField> missing = wanted;
  if (!fresh) {
    auto existing = Call(calls, KillBillEndpoint::kGetCustomFields, kRead, [&] {
      return client_->GetCustomFields(subscription_id, UntilDeadline(calls));
    });
    if (!existing.ok()) return existing.status();
    missing.erase(std::remove_if(missing.begin(), missing.end(),
                                 [&](const killbill::CustomField& f) {
                                   return std::any_of(
                                       existing->begin(), existing->end(),
                                       [&](const killbill::CustomField& e) {
                                         return e.name == f.name &&
                                                e.value == f.value;
                                       });
                                 }),
                  missing.end());
  }
  if (missing.empty()) return absl::OkStatus();
  const dispatch::Cost cost{
      1, bus_events().per_custom_field * static_cast<int>(missing.size())};
  absl::Status added =
      CallWithRetry(calls, KillBillEndpoint::kAddCustomFields, cost, [&] {
        return client_->AddCustomFields(subscription_id, missing,
                                        UntilDeadline(calls));
      });
  // 9000: the same fields are already there (a concurrent duplicate, or a
  // retry whose first answer was lost): the state asked for.
  if (!added.ok() && KillBillCode(added) != kCodeCustomFieldExists)
    return added;
  return absl::OkStatus();
}

v1::Subscription SubscriptionOperations::Remember(
    const killbill::Subscription& sub, bool changed) const {
  v1::Subscription out = ToProto(sub);
  if (cache_ == nullptr) return out;
  cache_->subscriptions.Put(sub.subscription_id, out);
  if (!sub.bundle_external_key.empty())
    cache_->subscription_ids.Put(sub.bundle_external_key, sub.subscription_id);
  if (changed) {
    cache_->subscription_lists.Erase(sub.account_id);
    cache_->overviews.Erase(sub.account_id);
  }
  return out;
}

absl::StatusOr<v1::CreateSubscriptionResponse>
SubscriptionOperations::CreateSubscription(
    const v1::CreateSubscriptionRequest& request, KillBillCalls& calls) const {
  auto account_id = AccountId(request.account(), calls);
  if (!account_id.ok()) return account_id.status();
  auto catalog = Catalog(calls);
  if (!catalog.ok()) return catalog.status();
  auto plan = std::find_if(
      catalog->begin(), catalog->end(),
      [&](const auto& p) { return p.name == request.plan_name(); });
  if (plan == catalog->end()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "plan_name: the catalog has no plan '", request.plan_name(), "'"));
  }
  const auto& phases = plan->phase_types;
  const bool has_trial =
      std::find(phases.begin(), phases.end(), "TRIAL") != phases.end();
  if (request.phase() == v1::PHASE_TYPE_TRIAL && !has_trial) {
    return absl::InvalidArgumentError(absl::StrCat(
        "phase: plan '", request.plan_name(), "' has no TRIAL phase"));
  }
  const bool starts_in_trial = request.phase() == v1::PHASE_TYPE_TRIAL ||
                               (request.phase() == v1::PHASE_TYPE_UNSPECIFIED &&
                                !phases.empty() && phases.front() == "TRIAL");

  std::vector<killbill::CustomField> fields{
      {kInstanceIdField, request.instance_id()}};
  for (const auto& [name, value] : request.metadata())
    fields.push_back({name, value});
  std::sort(fields.begin() + 1, fields.end(),
            [](const auto& a, const auto& b) { return a.name < b.name; });

  std::string subscription_id;
  bool created = false;
  if (request.enforce_single_trial() && starts_in_trial) {
    auto bundles = Call(calls, KillBillEndpoint::kGetBundles, kRead, [&] {
      return client_->GetAccountBundles(*account_id, UntilDeadline(calls));
    });
    if (!bundles.ok()) return Mapped(bundles.status());
    // A repeat of this very request is answered, not refused.
    std::vector<killbill::Bundle> same_instance;
    for (const auto& bundle : *bundles) {
      if (bundle.external_key == request.instance_id())
        same_instance.push_back(bundle);
    }
    if (const auto* sub = Representative(same_instance))
      subscription_id = sub->subscription_id;
    if (subscription_id.empty()) {
      for (const auto& bundle : *bundles) {
        for (const auto& sub : bundle.subscriptions) {
          if (HadTrial(sub)) {
            return absl::FailedPreconditionError(absl::StrCat(
                "enforce_single_trial: the account already had a trial "
                "(subscription ",
                sub.subscription_id, ", instance '", bundle.external_key,
                "')"));
          }
        }
      }
    }
  }
  if (subscription_id.empty()) {
    killbill::NewSubscription sub;
    sub.account_id = *account_id;
    sub.plan_name = request.plan_name();
    if (request.phase() == v1::PHASE_TYPE_TRIAL) sub.phase_type = "TRIAL";
    if (request.phase() == v1::PHASE_TYPE_EVERGREEN)
      sub.phase_type = "EVERGREEN";
    sub.bundle_external_key = request.instance_id();
    // The bundle key makes a retried create idempotent: a retry after a lost
    // answer meets 1015 and finds the first attempt's subscription.
    auto id = CallWithRetry(
        calls, KillBillEndpoint::kCreateSubscription,
        {1, bus_events().per_subscription},
        [&] { return client_->CreateSubscription(sub, UntilDeadline(calls)); });
    if (id.ok()) {
      subscription_id = *id;
      created = true;
    } else if (KillBillCode(id.status()) == kCodeBaseSubscriptionExists) {
      auto existing = ByInstance(request.instance_id(), calls);
      if (!existing.ok()) return existing.status();
      subscription_id = existing->subscription_id;
    } else {
      return Mapped(id.status());
    }
  }
  if (absl::Status s =
          EnsureCustomFields(subscription_id, fields, created, calls);
      !s.ok())
    return Mapped(s);
  auto sub = Fetch(subscription_id, calls);
  if (!sub.ok()) return sub.status();
  v1::CreateSubscriptionResponse response;
  *response.mutable_subscription() = Remember(*sub, /*changed=*/true);
  response.set_created(created);
  return response;
}

absl::StatusOr<v1::Subscription> SubscriptionOperations::GetSubscription(
    const v1::GetSubscriptionRequest& request, KillBillCalls& calls) const {
  auto sub = request.has_subscription_id()
                 ? Fetch(request.subscription_id(), calls)
                 : ByInstance(request.instance_id(), calls);
  if (!sub.ok()) return sub.status();
  return Remember(*sub, /*changed=*/false);
}

absl::StatusOr<v1::ListSubscriptionsResponse>
SubscriptionOperations::ListSubscriptions(
    const v1::ListSubscriptionsRequest& request, KillBillCalls& calls) const {
  auto account_id = AccountId(request.account(), calls);
  if (!account_id.ok()) return account_id.status();
  auto bundles = Call(calls, KillBillEndpoint::kGetBundles, kRead, [&] {
    return client_->GetAccountBundles(*account_id, UntilDeadline(calls));
  });
  if (!bundles.ok()) return Mapped(bundles.status());
  v1::ListSubscriptionsResponse all;
  for (const auto& bundle : *bundles) {
    for (const auto& sub : bundle.subscriptions)
      *all.add_subscriptions() = Remember(sub, /*changed=*/false);
  }
  if (cache_ != nullptr) cache_->subscription_lists.Put(*account_id, all);
  if (!request.include_cancelled()) DropCancelled(&all);
  return all;
}

absl::StatusOr<v1::CancelSubscriptionResponse>
SubscriptionOperations::CancelSubscription(
    const v1::CancelSubscriptionRequest& request, KillBillCalls& calls) const {
  std::string subscription_id = request.subscription_id();
  if (request.has_instance_id()) {
    auto sub = ByInstance(request.instance_id(), calls);
    if (!sub.ok()) return sub.status();
    subscription_id = sub->subscription_id;
  }
  const bool immediate = request.policy() == v1::CANCEL_POLICY_IMMEDIATE;
  // Idempotent: a retry after a lost answer meets 1031 (already cancelled).
  absl::Status cancelled = CallWithRetry(
      calls, KillBillEndpoint::kCancelSubscription,
      {1, bus_events().per_cancel}, [&] {
        return client_->CancelSubscription(
            subscription_id, immediate, request.reason(), UntilDeadline(calls));
      });
  const bool already = KillBillCode(cancelled) == kCodeAlreadyCancelled;
  if (!cancelled.ok() && !already) return Mapped(cancelled);
  auto sub = Fetch(subscription_id, calls);
  if (!sub.ok()) return sub.status();
  v1::CancelSubscriptionResponse response;
  *response.mutable_subscription() = Remember(*sub, /*changed=*/true);
  response.set_already_cancelled(already);
  return response;
}

absl::StatusOr<v1::BillingOverview> SubscriptionOperations::GetBillingOverview(
    const v1::GetBillingOverviewRequest& request, KillBillCalls& calls) const {
  const v1::AccountRef& ref = request.account();
  auto account = Call(calls, KillBillEndpoint::kGetAccount, kRead, [&] {
    return client_->GetAccountWithBalance(ref.external_key(), ref.account_id(),
                                          UntilDeadline(calls));
  });
  if (!account.ok()) return Mapped(account.status());
  const std::string& id = account->account_id;
  auto bundles = Call(calls, KillBillEndpoint::kGetBundles, kRead, [&] {
    return client_->GetAccountBundles(id, UntilDeadline(calls));
  });
  if (!bundles.ok()) return Mapped(bundles.status());
  auto methods = Call(calls, KillBillEndpoint::kGetPaymentMethods, kRead, [&] {
    return client_->GetPaymentMethods(id, UntilDeadline(calls));
  });
  if (!methods.ok()) return Mapped(methods.status());
  auto invoices = Call(calls, KillBillEndpoint::kGetInvoices, kRead, [&] {
    return client_->GetUnpaidInvoices(id, UntilDeadline(calls));
  });
  if (!invoices.ok()) return Mapped(invoices.status());

  v1::BillingOverview out;
  *out.mutable_account() = ToProto(*account);
  RememberAccount(cache_, out.account());
  out.set_balance(account->balance);
  out.set_credit(account->credit);
  v1::ListSubscriptionsResponse all;
  for (const auto& bundle : *bundles) {
    for (const auto& sub : bundle.subscriptions) {
      v1::Subscription s = Remember(sub, /*changed=*/false);
      *out.add_subscriptions() = s;
      *all.add_subscriptions() = std::move(s);
    }
  }
  for (const auto& m : *methods) *out.add_payment_methods() = ToProto(m);
  for (const auto& i : *invoices) *out.add_unpaid_invoices() = ToProto(i);
  if (cache_ != nullptr) {
    cache_->subscription_lists.Put(id, std::move(all));
    cache_->overviews.Put(id, out);
  }
  return out;
}

std::optional<Cached<v1::Subscription>> SubscriptionOperations::FromCache(
    const v1::GetSubscriptionRequest& request, Clock::Duration max_age) const {
  if (cache_ == nullptr) return std::nullopt;
  std::string id = request.subscription_id();
  if (request.has_instance_id()) {
    auto hit = cache_->subscription_ids.Find(request.instance_id(), max_age);
    if (!hit) return std::nullopt;
    id = hit->value;
  }
  auto hit = cache_->subscriptions.Find(id, max_age);
  if (!hit) return std::nullopt;
  return Cached<v1::Subscription>{std::move(hit->value), hit->age};
}

namespace {

// The account id a reference names, from the request or the cache.
std::optional<std::string> CachedAccountId(const ReadCache& cache,
                                           const v1::AccountRef& ref) {
  if (ref.has_account_id()) return ref.account_id();
  auto hit = cache.account_ids.Find(ref.external_key(), ReadCache::kForever);
  if (!hit) return std::nullopt;
  return hit->value;
}

}  // namespace

std::optional<Cached<v1::ListSubscriptionsResponse>>
SubscriptionOperations::FromCache(const v1::ListSubscriptionsRequest& request,
                                  Clock::Duration max_age) const {
  if (cache_ == nullptr) return std::nullopt;
  auto id = CachedAccountId(*cache_, request.account());
  if (!id) return std::nullopt;
  auto hit = cache_->subscription_lists.Find(*id, max_age);
  if (!hit) return std::nullopt;
  if (!request.include_cancelled()) DropCancelled(&hit->value);
  return Cached<v1::ListSubscriptionsResponse>{std::move(hit->value), hit->age};
}

std::optional<Cached<v1::BillingOverview>> SubscriptionOperations::FromCache(
    const v1::GetBillingOverviewRequest& request,
    Clock::Duration max_age) const {
  if (cache_ == nullptr) return std::nullopt;
  auto id = CachedAccountId(*cache_, request.account());
  if (!id) return std::nullopt;
  auto hit = cache_->overviews.Find(*id, max_age);
  if (!hit) return std::nullopt;
  return Cached<v1::BillingOverview>{std::move(hit->value), hit->age};
}

}  // namespace bg::service
