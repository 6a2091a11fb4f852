#include "bench/loadgen/operation_mix.h"

#include <cmath>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"

namespace bg::loadgen {
namespace {

constexpr std::array<absl::string_view, kOperationCount> kNames = {
    "register_tagged", "register_untagged", "subscribe", "overview"};

uint64_t SplitMix64(uint64_t x) {
  x += 0x9e3779b97f4a7c15ULL;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}

absl::Status EntryError(absl::string_view entry, absl::string_view why) {
  return absl::InvalidArgumentError(
      absl::StrCat("--mix entry '", entry, "': ", why));
}

std::string KnownNames() {
  return absl::StrCat(kNames[0], ", ", kNames[1], ", ", kNames[2], ", ",
                      kNames[3]);
}

}  // namespace

absl::string_view OperationName(Operation op) {
  return kNames[static_cast<int>(op)];
}

std::optional<Operation> OperationFromName(absl::string_view name) {
  for (int i = 0; i < kOperationCount; ++i) {
    if (kNames[i] == name) return static_cast<Operation>(i);
  }
  return std::nullopt;
}

bool IsRegistration(Operation op) {
  return op == Operation::kRegisterTagged || op == Operation::kRegisterUntagged;
}

bool NeedsAccount(Operation op) { return !IsRegistration(op); }

bool IsWrite(Operation op) { return op != Operation::kOverview; }

std::string AccountKey(absl::string_view key_prefix, int64_t seq) {
  return absl::StrCat(key_prefix, seq);
}

std::string InstanceId(absl::string_view key_prefix, int64_t seq) {
  return absl::StrCat(key_prefix, "inst-", seq);
}

double UniformFor(uint64_t seed, int64_t seq, uint64_t stream) {
  const uint64_t h = SplitMix64(
      SplitMix64(SplitMix64(seed) ^ static_cast<uint64_t>(seq)) ^ stream);
  // The top 53 bits as a double in [0, 1).
  return static_cast<double>(h >> 11) * 0x1.0p-53;
}

OperationMix OperationMix::Single(Operation only) {
  OperationMix mix;
  mix.weights_[static_cast<int>(only)] = 1;
  for (int i = 0; i < kOperationCount; ++i) {
    mix.cumulative_[i] = i >= static_cast<int>(only) ? 1.0 : 0.0;
  }
  return mix;
}

absl::StatusOr<OperationMix> OperationMix::Parse(absl::string_view spec) {
  OperationMix mix;
  std::array<bool, kOperationCount> seen{};
  if (absl::StripAsciiWhitespace(spec).empty()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "--mix is empty; give name=weight entries (names: ", KnownNames(),
        ")"));
  }
  for (absl::string_view raw : absl::StrSplit(spec, ',')) {
    const absl::string_view entry = absl::StripAsciiWhitespace(raw);
    if (entry.empty()) return EntryError(raw, "empty entry");
    const size_t eq = entry.find('=');
    if (eq == absl::string_view::npos) {
      return EntryError(entry, "expected name=weight");
    }
    const absl::string_view name =
        absl::StripAsciiWhitespace(entry.substr(0, eq));
    const absl::string_view value =
        absl::StripAsciiWhitespace(entry.substr(eq + 1));
    const std::optional<Operation> op = OperationFromName(name);
    if (!op) {
      return EntryError(entry, absl::StrCat("unknown operation '", name,
                                            "' (known: ", KnownNames(), ")"));
    }
    const int i = static_cast<int>(*op);
    if (seen[i]) return EntryError(entry, "operation given twice");
    seen[i] = true;
    double w = 0;
    if (!absl::SimpleAtod(value, &w) || !std::isfinite(w)) {
      return EntryError(entry,
                        absl::StrCat("weight '", value, "' is not a number"));
    }
    if (w < 0) return EntryError(entry, "weight must be >= 0");
    mix.weights_[i] = w;
  }
  double total = 0;
  for (double w : mix.weights_) total += w;
  if (total <= 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("--mix '", spec, "': every weight is 0"));
  }
  double sum = 0;
  for (int i = 0; i < kOperationCount; ++i) {
    sum += mix.weights_[i];
    mix.cumulative_[i] = sum / total;
  }
  // Rounding must not leave a gap at the top; operations with weight 0 after
  // the last positive one keep 1 too, and are never drawn (strict <).
  for (int i = kOperationCount - 1; i >= 0 && mix.cumulative_[i] < 1.0; --i) {
    mix.cumulative_[i] = 1.0;
    if (mix.weights_[i] > 0) break;
  }
  return mix;
}

Operation OperationMix::Draw(uint64_t seed, int64_t seq) const {
  const double u = UniformFor(seed, seq, 0);
  for (int i = 0; i < kOperationCount; ++i) {
    if (weights_[i] > 0 && u < cumulative_[i]) return static_cast<Operation>(i);
  }
  // Unreachable: the last positive weight's cumulative value is 1 > u.
  for (int i = kOperationCount - 1; i >= 0; --i) {
    if (weights_[i] > 0) return static_cast<Operation>(i);
  }
  return Operation::kRegisterTagged;
}

Operation OperationMix::FallbackRegistration() const {
  return weight(Operation::kRegisterUntagged) >
                 weight(Operation::kRegisterTagged)
             ? Operation::kRegisterUntagged
             : Operation::kRegisterTagged;
}

std::string OperationMix::ToString() const {
  std::string out;
  for (int i = 0; i < kOperationCount; ++i) {
    if (weights_[i] <= 0) continue;
    absl::StrAppendFormat(&out, "%s%s=%g", out.empty() ? "" : ",", kNames[i],
                          weights_[i]);
  }
  return out;
}

void AccountPool::Add(int64_t registration_seq) {
  absl::MutexLock lock(&mu_);
  seqs_.push_back(registration_seq);
}

std::optional<int64_t> AccountPool::Pick(uint64_t seed, int64_t seq) const {
  absl::MutexLock lock(&mu_);
  if (seqs_.empty()) return std::nullopt;
  const double u = UniformFor(seed, seq, 1);
  size_t i = static_cast<size_t>(u * static_cast<double>(seqs_.size()));
  if (i >= seqs_.size()) i = seqs_.size() - 1;
  return seqs_[i];
}

int64_t AccountPool::size() const {
  absl::MutexLock lock(&mu_);
  return static_cast<int64_t>(seqs_.size());
}

}  // namespace bg::loadgen
