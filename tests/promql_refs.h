// PromQL references for the ops tests: which series names, label matchers
// and grouping labels an expression uses (a tokenizer, not a full parser: it
// knows strings, ranges, matchers, functions, keywords and Grafana's $vars),
// the expressions of a Grafana dashboard and of a Prometheus rules file, and a
// Prometheus text page split into series with their labels.
//
// Plain functions and value types; thread-compatible.
#pragma once

#include <cctype>
#include <fstream>
#include <functional>
#include <map>
#include <regex>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "nlohmann/json.hpp"
#include "yaml-cpp/yaml.h"

namespace bg::testing {

struct LabelMatcher {
  std::string series;  // the selector's metric name
  std::string label;
  std::string op;  // = != =~ !~
  std::string value;
};

struct PromqlRefs {
  std::set<std::string> series;        // metric names selected
  std::vector<LabelMatcher> matchers;  // {label op "value"} per selector
  std::set<std::string> grouping;      // labels in by/without/on/ignoring
};

inline std::string ReadText(const std::string& path) {
  std::ifstream in(path);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

// The references in one PromQL expression.
inline PromqlRefs ParsePromql(const std::string& expr) {
  // Operators, and aggregations (whose `by (...)` may come before the
  // parenthesis).
  static const std::set<std::string> kKeywords = {
      "and",   "or",      "unless",   "bool",   "offset",
      "atan2", "inf",     "nan",      "sum",    "min",
      "max",   "avg",     "count",    "stddev", "stdvar",
      "topk",  "bottomk", "quantile", "group",  "count_values"};
  static const std::set<std::string> kGrouping = {
      "by", "without", "on", "ignoring", "group_left", "group_right"};
  PromqlRefs refs;
  const size_t n = expr.size();
  auto is_ident = [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == ':';
  };
  auto skip_space = [&](size_t i) {
    while (i < n && std::isspace(static_cast<unsigned char>(expr[i]))) ++i;
    return i;
  };
  auto read_string = [&](size_t& i) {  // expr[i] is the quote
    const char quote = expr[i++];
    std::string out;
    while (i < n && expr[i] != quote) {
      if (expr[i] == '\\' && i + 1 < n && quote != '`') ++i;
      out += expr[i++];
    }
    ++i;  // closing quote
    return out;
  };
  std::string last_series;  // a selector's name, for the matchers after it
  size_t i = 0;
  while (i < n) {
    const char c = expr[i];
    if (c == '"' || c == '\'' || c == '`') {
      read_string(i);
      last_series.clear();
    } else if (c == '[') {  // range or subquery: durations, $__rate_interval
      while (i < n && expr[i] != ']') ++i;
      ++i;
    } else if (c == '{') {  // label matchers of the selector just read
      ++i;
      for (;;) {
        i = skip_space(i);
        if (i >= n || expr[i] == '}') break;
        if (expr[i] == ',') {
          ++i;
          continue;
        }
        LabelMatcher m;
        m.series = last_series;
        while (i < n && is_ident(expr[i])) m.label += expr[i++];
        i = skip_space(i);
        while (i < n && std::string("=!~").find(expr[i]) != std::string::npos)
          m.op += expr[i++];
        i = skip_space(i);
        if (i < n && (expr[i] == '"' || expr[i] == '\'' || expr[i] == '`')) {
          m.value = read_string(i);
        }
        if (m.label.empty() || m.op.empty()) break;  // malformed: stop here
        refs.matchers.push_back(m);
      }
      ++i;
      last_series.clear();
    } else if (c == '$') {  // Grafana variable: $name or ${name}
      ++i;
      if (i < n && expr[i] == '{') {
        while (i < n && expr[i] != '}') ++i;
        ++i;
      } else {
        while (i < n && is_ident(expr[i])) ++i;
      }
    } else if (std::isdigit(static_cast<unsigned char>(c)) ||
               (c == '.' && i + 1 < n &&
                std::isdigit(static_cast<unsigned char>(expr[i + 1])))) {
      while (i < n && (std::isalnum(static_cast<unsigned char>(expr[i])) ||
                       expr[i] == '.' || expr[i] == '_')) {
        ++i;  // 0.99, 1e3, 5m
      }
      last_series.clear();
    } else if (is_ident(c)) {
      std::string word;
      while (i < n && is_ident(expr[i])) word += expr[i++];
      const size_t next = skip_space(i);
      const std::string lower = [&] {
        std::string l = word;
        for (char& ch : l) ch = std::tolower(static_cast<unsigned char>(ch));
        return l;
      }();
      if (kGrouping.count(lower) != 0) {
        last_series.clear();
        if (next < n && expr[next] == '(') {
          i = next + 1;
          std::string label;
          while (i < n && expr[i] != ')') {
            if (is_ident(expr[i])) {
              label += expr[i];
            } else if (!label.empty()) {
              refs.grouping.insert(label);
              label.clear();
            }
            ++i;
          }
          if (!label.empty()) refs.grouping.insert(label);
          ++i;
        }
      } else if (kKeywords.count(lower) != 0 ||
                 (next < n && expr[next] == '(')) {
        last_series.clear();  // keyword or function name
      } else {
        refs.series.insert(word);
        last_series = word;
      }
    } else {
      ++i;
      last_series.clear();
    }
  }
  return refs;
}

// Every PromQL expression of a Grafana dashboard: panel targets' `expr`
// (panels nested in rows included) and query variables'
// label_values(metric, label), returned as the metric alone.
inline std::vector<std::string> DashboardExpressions(
    const nlohmann::json& dashboard) {
  std::vector<std::string> out;
  std::function<void(const nlohmann::json&)> walk =
      [&](const nlohmann::json& node) {
        if (node.is_object()) {
          for (const auto& [key, value] : node.items()) {
            if (key == "expr" && value.is_string()) {
              out.push_back(value.get<std::string>());
            } else {
              walk(value);
            }
          }
        } else if (node.is_array()) {
          for (const auto& v : node) walk(v);
        }
      };
  walk(dashboard.value("panels", nlohmann::json::array()));
  static const std::regex kLabelValues(
      R"(label_values\(\s*([^,\s]+)\s*,\s*[A-Za-z_]+\s*\))");
  for (const auto& var : dashboard["templating"]["list"]) {
    if (var.value("type", "") != "query") continue;
    std::string q = var["query"].is_object() ? var["query"].value("query", "")
                                             : var["query"].get<std::string>();
    std::smatch m;
    if (std::regex_search(q, m, kLabelValues)) {
      out.push_back(m[1].str());
    } else {
      out.push_back(q);
    }
  }
  return out;
}

struct RulesFile {
  std::vector<std::string> expressions;
  std::set<std::string> recorded;  // `record:` names
  std::set<std::string> alerts;
};

inline RulesFile LoadRules(const std::string& path) {
  RulesFile rules;
  const YAML::Node root = YAML::LoadFile(path);
  for (const auto& group : root["groups"]) {
    for (const auto& rule : group["rules"]) {
      rules.expressions.push_back(rule["expr"].as<std::string>());
      if (rule["record"])
        rules.recorded.insert(rule["record"].as<std::string>());
      if (rule["alert"]) rules.alerts.insert(rule["alert"].as<std::string>());
    }
  }
  return rules;
}

// A Prometheus text page: series name -> the label sets of its samples.
using ExportedSeries =
    std::map<std::string, std::vector<std::map<std::string, std::string>>>;

inline ExportedSeries ParseExposition(const std::string& text) {
  ExportedSeries out;
  std::istringstream in(text);
  std::string line;
  static const std::regex kLabel(
      R"re(([A-Za-z_][A-Za-z0-9_]*)="((?:[^"\\]|\\.)*)")re");
  while (std::getline(in, line)) {
    if (line.empty() || line[0] == '#') continue;
    const size_t brace = line.find('{');
    const size_t space = line.find(' ');
    std::map<std::string, std::string> labels;
    std::string name;
    if (brace != std::string::npos && brace < space) {
      name = line.substr(0, brace);
      const size_t close = line.rfind('}');
      const std::string body = line.substr(brace + 1, close - brace - 1);
      for (std::sregex_iterator it(body.begin(), body.end(), kLabel), end;
           it != end; ++it) {
        labels[(*it)[1].str()] = (*it)[2].str();
      }
    } else {
      name = line.substr(0, space);
    }
    out[name].push_back(std::move(labels));
  }
  return out;
}

// What in `expr` does not exist on `page`: series names absent (names with a
// colon must be in `recorded`; `up` is Prometheus's own), equality and regex
// matchers no exported sample satisfies, and grouping labels none of the
// expression's exported series carries. job and instance (the scrape's target
// labels) and Grafana $variables are not checked. Empty = all found.
inline std::vector<std::string> MissingReferences(
    const std::string& expr, const ExportedSeries& page,
    const std::set<std::string>& recorded) {
  static const std::set<std::string> kTargetLabels = {"job", "instance"};
  std::vector<std::string> missing;
  const PromqlRefs refs = ParsePromql(expr);
  std::set<std::string> labels_seen = {"le"};
  bool only_exported = true;
  for (const std::string& name : refs.series) {
    if (name.find(':') != std::string::npos) {
      if (recorded.count(name) == 0)
        missing.push_back("recording rule " + name + " is not defined");
      only_exported = false;
      continue;
    }
    if (name == "up") {
      only_exported = false;
      continue;
    }
    auto it = page.find(name);
    if (it == page.end()) {
      missing.push_back("series " + name + " is not exported");
      continue;
    }
    for (const auto& sample : it->second) {
      for (const auto& [label, value] : sample) labels_seen.insert(label);
    }
  }
  for (const LabelMatcher& m : refs.matchers) {
    if (kTargetLabels.count(m.label) != 0 ||
        m.value.find('$') != std::string::npos) {
      continue;
    }
    auto it = page.find(m.series);
    if (it == page.end()) continue;  // reported above (or not exported here)
    bool found = false;
    for (const auto& sample : it->second) {
      auto label = sample.find(m.label);
      if (label == sample.end()) continue;
      if (m.op == "=") {
        found = found || label->second == m.value;
      } else if (m.op == "=~") {
        found = found || std::regex_match(label->second, std::regex(m.value));
      } else {
        found = true;  // != and !~: the label exists
      }
    }
    if (!found) {
      missing.push_back("no sample of " + m.series + " has " + m.label + m.op +
                        "\"" + m.value + "\"");
    }
  }
  if (only_exported) {
    for (const std::string& label : refs.grouping) {
      if (kTargetLabels.count(label) == 0 && labels_seen.count(label) == 0)
        missing.push_back("label " + label + " is on none of its series");
    }
  }
  return missing;
}

}  // namespace bg::testing
