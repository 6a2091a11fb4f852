// The YAML reading layer of config/ (internal; the API is gateway_config.h):
// typed scalar fields with their ranges (integers, numbers, durations, strings,
// enums), the walk that reads a document into a schema of such fields
// (refusing unknown and duplicate keys and values of the wrong shape), where
// the file set each key, and the FILE:LINE:COLUMN error building.
// yaml_reader.cc is the only file in billing-gateway that touches yaml-cpp; the
// section files (server_sections.cc, killbill_section.cc, flow_sections.cc,
// database_section.cc) only list fields.
//
// Secrets: a setter for a secret never quotes the value, and nothing here
// quotes a value it did not first check to be non-secret. yaml-cpp's own
// syntax messages are cut at their first ": ", which is where it appends input
// characters (bad escape, bad unicode).
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <ratio>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"

namespace bg::config::internal {

// Debian's Abseil is built with its own string_view
// (ABSL_OPTION_USE_STD_STRING_VIEW 0), so the public std::string_view is
// converted once at the boundary.
inline absl::string_view ToAbsl(std::string_view text) {
  return {text.data(), text.size()};
}

// --- Values in messages and in DescribeForLog --------------------------------

// A value quoted for an error message, shortened so a pasted blob stays
// readable.
std::string Quote(absl::string_view text);

// The shortest text that reads back as `value`, in plain notation when that is
// short ("100000", "0.1") and in exponent notation otherwise.
std::string FormatDouble(double value);

// "250ms", "2s", "1m30s": absl::FormatDuration, which ParseDuration reads back.
template <typename Rep, typename Period>
std::string FormatDuration(std::chrono::duration<Rep, Period> value) {
  return absl::FormatDuration(absl::FromChrono(value));
}

// A double-quoted YAML scalar (YAML's escapes are not C's: no \' and no octal).
std::string YamlString(absl::string_view text);

bool HasControlCharacter(absl::string_view text);

// --- Fields -----------------------------------------------------------------

// A setter parses a scalar's text; it returns an error message (without
// location or key path) or nullopt once the value is stored.
using Setter =
    std::function<std::optional<std::string>(const std::string& text)>;

// One key of a section and where its value goes.
struct Field {
  absl::string_view name;
  // What a value must look like, as in "expected an integer".
  std::string expected;
  Setter set;
};

struct Section {
  absl::string_view name;
  std::vector<Field> fields;
};

// IntField's parse and range check; nullopt when `value` was set.
std::optional<std::string> ParseInt(const std::string& text, int64_t lo,
                                    int64_t hi, int64_t& value);
// An integer in [lo, hi], stored into any integer type that holds that range
// (int, size_t).
template <typename Int>
Field IntField(absl::string_view name, Int* out, int64_t lo, int64_t hi) {
  return {
      name, "an integer",
      [=](const std::string& text) -> std::optional<std::string> {
        int64_t value;
        if (std::optional<std::string> error = ParseInt(text, lo, hi, value))
          return error;
        *out = static_cast<Int>(value);
        return std::nullopt;
      }};
}

// Bounds of a real number: the upper bound is inclusive, the lower one as said.
struct DoubleRange {
  double lo;
  bool lo_inclusive;
  double hi;
};

// A finite number within `range`.
Field DoubleField(absl::string_view name, double* out, DoubleRange range);

inline constexpr char kExpectedDuration[] =
    "a duration such as \"250ms\", \"2s\" or \"1m\"";
// DurationField's parse and checks; nullopt when `value` was set.
std::optional<std::string> ParseDuration(const std::string& text,
                                         absl::Duration lo, absl::Duration hi,
                                         std::chrono::milliseconds& value);
// A duration within [lo, hi] at millisecond precision, stored into any
// std::chrono::duration at least that fine (Millis, Clock::Duration).
template <typename Rep, typename Period>
Field DurationField(absl::string_view name,
                    std::chrono::duration<Rep, Period>* out, absl::Duration lo,
                    absl::Duration hi) {
  using Stored = std::chrono::duration<Rep, Period>;
  static_assert(std::ratio_less_equal_v<Period, std::milli>,
                "a duration key is kept at millisecond precision");
  return {name, kExpectedDuration,
          [=](const std::string& text) -> std::optional<std::string> {
            std::chrono::milliseconds value;
            if (std::optional<std::string> error =
                    ParseDuration(text, lo, hi, value))
              return error;
            *out = std::chrono::duration_cast<Stored>(value);
            return std::nullopt;
          }};
}

// `check` returns an error message or nullopt; it must not quote the value of a
// secret.
using StringCheck =
    std::function<std::optional<std::string>(absl::string_view)>;

Field StringField(absl::string_view name, std::string* out,
                  StringCheck check = nullptr);

// Secrets are stored unchecked: the environment may still replace them, and
// only the value that wins is validated (killbill_section.cc).
Field SecretField(absl::string_view name, std::string* out);

// One of the names in `values`.
template <typename E>
Field EnumField(absl::string_view name, E* out,
                std::vector<std::pair<absl::string_view, E>> values) {
  std::vector<absl::string_view> names;
  for (const auto& [n, v] : values) names.push_back(n);
  std::string choices = absl::StrJoin(names, ", ");
  return {name, absl::StrCat("one of ", choices),
          [=](const std::string& text) -> std::optional<std::string> {
            for (const auto& [n, v] : values) {
              if (text == n) {
                *out = v;
                return std::nullopt;
              }
            }
            return absl::StrCat("must be one of ", choices, "; got ",
                                Quote(text));
          }};
}

// --- Positions and errors ---------------------------------------------------

// A place in the file, 0-based as yaml-cpp counts; -1 = no position.
struct Position {
  int line = -1;
  int column = -1;
};

// Where the file set each key (full path such as "rate.min" -> position of its
// value), to aim the checks that run after the walk, and the building of every
// error message.
class Positions {
 public:
  explicit Positions(absl::string_view file_name) : file_name_(file_name) {}

