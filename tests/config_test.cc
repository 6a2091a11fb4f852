// Tests of config/: defaults, the reference gateway.yaml (key by key equal to
// the defaults, and naming every key), every key changed, the broken-file
// corpus in tests/testdata/config (each refused at the expected
// FILE:LINE:COLUMN and key path), environment overrides of secrets, and that
// secrets never reach an error message or DescribeForLog().
#include <dirent.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <functional>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "common/clock.h"
#include "config/gateway_config.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace bg::config {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;
using ::testing::StartsWith;

const std::string kCorpusDir =
    std::string(BG_SOURCE_DIR) + "/tests/testdata/config";
const std::string kExampleFile =
    std::string(BG_SOURCE_DIR) + "/config/gateway.yaml";

// Every secret value in the corpus and in these tests contains this marker.
constexpr char kSecretMarker[] = "S3CRET";

Environment FakeEnvironment(
    std::map<std::string, std::string, std::less<>> vars) {
  return Environment([vars = std::move(vars)](
                         std::string_view name) -> std::optional<std::string> {
    auto it = vars.find(name);
    if (it == vars.end()) return std::nullopt;
    return it->second;
  });
}

// Debian's absl::string_view is not std::string_view; gMock's string matchers
// want the latter or a std::string.
std::string Message(const absl::Status& status) {
  return std::string(status.message());
}

std::vector<std::string> CorpusFiles(const std::string& prefix) {
  std::vector<std::string> names;
  DIR* dir = opendir(kCorpusDir.c_str());
  if (dir == nullptr) return names;
  while (dirent* entry = readdir(dir)) {
    std::string name = entry->d_name;
    if (absl::StartsWith(name, prefix) && absl::EndsWith(name, ".yaml"))
      names.push_back(name);
  }
  closedir(dir);
  return names;
}

// --- Defaults
// --------------------------------------------------------------------------

TEST(ConfigDefaultsTest, EmptyTextGivesDefaults) {
  absl::StatusOr<GatewayConfig> config =
      ParseConfig("", "empty.yaml", Environment::Empty());
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(*config, GatewayConfig{});
}

TEST(ConfigDefaultsTest, DocumentedDefaults) {
  GatewayConfig c;
  EXPECT_EQ(c.server.listen, "127.0.0.1:50051");
  EXPECT_EQ(c.server.max_message_bytes, 65536);
  EXPECT_EQ(c.server.shutdown_grace, std::chrono::seconds(10));
  EXPECT_EQ(c.server.default_deadline, std::chrono::seconds(30));
  EXPECT_EQ(c.metrics.listen, "127.0.0.1:9464");
  EXPECT_EQ(c.logging.level, LogLevel::kInfo);
  EXPECT_EQ(c.logging.format, LogFormat::kText);
  EXPECT_EQ(c.killbill.url, "http://127.0.0.1:8080");
  EXPECT_EQ(c.killbill.api_key, "fresh-tenant");
  EXPECT_EQ(c.killbill.api_secret, "fresh-secret");
  EXPECT_EQ(c.killbill.username, "admin");
  EXPECT_EQ(c.killbill.password, "password");
  EXPECT_EQ(c.killbill.created_by, "billing-gateway");
  EXPECT_EQ(c.killbill.connect_timeout, std::chrono::seconds(2));
  EXPECT_EQ(c.killbill.request_timeout, std::chrono::seconds(10));
  EXPECT_EQ(c.killbill.max_connections, 16);
  EXPECT_EQ(c.killbill.ca_file, "");
  EXPECT_EQ(c.queue.capacity, 10000);
  EXPECT_EQ(c.memory.max_resident_mb, 0u);
  EXPECT_EQ(c.concurrency.max_in_flight, 8);
  EXPECT_EQ(c.rate.mode, RateMode::kAdaptive);
  EXPECT_EQ(c.rate.initial, 10);
  EXPECT_EQ(c.rate.min, 1);
  EXPECT_EQ(c.rate.max, 50);
  EXPECT_EQ(c.rate.burst, 10);
  EXPECT_EQ(c.rate.increase_step, 1);
  EXPECT_EQ(c.rate.adjust_interval, std::chrono::seconds(1));
  EXPECT_EQ(c.rate.cooldown, std::chrono::seconds(10));
  EXPECT_EQ(c.health.poll_interval, std::chrono::seconds(1));
  EXPECT_EQ(c.health.timeout, std::chrono::seconds(2));
  EXPECT_EQ(c.health.queue_growth_threshold, 0.1);
  EXPECT_EQ(c.breaker.failure_rate_threshold, 0.5);
  EXPECT_EQ(c.breaker.slow_call_threshold, std::chrono::seconds(5));
  EXPECT_EQ(c.breaker.slow_call_rate_threshold, 0.8);
  EXPECT_EQ(c.breaker.window, std::chrono::seconds(10));
  EXPECT_EQ(c.breaker.min_calls, 10);
  EXPECT_EQ(c.breaker.open_duration, std::chrono::seconds(2));
  EXPECT_EQ(c.breaker.max_open_duration, std::chrono::seconds(60));
  EXPECT_EQ(c.breaker.half_open_probes, 3);
  EXPECT_EQ(c.breaker.probe_timeout, std::chrono::seconds(10));
  EXPECT_EQ(c.retry.max_attempts, 3);
  EXPECT_EQ(c.retry.initial_backoff, std::chrono::milliseconds(100));
  EXPECT_EQ(c.retry.max_backoff, std::chrono::seconds(2));
  EXPECT_EQ(c.retry.budget_ratio, 0.1);
  EXPECT_EQ(c.database.session.url, "");
  EXPECT_EQ(c.database.session.connect_timeout, std::chrono::seconds(5));
  EXPECT_EQ(c.database.worker.lease, std::chrono::seconds(30));
  EXPECT_EQ(c.database.worker.claim_batch, 32);
  EXPECT_EQ(c.database.worker.max_outstanding, 64);
  EXPECT_EQ(c.database.worker.poll_interval, std::chrono::milliseconds(200));
  EXPECT_EQ(c.database.worker.attempt_deadline, std::chrono::minutes(2));
  EXPECT_EQ(c.database.worker.max_attempts, 20);
  EXPECT_EQ(c.database.worker.retry_initial_backoff, std::chrono::seconds(1));
  EXPECT_EQ(c.database.worker.retry_max_backoff, std::chrono::minutes(1));
  EXPECT_EQ(c.database.retention, std::chrono::hours(168));
  EXPECT_EQ(c.database.heartbeat_interval, std::chrono::seconds(1));
  EXPECT_EQ(c.database.heartbeat_timeout, std::chrono::seconds(5));
  EXPECT_EQ(c.database.submit_batch, 256);
  EXPECT_EQ(c.database.submit_writers, 2);
  EXPECT_EQ(c.database.submit_queue, 20000);

  // Durations convert to the clock's duration without a cast.
  Clock::Duration deadline = c.server.default_deadline;
  EXPECT_EQ(deadline, std::chrono::seconds(30));
}

