#include "bench/killbill_sim/account_store.h"

#include <algorithm>
#include <cstdio>
#include <utility>

#include "absl/status/status.h"

namespace bg::sim {

absl::StatusOr<const SimAccount*> AccountStore::Create(SimAccount account) {
  if (account.id.empty() || by_id_.count(account.id) > 0) {
    account.id = NewUuid();
  }
  if (account.external_key.empty()) account.external_key = account.id;
  if (id_by_key_.count(account.external_key) > 0) {
    return absl::AlreadyExistsError(account.external_key);
  }
  id_by_key_[account.external_key] = account.id;
  const std::string id = account.id;
  return &by_id_.emplace(id, std::move(account)).first->second;
}

const SimAccount* AccountStore::Find(const std::string& id) const {
  auto it = by_id_.find(id);
  return it == by_id_.end() ? nullptr : &it->second;
}

const SimAccount* AccountStore::FindByExternalKey(
    const std::string& key) const {
  auto it = id_by_key_.find(key);
  return it == id_by_key_.end() ? nullptr : Find(it->second);
}

absl::StatusOr<int> AccountStore::AddTags(
    const std::string& id, const std::vector<std::string>& tag_ids) {
  auto it = by_id_.find(id);
  if (it == by_id_.end()) return absl::NotFoundError(id);
  std::vector<std::string>& tags = it->second.tag_definition_ids;
  int added = 0;
  for (const std::string& tag : tag_ids) {
    if (std::find(tags.begin(), tags.end(), tag) == tags.end()) {
      tags.push_back(tag);
      ++added;
    }
  }
  return added;
}

std::string AccountStore::NewUuid() { return RandomUuid(id_rng_); }

std::string RandomUuid(std::mt19937_64& rng) {
  std::uniform_int_distribution<uint64_t> dist;
  uint64_t hi = dist(rng), lo = dist(rng);
  hi = (hi & 0xFFFFFFFFFFFF0FFFULL) | 0x0000000000004000ULL;  // version 4
  lo =
      (lo & 0x3FFFFFFFFFFFFFFFULL) | 0x8000000000000000ULL;  // RFC 4122 variant
  char buf[37];
  std::snprintf(buf, sizeof buf, "%08x-%04x-%04x-%04x-%012llx",
                static_cast<unsigned>(hi >> 32),
                static_cast<unsigned>((hi >> 16) & 0xFFFF),
                static_cast<unsigned>(hi & 0xFFFF),
                static_cast<unsigned>(lo >> 48),
                static_cast<unsigned long long>(lo & 0xFFFFFFFFFFFFULL));
  return buf;
}

}  // namespace bg::sim
