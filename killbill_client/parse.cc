#include "killbill_client/parse.h"

#include <cctype>
#include <cmath>
#include <cstdlib>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "killbill_client/json_fields.h"

namespace bg::killbill {
namespace {

using internal::Json;
using internal::ParseJson;
using internal::ReadDecimal;
using internal::ReadString;

}  // namespace

std::string PercentEncode(absl::string_view s) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  for (unsigned char c : s) {
    if (std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~') {
      out.push_back(static_cast<char>(c));
    } else {
      out.push_back('%');
      out.push_back(kHex[c >> 4]);
      out.push_back(kHex[c & 15]);
    }
  }
  return out;
}

bool IsUuid(absl::string_view s) {
  if (s.size() != 36) return false;
  for (size_t i = 0; i < s.size(); ++i) {
    const bool dash = i == 8 || i == 13 || i == 18 || i == 23;
    if (dash ? s[i] != '-' : !std::isxdigit(static_cast<unsigned char>(s[i])))
      return false;
  }
  return true;
}

absl::StatusOr<Account> ParseAccount(absl::string_view body) {
  const Json json = ParseJson(body);
  if (json.is_discarded())
    return absl::InternalError("killbill: account body is not JSON");
  if (!json.is_object()) {
    return absl::InternalError("killbill: account body is not a JSON object");
  }
  Account account;
  for (auto [key, out] : {std::pair{"accountId", &account.account_id},
                          {"externalKey", &account.external_key},
                          {"name", &account.name},
                          {"email", &account.email},
                          {"currency", &account.currency},
                          {"company", &account.company},
                          {"notes", &account.notes},
                          {"timeZone", &account.time_zone}}) {
    if (absl::Status s = ReadString(json, key, out, "account"); !s.ok())
      return s;
  }
  for (auto [key, out] : {std::pair{"accountBalance", &account.balance},
                          {"accountCBA", &account.credit}}) {
    if (absl::Status s = ReadDecimal(json, key, out, "account"); !s.ok())
      return s;
  }
  if (!IsUuid(account.account_id)) {
    return absl::InternalError(
        "killbill: account field 'accountId' is not a UUID");
  }
  if (auto it = json.find("billCycleDayLocal");
      it != json.end() && !it->is_null()) {
    if (!it->is_number_integer() || it->get<int64_t>() < 0 ||
        it->get<int64_t>() > 31) {
      return absl::InternalError(
          "killbill: account field 'billCycleDayLocal' is not an integer in "
          "0..31");
    }
    account.bill_cycle_day_local = it->get<int>();
  }
  return account;
}

std::optional<ErrorBody> ParseErrorBody(absl::string_view body) {
  const Json json = ParseJson(body);
  if (json.is_discarded() || !json.is_object()) return std::nullopt;
  auto message = json.find("message");
  auto class_name = json.find("className");
  if (message == json.end() && class_name == json.end()) return std::nullopt;
  ErrorBody error;
  if (class_name != json.end() && class_name->is_string()) {
    error.class_name = class_name->get<std::string>();
  }
  if (message != json.end() && message->is_string())
    error.message = message->get<std::string>();
  if (auto code = json.find("code");
      code != json.end() && code->is_number_integer()) {
    error.code = code->get<int>();
  }
  return error;
}

std::map<std::string, double> ParseGrowingQueues(absl::string_view message) {
  std::map<std::string, double> out;
  constexpr absl::string_view kPrefix = "Growing queues: ";
  if (!absl::StartsWith(message, kPrefix)) return out;
  message.remove_prefix(kPrefix.size());
  // Entries are "name (number)" joined by ", "; queue names never contain " (".
  for (absl::string_view entry : absl::StrSplit(message, ", ")) {
    const size_t open = entry.rfind(" (");
    if (open == absl::string_view::npos || !absl::EndsWith(entry, ")"))
      continue;
    absl::string_view number = entry.substr(open + 2, entry.size() - open - 3);
    double value = 0;
    // SimpleAtod also reads "nan" and "inf", which Java never prints for a
    // slope; a non-finite growth would poison the breaker's and the rate
    // controller's arithmetic.
    if (!absl::SimpleAtod(number, &value) || !std::isfinite(value)) continue;
    out[std::string(entry.substr(0, open))] = value;
  }
  return out;
}

