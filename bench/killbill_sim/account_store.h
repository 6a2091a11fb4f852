// AccountStore: killbill-sim's accounts, in memory: found by id and by
// external key, each with the tag definitions attached to it.
//
// The store decides what Kill Bill's database would: which id an account gets
// and whether its external key is taken. It does not know Kill Bill's JSON: an
// account's other fields are kept as the routes built them and given back for
// rendering.
//
// Thread-safety: thread-compatible. KillBillSim holds its mutex around every
// call.
#pragma once

#include <cstddef>
#include <cstdint>
#include <random>
#include <string>
#include <unordered_map>
#include <vector>

#include "absl/status/statusor.h"
#include "nlohmann/json.hpp"

namespace bg::sim {

struct SimAccount {
  std::string id;
  std::string external_key;
  // The fields Kill Bill returns for the account, in Kill Bill's order, built
  // by the routes. The store leaves them as they are.
  nlohmann::ordered_json fields;
  // Tag definition ids in the order they were first attached.
  std::vector<std::string> tag_definition_ids;
};

// A random version-4 UUID drawn from `rng`, lower-case and dashed.
std::string RandomUuid(std::mt19937_64& rng);

class AccountStore {
 public:
  // `id_seed` seeds the random UUIDs of new accounts.
  explicit AccountStore(uint64_t id_seed) : id_rng_(id_seed) {}

  // Stores `account`. Its id is kept unless it is empty or already taken, in
  // which case a random UUID replaces it; an empty external key becomes the
  // id. AlreadyExists, whose message is the key, when the external key is
  // taken (nothing is stored). Returns the stored account.
  absl::StatusOr<const SimAccount*> Create(SimAccount account);

  // nullptr when unknown.
  const SimAccount* Find(const std::string& id) const;
  const SimAccount* FindByExternalKey(const std::string& key) const;

  // Attaches the tag definitions the account does not have yet, in order.
  // Returns how many were new (a tag already on the account adds nothing);
  // NotFound for an unknown account.
  absl::StatusOr<int> AddTags(const std::string& id,
                              const std::vector<std::string>& tag_ids);

  size_t size() const { return by_id_.size(); }

 private:
  std::string NewUuid();

  std::unordered_map<std::string, SimAccount> by_id_;
  std::unordered_map<std::string, std::string> id_by_key_;
  std::mt19937_64 id_rng_;
};

}  // namespace bg::sim