  // InvalidArgument "FILE:LINE:COLUMN: PATH: MESSAGE" (1-based; a problem
  // without a position reads as line 1 column 1; no "PATH: " when `path` is
  // empty).
  absl::Status Error(Position at, absl::string_view path,
                     absl::string_view message) const;
  // An error about `path`, at its value if the file sets it.
  absl::Status ErrorAt(const std::string& path,
                       absl::string_view message) const {
    return Error(Of(path), path, message);
  }

  void Set(const std::string& path, Position at) { positions_[path] = at; }
  bool Has(const std::string& path) const { return positions_.count(path) > 0; }
  // Position of `path`'s value, or none when the file does not set it.
  Position Of(const std::string& path) const;

  // Requires lo <= hi; blames `lo_path` if the file sets it, else `hi_path`.
  template <typename T, typename Format>
  absl::Status CheckOrder(const std::string& lo_path, T lo,
                          const std::string& hi_path, T hi,
                          Format format) const {
    if (lo <= hi) return absl::OkStatus();
    if (Has(lo_path)) {
      return ErrorAt(lo_path, absl::StrCat("must be <= ", hi_path, " (",
                                           format(hi), "), got ", format(lo)));
    }
    return ErrorAt(hi_path, absl::StrCat("must be >= ", lo_path, " (",
                                         format(lo), "), got ", format(hi)));
  }

 private:
  std::string file_name_;
  std::map<std::string, Position> positions_;
};

// --- The walk ---------------------------------------------------------------

// Reads `yaml_text`, a single YAML document whose root is a map of the
// sections in `schema`, each a map of its fields, into what the fields point
// at, and records in `positions` where each key was set. An empty document
// (or one of only comments), and a section with no entries, leave everything
// as it was. Stops at the first problem: YAML syntax, several documents, an
// unknown or duplicate key, a value of the wrong shape, or a setter's refusal.
// No yaml-cpp exception escapes.
absl::Status ReadYaml(absl::string_view yaml_text,
                      const std::vector<Section>& schema, Positions& positions);

}  // namespace bg::config::internal
