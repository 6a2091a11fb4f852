// The sections of the configuration file, in groups (internal; the API is
// gateway_config.h). Each group's file lists its keys (the schema the YAML walk
// of yaml_reader.h fills), takes what the environment overrides, checks the
// relations between its keys once the walk is done, prints its sections for
// DescribeForLog and compares them for operator==:
//   server_sections.cc   server, metrics, logging
//   killbill_section.cc  killbill (secrets from the environment)
//   flow_sections.cc     queue, concurrency, rate, health, breaker, retry
//   database_section.cc  database (its URL from the environment)
// gateway_config.cc strings the groups together in this order, which is the
// order of the sections in messages and in DescribeForLog.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "config/gateway_config.h"
#include "config/yaml_reader.h"

namespace bg::config::internal {

// --- server_sections.cc: server, metrics, logging ---------------------------
std::vector<Section> ServerSections(GatewayConfig& c);
absl::Status CheckServerSections(const GatewayConfig& c,
                                 const Positions& positions);
void DescribeServerSections(const GatewayConfig& c, std::string& out);
bool SameServerSections(const GatewayConfig& a, const GatewayConfig& b);

// Shared with killbill_section.cc: "host" or "[ipv6]" (brackets included),
// a decimal port >= `min_port` (0 for listening sockets, 1 else), and a path
// that must not be empty. Each returns an error message or nullopt.
std::optional<std::string> CheckHost(absl::string_view host);
std::optional<std::string> CheckPort(absl::string_view port, int min_port);
std::optional<std::string> CheckPath(absl::string_view text);

// --- killbill_section.cc: killbill ------------------------------------------
std::vector<Section> KillBillSection(GatewayConfig& c);
// A secret from the environment wins over the file's; whichever wins must be
// usable in an HTTP header.
absl::Status ApplyKillBillEnvironment(const Environment& env,
                                      const Positions& positions,
                                      GatewayConfig& c);
absl::Status CheckKillBillSection(const GatewayConfig& c,
                                  const Positions& positions);
void DescribeKillBillSection(const GatewayConfig& c, std::string& out);
bool SameKillBillSection(const GatewayConfig& a, const GatewayConfig& b);

// --- flow_sections.cc: queue, concurrency, rate, health, breaker, retry -----
std::vector<Section> FlowSections(GatewayConfig& c);
absl::Status CheckFlowSections(const GatewayConfig& c,
                               const Positions& positions);
void DescribeFlowSections(const GatewayConfig& c, std::string& out);
bool SameFlowSections(const GatewayConfig& a, const GatewayConfig& b);

// --- database_section.cc: database ------------------------------------------
std::vector<Section> DatabaseSection(GatewayConfig& c);
absl::Status ApplyDatabaseEnvironment(const Environment& env, GatewayConfig& c);
absl::Status CheckDatabaseSection(const GatewayConfig& c,
                                  const Positions& positions);
void DescribeDatabaseSection(const GatewayConfig& c, std::string& out);
bool SameDatabaseSection(const GatewayConfig& a, const GatewayConfig& b);

// The options structs of the components have no operator== of their own; the
// Same*() functions compare them with std::tie over every field, including
// those no key sets. BG_EXPECT_SIZE next to each list catches most fields
// added to a struct and not to its list (sizes as laid out by libstdc++ on
// LP64, what the project builds with; elsewhere it checks nothing).
#if defined(__GLIBCXX__) && defined(__LP64__)
#define BG_EXPECT_SIZE(type, size)            \
  static_assert(sizeof(type) == (size), #type \
                " has changed: compare its "  \
                "new fields in Same*()")
#else
#define BG_EXPECT_SIZE(type, size) static_assert(true)
#endif

}  // namespace bg::config::internal
