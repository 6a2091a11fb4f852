// The sections server (the gRPC front door), metrics (the Prometheus
// endpoint) and logging: their keys, the TLS relations between server keys,
// their DescribeForLog lines and equality; also the host and port checks that
// killbill.url shares with the listen addresses.
#include <algorithm>
#include <tuple>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "config/sections.h"

namespace bg::config {

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

std::string_view LogFormatName(LogFormat format) {
  return format == LogFormat::kJson ? "json" : "text";
}

namespace internal {
namespace {

constexpr int64_t kKiB = 1024;
constexpr int64_t kMiB = 1024 * kKiB;

bool IsHostNameChar(char c) {
  return absl::ascii_isalnum(static_cast<unsigned char>(c)) || c == '-' ||
         c == '.' || c == '_';
}

}  // namespace

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

std::optional<std::string> CheckPath(absl::string_view text) {
  if (text.empty()) return "must not be empty (delete the key instead)";
  return std::nullopt;
}

namespace {

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

}  // namespace

std::vector<Section> ServerSections(GatewayConfig& c) {
  using absl::Hours;
  using absl::Minutes;
  return {
      {"server",
       {
           StringField("listen", &c.server.listen, CheckListenAddress),
           IntField("max_message_bytes", &c.server.max_message_bytes, kKiB,
                    16 * kMiB),
           DurationField("shutdown_grace", &c.server.shutdown_grace,
                         absl::ZeroDuration(), Minutes(10)),
           DurationField("default_deadline", &c.server.default_deadline,
                         absl::Milliseconds(1), Hours(1)),
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
                             {"error", LogLevel::kError}}),
        EnumField<LogFormat>(
            "format", &c.logging.format,
            {{"text", LogFormat::kText}, {"json", LogFormat::kJson}})}},
  };
}

absl::Status CheckServerSections(const GatewayConfig& c,
                                 const Positions& positions) {
  if (c.server.tls_cert_file.empty() != c.server.tls_key_file.empty()) {
    const char* given = c.server.tls_cert_file.empty() ? "server.tls_key_file"
                                                       : "server.tls_cert_file";
    return positions.ErrorAt(
        given, "server.tls_cert_file and server.tls_key_file go together");
  }
  if (!c.server.tls_client_ca_file.empty() && c.server.tls_cert_file.empty()) {
    return positions.ErrorAt(
        "server.tls_client_ca_file",
        "mutual TLS needs server.tls_cert_file and server.tls_key_file");
  }
  return absl::OkStatus();
}

void DescribeServerSections(const GatewayConfig& c, std::string& out) {
  const auto d = [](auto v) { return FormatDuration(v); };
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
                  "  level: ", ToAbsl(LogLevelName(c.logging.level)), "\n",
                  "  format: ", ToAbsl(LogFormatName(c.logging.format)), "\n");
}

namespace {

auto Tie(const ServerConfig& s) {
  return std::tie(s.listen, s.max_message_bytes, s.shutdown_grace,
                  s.default_deadline, s.tls_cert_file, s.tls_key_file,
                  s.tls_client_ca_file);
}

}  // namespace

bool SameServerSections(const GatewayConfig& a, const GatewayConfig& b) {
  return Tie(a.server) == Tie(b.server) &&
         a.metrics.listen == b.metrics.listen &&
         a.logging.level == b.logging.level &&
         a.logging.format == b.logging.format;
}

}  // namespace internal
}  // namespace bg::config
