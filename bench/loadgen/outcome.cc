#include "bench/loadgen/outcome.h"

#include <cmath>
#include <cstdlib>
#include <string>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/time/time.h"

namespace bg::loadgen {

absl::string_view OutcomeKindName(OutcomeKind kind) {
  switch (kind) {
    case OutcomeKind::kOk:
      return "ok";
    case OutcomeKind::kRejected:
      return "rejected";
    case OutcomeKind::kTimeout:
      return "timeout";
    case OutcomeKind::kError:
      return "error";
    case OutcomeKind::kNotSent:
      return "not_sent";
  }
  return "error";
}

std::string GrpcCodeName(grpc::StatusCode code) {
  switch (code) {
    case grpc::StatusCode::OK:
      return "OK";
    case grpc::StatusCode::CANCELLED:
      return "CANCELLED";
    case grpc::StatusCode::UNKNOWN:
      return "UNKNOWN";
    case grpc::StatusCode::INVALID_ARGUMENT:
      return "INVALID_ARGUMENT";
    case grpc::StatusCode::DEADLINE_EXCEEDED:
      return "DEADLINE_EXCEEDED";
    case grpc::StatusCode::NOT_FOUND:
      return "NOT_FOUND";
    case grpc::StatusCode::ALREADY_EXISTS:
      return "ALREADY_EXISTS";
    case grpc::StatusCode::PERMISSION_DENIED:
      return "PERMISSION_DENIED";
    case grpc::StatusCode::RESOURCE_EXHAUSTED:
      return "RESOURCE_EXHAUSTED";
    case grpc::StatusCode::FAILED_PRECONDITION:
      return "FAILED_PRECONDITION";
    case grpc::StatusCode::ABORTED:
      return "ABORTED";
    case grpc::StatusCode::OUT_OF_RANGE:
      return "OUT_OF_RANGE";
    case grpc::StatusCode::UNIMPLEMENTED:
      return "UNIMPLEMENTED";
    case grpc::StatusCode::INTERNAL:
      return "INTERNAL";
    case grpc::StatusCode::UNAVAILABLE:
      return "UNAVAILABLE";
    case grpc::StatusCode::DATA_LOSS:
      return "DATA_LOSS";
    case grpc::StatusCode::UNAUTHENTICATED:
      return "UNAUTHENTICATED";
    default:
      return absl::StrCat("CODE_", static_cast<int>(code));
  }
}

std::optional<std::chrono::milliseconds> ParsePushbackMs(
    absl::string_view value) {
  int64_t ms = 0;
  if (!absl::SimpleAtoi(absl::StripAsciiWhitespace(value), &ms) || ms < 0) {
    return std::nullopt;
  }
  return std::chrono::milliseconds(ms);
}

std::optional<std::chrono::milliseconds> ParseRetryAfter(
    absl::string_view value) {
  double seconds = 0;
  if (!absl::SimpleAtod(absl::StripAsciiWhitespace(value), &seconds) ||
      !std::isfinite(seconds) || seconds < 0) {
    return std::nullopt;
  }
  return std::chrono::milliseconds(std::llround(seconds * 1000.0));
}

std::optional<std::chrono::nanoseconds> ParseDurationFlag(
    absl::string_view text) {
  text = absl::StripAsciiWhitespace(text);
  double seconds = 0;
  if (absl::SimpleAtod(text, &seconds)) {
    if (!std::isfinite(seconds) || seconds < 0) return std::nullopt;
    return std::chrono::nanoseconds(std::llround(seconds * 1e9));
  }
  absl::Duration d;
  if (!absl::ParseDuration(text, &d) || d < absl::ZeroDuration() ||
      d == absl::InfiniteDuration()) {
    return std::nullopt;
  }
  return absl::ToChronoNanoseconds(d);
}

CallResult ClassifyGrpc(grpc::StatusCode code,
                        std::optional<absl::string_view> reject_reason,
                        std::optional<absl::string_view> pushback_ms) {
  CallResult r;
  if (pushback_ms) {
    r.pushback =
        ParsePushbackMs(*pushback_ms).value_or(std::chrono::milliseconds(0));
  }
  switch (code) {
    case grpc::StatusCode::OK:
      r.kind = OutcomeKind::kOk;
      r.pushback = std::chrono::milliseconds(0);
      return r;
    case grpc::StatusCode::DEADLINE_EXCEEDED:
      r.kind = OutcomeKind::kTimeout;
      return r;
    case grpc::StatusCode::RESOURCE_EXHAUSTED:
    case grpc::StatusCode::UNAVAILABLE:
      if (reject_reason && !reject_reason->empty()) {
        r.kind = OutcomeKind::kRejected;
        r.detail = std::string(*reject_reason);
        return r;
      }
      break;
    default:
      break;
  }
  r.kind = OutcomeKind::kError;
  r.detail = GrpcCodeName(code);
  return r;
}

CallResult ClassifyHttpStatus(int status,
                              std::optional<absl::string_view> retry_after) {
  CallResult r;
  if (status >= 200 && status < 300) {
    r.kind = OutcomeKind::kOk;
    return r;
  }
  if (status == 429 || status == 503) {
    r.kind = OutcomeKind::kRejected;
    r.detail = absl::StrCat("http_", status);
    if (retry_after) {
      r.pushback =
          ParseRetryAfter(*retry_after).value_or(std::chrono::milliseconds(0));
    }
    return r;
  }
  // 504 from a proxy means its upstream timed out: the caller saw a
  // timeout-like failure but not its own deadline, so it stays an error with
  // its code.
  r.kind = OutcomeKind::kError;
  r.detail = absl::StrCat("http_", status);
  return r;
}

}  // namespace bg::loadgen
