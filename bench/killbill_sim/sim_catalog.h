// SimCatalog: the one Kill Bill catalog killbill-sim serves, SaaSOdoo's
// `SaasOdoo` (USD, every product BASE, billed IN_ADVANCE), as typed data:
// `basic-*` plans open with a $0 trial of trial_days, then every plan is
// EVERGREEN at its recurring price per billing period. The routes render it
// as Kill Bill's CatalogJson; subscriptions read their phases and prices
// from it.
//
// Also the calendar arithmetic Kill Bill applies to those plans: phase names,
// periods added Joda-style (a month later than Jan 31 is Feb 28/29).
//
// Thread-safety: immutable data and pure functions.
#pragma once

#include <string>
#include <vector>

#include "absl/time/civil_time.h"

namespace bg::sim {

struct CatalogPlan {
  std::string name;     // "basic-monthly"
  std::string product;  // "basic"
  // MONTHLY | QUARTERLY | BIANNUAL | ANNUAL.
  std::string billing_period;
  // Months in one billing period.
  int period_months = 1;
  // Length of the $0 TRIAL phase in days; 0: no trial phase.
  int trial_days = 0;
  // The EVERGREEN phase's recurring price, in the catalog's currency.
  double recurring_price = 0;

  bool has_trial() const { return trial_days > 0; }
  // "<plan>-trial" / "<plan>-evergreen", as Kill Bill names phases.
  std::string TrialPhaseName() const { return name + "-trial"; }
  std::string EvergreenPhaseName() const { return name + "-evergreen"; }
};

struct SimCatalog {
  std::string name;
  std::string currency;
  // The catalog version's effective date (rendered as an instant).
  std::string effective_date;
  // Products in catalog order, each with its plans in billing-period order.
  std::vector<std::string> products;
  std::vector<CatalogPlan> plans;

  // nullptr when no plan has that name.
  const CatalogPlan* FindPlan(const std::string& name) const;
};

// SaaSOdoo's catalog (services/billing-service/killbill_catalog.xml).
const SimCatalog& SaasOdooCatalog();

// `day` plus `months`, with the day of month clamped to the last day of the
// target month (Joda's plusMonths).
absl::CivilDay AddMonths(absl::CivilDay day, int months);

}  // namespace bg::sim
