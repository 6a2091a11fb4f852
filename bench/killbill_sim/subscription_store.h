// SubscriptionStore: killbill-sim's subscriptions, in memory, with what Kill
// Bill keeps around them: the bundle that holds each one, its events, the
// custom fields attached to it and the invoice its creation produced.
//
// The store decides what Kill Bill's subscription, invoice and custom-field
// services would: ids, whether a bundle key is taken (by this account or
// another), the phases and events of a plan, what a cancellation may do, the
// first invoice and its balance. Dates are calendar days in UTC; "today" is
// always passed in, so the store has no clock. It knows no JSON and no HTTP:
// failures are absl::Status codes that the routes turn into Kill Bill's
// error codes (each method says which).
//
// Simplifications: one base subscription per bundle, no add-ons, no plan
// changes; one invoice per subscription (its first period) and nothing is
// ever paid (SaaSOdoo's accounts are AUTO_PAY_OFF), so a $0 trial invoice is
// the only settled one.
//
// Thread-safety: thread-compatible. KillBillSim holds its mutex around every
// call.
#pragma once

#include <cstdint>
#include <optional>
#include <random>
#include <string>
#include <unordered_map>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/civil_time.h"
#include "bench/killbill_sim/sim_catalog.h"

namespace bg::sim {

struct SimSubscriptionEvent {
  std::string id;
  // START_ENTITLEMENT, START_BILLING, PHASE, STOP_ENTITLEMENT, STOP_BILLING.
  std::string type;
  absl::CivilDay effective;
  // The phase in force from this event on ("<plan>-trial", "-evergreen").
  std::string phase;
};

struct SimCustomField {
  std::string id;
  std::string name;
  std::string value;
};

struct SimSubscription {
  std::string id;
  std::string account_id;
  std::string bundle_id;
  std::string external_key;
  std::string bundle_external_key;
  CatalogPlan plan;
  absl::CivilDay start;
  // Starts in the plan's TRIAL phase (a trial plan not asked for EVERGREEN).
  bool starts_in_trial = false;
  // The day the EVERGREEN phase starts (the start without a trial).
  absl::CivilDay evergreen_start;
  // Billed up to (exclusive): the end of the first period invoiced; the start
  // for a $0 trial, whose fixed price covers no period.
  absl::CivilDay charged_through;
  // Set by a cancellation: the day the entitlement ends.
  std::optional<absl::CivilDay> cancelled;
  std::vector<SimSubscriptionEvent> events;
  std::vector<SimCustomField> custom_fields;

  // CANCELLED from the cancellation day on, ACTIVE before.
  bool CancelledOn(absl::CivilDay today) const {
    return cancelled.has_value() && *cancelled <= today;
  }
  // In the TRIAL phase on `day`.
  bool InTrialOn(absl::CivilDay day) const {
    return starts_in_trial && day < evergreen_start;
  }
};

struct SimBundle {
  std::string id;
  std::string account_id;
  std::string external_key;
  std::vector<std::string> subscription_ids;
};

struct SimInvoiceItem {
  std::string id;
  // FIXED (the trial's $0) or RECURRING (a period of the evergreen price).
  std::string type;
  std::string phase;
  absl::CivilDay start;
  // The end of the period; none for a FIXED item.
  std::optional<absl::CivilDay> end;
  double amount = 0;
};

struct SimInvoice {
  std::string id;
  std::string account_id;
  // Kill Bill's per-tenant sequence, from 1.
  int64_t number = 0;
  absl::CivilDay date;
  double amount = 0;
  double balance = 0;
  std::string currency;
  std::string bundle_external_key;
  std::string subscription_id;
  std::string bundle_id;
  std::string plan_name;
  std::string product;
  std::vector<SimInvoiceItem> items;
};

// A bundle with copies of its subscriptions, for rendering.
struct SimBundleView {
  SimBundle bundle;
  std::vector<SimSubscription> subscriptions;
};

// What POST /1.0/kb/subscriptions asks, validated by the routes (known plan,
// known account).
struct SubscriptionRequest {
  std::string account_id;
  CatalogPlan plan;
  // "" (the plan's first phase), "TRIAL" or "EVERGREEN".
  std::string phase_type;
  // "" for a generated one.
  std::string bundle_external_key;
  std::string external_key;
  absl::CivilDay today;
};

enum class CancelPolicy { kImmediate, kEndOfTerm };

class SubscriptionStore {
 public:
  // `id_seed` seeds the random UUIDs of everything the store creates.
  explicit SubscriptionStore(uint64_t id_seed) : id_rng_(id_seed) {}

  // Creates a bundle holding a new base subscription starting `today`, its
  // events and its first invoice. Errors, nothing stored:
  //   InvalidArgument   the phase asked is not one of the plan's (message:
  //                     the phase type; Kill Bill's 1011);
  //   AlreadyExists     the bundle key has an active base subscription on
  //                     this account (message: the key; 1015);
  //   FailedPrecondition  ... on another account (message: the key; 1014).
  absl::StatusOr<const SimSubscription*> Create(
      const SubscriptionRequest& request);

  // nullptr when unknown.
  const SimSubscription* Find(const std::string& id) const;

  // Cancels: IMMEDIATE ends the entitlement today, END_OF_TERM at the end of
  // the current term (the trial's end while in a trial, else the charged
  // through date). Adds STOP_ENTITLEMENT and STOP_BILLING and drops the
  // events after the stop. NotFound when unknown; FailedPrecondition when a
  // cancellation is already set (message: the state, Kill Bill's 1031).
  absl::StatusOr<const SimSubscription*> Cancel(const std::string& id,
                                                CancelPolicy policy,
                                                absl::CivilDay today);

  // Bundles with that external key, oldest first (a key is reused once its
  // subscription is cancelled). Empty when none.
  std::vector<SimBundleView> BundlesByKey(const std::string& key) const;
  // The account's bundles, oldest first.
  std::vector<SimBundleView> AccountBundles(
      const std::string& account_id) const;

  // Adds custom fields to a subscription, all or none. NotFound when the
  // subscription is unknown; AlreadyExists (message: the id of the field
  // already there, Kill Bill's 9000) when one has the same name and value as
  // a field on it or before it in `fields`. Ids are assigned here.
  absl::Status AddCustomFields(const std::string& subscription_id,
                               std::vector<SimCustomField> fields);

  // The account's invoices, oldest first; only those with a balance when
  // `unpaid_only`.
  std::vector<SimInvoice> AccountInvoices(const std::string& account_id,
                                          bool unpaid_only) const;
  // Sum of the balances of the account's invoices.
  double AccountBalance(const std::string& account_id) const;

  size_t size() const { return subscriptions_.size(); }

 private:
  std::string NewUuid();
  SimInvoice FirstInvoice(const SimSubscription& subscription,
                          absl::CivilDay today);
  SimBundleView View(const SimBundle& bundle) const;

  std::unordered_map<std::string, SimSubscription> subscriptions_;
  // Bundles in creation order.
  std::vector<SimBundle> bundles_;
  // Invoices in creation order.
  std::vector<SimInvoice> invoices_;
  std::mt19937_64 id_rng_;
};

}  // namespace bg::sim