TEST(ConfigDefaultsTest, EmptyAndCommentOnlyFilesGiveDefaults) {
  for (const std::string& name : CorpusFiles("good_empty")) {
    SCOPED_TRACE(name);
    absl::StatusOr<GatewayConfig> config =
        LoadConfigFile(kCorpusDir + "/" + name, Environment::Empty());
    ASSERT_TRUE(config.ok()) << config.status();
    EXPECT_EQ(*config, GatewayConfig{});
  }
  absl::StatusOr<GatewayConfig> config = LoadConfigFile(
      kCorpusDir + "/good_comments_only.yaml", Environment::Empty());
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(*config, GatewayConfig{});
}

// --- The reference file
// ----------------------------------------------------------------

TEST(ConfigExampleTest, ReferenceFileParsesToDefaults) {
  absl::StatusOr<GatewayConfig> config =
      LoadConfigFile(kExampleFile, Environment::Empty());
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(*config, GatewayConfig{});
}

// The keys of a YAML text laid out like config/gateway.yaml and like
// DescribeForLog's output: sections at the start of a line ("breaker:"), keys
// indented by two spaces ("  min_calls: 10"), keys without a default commented
// out ("  # ca_file: ..."). Prose comments are skipped; a commented line that
// looks like a key ("  # adaptive: start at ...") is a candidate that only
// counts where a key of that name is expected.
struct KeyLine {
  std::string section;
  std::string text;  // The line as written, without the "# " of a comment.
  int line;          // 1-based.
};
struct KeyLines {
  std::map<std::string, KeyLine> keys;       // "breaker.min_calls" -> line
  std::map<std::string, KeyLine> commented;  // candidates, see above
  std::vector<std::string> unexpected;       // lines of neither shape
};

KeyLines ReadKeyLines(const std::string& text) {
  KeyLines out;
  std::string section;
  int number = 0;
  for (absl::string_view line : absl::StrSplit(text, '\n')) {
    ++number;
    const std::string where = absl::StrCat(number, ": ", line);
    if (line.empty() || absl::StartsWith(line, "#")) continue;
    const bool indented = absl::ConsumePrefix(&line, "  ");
    const bool commented = indented && absl::ConsumePrefix(&line, "# ");
    const size_t colon = line.find(':');
    const absl::string_view name = line.substr(0, colon);
    const bool is_name = colon != absl::string_view::npos && !name.empty() &&
                         std::all_of(name.begin(), name.end(), [](char c) {
                           return absl::ascii_islower(c) || c == '_';
                         });
    if (!indented) {
      if (is_name && line.size() == colon + 1) {
        section = std::string(name);
      } else {
        out.unexpected.push_back(where);
      }
      continue;
    }
    const bool has_value = is_name && line.size() > colon + 2 &&
                           line[colon + 1] == ' ' && line[colon + 2] != ' ';
    if (commented) {
      if (has_value && !section.empty()) {
        out.commented.emplace(
            absl::StrCat(section, ".", name),
            KeyLine{section, absl::StrCat("  ", line), number});
      }
      continue;
    }
    if (!has_value || section.empty()) {
      out.unexpected.push_back(where);
      continue;
    }
    auto [it, inserted] =
        out.keys.emplace(absl::StrCat(section, ".", name),
                         KeyLine{section, absl::StrCat("  ", line), number});
    if (!inserted) out.unexpected.push_back(absl::StrCat(where, " (again)"));
  }
  return out;
}

std::string ReadReferenceFile() {
  std::string text;
  std::FILE* f = std::fopen(kExampleFile.c_str(), "r");
  if (f == nullptr) return text;
  char buf[4096];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof(buf), f)) > 0) text.append(buf, n);
  std::fclose(f);
  return text;
}

