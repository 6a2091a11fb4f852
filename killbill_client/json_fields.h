// Reading Kill Bill's JSON objects field by field, for the parsers (parse.cc,
// parse_billing.cc). Internal to bg_killbill_client.
//
// Every reader treats an absent field and Kill Bill's null alike (the default
// value) and fails with INTERNAL naming the object and the field when the type
// is wrong: a broken or hostile answer becomes a precise error, never an
// exception.
#pragma once

#include <cmath>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/string_view.h"
#include "nlohmann/json.hpp"

namespace bg::killbill::internal {

using Json = nlohmann::json;

// Parses without exceptions; a discarded value means the text was not JSON.
inline Json ParseJson(absl::string_view body) {
  return Json::parse(body.begin(), body.end(), /*cb=*/nullptr,
                     /*allow_exceptions=*/false);
}

inline absl::Status FieldError(absl::string_view what, absl::string_view key,
                               absl::string_view expected) {
  return absl::InternalError(
      absl::StrCat("killbill: ", what, " field '", key, "' is not ", expected));
}

// A string field into *out ("" for absent or null).
inline absl::Status ReadString(const Json& obj, const char* key,
                               std::string* out, absl::string_view what) {
  auto it = obj.find(key);
  if (it == obj.end() || it->is_null()) return absl::OkStatus();
  if (!it->is_string()) return FieldError(what, key, "a string");
  *out = it->get<std::string>();
  return absl::OkStatus();
}

// A boolean field ("false" for absent or null).
inline absl::Status ReadBool(const Json& obj, const char* key, bool* out,
                             absl::string_view what) {
  auto it = obj.find(key);
  if (it == obj.end() || it->is_null()) return absl::OkStatus();
  if (!it->is_boolean()) return FieldError(what, key, "a boolean");
  *out = it->get<bool>();
  return absl::OkStatus();
}

// A money amount (a JSON number, Java BigDecimal) as decimal text: two
// decimals when that is exact ("9.00"), the shortest exact form otherwise
// ("0.125"); "" for absent or null.
inline absl::Status ReadDecimal(const Json& obj, const char* key,
                                std::string* out, absl::string_view what) {
  auto it = obj.find(key);
  if (it == obj.end() || it->is_null()) return absl::OkStatus();
  if (!it->is_number()) return FieldError(what, key, "a number");
  const double value = it->get<double>();
  if (!std::isfinite(value)) return FieldError(what, key, "a finite number");
  const double cents = value * 100;
  *out = std::fabs(cents - std::round(cents)) < 1e-6
             ? absl::StrFormat("%.2f", value)
             : it->dump();
  return absl::OkStatus();
}

// The array at `key` (absent or null: nullptr), or an error when it is not an
// array.
inline absl::Status FindArray(const Json& obj, const char* key,
                              const Json** out, absl::string_view what) {
  *out = nullptr;
  auto it = obj.find(key);
  if (it == obj.end() || it->is_null()) return absl::OkStatus();
  if (!it->is_array()) return FieldError(what, key, "an array");
  *out = &*it;
  return absl::OkStatus();
}

}  // namespace bg::killbill::internal
