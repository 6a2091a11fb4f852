// Fuzzes the YAML configuration: ParseConfig with an empty environment
// (yaml-cpp's exceptions must all be caught in the adapter), and, for every
// accepted file, the round trip DescribeForLog -> ParseConfig that
// --check-config promises (same values, secrets redacted: the Kill Bill
// credentials and the database URL's password).
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "config/gateway_config.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using bg::config::Environment;
  using bg::config::GatewayConfig;
  // LoadConfigFile refuses files over 1 MiB; stay in the same range.
  if (size > (1 << 20)) return 0;
  const std::string text(reinterpret_cast<const char*>(data), size);
  static const Environment* env = new Environment(Environment::Empty());

  auto config = bg::config::ParseConfig(text, "fuzz.yaml", *env);
  if (!config.ok()) {
    // Every refusal is InvalidArgument and starts with FILE:LINE:COLUMN.
    if (config.status().code() != absl::StatusCode::kInvalidArgument ||
        config.status().message().rfind("fuzz.yaml:", 0) != 0) {
      std::fprintf(stderr, "unexpected status: %s\n",
                   config.status().ToString().c_str());
      std::abort();
    }
    return 0;
  }
  const std::string described = bg::config::DescribeForLog(*config);
  auto again = bg::config::ParseConfig(described, "described.yaml", *env);
  if (!again.ok()) {
    std::fprintf(stderr, "DescribeForLog output refused: %s\n---\n%s\n",
                 again.status().ToString().c_str(), described.c_str());
    std::abort();
  }
  GatewayConfig expected = *config;
  GatewayConfig got = *again;
  for (GatewayConfig* c : {&expected, &got}) {
    c->killbill.api_key = c->killbill.api_secret = "x";
    c->killbill.username = c->killbill.password = "x";
  }
  // The database URL is printed with its password redacted: compare that form.
  expected.database.session.url =
      bg::config::RedactDatabaseUrl(expected.database.session.url);
  got.database.session.url =
      bg::config::RedactDatabaseUrl(got.database.session.url);
  if (expected != got) {
    std::fprintf(stderr,
                 "DescribeForLog round trip changed a value:\n---\n%s\n",
                 described.c_str());
    std::abort();
  }
  return 0;
}