// Each key the reference file states holds the default: the key alone, parsed
// into an otherwise empty file, gives exactly GatewayConfig{}. Fails, naming
// the key, when a default changes in an options struct (flow::CircuitBreaker::
// Options, ...) or a config struct and not in config/gateway.yaml, or the
// other way round.
TEST(ConfigExampleTest, ReferenceFileStatesTheDefaults) {
  const KeyLines file = ReadKeyLines(ReadReferenceFile());
  ASSERT_FALSE(file.keys.empty()) << "cannot read " << kExampleFile;
  const KeyLines defaults = ReadKeyLines(DescribeForLog(GatewayConfig{}));
  for (const auto& [path, key] : file.keys) {
    const std::string yaml = absl::StrCat(key.section, ":\n", key.text, "\n");
    absl::StatusOr<GatewayConfig> alone =
        ParseConfig(yaml, "gateway.yaml", Environment::Empty());
    const std::string where =
        absl::StrCat("config/gateway.yaml:", key.line, ": ", path, ": ");
    if (!alone.ok()) {
      ADD_FAILURE() << where << "refused on its own: " << alone.status();
      continue;
    }
    if (*alone == GatewayConfig{}) continue;
    auto printed = defaults.keys.find(path);
    ADD_FAILURE() << where << "the file says \"" << key.text
                  << "\" but the default is \""
                  << (printed == defaults.keys.end() ? "(not printed)"
                                                     : printed->second.text)
                  << "\" (a secret's default is printed redacted)";
  }
}

// The reverse: every key of the defaults is stated in the reference file, and
// every key without a default (absent = off) is there commented out with an
// example. DescribeForLog prints every key that has a value.
TEST(ConfigExampleTest, ReferenceFileNamesEveryKey) {
  GatewayConfig with_optional_keys;
  with_optional_keys.killbill.url = "https://kb:8443";
  with_optional_keys.killbill.ca_file = "/ca.pem";
  with_optional_keys.server.tls_cert_file = "/tls.crt";
  with_optional_keys.server.tls_key_file = "/tls.key";
  with_optional_keys.server.tls_client_ca_file = "/ca.pem";
  with_optional_keys.database.session.url = "postgresql://db/x";
  const KeyLines file = ReadKeyLines(ReadReferenceFile());
  const KeyLines defaults = ReadKeyLines(DescribeForLog(GatewayConfig{}));
  const KeyLines all = ReadKeyLines(DescribeForLog(with_optional_keys));
  ASSERT_FALSE(file.keys.empty()) << "cannot read " << kExampleFile;
  EXPECT_THAT(defaults.unexpected, ::testing::IsEmpty());
  EXPECT_THAT(file.unexpected, ::testing::IsEmpty())
      << "config/gateway.yaml: lines that are neither a section, a key, nor "
         "a comment";

  for (const auto& [path, printed] : defaults.keys) {
    EXPECT_EQ(file.keys.count(path), 1u)
        << "config/gateway.yaml does not state " << path
        << " (the defaults print \"" << printed.text << "\")";
  }
  for (const auto& [path, key] : file.keys) {
    EXPECT_EQ(defaults.keys.count(path), 1u)
        << "config/gateway.yaml:" << key.line << ": " << path
        << " is not a key with a default (DescribeForLog of the defaults does "
           "not print it)";
  }
  for (const auto& [path, printed] : all.keys) {
    if (defaults.keys.count(path) > 0) continue;
    EXPECT_EQ(file.commented.count(path), 1u)
        << "config/gateway.yaml does not show " << path
        << ", a key without a default, commented out with an example";
  }
}

// --- Every key changed
// -----------------------------------------------------------------

