// The YAML adapter: the only code in billing-gateway that touches yaml-cpp.
//
// The walk is table-driven: each section lists its keys with a setter that
// parses one scalar, checks its range and stores it into the GatewayConfig
// being built. The generic walk handles what every key shares (null values,
// maps or sequences where a scalar is expected, unknown and duplicate keys) and
// attaches FILE:LINE:COLUMN and the key path to every message. Checks between
// two keys run after the walk, aimed at whichever of the two the file actually
// sets.
//
// Secrets: a setter for a secret never quotes the value, and nothing else in
// this file quotes a value it did not first check to be non-secret. yaml-cpp's
// own syntax messages are cut at their first ": ", which is where it appends
// input characters (bad escape, bad unicode).
#include "config/gateway_config.h"

#include <yaml-cpp/eventhandler.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <sstream>
#include <tuple>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "absl/time/time.h"

namespace bg::config {
namespace {

constexpr int64_t kKiB = 1024;
constexpr int64_t kMiB = 1024 * kKiB;
constexpr double kMaxRate = 100000;

// A setter parses a scalar's text; it returns an error message (without
// location or key path) or nullopt once the value is stored.
using Setter =
    std::function<std::optional<std::string>(const std::string& text)>;

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

// Debian's Abseil is built with its own string_view
// (ABSL_OPTION_USE_STD_STRING_VIEW 0), so the public std::string_view is
// converted once at the boundary.
absl::string_view ToAbsl(std::string_view text) {
  return {text.data(), text.size()};
}

// A value quoted for an error message, shortened so a pasted blob stays
// readable.
std::string Quote(absl::string_view text) {
  constexpr size_t kMax = 64;
  std::string shown = absl::CHexEscape(text.substr(0, kMax));
  return absl::StrCat("\"", shown, text.size() > kMax ? "...\"" : "\"");
}

// The shortest text that reads back as `value`, in plain notation when that is
// short
// ("100000", "0.1") and in exponent notation otherwise.
std::string FormatDouble(double value) {
  char buf[400];
  auto fixed =
      std::to_chars(buf, buf + sizeof(buf), value, std::chars_format::fixed);
  if (fixed.ec == std::errc() && fixed.ptr - buf <= 24)
    return std::string(buf, fixed.ptr);
  auto shortest = std::to_chars(buf, buf + sizeof(buf), value);
  return std::string(buf, shortest.ptr);
}

template <typename Rep, typename Period>
std::string FormatMillis(std::chrono::duration<Rep, Period> value) {
  return absl::FormatDuration(absl::FromChrono(value));
}

bool HasControlCharacter(absl::string_view text) {
  return std::any_of(text.begin(), text.end(), [](char c) {
    return static_cast<unsigned char>(c) < 0x20 || c == 0x7f;
  });
}

// --- Scalar parsers
// --------------------------------------------------------------------

// Stores into any integer type that holds [lo, hi] (int, size_t).
template <typename Int>
Field IntField(absl::string_view name, Int* out, int64_t lo, int64_t hi) {
  return {name, "an integer",
          [=](const std::string& text) -> std::optional<std::string> {
            int64_t value;
            if (!absl::SimpleAtoi(text, &value)) {
              return absl::StrCat("expected an integer, got ", Quote(text));
            }
            if (value < lo || value > hi) {
              return absl::StrCat("must be between ", lo, " and ", hi, ", got ",
                                  value);
            }
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

std::string Describe(const DoubleRange& r) {
  return absl::StrCat(r.lo_inclusive ? ">= " : "> ", FormatDouble(r.lo),
                      " and <= ", FormatDouble(r.hi));
}

Field DoubleField(absl::string_view name, double* out, DoubleRange range) {
  return {name, "a number",
          [=](const std::string& text) -> std::optional<std::string> {
            double value;
            if (!absl::SimpleAtod(text, &value) || !std::isfinite(value)) {
              return absl::StrCat("expected a number, got ", Quote(text));
            }
            bool above_lo =
                range.lo_inclusive ? value >= range.lo : value > range.lo;
            if (!above_lo || value > range.hi) {
              return absl::StrCat("must be ", Describe(range), ", got ",
                                  FormatDouble(value));
            }
            *out = value;
            return std::nullopt;
          }};
}

// Stores into any std::chrono::duration with at least millisecond precision
// (Millis, Clock::Duration).
template <typename Rep, typename Period>
Field DurationField(absl::string_view name,
                    std::chrono::duration<Rep, Period>* out, absl::Duration lo,
                    absl::Duration hi) {
  using Stored = std::chrono::duration<Rep, Period>;
  static_assert(std::ratio_less_equal_v<Period, std::milli>,
                "a duration key is kept at millisecond precision");
  return {
      name, "a duration such as \"250ms\", \"2s\" or \"1m\"",
      [=](const std::string& text) -> std::optional<std::string> {
        absl::Duration value;
        if (!absl::ParseDuration(text, &value) ||
            value == absl::InfiniteDuration() ||
            value == -absl::InfiniteDuration()) {
          return absl::StrCat(
              "expected a duration such as \"250ms\", \"2s\" or \"1m\", got ",
              Quote(text));
        }
        if (value < lo || value > hi) {
          return absl::StrCat("must be between ", absl::FormatDuration(lo),
                              " and ", absl::FormatDuration(hi), ", got ",
                              absl::FormatDuration(value));
        }
        if (absl::Trunc(value, absl::Milliseconds(1)) != value) {
          return absl::StrCat("must be a whole number of milliseconds, got ",
                              absl::FormatDuration(value));
        }
        *out = std::chrono::duration_cast<Stored>(
            absl::ToChronoMilliseconds(value));
        return std::nullopt;
      }};
}

// `check` returns an error message or nullopt; it must not quote the value of a
// secret.
using StringCheck =
    std::function<std::optional<std::string>(absl::string_view)>;

Field StringField(absl::string_view name, std::string* out,
                  StringCheck check = nullptr) {
  return {name, "a string",
          [=](const std::string& text) -> std::optional<std::string> {
            if (check) {
              if (auto error = check(text)) return error;
            }
            *out = text;
            return std::nullopt;
          }};
}

// Secrets are stored unchecked: the environment may still replace them, and
// only the value that wins is validated (see CheckSecret).
Field SecretField(absl::string_view name, std::string* out) {
  return StringField(name, out);
}

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

// --- Addresses
// -------------------------------------------------------------------------

bool IsHostNameChar(char c) {
  return absl::ascii_isalnum(static_cast<unsigned char>(c)) || c == '-' ||
         c == '.' || c == '_';
}

// Checks "host" or "[ipv6]" (the brackets included in `host`).
std::optional<std::string> CheckHost(absl::string_view host) {
  if (host.empty()) return "host is empty";
  if (host.front() == '[') {
    if (host.size() < 3 || host.back() != ']')
      return "IPv6 host must be written [addr]";
    absl::string_view inner = host.substr(1, host.size() - 2);
    bool ok = std::all_of(inner.begin(), inner.end(), [](char c) {
      return absl::ascii_isxdigit(static_cast<unsigned char>(c)) || c == ':' ||
             c == '.';
    });
    if (!ok) return "IPv6 host has an invalid character";
    return std::nullopt;
  }
  if (!std::all_of(host.begin(), host.end(), IsHostNameChar)) {
    return "host has an invalid character";
  }
  return std::nullopt;
}

// Checks a decimal port; `min_port` is 0 for listening sockets (any free port),
// 1 else.
std::optional<std::string> CheckPort(absl::string_view port, int min_port) {
  int value;
  if (port.empty() || port.size() > 5 ||
      !std::all_of(port.begin(), port.end(),
                   [](char c) {
                     return absl::ascii_isdigit(static_cast<unsigned char>(c));
                   }) ||
      !absl::SimpleAtoi(port, &value) || value < min_port || value > 65535) {
    return absl::StrCat("port must be a number between ", min_port,
                        " and 65535");
  }
  return std::nullopt;
}

std::optional<std::string> CheckListenAddress(absl::string_view text) {
  auto why = [&](absl::string_view reason) {
    return absl::StrCat("expected host:port (port 0..65535), got ", Quote(text),
                        ": ", reason);
  };
  size_t colon = text.rfind(':');
  if (colon == absl::string_view::npos) return why("no port");
  if (auto error = CheckHost(text.substr(0, colon))) return why(*error);
  if (auto error = CheckPort(text.substr(colon + 1), 0)) return why(*error);
  return std::nullopt;
}

// Accepts scheme://host[:port][/] and stores it without the trailing '/'.
Field UrlField(absl::string_view name, std::string* out) {
  return {name, "a URL such as \"http://127.0.0.1:8080\"",
          [=](const std::string& text) -> std::optional<std::string> {
            // A URL with userinfo may hold a password: never quote that one.
            const bool has_userinfo = text.find('@') != std::string::npos;
            auto why = [&](absl::string_view reason) {
              return absl::StrCat(
                  "expected http(s)://host[:port], got ",
                  has_userinfo ? "a URL with credentials" : Quote(text), ": ",
                  reason);
            };
            absl::string_view rest = text;
            if (!absl::ConsumePrefix(&rest, "http://") &&
                !absl::ConsumePrefix(&rest, "https://")) {
              return why("scheme must be http or https");
            }
            absl::ConsumeSuffix(&rest, "/");
            if (rest.find_first_of("/?#") != absl::string_view::npos) {
              return why("no path, query or fragment allowed");
            }
            if (has_userinfo) {
              return why(
                  "credentials go in killbill.username and killbill.password");
            }
            // The host ends at the last ':' that is not inside IPv6 brackets.
            size_t colon = rest.rfind(':');
            if (colon != absl::string_view::npos &&
                rest.find(']', colon) == absl::string_view::npos) {
              if (auto error = CheckHost(rest.substr(0, colon)))
                return why(*error);
              if (auto error = CheckPort(rest.substr(colon + 1), 1))
                return why(*error);
            } else if (auto error = CheckHost(rest)) {
              return why(*error);
            }
            *out = std::string(
                text.substr(0, text.size() - (text.back() == '/' ? 1 : 0)));
            return std::nullopt;
          }};
}

// A libpq connection URI. Its value is never quoted: it may carry a password.
std::optional<std::string> CheckDatabaseUrl(absl::string_view text) {
  if (text.empty()) return std::nullopt;  // No database: in-memory queue.
  if (!absl::StartsWith(text, "postgresql://") &&
      !absl::StartsWith(text, "postgres://")) {
    return "expected a URI postgresql://[user[:password]@]host[:port]/dbname "
           "(value not shown)";
  }
  if (HasControlCharacter(text) || text.find(' ') != absl::string_view::npos) {
    return "must not contain spaces or control characters (value not shown)";
  }
  return std::nullopt;
}

Field DatabaseUrlField(absl::string_view name, std::string* out) {
  return StringField(name, out, CheckDatabaseUrl);
}

std::optional<std::string> CheckHeaderValue(absl::string_view text) {
  if (text.empty()) return "must not be empty";
  if (HasControlCharacter(text)) return "must not contain control characters";
  return std::nullopt;
}

std::optional<std::string> CheckPath(absl::string_view text) {
  if (text.empty()) return "must not be empty (delete the key instead)";
  return std::nullopt;
}

// --- The schema
// ------------------------------------------------------------------------

std::vector<Section> Schema(GatewayConfig& c) {
  using absl::Hours;
  using absl::Milliseconds;
  using absl::Minutes;
  const absl::Duration kZero = absl::ZeroDuration();
  const absl::Duration kOneMs = Milliseconds(1);
  const DoubleRange kRate{0, false, kMaxRate};
  const DoubleRange kShare{0, false, 1};
  return {
      {"server",
       {
           StringField("listen", &c.server.listen, CheckListenAddress),
           IntField("max_message_bytes", &c.server.max_message_bytes, kKiB,
                    16 * kMiB),
           DurationField("shutdown_grace", &c.server.shutdown_grace, kZero,
                         Minutes(10)),
           DurationField("default_deadline", &c.server.default_deadline, kOneMs,
                         Hours(1)),
           StringField("tls_cert_file", &c.server.tls_cert_file, CheckPath),
           StringField("tls_key_file", &c.server.tls_key_file, CheckPath),
           StringField("tls_client_ca_file", &c.server.tls_client_ca_file,
                       CheckPath),
       }},
      {"metrics",
       {StringField("listen", &c.metrics.listen, CheckListenAddress)}},
      {"logging",
       {EnumField<LogLevel>("level", &c.logging.level,
                            {{"trace", LogLevel::kTrace},
                             {"debug", LogLevel::kDebug},
                             {"info", LogLevel::kInfo},
                             {"warn", LogLevel::kWarn},
                             {"error", LogLevel::kError}})}},
      {"killbill",
       {
           UrlField("url", &c.killbill.url),
           SecretField("api_key", &c.killbill.api_key),
           SecretField("api_secret", &c.killbill.api_secret),
           SecretField("username", &c.killbill.username),
           SecretField("password", &c.killbill.password),
           StringField("created_by", &c.killbill.created_by, CheckHeaderValue),
           DurationField("connect_timeout", &c.killbill.connect_timeout, kOneMs,
                         Minutes(5)),
           DurationField("request_timeout", &c.killbill.request_timeout, kOneMs,
                         Minutes(10)),
           IntField("max_connections", &c.killbill.max_connections, 1, 1024),
           StringField(
               "ca_file", &c.killbill.ca_file,
               [](absl::string_view text) -> std::optional<std::string> {
                 if (text.empty())
                   return "must not be empty (delete the key instead)";
                 return std::nullopt;
               }),
       }},
      {"queue", {IntField("capacity", &c.queue.capacity, 1, 1000000)}},
      {"concurrency",
       {IntField("max_in_flight", &c.concurrency.max_in_flight, 1, 1024)}},
      {"rate",
       {
           EnumField<RateMode>("mode", &c.rate.mode,
                               {{"static", RateMode::kStatic},
                                {"adaptive", RateMode::kAdaptive}}),
           DoubleField("initial", &c.rate.initial, kRate),
           DoubleField("min", &c.rate.min, kRate),
           DoubleField("max", &c.rate.max, kRate),
           DoubleField("burst", &c.rate.burst, {1, true, kMaxRate}),
           DoubleField("increase_step", &c.rate.increase_step, kRate),
           DurationField("adjust_interval", &c.rate.adjust_interval,
                         Milliseconds(10), Minutes(1)),
           DurationField("cooldown", &c.rate.cooldown, kZero, Hours(1)),
       }},
      {"health",
       {
           DurationField("poll_interval", &c.health.poll_interval,
                         Milliseconds(10), Minutes(1)),
           DurationField("timeout", &c.health.timeout, kOneMs, Minutes(1)),
           DoubleField("queue_growth_threshold",
                       &c.health.queue_growth_threshold, {0, false, 1000}),
       }},
      {"breaker",
       {
           DoubleField("failure_rate_threshold",
                       &c.breaker.failure_rate_threshold, kShare),
           DurationField("slow_call_threshold", &c.breaker.slow_call_threshold,
                         kOneMs, Minutes(10)),
           DoubleField("slow_call_rate_threshold",
                       &c.breaker.slow_call_rate_threshold, kShare),
           DurationField("window", &c.breaker.window, Milliseconds(100),
                         Hours(1)),
           IntField("min_calls", &c.breaker.min_calls, 1, 100000),
           DurationField("open_duration", &c.breaker.open_duration, kOneMs,
                         Hours(1)),
           DurationField("max_open_duration", &c.breaker.max_open_duration,
                         kOneMs, Hours(1)),
           IntField("half_open_probes", &c.breaker.half_open_probes, 1, 1000),
           DurationField("probe_timeout", &c.breaker.probe_timeout, kOneMs,
                         Minutes(10)),
       }},
      {"retry",
       {
           IntField("max_attempts", &c.retry.max_attempts, 1, 10),
           DurationField("initial_backoff", &c.retry.initial_backoff, kOneMs,
                         Minutes(1)),
           DurationField("max_backoff", &c.retry.max_backoff, kOneMs,
                         Minutes(10)),
           DoubleField("budget_ratio", &c.retry.budget_ratio, {0, true, 1}),
       }},
      {"database",
       {
           DatabaseUrlField("url", &c.database.session.url),
           DurationField("connect_timeout", &c.database.session.connect_timeout,
                         absl::Seconds(1), Minutes(5)),
           DurationField("lease", &c.database.worker.lease, absl::Seconds(1),
                         Hours(1)),
           IntField("claim_batch", &c.database.worker.claim_batch, 1, 1000),
           IntField("max_outstanding", &c.database.worker.max_outstanding, 1,
                    100000),
           DurationField("poll_interval", &c.database.worker.poll_interval,
                         Milliseconds(10), Minutes(1)),
           DurationField("attempt_deadline",
                         &c.database.worker.attempt_deadline, absl::Seconds(1),
                         Hours(1)),
           IntField("max_attempts", &c.database.worker.max_attempts, 1, 1000),
           DurationField("retry_initial_backoff",
                         &c.database.worker.retry_initial_backoff,
                         Milliseconds(10), Hours(1)),
           DurationField("retry_max_backoff",
                         &c.database.worker.retry_max_backoff, Milliseconds(10),
                         Hours(1)),
           DurationField("retention", &c.database.retention, Minutes(1),
                         Hours(24 * 3650)),
           DurationField("heartbeat_interval", &c.database.heartbeat_interval,
                         Milliseconds(100), Minutes(1)),
           DurationField("heartbeat_timeout", &c.database.heartbeat_timeout,
                         Milliseconds(100), Hours(1)),
           IntField("submit_batch", &c.database.submit_batch, 1, 10000),
           IntField("submit_writers", &c.database.submit_writers, 1, 64),
           IntField("submit_queue", &c.database.submit_queue, 1, 1000000),
       }},
  };
}

absl::string_view NodeKind(const YAML::Node& node) {
  switch (node.Type()) {
    case YAML::NodeType::Map:
      return "a map";
    case YAML::NodeType::Sequence:
      return "a sequence";
    case YAML::NodeType::Null:
      return "nothing";
    default:
      return "a scalar";
  }
}

// --- The walk
// --------------------------------------------------------------------------

// yaml-cpp 0.7 (Debian 12) loops forever, allocating until the process is
// killed, when YAML::LoadAll meets some malformed streams such as a lone ","
// (jbeder/yaml-cpp#1040, fixed upstream by #1319 after 0.8.0): the parser keeps
// reporting a new empty document without consuming the token. Found by
// fuzz/config_fuzzer.cc. So documents are walked with the event parser and the
// walk stops at the second one; only then is the (single) document loaded.
class DocumentCounter : public YAML::EventHandler {
 public:
  // Documents in `text`, counted up to 2, and the mark of the second one's root
  // node. Throws YAML::ParserException like YAML::LoadAll.
  static DocumentCounter Count(const std::string& text) {
    std::stringstream in(text);
    YAML::Parser parser(in);
    DocumentCounter counter;
    while (counter.documents_ < 2 && parser.HandleNextDocument(counter)) {
    }
    return counter;
  }
  int documents() const { return documents_; }
  const YAML::Mark& second_root() const { return second_root_; }

  void OnDocumentStart(const YAML::Mark&) override { ++documents_; }
  void OnDocumentEnd() override {}
  void OnNull(const YAML::Mark& m, YAML::anchor_t) override { Node(m); }
  void OnAlias(const YAML::Mark& m, YAML::anchor_t) override { Node(m); }
  void OnScalar(const YAML::Mark& m, const std::string&, YAML::anchor_t,
                const std::string&) override {
    Node(m);
  }
  void OnSequenceStart(const YAML::Mark& m, const std::string&, YAML::anchor_t,
                       YAML::EmitterStyle::value) override {
    Node(m);
  }
  void OnSequenceEnd() override {}
  void OnMapStart(const YAML::Mark& m, const std::string&, YAML::anchor_t,
                  YAML::EmitterStyle::value) override {
    Node(m);
  }
  void OnMapEnd() override {}

 private:
  void Node(const YAML::Mark& m) {
    if (documents_ == 2 && !seen_second_root_) {
      second_root_ = m;
      seen_second_root_ = true;
    }
  }
  int documents_ = 0;
  bool seen_second_root_ = false;
  YAML::Mark second_root_ = YAML::Mark::null_mark();
};

class ConfigReader {
 public:
  explicit ConfigReader(absl::string_view file_name) : file_name_(file_name) {}

  absl::StatusOr<GatewayConfig> Read(absl::string_view yaml_text,
                                     const Environment& env) {
    std::vector<YAML::Node> documents;
    try {
      const std::string text(yaml_text);
      const DocumentCounter counter = DocumentCounter::Count(text);
      if (counter.documents() > 1) {
        return Error(counter.second_root(), "",
                     "expected one YAML document, found several");
      }
      if (counter.documents() == 1) documents.push_back(YAML::Load(text));
    } catch (const YAML::ParserException& e) {
      // Cut at ": ", after which yaml-cpp appends input characters (maybe a
      // secret's).
      std::string message = e.msg.substr(0, e.msg.find(": "));
      return Error(e.mark, "", absl::StrCat("YAML syntax error: ", message));
    }
    if (documents.size() > 1) {
      return Error(documents[1].Mark(), "",
                   "expected one YAML document, found several");
    }
    GatewayConfig config;
    if (!documents.empty()) {
      if (absl::Status s = ReadRoot(documents[0], config); !s.ok()) return s;
    }
    if (absl::Status s = ApplyEnvironment(env, config); !s.ok()) return s;
    if (absl::Status s = CheckRelations(config); !s.ok()) return s;
    return config;
  }

 private:
  absl::Status Error(const YAML::Mark& mark, absl::string_view path,
                     absl::string_view message) const {
    // A Mark of -1 (no position) or a problem not tied to a key reads as line 1
    // column 1.
    int line = mark.line >= 0 ? mark.line + 1 : 1;
    int column = mark.column >= 0 ? mark.column + 1 : 1;
    return absl::InvalidArgumentError(absl::StrCat(
        file_name_, ":", line, ":", column, ": ", path.empty() ? "" : path,
        path.empty() ? "" : ": ", message));
  }

  // Where to point at a value: a null (absent) value has no useful position of
  // its own.
  static YAML::Mark ValueMark(const YAML::Node& key, const YAML::Node& value) {
    return value.IsNull() ? key.Mark() : value.Mark();
  }

  // Iterates `map`'s entries, refusing non-scalar and duplicate keys; calls
  // visit(key_name, key_node, value_node) for each.
  template <typename Visit>
  absl::Status ForEachEntry(const YAML::Node& map, absl::string_view path,
                            Visit visit) {
    std::map<std::string, int>
        seen;  // key -> 1-based line of its first occurrence.
    for (const auto& entry : map) {
      const YAML::Node& key = entry.first;
      if (!key.IsScalar()) {
        return Error(key.Mark(), path,
                     absl::StrCat("expected a key name, got ", NodeKind(key)));
      }
      const std::string& name = key.Scalar();
      std::string full = path.empty() ? name : absl::StrCat(path, ".", name);
      auto [it, inserted] = seen.emplace(name, key.Mark().line + 1);
      if (!inserted) {
        return Error(
            key.Mark(), full,
            absl::StrCat("duplicate key (first set on line ", it->second, ")"));
      }
      if (absl::Status s = visit(name, full, key, entry.second); !s.ok())
        return s;
    }
    return absl::OkStatus();
  }

  absl::Status ReadRoot(const YAML::Node& root, GatewayConfig& config) {
    if (root.IsNull()) return absl::OkStatus();
    std::vector<Section> schema = Schema(config);
    std::vector<absl::string_view> section_names;
    for (const Section& s : schema) section_names.push_back(s.name);
    if (!root.IsMap()) {
      return Error(root.Mark(), "",
                   absl::StrCat("expected a map of sections (",
                                absl::StrJoin(section_names, ", "), "), got ",
                                NodeKind(root)));
    }
    return ForEachEntry(
        root, "",
        [&](const std::string& name, const std::string& path,
            const YAML::Node& key, const YAML::Node& value) -> absl::Status {
          auto section =
              std::find_if(schema.begin(), schema.end(),
                           [&](const Section& s) { return s.name == name; });
          if (section == schema.end()) {
            return Error(key.Mark(), path,
                         absl::StrCat("unknown section; expected one of ",
                                      absl::StrJoin(section_names, ", ")));
          }
          return ReadSection(*section, path, key, value);
        });
  }

  absl::Status ReadSection(const Section& section, const std::string& path,
                           const YAML::Node& key, const YAML::Node& value) {
    // "server:" with every key commented out is an empty section, not an error.
    if (value.IsNull()) return absl::OkStatus();
    if (!value.IsMap()) {
      return Error(value.Mark(), path,
                   absl::StrCat("expected a map, got ", NodeKind(value)));
    }
    return ForEachEntry(
        value, path,
        [&](const std::string& name, const std::string& full,
            const YAML::Node& k, const YAML::Node& v) -> absl::Status {
          auto field =
              std::find_if(section.fields.begin(), section.fields.end(),
                           [&](const Field& f) { return f.name == name; });
          if (field == section.fields.end()) {
            std::vector<absl::string_view> names;
            for (const Field& f : section.fields) names.push_back(f.name);
            return Error(k.Mark(), full,
                         absl::StrCat("unknown key; expected one of ",
                                      absl::StrJoin(names, ", ")));
          }
          return ReadField(*field, full, k, v);
        });
  }

  absl::Status ReadField(const Field& field, const std::string& path,
                         const YAML::Node& key, const YAML::Node& value) {
    YAML::Mark at = ValueMark(key, value);
    if (value.IsNull()) {
      return Error(at, path,
                   absl::StrCat("has no value; expected ", field.expected,
                                " (delete the key to use the default)"));
    }
    if (!value.IsScalar()) {
      return Error(
          at, path,
          absl::StrCat("expected ", field.expected, ", got ", NodeKind(value)));
    }
    if (std::optional<std::string> error = field.set(value.Scalar())) {
      return Error(at, path, *error);
    }
    marks_[path] = at;
    return absl::OkStatus();
  }

  // A secret from the environment wins over the file; whichever wins must be
  // usable in an HTTP header.
  absl::Status CheckSecret(const Environment& env, absl::string_view variable,
                           const std::string& path, std::string& value) {
    if (std::optional<std::string> from_env =
            env.Get(std::string_view(variable.data(), variable.size()))) {
      if (std::optional<std::string> error = CheckHeaderValue(*from_env)) {
        return absl::InvalidArgumentError(absl::StrCat(
            "environment variable ", variable, " (overrides ", path,
            "): ", *error, " (unset it to use the file's value)"));
      }
      value = *std::move(from_env);
      return absl::OkStatus();
    }
    if (std::optional<std::string> error = CheckHeaderValue(value)) {
      return Error(MarkOf(path), path, *error);
    }
    return absl::OkStatus();
  }

  absl::Status ApplyEnvironment(const Environment& env, GatewayConfig& c) {
    const std::tuple<std::string_view, const char*, std::string*> secrets[] = {
        {kEnvApiKey, "killbill.api_key", &c.killbill.api_key},
        {kEnvApiSecret, "killbill.api_secret", &c.killbill.api_secret},
        {kEnvUsername, "killbill.username", &c.killbill.username},
        {kEnvPassword, "killbill.password", &c.killbill.password},
    };
    for (const auto& [variable, path, value] : secrets) {
      if (absl::Status s = CheckSecret(env, ToAbsl(variable), path, *value);
          !s.ok())
        return s;
    }
    if (std::optional<std::string> url = env.Get(kEnvDatabaseUrl)) {
      std::optional<std::string> error = CheckDatabaseUrl(*url);
      if (url->empty()) error = "must not be empty";
      if (error) {
        return absl::InvalidArgumentError(
            absl::StrCat("environment variable ", ToAbsl(kEnvDatabaseUrl),
                         " (overrides database.url): ", *error,
                         " (unset it to use the file's value)"));
      }
      c.database.session.url = *std::move(url);
    }
    return absl::OkStatus();
  }

  YAML::Mark MarkOf(const std::string& path) const {
    auto it = marks_.find(path);
    return it == marks_.end() ? YAML::Mark::null_mark() : it->second;
  }

  // Requires lo <= hi; blames `lo_path` if the file sets it, else `hi_path`.
  template <typename T, typename Format>
  absl::Status CheckOrder(const std::string& lo_path, T lo,
                          const std::string& hi_path, T hi,
                          Format format) const {
    if (lo <= hi) return absl::OkStatus();
    if (marks_.count(lo_path) > 0) {
      return Error(MarkOf(lo_path), lo_path,
                   absl::StrCat("must be <= ", hi_path, " (", format(hi),
                                "), got ", format(lo)));
    }
    return Error(MarkOf(hi_path), hi_path,
                 absl::StrCat("must be >= ", lo_path, " (", format(lo),
                              "), got ", format(hi)));
  }

  absl::Status CheckRelations(const GatewayConfig& c) const {
    const auto number = [](double v) { return FormatDouble(v); };
    const auto duration = [](auto v) { return FormatMillis(v); };
    absl::Status checks[] = {
        CheckOrder("rate.min", c.rate.min, "rate.max", c.rate.max, number),
        CheckOrder("rate.min", c.rate.min, "rate.initial", c.rate.initial,
                   number),
        CheckOrder("rate.initial", c.rate.initial, "rate.max", c.rate.max,
                   number),
        CheckOrder("breaker.open_duration", c.breaker.open_duration,
                   "breaker.max_open_duration", c.breaker.max_open_duration,
                   duration),
        CheckOrder("retry.initial_backoff", c.retry.initial_backoff,
                   "retry.max_backoff", c.retry.max_backoff, duration),
        CheckOrder("database.retry_initial_backoff",
                   c.database.worker.retry_initial_backoff,
                   "database.retry_max_backoff",
                   c.database.worker.retry_max_backoff, duration),
        CheckOrder("database.heartbeat_interval", c.database.heartbeat_interval,
                   "database.heartbeat_timeout", c.database.heartbeat_timeout,
                   duration),
    };
    for (absl::Status& s : checks) {
      if (!s.ok()) return s;
    }
    if (c.server.tls_cert_file.empty() != c.server.tls_key_file.empty()) {
      const char* given = c.server.tls_cert_file.empty()
                              ? "server.tls_key_file"
                              : "server.tls_cert_file";
      return Error(MarkOf(given), given,
                   "server.tls_cert_file and server.tls_key_file go together");
    }
    if (!c.server.tls_client_ca_file.empty() &&
        c.server.tls_cert_file.empty()) {
      return Error(
          MarkOf("server.tls_client_ca_file"), "server.tls_client_ca_file",
          "mutual TLS needs server.tls_cert_file and server.tls_key_file");
    }
    if (!c.killbill.ca_file.empty() &&
        !absl::StartsWith(c.killbill.url, "https://")) {
      return Error(MarkOf("killbill.ca_file"), "killbill.ca_file",
                   "is only used with an https killbill.url");
    }
    return absl::OkStatus();
  }

  std::string file_name_;
  // Where the file set each key (full path -> value position), to aim cross-key
  // errors.
  std::map<std::string, YAML::Mark> marks_;
};

// --- Printing
// --------------------------------------------------------------------------

// A double-quoted YAML scalar (YAML's escapes are not C's: no \' and no octal).
std::string YamlString(absl::string_view text) {
  std::string out = "\"";
  for (char c : text) {
    unsigned char u = static_cast<unsigned char>(c);
    if (c == '"' || c == '\\') {
      out.push_back('\\');
      out.push_back(c);
    } else if (u < 0x20 || u == 0x7f) {
      absl::StrAppend(&out, "\\x", absl::Hex(u, absl::kZeroPad2));
    } else {
      out.push_back(c);
    }
  }
  out.push_back('"');
  return out;
}

}  // namespace

Environment::Environment()
    : lookup_([](std::string_view name) -> std::optional<std::string> {
        const char* value = std::getenv(std::string(name).c_str());
        if (value == nullptr) return std::nullopt;
        return std::string(value);
      }) {}

Environment Environment::Empty() {
  return Environment([](std::string_view) -> std::optional<std::string> {
    return std::nullopt;
  });
}

absl::StatusOr<GatewayConfig> ParseConfig(std::string_view yaml_text,
                                          std::string_view file_name,
                                          const Environment& env) {
  try {
    return ConfigReader(ToAbsl(file_name)).Read(ToAbsl(yaml_text), env);
  } catch (const YAML::Exception& e) {
    // Not expected (the reader only uses non-throwing accessors), but never let
    // one out.
    return absl::InvalidArgumentError(
        absl::StrCat(ToAbsl(file_name), ":", std::max(e.mark.line, 0) + 1, ":",
                     std::max(e.mark.column, 0) + 1, ": YAML error"));
  } catch (const std::exception& e) {
    return absl::InternalError(
        absl::StrCat(ToAbsl(file_name), ": unexpected error: ", e.what()));
  }
}

absl::StatusOr<GatewayConfig> LoadConfigFile(const std::string& path,
                                             const Environment& env) {
  // A configuration file is a few KiB; the cap stops /dev/zero or a wrong path
  // to a large file from eating memory before the parser refuses it.
  constexpr size_t kMaxFileBytes = 1 << 20;
  std::FILE* file = std::fopen(path.c_str(), "rb");
  if (file == nullptr) {
    return absl::ErrnoToStatus(errno, absl::StrCat(path, ": cannot open"));
  }
  std::string text;
  char buffer[8192];
  size_t n;
  while ((n = std::fread(buffer, 1, sizeof(buffer), file)) > 0 &&
         text.size() <= kMaxFileBytes) {
    text.append(buffer, n);
  }
  // fread on a directory fails with EISDIR: without this check it would read as
  // empty.
  const int read_error = std::ferror(file) ? errno : 0;
  std::fclose(file);
  if (read_error != 0) {
    return absl::ErrnoToStatus(read_error, absl::StrCat(path, ": cannot read"));
  }
  if (text.size() > kMaxFileBytes) {
    return absl::InvalidArgumentError(absl::StrCat(
        path, ":1:1: file is larger than ", kMaxFileBytes, " bytes"));
  }
  return ParseConfig(text, path, env);
}

std::string RedactDatabaseUrl(std::string_view url_in) {
  absl::string_view url = ToAbsl(url_in);
  if (url.empty()) return "";
  const size_t scheme_end = url.find("://");
  if (scheme_end == absl::string_view::npos) return "<redacted>";
  const size_t authority = scheme_end + 3;
  const size_t authority_end = url.find_first_of("/?#", authority);
  absl::string_view auth =
      url.substr(authority, authority_end == absl::string_view::npos
                                ? absl::string_view::npos
                                : authority_end - authority);
  std::string out(url.substr(0, authority));
  const size_t at = auth.rfind('@');
  if (at != absl::string_view::npos) {
    absl::string_view userinfo = auth.substr(0, at);
    const size_t colon = userinfo.find(':');
    if (colon != absl::string_view::npos) {
      absl::StrAppend(&out, userinfo.substr(0, colon), ":<redacted>");
    } else {
      absl::StrAppend(&out, userinfo);
    }
    absl::StrAppend(&out, auth.substr(at));
  } else {
    absl::StrAppend(&out, auth);
  }
  if (authority_end == absl::string_view::npos) return out;
  absl::string_view rest = url.substr(authority_end);
  const size_t q = rest.find('?');
  absl::StrAppend(&out, rest.substr(0, q));
  if (q == absl::string_view::npos) return out;
  std::vector<std::string> params;
  for (absl::string_view param : absl::StrSplit(rest.substr(q + 1), '&')) {
    if (absl::StartsWith(param, "password=")) {
      params.push_back("password=<redacted>");
    } else {
      params.emplace_back(param);
    }
  }
  absl::StrAppend(&out, "?", absl::StrJoin(params, "&"));
  return out;
}

std::string DatabaseTarget(std::string_view url_in) {
  absl::string_view url = ToAbsl(url_in);
  const size_t scheme_end = url.find("://");
  if (scheme_end == absl::string_view::npos) return "<unparsable url>";
  absl::string_view rest = url.substr(scheme_end + 3);
  rest = rest.substr(0, rest.find_first_of("?#"));
  const size_t slash = rest.find('/');
  absl::string_view auth = rest.substr(0, slash);
  const size_t at = auth.rfind('@');
  if (at != absl::string_view::npos) auth = auth.substr(at + 1);
  return absl::StrCat(
      url.substr(0, scheme_end + 3), auth,
      slash == absl::string_view::npos ? "" : rest.substr(slash));
}

std::string_view LogLevelName(LogLevel level) {
  switch (level) {
    case LogLevel::kTrace:
      return "trace";
    case LogLevel::kDebug:
      return "debug";
    case LogLevel::kInfo:
      return "info";
    case LogLevel::kWarn:
      return "warn";
    case LogLevel::kError:
      return "error";
  }
  return "unknown";
}

std::string_view RateModeName(RateMode mode) {
  switch (mode) {
    case RateMode::kStatic:
      return "static";
    case RateMode::kAdaptive:
      return "adaptive";
  }
  return "unknown";
}

std::string DescribeForLog(const GatewayConfig& c) {
  constexpr absl::string_view kRedacted = "\"<redacted>\"";
  const auto d = [](auto v) { return FormatMillis(v); };
  const auto n = FormatDouble;
  std::string out;
  absl::StrAppend(&out, "server:\n",                                          //
                  "  listen: ", YamlString(c.server.listen), "\n",            //
                  "  max_message_bytes: ", c.server.max_message_bytes, "\n",  //
                  "  shutdown_grace: ", d(c.server.shutdown_grace), "\n",     //
                  "  default_deadline: ", d(c.server.default_deadline), "\n");
  for (auto [key, value] :
       {std::pair{"tls_cert_file", &c.server.tls_cert_file},
        {"tls_key_file", &c.server.tls_key_file},
        {"tls_client_ca_file", &c.server.tls_client_ca_file}}) {
    if (!value->empty())
      absl::StrAppend(&out, "  ", key, ": ", YamlString(*value), "\n");
  }
  absl::StrAppend(&out, "metrics:\n",
                  "  listen: ", YamlString(c.metrics.listen), "\n");
  absl::StrAppend(&out, "logging:\n",
                  "  level: ", ToAbsl(LogLevelName(c.logging.level)), "\n");
  absl::StrAppend(
      &out, "killbill:\n",                                         //
      "  url: ", YamlString(c.killbill.url), "\n",                 //
      "  api_key: ", kRedacted, "\n",                              //
      "  api_secret: ", kRedacted, "\n",                           //
      "  username: ", kRedacted, "\n",                             //
      "  password: ", kRedacted, "\n",                             //
      "  created_by: ", YamlString(c.killbill.created_by), "\n",   //
      "  connect_timeout: ", d(c.killbill.connect_timeout), "\n",  //
      "  request_timeout: ", d(c.killbill.request_timeout), "\n",  //
      "  max_connections: ", c.killbill.max_connections, "\n");
  if (!c.killbill.ca_file.empty()) {
    absl::StrAppend(&out, "  ca_file: ", YamlString(c.killbill.ca_file), "\n");
  }
  absl::StrAppend(&out, "queue:\n", "  capacity: ", c.queue.capacity, "\n");
  absl::StrAppend(&out, "concurrency:\n",
                  "  max_in_flight: ", c.concurrency.max_in_flight, "\n");
  absl::StrAppend(&out, "rate:\n",                                         //
                  "  mode: ", ToAbsl(RateModeName(c.rate.mode)), "\n",     //
                  "  initial: ", n(c.rate.initial), "\n",                  //
                  "  min: ", n(c.rate.min), "\n",                          //
                  "  max: ", n(c.rate.max), "\n",                          //
                  "  burst: ", n(c.rate.burst), "\n",                      //
                  "  increase_step: ", n(c.rate.increase_step), "\n",      //
                  "  adjust_interval: ", d(c.rate.adjust_interval), "\n",  //
                  "  cooldown: ", d(c.rate.cooldown), "\n");
  absl::StrAppend(
      &out, "health:\n",                                     //
      "  poll_interval: ", d(c.health.poll_interval), "\n",  //
      "  timeout: ", d(c.health.timeout), "\n",              //
      "  queue_growth_threshold: ", n(c.health.queue_growth_threshold), "\n");
  absl::StrAppend(
      &out, "breaker:\n",  //
      "  failure_rate_threshold: ", n(c.breaker.failure_rate_threshold),
      "\n",                                                               //
      "  slow_call_threshold: ", d(c.breaker.slow_call_threshold), "\n",  //
      "  slow_call_rate_threshold: ", n(c.breaker.slow_call_rate_threshold),
      "\n",                                                           //
      "  window: ", d(c.breaker.window), "\n",                        //
      "  min_calls: ", c.breaker.min_calls, "\n",                     //
      "  open_duration: ", d(c.breaker.open_duration), "\n",          //
      "  max_open_duration: ", d(c.breaker.max_open_duration), "\n",  //
      "  half_open_probes: ", c.breaker.half_open_probes, "\n",       //
      "  probe_timeout: ", d(c.breaker.probe_timeout), "\n");
  absl::StrAppend(&out, "retry:\n",                                         //
                  "  max_attempts: ", c.retry.max_attempts, "\n",           //
                  "  initial_backoff: ", d(c.retry.initial_backoff), "\n",  //
                  "  max_backoff: ", d(c.retry.max_backoff), "\n",          //
                  "  budget_ratio: ", n(c.retry.budget_ratio), "\n");
  const durable::DurableOptions& db = c.database;
  const durable::WorkerOptions& worker = c.database.worker;
  absl::StrAppend(&out, "database:\n");
  if (!db.session.url.empty()) {
    absl::StrAppend(
        &out, "  url: ", YamlString(RedactDatabaseUrl(db.session.url)), "\n");
  }
  absl::StrAppend(&out,  //
                  "  connect_timeout: ", d(db.session.connect_timeout), "\n",
                  "  lease: ", d(worker.lease), "\n",                        //
                  "  claim_batch: ", worker.claim_batch, "\n",               //
                  "  max_outstanding: ", worker.max_outstanding, "\n",       //
                  "  poll_interval: ", d(worker.poll_interval), "\n",        //
                  "  attempt_deadline: ", d(worker.attempt_deadline), "\n",  //
                  "  max_attempts: ", worker.max_attempts, "\n",             //
                  "  retry_initial_backoff: ", d(worker.retry_initial_backoff),
                  "\n",  //
                  "  retry_max_backoff: ", d(worker.retry_max_backoff), "\n",
                  "  retention: ", d(db.retention), "\n",                    //
                  "  heartbeat_interval: ", d(db.heartbeat_interval), "\n",  //
                  "  heartbeat_timeout: ", d(db.heartbeat_timeout), "\n",    //
                  "  submit_batch: ", db.submit_batch, "\n",                 //
                  "  submit_writers: ", db.submit_writers, "\n",             //
                  "  submit_queue: ", db.submit_queue, "\n");
  return out;
}

namespace {

auto Tie(const ServerConfig& s) {
  return std::tie(s.listen, s.max_message_bytes, s.shutdown_grace,
                  s.default_deadline, s.tls_cert_file, s.tls_key_file,
                  s.tls_client_ca_file);
}
auto Tie(const RateConfig& r) {
  return std::tie(r.mode, r.initial, r.min, r.max, r.burst, r.increase_step,
                  r.adjust_interval, r.cooldown);
}
auto Tie(const HealthConfig& h) {
  return std::tie(h.poll_interval, h.timeout, h.queue_growth_threshold);
}

// The component options structs have no operator== of their own; these list
// every field, including those no key sets. The size checks catch most fields
// added to a struct and not here (sizes as laid out by libstdc++ on LP64, what
// the project builds with).
#if defined(__GLIBCXX__) && defined(__LP64__)
#define BG_EXPECT_SIZE(type, size)            \
  static_assert(sizeof(type) == (size), #type \
                " has changed: compare its "  \
                "new fields in Tie()")
#else
#define BG_EXPECT_SIZE(type, size) static_assert(true)
#endif
auto Tie(const killbill::ClientOptions& k) {
  BG_EXPECT_SIZE(killbill::ClientOptions, 256);
  return std::tie(k.url, k.api_key, k.api_secret, k.username, k.password,
                  k.created_by, k.connect_timeout, k.request_timeout,
                  k.max_connections, k.ca_file, k.max_response_bytes);
}
auto Tie(const flow::DrainRate::Options& d) {
  BG_EXPECT_SIZE(flow::DrainRate::Options, 16);
  return std::tie(d.window, d.min_busy);
}
auto Tie(const flow::AdmissionOptions& q) {
  BG_EXPECT_SIZE(flow::AdmissionOptions, 80);
  return std::tuple_cat(
      std::tie(q.capacity, q.deadline_margin, q.wait_safety_factor,
               q.initial_latency, q.latency_ewma_alpha, q.initial_drain_per_s),
      Tie(q.drain), std::tie(q.min_retry_pushback, q.max_retry_pushback));
}
auto Tie(const flow::CircuitBreaker::Options& b) {
  BG_EXPECT_SIZE(flow::CircuitBreaker::Options, 88);
  return std::tie(b.failure_rate_threshold, b.slow_call_threshold,
                  b.slow_call_rate_threshold, b.window, b.min_calls,
                  b.open_duration, b.max_open_duration, b.half_open_probes,
                  b.probe_timeout, b.health_failures_to_open,
                  b.growth_open_threshold);
}
auto Tie(const flow::RetryOptions& r) {
  BG_EXPECT_SIZE(flow::RetryOptions, 56);
  return std::tie(r.max_attempts, r.initial_backoff, r.max_backoff, r.jitter,
                  r.budget_ratio, r.budget_min_per_s, r.budget_window);
}
auto Tie(const durable::PgSessionOptions& s) {
  BG_EXPECT_SIZE(durable::PgSessionOptions, 96);
  return std::tie(s.url, s.connect_timeout, s.application_name,
                  s.min_reconnect_backoff, s.max_reconnect_backoff,
                  s.statement_timeout);
}
auto Tie(const durable::WorkerOptions& w) {
  BG_EXPECT_SIZE(durable::WorkerOptions, 88);
  return std::tie(w.owner, w.lease, w.claim_batch, w.max_outstanding,
                  w.poll_interval, w.attempt_deadline, w.max_attempts,
                  w.retry_initial_backoff, w.retry_max_backoff);
}
auto Tie(const durable::DurableOptions& d) {
  BG_EXPECT_SIZE(durable::DurableOptions, 224);
  return std::tuple_cat(
      Tie(d.session), Tie(d.worker),
      std::tie(d.retention, d.heartbeat_interval, d.heartbeat_timeout,
               d.submit_batch, d.submit_writers, d.submit_queue,
               d.max_waiters));
}

}  // namespace

bool operator==(const GatewayConfig& a, const GatewayConfig& b) {
  return Tie(a.server) == Tie(b.server) &&
         a.metrics.listen == b.metrics.listen &&
         a.logging.level == b.logging.level &&
         Tie(a.killbill) == Tie(b.killbill) && Tie(a.queue) == Tie(b.queue) &&
         a.concurrency.max_in_flight == b.concurrency.max_in_flight &&
         Tie(a.rate) == Tie(b.rate) && Tie(a.health) == Tie(b.health) &&
         Tie(a.breaker) == Tie(b.breaker) && Tie(a.retry) == Tie(b.retry) &&
         Tie(a.database) == Tie(b.database);
}

}  // namespace bg::config
