#include "bench/killbill_sim/sim_options_json.h"

#include <functional>
#include <map>
#include <optional>
#include <set>
#include <stdexcept>
#include <string>

#include "absl/strings/str_cat.h"

namespace bg::sim {
namespace {

using Json = nlohmann::json;
using Setter = std::function<void(const Json&, SimOptions*)>;

// A duration setting in seconds: finite, 0 to 10^7 (the conversion to a
// Clock::Duration of anything larger would overflow). Range rules beyond that
// (e.g. a period > 0) are Validate()'s.
Clock::Duration Seconds(const Json& v) {
  const double s = v.get<double>();
  if (!(s >= 0 && s <= 1e7)) {
    throw std::invalid_argument(
        absl::StrCat("must be a number of seconds from 0 to 1e7, got ", s));
  }
  return FromSeconds(s);
}

// One row per setting: the JSON/YAML key and how it lands in SimOptions.
// nlohmann's get<T>() throws type_error on a wrong type, a setter
// std::invalid_argument on a value outside its set; ApplyJson catches both.
const std::map<std::string, Setter>& Setters() {
  static const auto* setters = new std::map<std::string, Setter>{
      {"host",
       [](const Json& v, SimOptions* o) { o->host = v.get<std::string>(); }},
      {"port", [](const Json& v, SimOptions* o) { o->port = v.get<int>(); }},
      {"api_key",
       [](const Json& v, SimOptions* o) { o->api_key = v.get<std::string>(); }},
      {"api_secret",
       [](const Json& v, SimOptions* o) {
         o->api_secret = v.get<std::string>();
       }},
      {"user",
       [](const Json& v, SimOptions* o) { o->user = v.get<std::string>(); }},
      {"password", [](const Json& v,
                      SimOptions* o) { o->password = v.get<std::string>(); }},
      {"location_full_url",
       [](const Json& v, SimOptions* o) {
         o->location_full_url = v.get<bool>();
       }},
      {"queue_healthcheck",
       [](const Json& v, SimOptions* o) {
         o->queue_healthcheck = v.get<bool>();
       }},
      {"healthcheck_window",
       [](const Json& v, SimOptions* o) { o->growth.window = v.get<int>(); }},
      {"smoothing_alpha",
       [](const Json& v, SimOptions* o) { o->growth.alpha = v.get<double>(); }},
      {"growing_threshold",
       [](const Json& v, SimOptions* o) {
         o->growth.growing_threshold = v.get<double>();
       }},
      {"capacity", [](const Json& v,
                      SimOptions* o) { o->model.capacity = v.get<double>(); }},
      {"bus_drain",
       [](const Json& v, SimOptions* o) {
         o->model.bus_drain = v.get<double>();
       }},
      {"base_latency_ms",
       [](const Json& v, SimOptions* o) {
         o->model.base_latency = FromSeconds(v.get<double>() / 1000.0);
       }},
      {"read_cost",
       [](const Json& v, SimOptions* o) {
         o->model.read_cost = v.get<double>();
       }},
      {"tag_cost", [](const Json& v,
                      SimOptions* o) { o->model.tag_cost = v.get<double>(); }},
      {"bus_events_per_tag",
       [](const Json& v, SimOptions* o) {
         o->bus_events_per_tag = v.get<int>();
       }},
      {"metrics",
       [](const Json& v, SimOptions* o) {
         const std::string name = v.get<std::string>();
         const std::optional<MetricsMode> mode = MetricsModeFromName(name);
         if (!mode) {
           throw std::invalid_argument(absl::StrCat(
               R"(must be "on", "absent" or "empty", got ")", name, "\""));
         }
         o->metrics = *mode;
       }},
      {"degrade",
       [](const Json& v, SimOptions* o) { o->model.degrade = v.get<bool>(); }},
      {"degrade_threshold",
       [](const Json& v, SimOptions* o) {
         o->model.degrade_threshold = v.get<double>();
       }},
      {"degrade_per_entry",
       [](const Json& v, SimOptions* o) {
         o->model.degrade_per_entry = v.get<double>();
       }},
      {"degrade_floor",
       [](const Json& v, SimOptions* o) {
         o->model.degrade_floor = v.get<double>();
       }},
      {"max_threads",
       [](const Json& v, SimOptions* o) { o->max_threads = v.get<int>(); }},
      {"max_connections",
       [](const Json& v, SimOptions* o) { o->max_connections = v.get<int>(); }},
      {"accept_count",
       [](const Json& v, SimOptions* o) { o->accept_count = v.get<int>(); }},
      {"keep_alive_max_requests",
       [](const Json& v, SimOptions* o) {
         o->keep_alive_max_requests = v.get<int>();
       }},
      {"keep_alive_timeout_s",
       [](const Json& v, SimOptions* o) {
         o->keep_alive_timeout = std::chrono::seconds(v.get<int>());
       }},
      {"seed",
       [](const Json& v, SimOptions* o) { o->seed = v.get<uint64_t>(); }},
      {"probes",
       [](const Json& v, SimOptions* o) { o->probes.enabled = v.get<bool>(); }},
      {"probe_period_s",
       [](const Json& v, SimOptions* o) { o->probes.period = Seconds(v); }},
      {"probe_failure_threshold",
       [](const Json& v, SimOptions* o) {
         o->probes.failure_threshold = v.get<int>();
       }},
      {"probe_initial_delay_s",
       [](const Json& v, SimOptions* o) {
         o->probes.initial_delay = Seconds(v);
       }},
      {"probe_timeout_s",
       [](const Json& v, SimOptions* o) { o->probes.timeout = Seconds(v); }},
      {"probe_restart_s",
       [](const Json& v, SimOptions* o) {
         o->probes.restart_time = Seconds(v);
       }},
      {"control_port",
       [](const Json& v, SimOptions* o) { o->control_port = v.get<int>(); }},
  };
  return *setters;
}

absl::Status ApplyJsonInto(const Json& settings, SimOptions* options) {
  if (!settings.is_object()) {
    return absl::InvalidArgumentError("settings must be a JSON/YAML object");
  }
  for (const auto& [key, value] : settings.items()) {
    if (value.is_object()) {  // nested sections ("model:", "growth:") flatten
      absl::Status status = ApplyJsonInto(value, options);
      if (!status.ok()) return status;
      continue;
    }
    auto it = Setters().find(key);
    if (it == Setters().end()) {
      return absl::InvalidArgumentError(
          absl::StrCat("unknown setting '", key, "'"));
    }
    try {
      it->second(value, options);
    } catch (const Json::exception& e) {
      return absl::InvalidArgumentError(
          absl::StrCat("setting '", key, "': ", e.what()));
    } catch (const std::invalid_argument& e) {
      return absl::InvalidArgumentError(
          absl::StrCat("setting '", key, "': ", e.what()));
    }
  }
  return absl::OkStatus();
}

}  // namespace