GatewayConfig EverythingChanged() {
  using std::chrono::milliseconds;
  using std::chrono::seconds;
  GatewayConfig c;
  c.server.listen = "[::1]:0";
  c.server.max_message_bytes = 1048576;
  c.server.shutdown_grace = milliseconds(0);
  c.server.default_deadline = seconds(90);
  c.server.tls_cert_file = "/etc/bg/tls.crt";
  c.server.tls_key_file = "/etc/bg/tls.key";
  c.server.tls_client_ca_file = "/etc/bg/clients.pem";
  c.metrics.listen = "0.0.0.0:0";
  c.logging.level = LogLevel::kDebug;
  c.logging.format = LogFormat::kJson;
  c.killbill.url = "https://killbill.internal:8443";
  c.killbill.api_key = "file-key";
  c.killbill.api_secret = "file-secret";
  c.killbill.username = "file-user";
  c.killbill.password = "file-password";
  c.killbill.created_by = "gateway-test";
  c.killbill.connect_timeout = milliseconds(250);
  c.killbill.request_timeout = seconds(3);
  c.killbill.max_connections = 32;
  c.killbill.ca_file = "/etc/ssl/kb.pem";
  c.queue.capacity = 500;
  c.memory.max_resident_mb = 512;
  c.concurrency.max_in_flight = 4;
  c.rate.mode = RateMode::kStatic;
  c.rate.signal = RateSignal::kHealthcheck;
  c.rate.target_backlog = 4;
  c.rate.initial = 12.5;
  c.rate.min = 2;
  c.rate.max = 40;
  c.rate.burst = 5;
  c.rate.increase_step = 0.5;
  c.rate.adjust_interval = milliseconds(500);
  c.rate.cooldown = milliseconds(0);
  c.rate.api_calls_per_second = 20;
  c.cost.per_account = 2;
  c.cost.per_tag = 0;
  c.cost.per_subscription = 5;
  c.cost.per_custom_field = 2;
  c.cost.per_cancel = 2;
  c.cache.fresh = seconds(2);
  c.cache.catalog_fresh = std::chrono::minutes(10);
  c.cache.stale = std::chrono::hours(1);
  c.cache.max_entries = 500;
  c.health.poll_interval = seconds(2);
  c.health.timeout = milliseconds(1500);
  c.health.queue_growth_threshold = 0.51;
  c.breaker.failure_rate_threshold = 1;
  c.breaker.slow_call_threshold = seconds(2);
  c.breaker.slow_call_rate_threshold = 0.25;
  c.breaker.window = seconds(30);
  c.breaker.min_calls = 20;
  c.breaker.open_duration = seconds(1);
  c.breaker.max_open_duration = seconds(1);
  c.breaker.half_open_probes = 1;
  c.breaker.probe_timeout = seconds(5);
  c.retry.max_attempts = 1;
  c.retry.initial_backoff = milliseconds(10);
  c.retry.max_backoff = milliseconds(10);
  c.retry.budget_ratio = 0;
  c.database.session.url =
      "postgresql://billing:S3CRET-db@db.internal:6432/billing?sslmode=require";
  c.database.session.connect_timeout = seconds(3);
  c.database.worker.lease = seconds(10);
  c.database.worker.claim_batch = 8;
  c.database.worker.max_outstanding = 16;
  c.database.worker.poll_interval = milliseconds(50);
  c.database.worker.attempt_deadline = seconds(30);
  c.database.worker.max_attempts = 5;
  c.database.worker.retry_initial_backoff = milliseconds(100);
  c.database.worker.retry_max_backoff = seconds(5);
  c.database.retention = std::chrono::hours(1);
  c.database.heartbeat_interval = milliseconds(500);
  c.database.heartbeat_timeout = seconds(2);
  c.database.submit_batch = 64;
  c.database.submit_writers = 4;
  c.database.submit_queue = 1000;
  return c;
}

TEST(ConfigParseTest, EveryKeyChanged) {
  absl::StatusOr<GatewayConfig> config = LoadConfigFile(
      kCorpusDir + "/good_everything_changed.yaml", Environment::Empty());
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(*config, EverythingChanged());

  // The file really changes every key: no printed line equals the default's.
  std::vector<std::string> changed =
      absl::StrSplit(DescribeForLog(*config), '\n');
  std::vector<std::string> defaults =
      absl::StrSplit(DescribeForLog(GatewayConfig{}), '\n');
  std::set<std::string> default_lines(defaults.begin(), defaults.end());
  for (const std::string& line : changed) {
    if (line.empty() || !absl::StartsWith(line, "  ") ||
        absl::StrContains(line, "<redacted>")) {
      continue;
    }
    EXPECT_EQ(default_lines.count(line), 0u)
        << "not changed by the file: " << line;
  }
}

TEST(ConfigParseTest, DescribeForLogParsesBack) {
  for (const GatewayConfig& original : {GatewayConfig{}, EverythingChanged()}) {
    std::string text = DescribeForLog(original);
    absl::StatusOr<GatewayConfig> parsed =
        ParseConfig(text, "described", Environment::Empty());
    ASSERT_TRUE(parsed.ok()) << parsed.status() << "\n" << text;
    GatewayConfig expected = original;
    expected.killbill.api_key = expected.killbill.api_secret =
        expected.killbill.username = expected.killbill.password = "<redacted>";
    expected.database.session.url =
        RedactDatabaseUrl(expected.database.session.url);
    EXPECT_EQ(*parsed, expected) << text;
  }
}

TEST(ConfigParseTest, AcceptedSpellings) {
  struct Case {
    std::string yaml;
    std::function<bool(const GatewayConfig&)> check;
  };
  const Case cases[] = {
      {"server: {default_deadline: 1m30s}",
       [](const GatewayConfig& c) {
         return c.server.default_deadline.count() == 90000;
       }},
      {"server: {shutdown_grace: 0}",
       [](const GatewayConfig& c) {
         return c.server.shutdown_grace.count() == 0;
       }},
      {"health: {timeout: 1.5s}",
       [](const GatewayConfig& c) { return c.health.timeout.count() == 1500; }},
      {"killbill: {url: \"http://kb/\"}",
       [](const GatewayConfig& c) { return c.killbill.url == "http://kb"; }},
      {"killbill: {url: \"http://[::1]:8080\"}",
       [](const GatewayConfig& c) {
         return c.killbill.url == "http://[::1]:8080";
       }},
      {"killbill: {url: \"https://[::1]\", ca_file: ca.pem}",
       [](const GatewayConfig& c) { return c.killbill.ca_file == "ca.pem"; }},
      {"server: {listen: \"0.0.0.0:65535\"}",
       [](const GatewayConfig& c) {
         return c.server.listen == "0.0.0.0:65535";
       }},
      {"metrics: {listen: \"localhost:0\"}",
       [](const GatewayConfig& c) {
         return c.metrics.listen == "localhost:0";
       }},
      {"queue: {capacity: \"42\"}",
       [](const GatewayConfig& c) { return c.queue.capacity == 42; }},
      {"rate: {min: 0.5, initial: 0.5, max: 1e3}",
       [](const GatewayConfig& c) {
         return c.rate.min == 0.5 && c.rate.max == 1000;
       }},
      {"retry: {budget_ratio: 0}",
       [](const GatewayConfig& c) { return c.retry.budget_ratio == 0; }},
      {"killbill: {api_key: 12345}",
       [](const GatewayConfig& c) { return c.killbill.api_key == "12345"; }},
      {"logging: {level: trace}",
       [](const GatewayConfig& c) {
         return c.logging.level == LogLevel::kTrace;
       }},
      {"logging: {format: json}",
       [](const GatewayConfig& c) {
         return c.logging.format == LogFormat::kJson;
       }},
  };
  for (const Case& test : cases) {
    SCOPED_TRACE(test.yaml);
    absl::StatusOr<GatewayConfig> config =
        ParseConfig(test.yaml, "inline", Environment::Empty());
    ASSERT_TRUE(config.ok()) << config.status();
    EXPECT_TRUE(test.check(*config));
  }
}