absl::StatusOr<HealthReport> ParseHealthReport(int http_status,
                                               absl::string_view body) {
  if (http_status != 200 && http_status != 500) {
    return absl::UnavailableError(
        absl::StrCat("killbill: healthcheck answered HTTP ", http_status));
  }
  const Json json = ParseJson(body);
  if (json.is_discarded() || !json.is_object()) {
    return absl::InternalError(
        "killbill: healthcheck body is not a JSON object");
  }
  HealthReport report;
  report.http_status = http_status;
  report.healthy = http_status == 200;
  for (const auto& [name, check] : json.items()) {
    if (!check.is_object()) {
      return absl::InternalError(absl::StrCat("killbill: healthcheck entry '",
                                              name, "' is not an object"));
    }
    HealthCheckResult result;
    result.name = name;
    auto healthy = check.find("healthy");
    if (healthy == check.end() || !healthy->is_boolean()) {
      return absl::InternalError(absl::StrCat(
          "killbill: healthcheck entry '", name, "' has no boolean 'healthy'"));
    }
    result.healthy = healthy->get<bool>();
    // Kill Bill answers 500 when any check is unhealthy; a 200 that lists one
    // anyway is believed on the side of caution.
    if (!result.healthy) report.healthy = false;
    if (auto m = check.find("message"); m != check.end() && m->is_string()) {
      result.message = m->get<std::string>();
    }
    // Reports written by people shorten the key to the simple class name:
    // accept both.
    if (absl::EndsWith(name, "KillbillQueuesHealthcheck")) {
      for (const auto& [detail, value] : check.items()) {
        if (value.is_object()) {
          auto growing = value.find("growing");
          if (growing != value.end() && growing->is_boolean()) {
            report.queue_growing[detail] = growing->get<bool>();
          }
        }
      }
      report.queue_growth = ParseGrowingQueues(result.message);
    } else if (absl::EndsWith(name, "KillbillHealthcheck") && !result.healthy &&
               result.message == "Out of rotation") {
      report.out_of_rotation = true;
    }
    report.checks.push_back(std::move(result));
  }
  return report;
}

absl::StatusOr<BusCounters> ParseBusCounters(absl::string_view body) {
  static constexpr const char* kSections[] = {"gauges", "counters",
                                              "histograms", "meters", "timers"};
  static constexpr const char kPosted[] =
      "org.killbill.queue.DBBackedQueue.bus_events.rawInsertEntryTime";
  static constexpr const char kDispatched[] =
      "org.killbill.bus.DefaultPersistentBus.bus_events."
      "busHandlersProcessingTime";
  const Json json = ParseJson(body);
  if (json.is_discarded() || !json.is_object()) {
    return absl::InternalError("killbill: metrics body is not a JSON object");
  }
  BusCounters out;
  for (const char* section : kSections) {
    auto it = json.find(section);
    if (it == json.end() || it->is_null()) continue;
    if (!it->is_object()) {
      return absl::InternalError(absl::StrCat("killbill: metrics section '",
                                              section, "' is not an object"));
    }
    if (!it->empty()) out.present = true;
  }
  if (!out.present) return out;
  auto timers = json.find("timers");
  if (timers == json.end() || timers->is_null()) return out;
  for (auto [name, field] :
       {std::pair{kPosted, &out.posted}, {kDispatched, &out.dispatched}}) {
    auto timer = timers->find(name);
    if (timer == timers->end()) continue;  // not updated yet
    const Json* count = nullptr;
    if (timer->is_object()) {
      auto c = timer->find("count");
      if (c != timer->end()) count = &*c;
    }
    if (count == nullptr || !count->is_number_integer() ||
        count->get<int64_t>() < 0) {
      return absl::InternalError(
          absl::StrCat("killbill: metrics timer '", name,
                       "' has no non-negative integer 'count'"));
    }
    *field = count->get<int64_t>();
  }
  return out;
}

absl::StatusOr<std::string> IdFromLocation(absl::string_view location,
                                           absl::string_view collection) {
  if (location.empty())
    return absl::InternalError("killbill: create answered no Location");
  absl::string_view path = location;
  if (!absl::StartsWith(location, "/")) {
    // An absolute URL: only its path is read. Its host may differ from the
    // configured one (a proxy or TLS terminator in front of Kill Bill rewrites
    // Host); the id is what the client needs, and it never follows the URL.
    const size_t sep = location.find("://");
    const size_t path_start = sep == absl::string_view::npos
                                  ? absl::string_view::npos
                                  : location.find('/', sep + 3);
    if (path_start == absl::string_view::npos) {
      return absl::InternalError(
          "killbill: Location is neither a path nor an absolute URL");
    }
    path = location.substr(path_start);
  }
  if (!absl::StartsWith(path, collection) || path.size() <= collection.size() ||
      path[collection.size()] != '/') {
    return absl::InternalError(
        absl::StrCat("killbill: Location is not under ", collection, "/"));
  }
  absl::string_view id = path.substr(collection.size() + 1);
  if (!IsUuid(id))
    return absl::InternalError("killbill: Location does not end in a UUID");
  return std::string(id);
}

absl::StatusOr<std::string> AccountIdFromLocation(absl::string_view location) {
  return IdFromLocation(location, "/1.0/kb/accounts");
}

}  // namespace bg::killbill
