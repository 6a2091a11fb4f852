// MetricsPage: one scrape of the gateway's Prometheus text page, for tests
// that read its series.
#pragma once

#include <map>
#include <string>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_split.h"

namespace bg::testing {

// One scrape of the gateway's Prometheus page.
class MetricsPage {
 public:
  explicit MetricsPage(const std::string& text) {
    for (absl::string_view line : absl::StrSplit(text, '\n')) {
      if (line.empty() || line[0] == '#') continue;
      const size_t space = line.rfind(' ');
      if (space == absl::string_view::npos) continue;
      Sample s;
      absl::string_view head = line.substr(0, space);
      if (!absl::SimpleAtod(line.substr(space + 1), &s.value)) continue;
      const size_t brace = head.find('{');
      s.name = std::string(head.substr(0, brace));
      if (brace != absl::string_view::npos) {
        absl::string_view labels =
            head.substr(brace + 1, head.size() - brace - 2);
        for (absl::string_view kv :
             absl::StrSplit(labels, ',', absl::SkipEmpty())) {
          const size_t eq = kv.find('=');
          if (eq == absl::string_view::npos) continue;
          absl::string_view v = kv.substr(eq + 1);
          if (v.size() >= 2) v = v.substr(1, v.size() - 2);  // strip quotes
          s.labels[std::string(kv.substr(0, eq))] = std::string(v);
        }
      }
      samples_.push_back(std::move(s));
    }
  }
  // Sum of the samples named `name` whose labels include all of `match`.
  double Sum(const std::string& name,
             const std::map<std::string, std::string>& match = {}) const {
    double total = 0;
    for (const Sample& s : samples_) {
      if (s.name != name) continue;
      bool ok = true;
      for (const auto& [k, v] : match) {
        auto it = s.labels.find(k);
        if (it == s.labels.end() || it->second != v) ok = false;
      }
      if (ok) total += s.value;
    }
    return total;
  }

 private:
  struct Sample {
    std::string name;
    std::map<std::string, std::string> labels;
    double value = 0;
  };
  std::vector<Sample> samples_;
};

}  // namespace bg::testing