// --- The broken-file corpus
// ------------------------------------------------------------

struct BrokenFile {
  std::string file;
  int line;
  int column;
  std::string
      path;  // Empty for errors not tied to a key (syntax, document shape).
  std::string message;
};

const std::vector<BrokenFile>& BrokenFiles() {
  static const auto* const kFiles = new std::vector<BrokenFile>{
      // YAML syntax and document shape.
      {"bad_syntax_unclosed_flow.yaml", 3, 1, "",
       "YAML syntax error: end of sequence flow"},
      {"bad_syntax_indentation.yaml", 3, 4, "",
       "YAML syntax error: end of map not found"},
      {"bad_syntax_tab_indent.yaml", 2, 10, "",
       "YAML syntax error: illegal map value"},
      {"bad_syntax_secret_escape.yaml", 2, 22, "",
       "YAML syntax error: unknown escape character"},
      {"bad_multiple_documents.yaml", 4, 1, "",
       "expected one YAML document, found several"},
      {"bad_root_not_map.yaml", 2, 1, "",
       "expected a map of sections (server, metrics,"},
      // Unknown, duplicate and malformed keys.
      {"bad_unknown_section.yaml", 3, 1, "servr",
       "unknown section; expected one of server,"},
      {"bad_unknown_key_nested.yaml", 3, 3, "breaker.min_call",
       "unknown key; expected one of failure_rate_threshold,"},
      {"bad_unknown_key_near_secret.yaml", 2, 3, "killbill.pasword",
       "unknown key"},
      {"bad_duplicate_key.yaml", 3, 3, "queue.capacity",
       "duplicate key (first set on line 2)"},
      {"bad_duplicate_section.yaml", 5, 1, "rate",
       "duplicate key (first set on line 1)"},
      {"bad_key_not_scalar.yaml", 2, 5, "server",
       "expected a key name, got a sequence"},
      // Wrong types.
      {"bad_section_not_map.yaml", 1, 7, "rate",
       "expected a map, got a scalar"},
      {"bad_type_map_for_scalar.yaml", 3, 5, "server.listen",
       "expected a string, got a map"},
      {"bad_type_sequence_for_int.yaml", 2, 18, "concurrency.max_in_flight",
       "expected an integer, got a sequence"},
      {"bad_type_string_for_int.yaml", 2, 13, "queue.capacity",
       "expected an integer, got \"abc\""},
      {"bad_type_float_for_int.yaml", 2, 21, "breaker.half_open_probes",
       "expected an integer, got \"2.5\""},
      {"bad_type_int_overflow.yaml", 2, 13, "queue.capacity",
       "expected an integer"},
      {"bad_type_nan.yaml", 2, 12, "rate.initial",
       "expected a number, got \".nan\""},
      {"bad_null_value.yaml", 2, 3, "queue.capacity",
       "has no value; expected an integer"},
      // Out of range.
      {"bad_range_min_calls.yaml", 3, 14, "breaker.min_calls",
       "must be between 1 and 100000, got 0"},
      {"bad_range_resident_mb.yaml", 2, 20, "queue.max_resident_mb",
       "must be 0 (no bound) or between 64 and 1048576 (MiB), got 10"},
      {"bad_range_message_bytes.yaml", 2, 22, "server.max_message_bytes",
       "must be between 1024 and 16777216, got 100"},
      {"bad_range_share.yaml", 2, 27, "breaker.failure_rate_threshold",
       "must be > 0 and <= 1, got 1.5"},
      {"bad_range_zero_rate.yaml", 2, 8, "rate.min",
       "must be > 0 and <= 100000, got 0"},
      {"bad_range_max_attempts.yaml", 2, 17, "retry.max_attempts",
       "must be between 1 and 10, got 11"},
      // Durations.
      {"bad_duration_unit.yaml", 2, 18, "health.poll_interval",
       "expected a duration such as \"250ms\", \"2s\" or \"1m\", got \"5 "
       "parsecs\""},
      {"bad_duration_no_unit.yaml", 2, 20, "killbill.request_timeout",
       "expected a duration such as \"250ms\", \"2s\" or \"1m\", got \"5\""},
      {"bad_duration_negative.yaml", 2, 21, "server.default_deadline",
       "must be between 1ms and 1h, got -1s"},
      {"bad_duration_zero.yaml", 2, 18, "breaker.open_duration",
       "must be between 1ms and 1h, got 0"},
      {"bad_duration_sub_ms.yaml", 2, 20, "retry.initial_backoff",
       "must be a whole number of milliseconds, got 1.5ms"},
      {"bad_duration_infinite.yaml", 2, 18, "breaker.probe_timeout",
       "expected a duration"},
      // Addresses.
      {"bad_url_scheme.yaml", 2, 8, "killbill.url",
       "scheme must be http or https"},
      {"bad_url_path.yaml", 2, 8, "killbill.url",
       "no path, query or fragment allowed"},
      {"bad_url_port.yaml", 2, 8, "killbill.url",
       "port must be a number between 1 and 65535"},
      {"bad_url_credentials.yaml", 2, 8, "killbill.url",
       "got a URL with credentials: credentials go in killbill.username"},
      {"bad_listen_no_port.yaml", 2, 11, "server.listen",
       "expected host:port (port 0..65535), got \"127.0.0.1\": no port"},
      {"bad_listen_port_range.yaml", 2, 11, "metrics.listen",
       "port must be a number between 0 and 65535"},
      {"bad_listen_empty_host.yaml", 2, 11, "server.listen", "host is empty"},
      // Relations between keys: the error points at the key the file sets.
      {"bad_rate_min_gt_max.yaml", 2, 8, "rate.min",
       "must be <= rate.max (10), got 50"},
      {"bad_rate_initial_gt_max.yaml", 2, 12, "rate.initial",
       "must be <= rate.max (50), got 200"},
      {"bad_rate_max_below_default_initial.yaml", 2, 8, "rate.max",
       "must be >= rate.initial (10), got 5"},
      {"bad_breaker_open_gt_max.yaml", 2, 18, "breaker.open_duration",
       "must be <= breaker.max_open_duration (1m), got 1m30s"},
      {"bad_retry_backoff_order.yaml", 2, 16, "retry.max_backoff",
       "must be >= retry.initial_backoff (100ms), got 50ms"},
      {"bad_ca_file_with_http.yaml", 3, 12, "killbill.ca_file",
       "is only used with an https killbill.url"},
      {"bad_tls_cert_without_key.yaml", 2, 18, "server.tls_cert_file",
       "server.tls_cert_file and server.tls_key_file go together"},
      {"bad_tls_client_ca_without_cert.yaml", 3, 23,
       "server.tls_client_ca_file",
       "mutual TLS needs server.tls_cert_file and server.tls_key_file"},
      // Enums and strings.
      {"bad_enum_level.yaml", 2, 10, "logging.level",
       "must be one of trace, debug, info, warn, error; got \"verbose\""},
      {"bad_enum_mode.yaml", 2, 9, "rate.mode",
       "must be one of static, adaptive"},
      {"bad_created_by_empty.yaml", 2, 15, "killbill.created_by",
       "must not be empty"},
      // Secrets: refused without echoing the value.
      {"bad_secret_map.yaml", 3, 5, "killbill.password",
       "expected a string, got a map"},
      {"bad_secret_sequence.yaml", 2, 15, "killbill.api_secret",
       "expected a string, got a sequence"},
      {"bad_secret_empty.yaml", 2, 13, "killbill.username",
       "must not be empty"},
      {"bad_secret_control_char.yaml", 2, 12, "killbill.api_key",
       "must not contain control characters"},
      {"bad_secret_null.yaml", 2, 3, "killbill.api_key", "has no value"},
      // The database.
      {"bad_database_url_scheme.yaml", 2, 8, "database.url",
       "expected a URI postgresql://"},
      {"bad_database_heartbeat_order.yaml", 2, 22, "database.heartbeat_timeout",
       "must be >= database.heartbeat_interval (1s), got 500ms"},
  };
  return *kFiles;
}

