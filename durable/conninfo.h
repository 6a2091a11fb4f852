// ConnInfo: a PostgreSQL connection URI as libpq itself reads it
// (PQconninfoParse), so that what the gateway checks, shows and scrubs is what
// libpq will use: percent-decoded values, query parameters whose names are
// percent-encoded, passwords holding '/', '?', '#' or '@', and every option
// libpq marks secret (password, sslpassword, ...).
//
// Nothing here ever echoes the URI or libpq's parse error, which quotes it.
//
// Thread-safety: value types and free functions; safe from any thread.
#pragma once

#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"

namespace bg::durable {

struct ConnInfo {
  std::string scheme;  // "postgresql://" or "postgres://", as written.
  struct Option {
    std::string keyword;
    std::string value;
    bool secret = false;  // libpq marks it so (dispchar '*').
  };
  // Options libpq set from the URI, in libpq's order.
  std::vector<Option> options;

  // Value of `keyword`, "" when unset.
  std::string Get(std::string_view keyword) const;
};

// Parses `uri`; the error says what is wrong without quoting the value.
absl::StatusOr<ConnInfo> ParseConnInfo(std::string_view uri);

// scheme://[user[:<redacted>]@]host[:port][/dbname][?option=value&...] with
// every secret option "<redacted>"; "<redacted: not a valid URI>" when `uri`
// does not parse.
std::string RedactedUri(std::string_view uri);

// scheme://host[:port][/dbname]: no user, secret or option.
std::string UriTarget(std::string_view uri);

// `message` (from libpq) with the raw `uri` and each secret value in it
// replaced by "<redacted>".
std::string ScrubSecrets(std::string message, std::string_view uri);

}  // namespace bg::durable
