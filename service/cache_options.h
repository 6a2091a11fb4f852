// The read cache's bounds (the `cache.*` YAML keys); see read_cache.h.
// Kept apart so config/ can hold them without the proto.
#pragma once

#include <chrono>
#include <cstddef>

#include "common/clock.h"

namespace bg::service {

struct CacheOptions {
  // A read newer than this is answered from the cache (`cache.fresh`).
  Clock::Duration fresh = std::chrono::seconds(5);
  // The catalog's freshness (`cache.catalog_fresh`).
  Clock::Duration catalog_fresh = std::chrono::hours(1);
  // The oldest answer served while Kill Bill cannot answer (`cache.stale`).
  Clock::Duration stale = std::chrono::hours(24);
  // Entries per map (accounts, subscriptions, ...) (`cache.max_entries`).
  size_t max_entries = 10000;
};

}  // namespace bg::service