bool IsTextSetting(const std::string& key) {
  static const auto* text = new std::set<std::string>{
      "host", "api_key", "api_secret", "user", "password", "metrics"};
  return text->count(key) > 0;
}

absl::Status ApplyJson(const nlohmann::json& settings, SimOptions* options) {
  SimOptions candidate = *options;
  absl::Status status = ApplyJsonInto(settings, &candidate);
  if (status.ok()) status = Validate(candidate);
  if (status.ok()) *options = candidate;
  return status;
}

nlohmann::ordered_json SimOptionsToJson(const SimOptions& o) {
  nlohmann::ordered_json j;
  j["host"] = o.host;
  j["port"] = o.port;
  j["api_key"] = o.api_key;
  j["user"] = o.user;
  j["location_full_url"] = o.location_full_url;
  j["queue_healthcheck"] = o.queue_healthcheck;
  j["healthcheck_window"] = o.growth.window;
  j["smoothing_alpha"] = o.growth.alpha;
  j["growing_threshold"] = o.growth.growing_threshold;
  j["capacity"] = o.model.capacity;
  j["bus_drain"] = o.model.bus_drain;
  j["base_latency_ms"] = ToSeconds(o.model.base_latency) * 1000.0;
  j["read_cost"] = o.model.read_cost;
  j["tag_cost"] = o.model.tag_cost;
  j["bus_events_per_tag"] = o.bus_events_per_tag;
  j["metrics"] = MetricsModeName(o.metrics);
  j["degrade"] = o.model.degrade;
  j["degrade_threshold"] = o.model.degrade_threshold;
  j["degrade_per_entry"] = o.model.degrade_per_entry;
  j["degrade_floor"] = o.model.degrade_floor;
  j["max_threads"] = o.max_threads;
  j["max_connections"] = o.max_connections;
  j["accept_count"] = o.accept_count;
  j["keep_alive_max_requests"] = o.keep_alive_max_requests;
  j["keep_alive_timeout_s"] = o.keep_alive_timeout.count();
  j["seed"] = o.seed;
  j["probes"] = o.probes.enabled;
  j["probe_period_s"] = ToSeconds(o.probes.period);
  j["probe_failure_threshold"] = o.probes.failure_threshold;
  j["probe_initial_delay_s"] = ToSeconds(o.probes.initial_delay);
  j["probe_timeout_s"] = ToSeconds(o.probes.timeout);
  j["probe_restart_s"] = ToSeconds(o.probes.restart_time);
  j["control_port"] = o.control_port;
  return j;
}

}  // namespace bg::sim
