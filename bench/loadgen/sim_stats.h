// Reading killbill-sim's GET /sim/stats: pull one number out of its JSON body.
//
// Thread-safety: a stateless function.
#pragma once

#include <optional>

#include "absl/strings/string_view.h"

namespace bg::loadgen {

// Returns the number at `dotted_path` (`bus_backlog`, or `queues.bus.backlog`
// for a nested field) in the JSON object `body`; nullopt when the body is not
// JSON, the path is missing or the value is not a number. Never throws.
std::optional<double> ExtractNumberField(absl::string_view body,
                                         absl::string_view dotted_path);

}  // namespace bg::loadgen
