// ReadCache: what the gateway last read from Kill Bill, so that reads can be
// answered while Kill Bill is sick, and facts that never change are not asked
// twice.
//
// Each kind of answer has its own freshness (CacheOptions):
//   external key -> account id   forever (Kill Bill never changes the pair)
//   catalog                      hours (catalog_fresh)
//   accounts, subscriptions,     seconds (fresh): within it a read is answered
//   lists, overviews             from here without a Kill Bill call
// and every entry may be served *stale*, up to `stale` old, when Kill Bill
// cannot answer (breaker open, or the call failed UNAVAILABLE). Every answer
// from here carries its age (gRPC trailing metadata
// billing-gateway-cache-age-ms): callers can tell.
//
// The gateway's own writes keep it true: a created or cancelled subscription
// replaces its entry and drops its account's list and overview. Writes by
// others reach it when an entry is refreshed.
//
// Bounded: each map holds at most `max_entries`; the entry stored longest ago
// is evicted first.
//
// Thread-safety: thread-safe (one mutex per map); values are copied in and out.
#pragma once

#include <chrono>
#include <list>
#include <optional>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "billing/v1/billing_gateway.pb.h"
#include "common/clock.h"
#include "killbill_client/types.h"
#include "service/cache_options.h"

namespace bg::service {

// One map from text keys to values of type V, with insertion times.
template <typename V>
class TimedMap {
 public:
  struct Hit {
    V value;
    Clock::Duration age;
  };

  TimedMap(Clock* clock, size_t max_entries)
      : clock_(clock), max_entries_(max_entries) {}

  // The entry if it is at most `max_age` old.
  std::optional<Hit> Find(const std::string& key,
                          Clock::Duration max_age) const {
    absl::MutexLock lock(&mu_);
    auto it = map_.find(key);
    if (it == map_.end()) return std::nullopt;
    const Clock::Duration age = clock_->Now() - it->second.stored;
    if (age > max_age) return std::nullopt;
    return Hit{it->second.value, age};
  }

  void Put(const std::string& key, V value) {
    absl::MutexLock lock(&mu_);
    auto it = map_.find(key);
    if (it != map_.end()) {
      order_.erase(it->second.order);
      map_.erase(it);
    }
    order_.push_back(key);
    map_.emplace(
        key, Entry{std::move(value), clock_->Now(), std::prev(order_.end())});
    while (map_.size() > max_entries_) {
      map_.erase(order_.front());
      order_.pop_front();
    }
  }

  void Erase(const std::string& key) {
    absl::MutexLock lock(&mu_);
    auto it = map_.find(key);
    if (it == map_.end()) return;
    order_.erase(it->second.order);
    map_.erase(it);
  }

  size_t size() const {
    absl::MutexLock lock(&mu_);
    return map_.size();
  }

 private:
  struct Entry {
    V value;
    Clock::TimePoint stored;
    std::list<std::string>::iterator order;
  };

  Clock* const clock_;
  const size_t max_entries_;
  mutable absl::Mutex mu_;
  std::unordered_map<std::string, Entry> map_ ABSL_GUARDED_BY(mu_);
  std::list<std::string> order_ ABSL_GUARDED_BY(mu_);  // oldest first
};

// The maps; each answer kind's code reads and fills its own.
struct ReadCache {
  explicit ReadCache(Clock* clock, CacheOptions opts = {})
      : options(opts),
        account_ids(clock, opts.max_entries),
        accounts(clock, opts.max_entries),
        catalog(clock, 1),
        subscriptions(clock, opts.max_entries),
        subscription_ids(clock, opts.max_entries),
        subscription_lists(clock, opts.max_entries),
        overviews(clock, opts.max_entries) {}

  // Freshness of what never changes.
  static constexpr Clock::Duration kForever = Clock::Duration::max();

  const CacheOptions options;
  // Account external key -> Kill Bill account id.
  TimedMap<std::string> account_ids;
  // "id:<uuid>" and "key:<external key>" -> account.
  TimedMap<billing::v1::Account> accounts;
  // The catalog's plans (one entry, key "").
  TimedMap<std::vector<killbill::CatalogPlan>> catalog;
  // Subscription id -> subscription.
  TimedMap<billing::v1::Subscription> subscriptions;
  // Instance id (bundle external key) -> subscription id.
  TimedMap<std::string> subscription_ids;
  // Account id -> every subscription of the account, cancelled ones included.
  TimedMap<billing::v1::ListSubscriptionsResponse> subscription_lists;
  // Account id -> overview.
  TimedMap<billing::v1::BillingOverview> overviews;
};

}  // namespace bg::service