class BrokenFileTest : public ::testing::TestWithParam<BrokenFile> {};

TEST_P(BrokenFileTest, RefusedWithPositionAndKeyPath) {
  const BrokenFile& test = GetParam();
  const std::string path = kCorpusDir + "/" + test.file;
  absl::StatusOr<GatewayConfig> config =
      LoadConfigFile(path, Environment::Empty());
  ASSERT_FALSE(config.ok());
  EXPECT_EQ(config.status().code(), absl::StatusCode::kInvalidArgument);
  const std::string message(config.status().message());
  std::string prefix =
      absl::StrCat(path, ":", test.line, ":", test.column, ": ");
  if (!test.path.empty()) absl::StrAppend(&prefix, test.path, ": ");
  EXPECT_THAT(message, StartsWith(prefix));
  EXPECT_THAT(message, HasSubstr(test.message));
  EXPECT_THAT(message, Not(HasSubstr(kSecretMarker)));
}

INSTANTIATE_TEST_SUITE_P(Corpus, BrokenFileTest,
                         ::testing::ValuesIn(BrokenFiles()),
                         [](const ::testing::TestParamInfo<BrokenFile>& info) {
                           std::string name = info.param.file.substr(
                               0, info.param.file.find('.'));
                           return name;
                         });

// The corpus on disk and the table above describe the same files.
TEST(BrokenFileCorpusTest, EveryBadFileHasAnExpectation) {
  std::set<std::string> in_table;
  for (const BrokenFile& test : BrokenFiles()) in_table.insert(test.file);
  std::vector<std::string> on_disk = CorpusFiles("bad_");
  EXPECT_EQ(std::set<std::string>(on_disk.begin(), on_disk.end()), in_table);
  EXPECT_GE(on_disk.size(), 20u);
}

