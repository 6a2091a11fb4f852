// ParseConfig and LoadConfigFile: the YAML walk (yaml_reader.cc) over the
// schema of every section, then the environment's overrides and the checks
// between keys, each done by the file of its sections (sections.h lists
// them); DescribeForLog and operator== string the same groups together.
#include "config/gateway_config.h"

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <iterator>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "config/sections.h"
#include "config/yaml_reader.h"

namespace bg::config {

using internal::ToAbsl;

namespace {

// Every section, in the order of messages and of DescribeForLog, with its
// fields pointing into `c`.
std::vector<internal::Section> Schema(GatewayConfig& c) {
  std::vector<internal::Section> schema;
  for (std::vector<internal::Section> group :
       {internal::ServerSections(c), internal::KillBillSection(c),
        internal::FlowSections(c), internal::DatabaseSection(c)}) {
    std::move(group.begin(), group.end(), std::back_inserter(schema));
  }
  return schema;
}

absl::StatusOr<GatewayConfig> Parse(absl::string_view yaml_text,
                                    absl::string_view file_name,
                                    const Environment& env) {
  GatewayConfig config;
  internal::Positions positions(file_name);
  if (absl::Status s = internal::ReadYaml(yaml_text, Schema(config), positions);
      !s.ok()) {
    return s;
  }
  // The environment first (its values are checked as they are taken), then
  // the relations between keys.
  if (absl::Status s =
          internal::ApplyKillBillEnvironment(env, positions, config);
      !s.ok()) {
    return s;
  }
  if (absl::Status s = internal::ApplyDatabaseEnvironment(env, config);
      !s.ok()) {
    return s;
  }
  for (absl::Status s : {internal::CheckFlowSections(config, positions),
                         internal::CheckDatabaseSection(config, positions),
                         internal::CheckServerSections(config, positions),
                         internal::CheckKillBillSection(config, positions)}) {
    if (!s.ok()) return s;
  }
  return config;
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
    return Parse(ToAbsl(yaml_text), ToAbsl(file_name), env);
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

std::string DescribeForLog(const GatewayConfig& c) {
  std::string out;
  internal::DescribeServerSections(c, out);
  internal::DescribeKillBillSection(c, out);
  internal::DescribeFlowSections(c, out);
  internal::DescribeDatabaseSection(c, out);
  return out;
}

bool operator==(const GatewayConfig& a, const GatewayConfig& b) {
  return internal::SameServerSections(a, b) &&
         internal::SameKillBillSection(a, b) &&
         internal::SameFlowSections(a, b) &&
         internal::SameDatabaseSection(a, b);
}

}  // namespace bg::config
