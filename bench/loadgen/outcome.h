// Outcome of one billing-loadgen call, and the pure rules that classify raw
// gRPC and HTTP answers into outcome kinds.
//
// Kinds (the load-test report's "failed" column, split by cause):
//   ok        the account exists (gRPC OK; HTTP 201 for the create and, when
//   asked, the tag); rejected  an explicit "not now": gRPC RESOURCE_EXHAUSTED /
//   UNAVAILABLE carrying the
//             `billing-gateway-reject-reason` trailer, or HTTP 429 / 503;
//   timeout   the call ran out of its deadline (gRPC DEADLINE_EXCEEDED, HTTP
//   client timeout); error     anything else, detailed by code (`UNAVAILABLE`,
//   `http_500`, `http_connection`); not_sent  an open-loop arrival that could
//   not be sent because --max-outstanding calls
//             were already in flight (counted as a failure: the user was not
//             served).
//
// Thread-safety: plain values and stateless functions.
#pragma once

#include <grpcpp/support/status_code_enum.h>

#include <chrono>
#include <optional>
#include <string>

#include "absl/strings/string_view.h"

namespace bg::loadgen {

enum class OutcomeKind { kOk = 0, kRejected, kTimeout, kError, kNotSent };
inline constexpr int kOutcomeKindCount = 5;

// Lower-case name used in every output format: ok, rejected, timeout, error,
// not_sent.
absl::string_view OutcomeKindName(OutcomeKind kind);

struct CallResult {
  OutcomeKind kind = OutcomeKind::kError;
  // Reject reason for kRejected (e.g. `queue_full`, `http_429`), error code for
  // kError, empty otherwise.
  std::string detail;
  // How long the caller was asked to wait before its next call (gRPC trailer
  // `grpc-retry-pushback-ms`, HTTP `Retry-After`); zero when none was given.
  std::chrono::milliseconds pushback{0};
};

// Trailer names the gateway sets on rejections (see billing_gateway.proto).
inline constexpr absl::string_view kRejectReasonKey =
    "billing-gateway-reject-reason";
inline constexpr absl::string_view kRetryPushbackKey = "grpc-retry-pushback-ms";

// Classifies a finished gRPC call. `reject_reason` and `pushback_ms` are the
// raw trailer values when present.
CallResult ClassifyGrpc(grpc::StatusCode code,
                        std::optional<absl::string_view> reject_reason,
                        std::optional<absl::string_view> pushback_ms);

// Classifies a non-2xx HTTP status of the create or tag step. `retry_after` is
// the raw `Retry-After` header when present.
CallResult ClassifyHttpStatus(int status,
                              std::optional<absl::string_view> retry_after);

// Name of a gRPC status code as in the gRPC spec: `UNAVAILABLE`,
// `DEADLINE_EXCEEDED`, ...
std::string GrpcCodeName(grpc::StatusCode code);

// Parses `grpc-retry-pushback-ms`: a non-negative decimal integer of
// milliseconds. Negative or malformed values mean "no pushback" (gRPC's own
// retry code treats a negative value as "do not retry"; a load generator then
// just continues).
std::optional<std::chrono::milliseconds> ParsePushbackMs(
    absl::string_view value);

// Parses `Retry-After` in its delta-seconds form (fractions accepted). The
// HTTP-date form is not supported and yields nullopt.
std::optional<std::chrono::milliseconds> ParseRetryAfter(
    absl::string_view value);

// Parses a duration flag: a plain number means seconds (`30`, `0.5`); otherwise
// an Abseil duration (`30s`, `500ms`, `2m`). Negative durations are refused.
std::optional<std::chrono::nanoseconds> ParseDurationFlag(
    absl::string_view text);

}  // namespace bg::loadgen