// --- Secrets
// ---------------------------------------------------------------------------

TEST(ConfigSecretsTest, EnvironmentOverridesFile) {
  Environment env = FakeEnvironment({
      {std::string(kEnvApiKey), "env-key"},
      {std::string(kEnvApiSecret), "env-secret"},
      {std::string(kEnvUsername), "env-user"},
      {std::string(kEnvPassword), "env-password"},
  });
  absl::StatusOr<GatewayConfig> config =
      LoadConfigFile(kCorpusDir + "/good_everything_changed.yaml", env);
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(config->killbill.api_key, "env-key");
  EXPECT_EQ(config->killbill.api_secret, "env-secret");
  EXPECT_EQ(config->killbill.username, "env-user");
  EXPECT_EQ(config->killbill.password, "env-password");
  EXPECT_EQ(config->killbill.created_by,
            "gateway-test");  // Not a secret: file only.
}

TEST(ConfigSecretsTest, EnvironmentOverridesOneSecretAndDefaults) {
  Environment env =
      FakeEnvironment({{std::string(kEnvPassword), "env-password"}});
  absl::StatusOr<GatewayConfig> config = ParseConfig("", "empty.yaml", env);
  ASSERT_TRUE(config.ok()) << config.status();
  GatewayConfig expected;
  expected.killbill.password = "env-password";
  EXPECT_EQ(*config, expected);
}

// A placeholder in the file does not matter when the environment supplies the
// secret.
TEST(ConfigSecretsTest, EnvironmentReplacesAnEmptyFileSecret) {
  Environment env = FakeEnvironment({{std::string(kEnvUsername), "env-user"}});
  absl::StatusOr<GatewayConfig> config =
      LoadConfigFile(kCorpusDir + "/bad_secret_empty.yaml", env);
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(config->killbill.username, "env-user");
}

TEST(ConfigSecretsTest, BadEnvironmentValueIsRefusedWithoutEchoing) {
  for (std::string_view variable :
       {kEnvApiKey, kEnvApiSecret, kEnvUsername, kEnvPassword}) {
    for (std::string value :
         {std::string(""), absl::StrCat(kSecretMarker, "\r\nX-Evil: 1")}) {
      SCOPED_TRACE(absl::StrCat(std::string(variable), "=", value));
      Environment env = FakeEnvironment({{std::string(variable), value}});
      absl::StatusOr<GatewayConfig> config = ParseConfig("", "empty.yaml", env);
      ASSERT_FALSE(config.ok());
      EXPECT_EQ(config.status().code(), absl::StatusCode::kInvalidArgument);
      EXPECT_THAT(Message(config.status()), HasSubstr(std::string(variable)));
      EXPECT_THAT(Message(config.status()), Not(HasSubstr(kSecretMarker)));
    }
  }
}

// Every way of getting a secret's value wrong, for every secret: refused, never
// echoed. (Key names and the values of non-secret keys are quoted on purpose:
// that is what makes the messages useful, and a secret pasted under another key
// is no longer a secret key.)
TEST(ConfigSecretsTest, NoErrorMessageContainsASecret) {
  const std::string s = absl::StrCat(kSecretMarker, "-value");
  const std::vector<std::string> shapes = {
      "{value: " + s + "}",
      "[" + s + "]",
      "\"" + s + "\\x01\"",
      "\"" + s + "\\q\"",
      "\"" + s + "\\uZZZZ\"",
      s + ": nested",
      "&anchor " + s + "\n  other: *missing",
      "!!int " + s + "\n  max_connections: 0",
      s + "\n  %KEY%: " + s + "-again",  // Duplicate key.
  };
  for (absl::string_view key :
       {"api_key", "api_secret", "username", "password"}) {
    for (const std::string& shape : shapes) {
      std::string yaml = absl::StrReplaceAll(
          absl::StrCat("killbill:\n  %KEY%: ", shape, "\n"), {{"%KEY%", key}});
      SCOPED_TRACE(yaml);
      absl::StatusOr<GatewayConfig> config =
          ParseConfig(yaml, "secrets.yaml", Environment::Empty());
      ASSERT_FALSE(config.ok());
      EXPECT_THAT(Message(config.status()), StartsWith("secrets.yaml:"));
      EXPECT_THAT(Message(config.status()), Not(HasSubstr(kSecretMarker)));
    }
  }
}

TEST(ConfigSecretsTest, DescribeForLogRedactsEverySecret) {
  const std::string file =
      absl::StrCat("killbill:\n  api_key: ", kSecretMarker,
                   "-file-key\n  api_secret: ", kSecretMarker,
                   "-file-secret\n  username: ", kSecretMarker, "-file-user\n");
  Environment env = FakeEnvironment(
      {{std::string(kEnvPassword), absl::StrCat(kSecretMarker, "-env-pw")}});
  absl::StatusOr<GatewayConfig> config = ParseConfig(file, "secrets.yaml", env);
  ASSERT_TRUE(config.ok()) << config.status();
  std::string described = DescribeForLog(*config);
  EXPECT_THAT(described, Not(HasSubstr(kSecretMarker)));
  EXPECT_THAT(described, HasSubstr("  password: \"<redacted>\"\n"));
  EXPECT_THAT(described, HasSubstr("  api_key: \"<redacted>\"\n"));
  // The defaults are secrets too.
  std::string defaults = DescribeForLog(GatewayConfig{});
  for (const char* value :
       {"fresh-tenant", "fresh-secret", "admin", "\"password\""}) {
    EXPECT_THAT(defaults, Not(HasSubstr(value)));
  }
}

