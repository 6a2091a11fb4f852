#include "bench/killbill_sim/sim_catalog.h"

#include <algorithm>
#include <iterator>
#include <string>

namespace bg::sim {
namespace {

struct Period {
  const char* name;
  const char* suffix;
  int months;
};
constexpr Period kPeriods[] = {{"MONTHLY", "monthly", 1},
                               {"QUARTERLY", "quarterly", 3},
                               {"BIANNUAL", "biannual", 6},
                               {"ANNUAL", "annual", 12}};

struct Product {
  const char* name;
  int trial_days;
  // EVERGREEN prices, one per entry of kPeriods.
  double prices[std::size(kPeriods)];
};
constexpr int kTrialDays = 14;
constexpr Product kProducts[] = {{"basic", kTrialDays, {9, 25, 49, 89}},
                                 {"standard", 0, {19, 49, 99, 179}},
                                 {"premium", 0, {39, 99, 199, 379}}};

SimCatalog BuildSaasOdoo() {
  SimCatalog catalog;
  catalog.name = "SaasOdoo";
  catalog.currency = "USD";
  // Not known from SaaSOdoo's file: any date before the sim's subscriptions.
  catalog.effective_date = "2024-01-01T00:00:00.000Z";
  for (const Product& product : kProducts) {
    catalog.products.push_back(product.name);
    for (size_t i = 0; i < std::size(kPeriods); ++i) {
      CatalogPlan plan;
      plan.product = product.name;
      plan.name = std::string(product.name) + "-" + kPeriods[i].suffix;
      plan.billing_period = kPeriods[i].name;
      plan.period_months = kPeriods[i].months;
      plan.trial_days = product.trial_days;
      plan.recurring_price = product.prices[i];
      catalog.plans.push_back(plan);
    }
  }
  return catalog;
}

}  // namespace

const CatalogPlan* SimCatalog::FindPlan(const std::string& plan_name) const {
  auto it = std::find_if(plans.begin(), plans.end(), [&](const CatalogPlan& p) {
    return p.name == plan_name;
  });
  return it == plans.end() ? nullptr : &*it;
}

const SimCatalog& SaasOdooCatalog() {
  static const SimCatalog* const catalog = new SimCatalog(BuildSaasOdoo());
  return *catalog;
}

absl::CivilDay AddMonths(absl::CivilDay day, int months) {
  const absl::CivilMonth target = absl::CivilMonth(day) + months;
  // The last day of the target month: the day before the next month's first.
  const absl::CivilDay last = absl::CivilDay(target + 1) - 1;
  return absl::CivilDay(target.year(), target.month(),
                        std::min(day.day(), last.day()));
}

}  // namespace bg::sim
