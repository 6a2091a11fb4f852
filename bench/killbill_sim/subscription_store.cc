#include "bench/killbill_sim/subscription_store.h"

#include <algorithm>
#include <utility>

#include "absl/status/status.h"
#include "bench/killbill_sim/account_store.h"

namespace bg::sim {

absl::StatusOr<const SimSubscription*> SubscriptionStore::Create(
    const SubscriptionRequest& request) {
  const CatalogPlan& plan = request.plan;
  bool trial = plan.has_trial();
  if (request.phase_type == "TRIAL") {
    if (!plan.has_trial()) return absl::InvalidArgumentError("TRIAL");
  } else if (request.phase_type == "EVERGREEN") {
    trial = false;
  } else if (!request.phase_type.empty()) {
    return absl::InvalidArgumentError(request.phase_type);
  }
  if (!request.bundle_external_key.empty()) {
    for (const SimBundle& bundle : bundles_) {
      if (bundle.external_key != request.bundle_external_key) continue;
      const bool active = std::any_of(
          bundle.subscription_ids.begin(), bundle.subscription_ids.end(),
          [&](const std::string& id) {
            return !subscriptions_.at(id).CancelledOn(request.today);
          });
      if (!active) continue;
      if (bundle.account_id == request.account_id) {
        return absl::AlreadyExistsError(request.bundle_external_key);
      }
      return absl::FailedPreconditionError(request.bundle_external_key);
    }
  }

  SimBundle bundle;
  bundle.id = NewUuid();
  bundle.account_id = request.account_id;
  bundle.external_key = request.bundle_external_key.empty()
                            ? bundle.id
                            : request.bundle_external_key;

  SimSubscription s;
  s.id = NewUuid();
  s.account_id = request.account_id;
  s.bundle_id = bundle.id;
  s.external_key = request.external_key.empty() ? s.id : request.external_key;
  s.bundle_external_key = bundle.external_key;
  s.plan = plan;
  s.start = request.today;
  s.starts_in_trial = trial;
  s.evergreen_start = trial ? s.start + plan.trial_days : s.start;
  s.charged_through = trial ? s.start : AddMonths(s.start, plan.period_months);
  const std::string first_phase =
      trial ? plan.TrialPhaseName() : plan.EvergreenPhaseName();
  for (const char* type : {"START_ENTITLEMENT", "START_BILLING"}) {
    s.events.push_back({NewUuid(), type, s.start, first_phase});
  }
  if (trial) {
    s.events.push_back(
        {NewUuid(), "PHASE", s.evergreen_start, plan.EvergreenPhaseName()});
  }

  bundle.subscription_ids.push_back(s.id);
  bundles_.push_back(std::move(bundle));
  invoices_.push_back(FirstInvoice(s, request.today));
  const std::string id = s.id;
  return &subscriptions_.emplace(id, std::move(s)).first->second;
}

SimInvoice SubscriptionStore::FirstInvoice(const SimSubscription& s,
                                           absl::CivilDay today) {
  SimInvoice invoice;
  invoice.id = NewUuid();
  invoice.account_id = s.account_id;
  invoice.number = static_cast<int64_t>(invoices_.size()) + 1;
  invoice.date = today;
  invoice.currency = SaasOdooCatalog().currency;
  invoice.bundle_external_key = s.bundle_external_key;
  invoice.subscription_id = s.id;
  invoice.bundle_id = s.bundle_id;
  invoice.plan_name = s.plan.name;
  invoice.product = s.plan.product;
  SimInvoiceItem item;
  item.id = NewUuid();
  item.start = s.start;
  if (s.starts_in_trial) {  // the trial's fixed $0
    item.type = "FIXED";
    item.phase = s.plan.TrialPhaseName();
  } else {
    item.type = "RECURRING";
    item.phase = s.plan.EvergreenPhaseName();
    item.end = s.charged_through;
    item.amount = s.plan.recurring_price;
  }
  invoice.amount = item.amount;
  invoice.balance = item.amount;  // AUTO_PAY_OFF: never paid
  invoice.items.push_back(std::move(item));
  return invoice;
}

const SimSubscription* SubscriptionStore::Find(const std::string& id) const {
  auto it = subscriptions_.find(id);
  return it == subscriptions_.end() ? nullptr : &it->second;
}

absl::StatusOr<const SimSubscription*> SubscriptionStore::Cancel(
    const std::string& id, CancelPolicy policy, absl::CivilDay today) {
  auto it = subscriptions_.find(id);
  if (it == subscriptions_.end()) return absl::NotFoundError(id);
  SimSubscription& s = it->second;
  if (s.cancelled.has_value()) {
    return absl::FailedPreconditionError(s.CancelledOn(today) ? "CANCELLED"
                                                              : "ACTIVE");
  }
  absl::CivilDay stop = today;
  if (policy == CancelPolicy::kEndOfTerm) {
    stop = std::max(today,
                    s.InTrialOn(today) ? s.evergreen_start : s.charged_through);
  }
  s.cancelled = stop;
  // Nothing happens to the subscription after it stops.
  s.events.erase(std::remove_if(s.events.begin(), s.events.end(),
                                [&](const SimSubscriptionEvent& e) {
                                  return e.type == "PHASE" &&
                                         e.effective >= stop;
                                }),
                 s.events.end());
  const std::string phase = s.events.back().phase;
  for (const char* type : {"STOP_ENTITLEMENT", "STOP_BILLING"}) {
    s.events.push_back({NewUuid(), type, stop, phase});
  }
  return &s;
}

SimBundleView SubscriptionStore::View(const SimBundle& bundle) const {
  SimBundleView view;
  view.bundle = bundle;
  for (const std::string& id : bundle.subscription_ids) {
    view.subscriptions.push_back(subscriptions_.at(id));
  }
  return view;
}

std::vector<SimBundleView> SubscriptionStore::BundlesByKey(
    const std::string& key) const {
  std::vector<SimBundleView> out;
  for (const SimBundle& bundle : bundles_) {
    if (bundle.external_key == key) out.push_back(View(bundle));
  }
  return out;
}

std::vector<SimBundleView> SubscriptionStore::AccountBundles(
    const std::string& account_id) const {
  std::vector<SimBundleView> out;
  for (const SimBundle& bundle : bundles_) {
    if (bundle.account_id == account_id) out.push_back(View(bundle));
  }
  return out;
}

absl::Status SubscriptionStore::AddCustomFields(
    const std::string& subscription_id, std::vector<SimCustomField> fields) {
  auto it = subscriptions_.find(subscription_id);
  if (it == subscriptions_.end()) return absl::NotFoundError(subscription_id);
  std::vector<SimCustomField> all = it->second.custom_fields;
  for (SimCustomField& field : fields) {
    field.id = NewUuid();
    for (const SimCustomField& present : all) {
      if (present.name == field.name && present.value == field.value) {
        return absl::AlreadyExistsError(present.id);
      }
    }
    all.push_back(std::move(field));
  }
  it->second.custom_fields = std::move(all);
  return absl::OkStatus();
}

std::vector<SimInvoice> SubscriptionStore::AccountInvoices(
    const std::string& account_id, bool unpaid_only) const {
  std::vector<SimInvoice> out;
  for (const SimInvoice& invoice : invoices_) {
    if (invoice.account_id != account_id) continue;
    if (unpaid_only && invoice.balance <= 0) continue;
    out.push_back(invoice);
  }
  return out;
}

double SubscriptionStore::AccountBalance(const std::string& account_id) const {
  double balance = 0;
  for (const SimInvoice& invoice : invoices_) {
    if (invoice.account_id == account_id) balance += invoice.balance;
  }
  return balance;
}

std::string SubscriptionStore::NewUuid() { return RandomUuid(id_rng_); }

}  // namespace bg::sim
