#include "durable/conninfo.h"

#include <libpq-fe.h>

#include <algorithm>
#include <memory>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/str_split.h"

namespace bg::durable {
namespace {

constexpr char kRedacted[] = "<redacted>";

// Keywords that make up the URI's authority and path, not its query.
bool InAuthorityOrPath(std::string_view k) {
  return k == "user" || k == "password" || k == "host" || k == "port" ||
         k == "dbname";
}

// Percent-encodes all but RFC 3986's unreserved characters (and ',' which
// separates hosts), so the rebuilt URI reads back the same.
std::string Encode(std::string_view s) {
  std::string out;
  for (unsigned char c : s) {
    if (absl::ascii_isalnum(c) || c == '-' || c == '.' || c == '_' ||
        c == '~' || c == ',') {
      out.push_back(static_cast<char>(c));
    } else {
      absl::StrAppend(&out, "%", absl::Hex(c, absl::kZeroPad2));
    }
  }
  return out;
}

// host[:port] pairs ("h1:5,h2:6"); IPv6 addresses bracketed.
std::string HostPorts(const ConnInfo& info) {
  const std::string host = info.Get("host");
  const std::string port = info.Get("port");
  std::vector<std::string> hosts = absl::StrSplit(host, ',');
  std::vector<std::string> ports = absl::StrSplit(port, ',');
  if (port.empty()) ports.assign(hosts.size(), "");
  if (ports.size() == 1) ports.assign(hosts.size(), ports[0]);
  std::vector<std::string> parts;
  for (size_t i = 0; i < hosts.size(); ++i) {
    std::string h = hosts[i].find(':') != std::string::npos
                        ? absl::StrCat("[", hosts[i], "]")
                        : Encode(hosts[i]);
    if (i < ports.size() && !ports[i].empty())
      absl::StrAppend(&h, ":", ports[i]);
    parts.push_back(std::move(h));
  }
  return absl::StrJoin(parts, ",");
}

}  // namespace

std::string ConnInfo::Get(std::string_view keyword) const {
  for (const Option& o : options) {
    if (o.keyword == keyword) return o.value;
  }
  return "";
}

absl::StatusOr<ConnInfo> ParseConnInfo(std::string_view uri) {
  ConnInfo info;
  for (const char* scheme : {"postgresql://", "postgres://"}) {
    if (uri.substr(0, std::string_view(scheme).size()) == scheme) {
      info.scheme = scheme;
    }
  }
  if (info.scheme.empty()) {
    return absl::InvalidArgumentError(
        "expected a URI postgresql://[user[:password]@]host[:port]/dbname "
        "(value not shown)");
  }
  char* error = nullptr;
  std::unique_ptr<PQconninfoOption, void (*)(PQconninfoOption*)> parsed(
      PQconninfoParse(std::string(uri).c_str(), &error), PQconninfoFree);
  if (error != nullptr) PQfreemem(error);  // It quotes the URI: never shown.
  if (!parsed) {
    return absl::InvalidArgumentError(
        "libpq cannot parse this URI (value not shown): percent-encode "
        "reserved characters in the user and password ('/' %2F, '?' %3F, "
        "'#' %23, '@' %40, ':' %3A, '[' %5B, ']' %5D)");
  }
  for (const PQconninfoOption* o = parsed.get(); o->keyword != nullptr; ++o) {
    if (o->val == nullptr) continue;
    info.options.push_back(
        {o->keyword, o->val, o->dispchar != nullptr && o->dispchar[0] == '*'});
  }
  // A '/' in an unencoded password makes libpq read "user:pass" as host and
  // port and the rest as the database name: refuse what can only come from
  // that, rather than connect to a name that holds half a password.
  for (absl::string_view port : absl::StrSplit(info.Get("port"), ',')) {
    if (!port.empty() && !std::all_of(port.begin(), port.end(), [](char c) {
          return absl::ascii_isdigit(static_cast<unsigned char>(c));
        })) {
      return absl::InvalidArgumentError(
          "the port is not a number (value not shown); if the password holds "
          "'/', '?', '#' or '@', percent-encode them");
    }
  }
  if (info.Get("dbname").find('@') != std::string::npos) {
    return absl::InvalidArgumentError(
        "the database name holds '@' (value not shown); if the password holds "
        "'/', percent-encode it as %2F");
  }
  return info;
}

std::string RedactedUri(std::string_view uri) {
  if (uri.empty()) return "";
  absl::StatusOr<ConnInfo> info = ParseConnInfo(uri);
  if (!info.ok()) return "<redacted: not a valid URI>";
  std::string out = info->scheme;
  const std::string user = info->Get("user");
  const bool password = !info->Get("password").empty();
  if (!user.empty() || password) {
    absl::StrAppend(&out, Encode(user), password ? ":<redacted>" : "", "@");
  }
  absl::StrAppend(&out, HostPorts(*info));
  if (std::string db = info->Get("dbname"); !db.empty()) {
    absl::StrAppend(&out, "/", Encode(db));
  }
  std::vector<std::string> query;
  for (const ConnInfo::Option& o : info->options) {
    if (InAuthorityOrPath(o.keyword)) continue;
    query.push_back(
        absl::StrCat(o.keyword, "=", o.secret ? kRedacted : Encode(o.value)));
  }
  if (!query.empty()) absl::StrAppend(&out, "?", absl::StrJoin(query, "&"));
  return out;
}

std::string UriTarget(std::string_view uri) {
  absl::StatusOr<ConnInfo> info = ParseConnInfo(uri);
  if (!info.ok()) return "<unparsable url>";
  std::string out = absl::StrCat(info->scheme, HostPorts(*info));
  if (std::string db = info->Get("dbname"); !db.empty()) {
    absl::StrAppend(&out, "/", Encode(db));
  }
  return out;
}

std::string ScrubSecrets(std::string message, std::string_view uri) {
  std::vector<std::pair<std::string, std::string>> replace;
  if (!uri.empty()) replace.emplace_back(std::string(uri), kRedacted);
  if (absl::StatusOr<ConnInfo> info = ParseConnInfo(uri); info.ok()) {
    for (const ConnInfo::Option& o : info->options) {
      if (o.secret && !o.value.empty())
        replace.emplace_back(o.value, kRedacted);
    }
  }
  // Longest first, so a secret inside the URI does not break the URI's match.
  std::sort(replace.begin(), replace.end(), [](const auto& a, const auto& b) {
    return a.first.size() > b.first.size();
  });
  for (const auto& [from, to] : replace) {
    absl::StrReplaceAll({{from, to}}, &message);
  }
  return message;
}

}  // namespace bg::durable
