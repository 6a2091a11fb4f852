// Fuzzes what the health monitor parses: GET /1.0/healthcheck
// (ParseHealthReport, fed to the breaker and the rate controller;
// ParseGrowingQueues on the message) and GET /1.0/metrics (ParseBusCounters,
// fed to the rate controller), on the same body.
//
// Input: one selector byte (HTTP status: 200, 500 or another status), then the
// body.
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <string>

#include "fuzz/fuzzed_input.h"
#include "killbill_client/parse.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  bg::fuzz::FuzzedInput in(data, size);
  const uint8_t selector = in.TakeByte();
  static constexpr int kStatuses[] = {200, 500, 200, 500, 503, 404, 0, 999};
  const int status = kStatuses[selector % 8];
  const std::string body(in.Rest());

  auto report = bg::killbill::ParseHealthReport(status, body);
  if (report.ok()) {
    // Invariants the health monitor relies on.
    if (report->http_status != status) std::abort();
    // parse.h: healthy = "every check healthy (HTTP 200)".
    if (report->healthy && report->out_of_rotation) std::abort();
    // A growth number reaches the rate controller's arithmetic: never NaN or
    // infinite.
    for (const auto& [queue, growth] : report->queue_growth) {
      if (!std::isfinite(growth)) std::abort();
    }
  }
  for (const auto& [queue, growth] : bg::killbill::ParseGrowingQueues(body)) {
    if (!std::isfinite(growth)) std::abort();
  }
  auto counters = bg::killbill::ParseBusCounters(body);
  // The controller subtracts and divides these: never negative.
  if (counters.ok() && (counters->posted < 0 || counters->dispatched < 0))
    std::abort();
  return 0;
}
