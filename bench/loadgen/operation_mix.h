// OperationMix: which operation each billing-loadgen arrival makes, and
// AccountPool: the accounts this run registered, for the operations that need
// an existing account.
//
// Operations (names as in --mix and every output format):
//   register_tagged    create an account, then add AUTO_PAY_OFF (SaaSOdoo's
//                      registration; Kill Bill: 2 bus events with the tag's);
//   register_untagged  create an account only;
//   subscribe          create a `basic-monthly` subscription with its
//                      `instance_id` custom field on an account of this run;
//   overview           read an account's billing overview (account with
//                      balance, bundles, payment methods, unpaid invoices).
//
// A mix is a list of weights, `register_tagged=1,register_untagged=1,
// subscribe=0.5,overview=4`: each arrival draws its operation with probability
// weight / sum of weights. The draw depends only on the seed and the arrival's
// sequence number, never on timing or on which thread asks, so two runs with
// the same seed and mix make the same sequence of operations.
//
// Thread-safety: OperationMix is immutable after construction; AccountPool is
// safe to use from any thread (one mutex).
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"

namespace bg::loadgen {

enum class Operation {
  kRegisterTagged = 0,
  kRegisterUntagged,
  kSubscribe,
  kOverview,
};
inline constexpr int kOperationCount = 4;

// register_tagged, register_untagged, subscribe, overview.
absl::string_view OperationName(Operation op);
// The operation named `name`; nullopt for an unknown name.
std::optional<Operation> OperationFromName(absl::string_view name);
// True for the operations that create an account.
bool IsRegistration(Operation op);
// True for the operations that act on an account created earlier in the run.
bool NeedsAccount(Operation op);
// True for the operations that change Kill Bill (everything but overview).
bool IsWrite(Operation op);

class OperationMix {
 public:
  // Every arrival makes `only`.
  static OperationMix Single(Operation only);

  // Parses `name=weight[,name=weight...]`. Weights are finite decimal numbers
  // >= 0; each name at most once; at least one weight > 0. Errors name the
  // offending entry, e.g. `--mix entry 'subscribe=-1': weight must be >= 0`.
  static absl::StatusOr<OperationMix> Parse(absl::string_view spec);

  // The operation of arrival `seq` under `seed`: the same (seed, seq) always
  // gives the same operation.
  Operation Draw(uint64_t seed, int64_t seq) const;

  double weight(Operation op) const { return weights_[static_cast<int>(op)]; }
  // The registration to make instead of an operation that needs an account
  // while the run has none yet: the registration with the larger weight
  // (register_tagged on a tie or when the mix has neither).
  Operation FallbackRegistration() const;
  // `register_tagged=1,overview=4`: the operations with a weight > 0, in the
  // order of Operation, weights printed with %g.
  std::string ToString() const;

 private:
  std::array<double, kOperationCount> weights_{};
  // Cumulative weights / total, the last one exactly 1.
  std::array<double, kOperationCount> cumulative_{};
};

// The external key of the account registered by call `seq` (key_prefix + seq,
// as before the mix existed), and the instance id of the subscription created
// by call `seq` (key_prefix + "inst-" + seq).
std::string AccountKey(absl::string_view key_prefix, int64_t seq);
std::string InstanceId(absl::string_view key_prefix, int64_t seq);

// The plan every subscribe call asks for.
inline constexpr char kSubscribePlan[] = "basic-monthly";

// A uniform double in [0, 1) from (seed, seq, stream): splitmix64 of the three
// mixed together. Exposed for tests and for AccountPool's pick.
double UniformFor(uint64_t seed, int64_t seq, uint64_t stream);

// The sequence numbers of the registrations of this run that succeeded; the
// target turns a sequence number into the account's external key.
class AccountPool {
 public:
  void Add(int64_t registration_seq);
  // One of the accounts added so far for arrival `seq` (uniformly by
  // UniformFor(seed, seq, 1)); nullopt when there is none yet.
  std::optional<int64_t> Pick(uint64_t seed, int64_t seq) const;
  int64_t size() const;

 private:
  mutable absl::Mutex mu_;
  std::vector<int64_t> seqs_ ABSL_GUARDED_BY(mu_);
};

}  // namespace bg::loadgen
