// The JSON side of SimOptions: POST /sim/config applies a JSON object of
// settings, GET /sim/stats renders them. The keys are the YAML keys of
// `--config` (sim_options.h reads YAML through these adapters). Exceptions of
// nlohmann::json stop here and become absl::Status.
//
// Thread-safety: free functions on values; no shared state.
#pragma once

#include <string>

#include "absl/status/status.h"
#include "bench/killbill_sim/sim_options.h"
#include "nlohmann/json.hpp"

namespace bg::sim {

// Applies a JSON object of settings (same keys, flat or nested); unknown keys
// are an error. On error *options is left unchanged.
absl::Status ApplyJson(const nlohmann::json& settings, SimOptions* options);

// True for the settings whose values are text (host, api_key, metrics, ...):
// the YAML reader keeps their scalars as written.
bool IsTextSetting(const std::string& key);

// Every setting but the secrets (api_secret, password), in a stable order.
nlohmann::ordered_json SimOptionsToJson(const SimOptions& options);

}  // namespace bg::sim
