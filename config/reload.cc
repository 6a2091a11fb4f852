#include "config/reload.h"

#include <algorithm>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/string_view.h"
#include "config/sections.h"

namespace bg::config {
namespace {

// DescribeForLog's "section:" / "  key: value" lines as ("section.key",
// "value") pairs, in order.
std::vector<std::pair<std::string, std::string>> Keys(const GatewayConfig& c) {
  std::vector<std::pair<std::string, std::string>> keys;
  std::string section;
  for (absl::string_view line :
       absl::StrSplit(DescribeForLog(c), '\n', absl::SkipEmpty())) {
    if (!absl::StartsWith(line, " ")) {
      section = std::string(line.substr(0, line.find(':')));
      continue;
    }
    line = line.substr(line.find_first_not_of(' '));
    const size_t colon = line.find(": ");
    if (colon == absl::string_view::npos) continue;
    keys.emplace_back(absl::StrCat(section, ".", line.substr(0, colon)),
                      std::string(line.substr(colon + 2)));
  }
  return keys;
}

}  // namespace

bool IsReloadable(std::string_view key_view) {
  const absl::string_view key(key_view.data(), key_view.size());
  if (key == "rate.mode" || key == "rate.signal" ||
      key == "rate.adjust_interval") {
    return false;
  }
  for (absl::string_view section : {"logging.", "cost.", "rate.", "breaker."}) {
    if (absl::StartsWith(key, section)) return true;
  }
  return key == "queue.capacity" || key == "queue.max_resident_mb";
}

ReloadPlan PlanReload(const GatewayConfig& running, const GatewayConfig& next) {
  ReloadPlan plan;
  const auto add = [&plan](const std::string& key, std::string change) {
    plan.changes.push_back(std::move(change));
    if (!IsReloadable(key)) plan.needs_restart.push_back(key);
  };
  const auto before = Keys(running);
  const auto after = Keys(next);
  // A key printed only on one side (an optional key set or removed, such as
  // server.tls_cert_file) counts as changed, "(absent)" on the other.
  std::vector<std::string> seen;
  for (const auto& old : before) {
    seen.push_back(old.first);
    auto it = std::find_if(after.begin(), after.end(), [&](const auto& kv) {
      return kv.first == old.first;
    });
    const std::string now = it == after.end() ? "(absent)" : it->second;
    if (now != old.second) {
      add(old.first, absl::StrCat(old.first, ": ", old.second, " -> ", now));
    }
  }
  for (const auto& [key, value] : after) {
    if (std::find(seen.begin(), seen.end(), key) != seen.end()) continue;
    add(key, absl::StrCat(key, ": (absent) -> ", value));
  }
  // Secrets print as <redacted> on both sides: compare the values themselves.
  const bool printed_killbill_change = std::any_of(
      plan.changes.begin(), plan.changes.end(),
      [](const std::string& c) { return absl::StartsWith(c, "killbill."); });
  if (!internal::SameKillBillSection(running, next) &&
      !printed_killbill_change) {
    add("killbill", "killbill (a secret)");
  }
  if (running.database.session.url != next.database.session.url &&
      RedactDatabaseUrl(running.database.session.url) ==
          RedactDatabaseUrl(next.database.session.url)) {
    add("database.url", "database.url (a secret)");
  }
  return plan;
}

}  // namespace bg::config
