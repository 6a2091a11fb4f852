// The killbill section (the Kill Bill backend, written into
// killbill::ClientOptions): its keys, the URL check, the secrets that the
// environment overrides, the ca_file relation, its DescribeForLog lines (every
// secret redacted) and equality.
#include <tuple>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/strip.h"
#include "config/sections.h"

namespace bg::config::internal {
namespace {

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

// Secrets travel in HTTP headers: never empty, no control characters.
std::optional<std::string> CheckHeaderValue(absl::string_view text) {
  if (text.empty()) return "must not be empty";
  if (HasControlCharacter(text)) return "must not contain control characters";
  return std::nullopt;
}

// A secret from the environment wins over the file; whichever wins must be
// usable in an HTTP header.
absl::Status CheckSecret(const Environment& env, absl::string_view variable,
                         const std::string& path, std::string& value,
                         const Positions& positions) {
  if (std::optional<std::string> from_env =
          env.Get(std::string_view(variable.data(), variable.size()))) {
    if (std::optional<std::string> error = CheckHeaderValue(*from_env)) {
      return absl::InvalidArgumentError(
          absl::StrCat("environment variable ", variable, " (overrides ", path,
                       "): ", *error, " (unset it to use the file's value)"));
    }
    value = *std::move(from_env);
    return absl::OkStatus();
  }
  if (std::optional<std::string> error = CheckHeaderValue(value)) {
    return positions.ErrorAt(path, *error);
  }
  return absl::OkStatus();
}

}  // namespace

std::vector<Section> KillBillSection(GatewayConfig& c) {
  using absl::Minutes;
  const absl::Duration kOneMs = absl::Milliseconds(1);
  return {
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
           StringField("ca_file", &c.killbill.ca_file, CheckPath),
       }},
  };
}

absl::Status ApplyKillBillEnvironment(const Environment& env,
                                      const Positions& positions,
                                      GatewayConfig& c) {
  const std::tuple<std::string_view, const char*, std::string*> secrets[] = {
      {kEnvApiKey, "killbill.api_key", &c.killbill.api_key},
      {kEnvApiSecret, "killbill.api_secret", &c.killbill.api_secret},
      {kEnvUsername, "killbill.username", &c.killbill.username},
      {kEnvPassword, "killbill.password", &c.killbill.password},
  };
  for (const auto& [variable, path, value] : secrets) {
    if (absl::Status s =
            CheckSecret(env, ToAbsl(variable), path, *value, positions);
        !s.ok())
      return s;
  }
  return absl::OkStatus();
}

absl::Status CheckKillBillSection(const GatewayConfig& c,
                                  const Positions& positions) {
  if (!c.killbill.ca_file.empty() &&
      !absl::StartsWith(c.killbill.url, "https://")) {
    return positions.ErrorAt("killbill.ca_file",
                             "is only used with an https killbill.url");
  }
  return absl::OkStatus();
}

void DescribeKillBillSection(const GatewayConfig& c, std::string& out) {
  constexpr absl::string_view kRedacted = "\"<redacted>\"";
  const auto d = [](auto v) { return FormatDuration(v); };
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
}

namespace {

auto Tie(const killbill::ClientOptions& k) {
  BG_EXPECT_SIZE(killbill::ClientOptions, 256);
  return std::tie(k.url, k.api_key, k.api_secret, k.username, k.password,
                  k.created_by, k.connect_timeout, k.request_timeout,
                  k.max_connections, k.ca_file, k.max_response_bytes);
}

}  // namespace

bool SameKillBillSection(const GatewayConfig& a, const GatewayConfig& b) {
  return Tie(a.killbill) == Tie(b.killbill);
}

}  // namespace bg::config::internal
