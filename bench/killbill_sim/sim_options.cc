#include "bench/killbill_sim/sim_options.h"

#include <fstream>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "bench/killbill_sim/sim_options_json.h"
#include "nlohmann/json.hpp"
#include "yaml-cpp/yaml.h"

namespace bg::sim {
namespace {

using Json = nlohmann::json;

// YAML scalars carry no type: booleans, integers and floats are recognised by
// trying, except in the value of a text setting (`text_setting`).
Json YamlToJson(const YAML::Node& node, bool text_setting = false) {
  switch (node.Type()) {
    case YAML::NodeType::Map: {
      Json out = Json::object();
      for (const auto& kv : node) {
        const std::string key = kv.first.as<std::string>();
        out[key] = YamlToJson(kv.second, IsTextSetting(key));
      }
      return out;
    }
    case YAML::NodeType::Sequence: {
      Json out = Json::array();
      for (const auto& item : node) out.push_back(YamlToJson(item));
      return out;
    }
    case YAML::NodeType::Scalar: {
      const std::string text = node.Scalar();
      if (text_setting || node.Tag() == "!") return text;  // text or quoted
      bool b;
      if (YAML::convert<bool>::decode(node, b)) return b;
      int64_t i;
      if (YAML::convert<int64_t>::decode(node, i)) return i;
      double d;
      if (YAML::convert<double>::decode(node, d)) return d;
      return text;
    }
    default:
      return nullptr;
  }
}

}  // namespace

const char* MetricsModeName(MetricsMode mode) {
  switch (mode) {
    case MetricsMode::kOn:
      return "on";
    case MetricsMode::kAbsent:
      return "absent";
    case MetricsMode::kEmpty:
      return "empty";
  }
  return nullptr;
}

std::optional<MetricsMode> MetricsModeFromName(std::string_view name) {
  for (MetricsMode mode :
       {MetricsMode::kOn, MetricsMode::kAbsent, MetricsMode::kEmpty}) {
    if (name == MetricsModeName(mode)) return mode;
  }
  return std::nullopt;
}

absl::Status Validate(const SimOptions& o) {
  if (o.port < 0 || o.port > 65535)
    return absl::InvalidArgumentError("port out of range");
  if (!(o.model.capacity > 0))
    return absl::InvalidArgumentError("capacity must be > 0");
  if (!(o.model.bus_drain >= 0))
    return absl::InvalidArgumentError("bus_drain must be >= 0");
  if (o.model.base_latency < Clock::Duration::zero()) {
    return absl::InvalidArgumentError("base_latency_ms must be >= 0");
  }
  if (!(o.model.read_cost >= 0))
    return absl::InvalidArgumentError("read_cost must be >= 0");
  if (!(o.model.tag_cost >= 0))
    return absl::InvalidArgumentError("tag_cost must be >= 0");
  if (o.bus_events_per_tag < 0)
    return absl::InvalidArgumentError("bus_events_per_tag must be >= 0");
  if (!(o.model.degrade_floor > 0 && o.model.degrade_floor <= 1)) {
    return absl::InvalidArgumentError("degrade_floor must be in (0, 1]");
  }
  if (!(o.model.degrade_per_entry >= 0) || !(o.model.degrade_threshold >= 0)) {
    return absl::InvalidArgumentError(
        "degrade_threshold/per_entry must be >= 0");
  }
  if (MetricsModeName(o.metrics) == nullptr) {
    return absl::InvalidArgumentError(
        "metrics must be \"on\", \"absent\" or \"empty\"");
  }
  if (o.growth.window < 2)
    return absl::InvalidArgumentError("healthcheck_window must be >= 2");
  if (!(o.growth.alpha > 0 && o.growth.alpha <= 1)) {
    return absl::InvalidArgumentError("smoothing_alpha must be in (0, 1]");
  }
  if (o.probes.period <= Clock::Duration::zero())
    return absl::InvalidArgumentError("probe_period_s must be > 0");
  if (o.probes.failure_threshold < 1)
    return absl::InvalidArgumentError("probe_failure_threshold must be >= 1");
  if (o.probes.initial_delay < Clock::Duration::zero())
    return absl::InvalidArgumentError("probe_initial_delay_s must be >= 0");
  if (o.probes.timeout <= Clock::Duration::zero())
    return absl::InvalidArgumentError("probe_timeout_s must be > 0");
  if (o.probes.restart_time < Clock::Duration::zero())
    return absl::InvalidArgumentError("probe_restart_s must be >= 0");
  if (o.control_port < -1 || o.control_port > 65535)
    return absl::InvalidArgumentError("control_port must be -1 or 0-65535");
  if (o.max_threads < 1 || o.max_connections < 1 || o.accept_count < 0 ||
      o.keep_alive_max_requests < 1 || o.keep_alive_timeout.count() < 0) {
    return absl::InvalidArgumentError("thread/connection limits out of range");
  }
  return absl::OkStatus();
}

absl::Status ApplyYaml(const std::string& yaml_text, SimOptions* options) {
  Json settings;
  try {
    YAML::Node root = YAML::Load(yaml_text);
    if (root.IsNull()) return absl::OkStatus();  // empty file: defaults
    settings = YamlToJson(root);
  } catch (const YAML::Exception& e) {
    return absl::InvalidArgumentError(absl::StrCat("YAML: ", e.what()));
  }
  return ApplyJson(settings, options);
}

absl::Status LoadYamlFile(const std::string& path, SimOptions* options) {
  std::ifstream in(path);
  if (!in) return absl::NotFoundError(absl::StrCat("cannot read ", path));
  std::stringstream text;
  text << in.rdbuf();
  absl::Status status = ApplyYaml(text.str(), options);
  if (!status.ok())
    return absl::Status(status.code(),
                        absl::StrCat(path, ": ", status.message()));
  return status;
}

}  // namespace bg::sim
