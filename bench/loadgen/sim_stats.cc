#include "bench/loadgen/sim_stats.h"

#include <string>

#include "absl/strings/str_split.h"
#include "nlohmann/json.hpp"

namespace bg::loadgen {

std::optional<double> ExtractNumberField(absl::string_view body,
                                         absl::string_view dotted_path) {
  const nlohmann::json doc =
      nlohmann::json::parse(body.begin(), body.end(), nullptr,
                            /*allow_exceptions=*/false);
  if (doc.is_discarded()) return std::nullopt;
  const nlohmann::json* node = &doc;
  for (absl::string_view part : absl::StrSplit(dotted_path, '.')) {
    if (!node->is_object()) return std::nullopt;
    auto it = node->find(std::string(part));
    if (it == node->end()) return std::nullopt;
    node = &*it;
  }
  if (!node->is_number()) return std::nullopt;
  return node->get<double>();
}

}  // namespace bg::loadgen