TEST(ConfigDatabaseTest, EnvironmentOverridesTheUrl) {
  Environment env = FakeEnvironment(
      {{std::string(kEnvDatabaseUrl), "postgresql://u:S3CRET@h:5/db"}});
  absl::StatusOr<GatewayConfig> config = ParseConfig(
      "database:\n  url: \"postgresql://file/db\"\n", "db.yaml", env);
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(config->database.session.url, "postgresql://u:S3CRET@h:5/db");
  EXPECT_THAT(DescribeForLog(*config), Not(HasSubstr(kSecretMarker)));
}

TEST(ConfigDatabaseTest, BadEnvironmentUrlIsRefusedWithoutEchoing) {
  for (std::string value :
       {std::string(""), absl::StrCat("mysql://", kSecretMarker),
        absl::StrCat("postgresql://a:", kSecretMarker, " b@h/d")}) {
    SCOPED_TRACE(value);
    Environment env = FakeEnvironment({{std::string(kEnvDatabaseUrl), value}});
    absl::StatusOr<GatewayConfig> config = ParseConfig("", "empty.yaml", env);
    ASSERT_FALSE(config.ok());
    EXPECT_THAT(Message(config.status()),
                HasSubstr(std::string(kEnvDatabaseUrl)));
    EXPECT_THAT(Message(config.status()), Not(HasSubstr(kSecretMarker)));
  }
}

TEST(ConfigDatabaseTest, UrlErrorsNeverEchoTheUrl) {
  for (const char* url :
       {"mysql://u:S3CRET@h/db", "postgresql://u:S3CRET\x01@h/db", "S3CRET"}) {
    SCOPED_TRACE(url);
    absl::StatusOr<GatewayConfig> config =
        ParseConfig(absl::StrCat("database:\n  url: \"", url, "\"\n"),
                    "db.yaml", Environment::Empty());
    ASSERT_FALSE(config.ok());
    EXPECT_THAT(Message(config.status()),
                StartsWith("db.yaml:2:8: database.url"));
    EXPECT_THAT(Message(config.status()), Not(HasSubstr(kSecretMarker)));
  }
}

// Redaction and the target of database.url: tests/conninfo_test.cc.

// --- Robustness
// ------------------------------------------------------------------------

TEST(ConfigRobustnessTest, MissingFileIsNotFound) {
  absl::StatusOr<GatewayConfig> config =
      LoadConfigFile(kCorpusDir + "/does_not_exist.yaml", Environment::Empty());
  ASSERT_FALSE(config.ok());
  EXPECT_EQ(config.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(Message(config.status()), HasSubstr("does_not_exist.yaml"));
}

TEST(ConfigRobustnessTest, DirectoryIsAnErrorNotAnEmptyFile) {
  absl::StatusOr<GatewayConfig> config =
      LoadConfigFile(kCorpusDir, Environment::Empty());
  ASSERT_FALSE(config.ok());
  EXPECT_THAT(Message(config.status()), HasSubstr(kCorpusDir));
}

TEST(ConfigRobustnessTest, EndlessFileIsRefused) {
  absl::StatusOr<GatewayConfig> config =
      LoadConfigFile("/dev/zero", Environment::Empty());
  ASSERT_FALSE(config.ok());
  EXPECT_EQ(config.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(Message(config.status()), HasSubstr("larger than"));
}

// Truncations of valid files and odd YAML never throw, and fail only as
// InvalidArgument with a position.
TEST(ConfigRobustnessTest, NothingThrows) {
  std::vector<std::string> inputs = {
      "{",
      "[",
      "&a",
      "*a",
      "!!binary x",
      "? ",
      "\xff\xfe",
      "%YAML 9.9\n---\n",
      "a: !<tag> x",
      "server: &s {listen: \"a:1\"}\nmetrics: *s",
      "<<: {}",
      "server:\n  <<: {listen: \"a:1\"}",
      std::string("server:\0x", 9),
      std::string(3000, '[') + std::string(3000, ']'),
  };
  for (const std::string& file :
       {kExampleFile, kCorpusDir + "/good_everything_changed.yaml"}) {
    std::FILE* f = std::fopen(file.c_str(), "r");
    ASSERT_NE(f, nullptr);
    std::string text;
    char buf[4096];
    size_t n;
    while ((n = std::fread(buf, 1, sizeof(buf), f)) > 0) text.append(buf, n);
    std::fclose(f);
    for (size_t end = 0; end < text.size(); end += 13)
      inputs.push_back(text.substr(0, end));
  }
  for (const std::string& input : inputs) {
    absl::StatusOr<GatewayConfig> config;
    ASSERT_NO_THROW(config =
                        ParseConfig(input, "fuzz.yaml", Environment::Empty()))
        << input;
    if (!config.ok()) {
      EXPECT_EQ(config.status().code(), absl::StatusCode::kInvalidArgument)
          << input;
      EXPECT_THAT(Message(config.status()), StartsWith("fuzz.yaml:")) << input;
    }
  }
}

}  // namespace
}  // namespace bg::config
