// Logging of billing-gateway: spdlog's default logger on stderr in the format
// `logging.format` names, the request id of the call a line belongs to, and a
// gRPC interceptor that writes one line per call at debug level.
//
//   text (default)  [2026-11-30 05:12:00.123] [billing-gateway] [info] message
//                   (per-call lines end with " request_id=ID" when known)
//   json            {"time":"2026-11-30T05:12:00.123456Z","level":"info",
//                    "logger":"billing-gateway","message":"...",
//                    "request_id":"ID"}  one object per line; request_id only
//                    when known. Invalid UTF-8 is replaced, never thrown on.
//
// The request id is the caller's `x-request-id` gRPC metadata (at most 128
// bytes kept, control characters replaced by '?'). It is known to the lines
// logged on the thread that holds a ScopedRequestId: the per-call line of
// RequestLogInterceptor. Work done for a call on other threads (dispatcher,
// health monitor) is not tagged.
//
// Thread-safety: Configure may be called at any time from any thread (a
// reload) while others log; spdlog's loggers are thread-safe. ScopedRequestId
// is per thread.
#pragma once

#include <memory>
#include <string>
#include <string_view>

#include "config/gateway_config.h"
#include "spdlog/formatter.h"

namespace grpc::experimental {
class ServerInterceptorFactoryInterface;
}

namespace bg::logging {

inline constexpr std::string_view kRequestIdKey = "x-request-id";

// Makes the default logger ("billing-gateway", stderr) use `logging`'s level
// and format; creates it on the first call.
void Configure(const config::LoggingConfig& logging);

// The formatter for `format` (Configure uses it; tests format with it).
std::unique_ptr<spdlog::formatter> MakeFormatter(config::LogFormat format);

// The request id of the lines logged on this thread while it lives.
class ScopedRequestId {
 public:
  explicit ScopedRequestId(std::string_view request_id);
  ~ScopedRequestId();
  ScopedRequestId(const ScopedRequestId&) = delete;
  ScopedRequestId& operator=(const ScopedRequestId&) = delete;

 private:
  std::string previous_;
};
// This thread's request id; empty when none.
const std::string& CurrentRequestId();
// `raw` as kept: at most 128 bytes, control characters replaced by '?'.
std::string SanitizeRequestId(std::string_view raw);

// One debug line per gRPC call: method, status code, time from the first
// metadata to the status, tagged with the call's request id. Costs nothing
// beyond a clock read per call unless debug is enabled.
std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface>
RequestLogInterceptorFactory();

}  // namespace bg::logging
