#include "gateway/logging.h"

#include <grpcpp/grpcpp.h>
#include <grpcpp/support/server_interceptor.h>

#include <chrono>
#include <utility>

#include "absl/status/status.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "nlohmann/json.hpp"
#include "spdlog/pattern_formatter.h"
#include "spdlog/sinks/stdout_color_sinks.h"
#include "spdlog/spdlog.h"

namespace bg::logging {
namespace {

constexpr size_t kMaxRequestIdBytes = 128;

thread_local std::string current_request_id;

std::string_view View(spdlog::string_view_t s) { return {s.data(), s.size()}; }

spdlog::level::level_enum ToSpdlog(config::LogLevel level) {
  switch (level) {
    case config::LogLevel::kTrace:
      return spdlog::level::trace;
    case config::LogLevel::kDebug:
      return spdlog::level::debug;
    case config::LogLevel::kInfo:
      return spdlog::level::info;
    case config::LogLevel::kWarn:
      return spdlog::level::warn;
    case config::LogLevel::kError:
      return spdlog::level::err;
  }
  return spdlog::level::info;
}

// {"time", "level", "logger", "message"[, "request_id"]} per line.
class JsonFormatter final : public spdlog::formatter {
 public:
  void format(const spdlog::details::log_msg& msg,
              spdlog::memory_buf_t& dest) override {
    nlohmann::ordered_json line;
    line["time"] =
        absl::FormatTime("%Y-%m-%dT%H:%M:%E6SZ", absl::FromChrono(msg.time),
                         absl::UTCTimeZone());
    line["level"] = std::string(View(spdlog::level::to_string_view(msg.level)));
    line["logger"] = std::string(View(msg.logger_name));
    line["message"] = std::string(View(msg.payload));
    if (!current_request_id.empty()) line["request_id"] = current_request_id;
    const std::string text = line.dump(
        -1, ' ', false, nlohmann::ordered_json::error_handler_t::replace);
    dest.append(text.data(), text.data() + text.size());
    dest.push_back('\n');
  }
  std::unique_ptr<spdlog::formatter> clone() const override {
    return std::make_unique<JsonFormatter>();
  }
};

// %* in the text pattern: " request_id=ID" when known.
class RequestIdFlag final : public spdlog::custom_flag_formatter {
 public:
  void format(const spdlog::details::log_msg&, const std::tm&,
              spdlog::memory_buf_t& dest) override {
    if (current_request_id.empty()) return;
    constexpr std::string_view kKey = " request_id=";
    dest.append(kKey.data(), kKey.data() + kKey.size());
    dest.append(current_request_id.data(),
                current_request_id.data() + current_request_id.size());
  }
  std::unique_ptr<custom_flag_formatter> clone() const override {
    return std::make_unique<RequestIdFlag>();
  }
};

class RequestLogInterceptor final : public grpc::experimental::Interceptor {
 public:
  explicit RequestLogInterceptor(const char* method)
      : method_(method), start_(std::chrono::steady_clock::now()) {}

  void Intercept(
      grpc::experimental::InterceptorBatchMethods* methods) override {
    using grpc::experimental::InterceptionHookPoints;
    if (methods->QueryInterceptionHookPoint(
            InterceptionHookPoints::POST_RECV_INITIAL_METADATA)) {
      auto* metadata = methods->GetRecvInitialMetadata();
      auto it = metadata->find(
          grpc::string_ref(kRequestIdKey.data(), kRequestIdKey.size()));
      if (it != metadata->end()) {
        request_id_ = SanitizeRequestId({it->second.data(), it->second.size()});
      }
    }
    if (methods->QueryInterceptionHookPoint(
            InterceptionHookPoints::PRE_SEND_STATUS) &&
        spdlog::should_log(spdlog::level::debug)) {
      const grpc::Status status = methods->GetSendStatus();
      const double ms = std::chrono::duration<double, std::milli>(
                            std::chrono::steady_clock::now() - start_)
                            .count();
      ScopedRequestId scope(request_id_);
      spdlog::debug("{} {} in {:.1f} ms", method_,
                    absl::StatusCodeToString(
                        static_cast<absl::StatusCode>(status.error_code())),
                    ms);
    }
    methods->Proceed();
  }

 private:
  const std::string method_;
  const std::chrono::steady_clock::time_point start_;
  std::string request_id_;
};

class RequestLogFactory final
    : public grpc::experimental::ServerInterceptorFactoryInterface {
 public:
  grpc::experimental::Interceptor* CreateServerInterceptor(
      grpc::experimental::ServerRpcInfo* info) override {
    return new RequestLogInterceptor(info->method());
  }
};

}  // namespace

std::unique_ptr<spdlog::formatter> MakeFormatter(config::LogFormat format) {
  if (format == config::LogFormat::kJson) {
    return std::make_unique<JsonFormatter>();
  }
  auto text = std::make_unique<spdlog::pattern_formatter>();
  text->add_flag<RequestIdFlag>('*').set_pattern(
      "[%Y-%m-%d %H:%M:%S.%e] [%n] [%^%l%$] %v%*");
  return text;
}

void Configure(const config::LoggingConfig& logging) {
  static constexpr char kName[] = "billing-gateway";
  if (spdlog::get(kName) == nullptr) {
    spdlog::set_default_logger(spdlog::stderr_color_mt(kName));
  }
  spdlog::set_formatter(MakeFormatter(logging.format));
  spdlog::set_level(ToSpdlog(logging.level));
}

ScopedRequestId::ScopedRequestId(std::string_view request_id)
    : previous_(std::exchange(current_request_id, std::string(request_id))) {}

ScopedRequestId::~ScopedRequestId() {
  current_request_id = std::move(previous_);
}

const std::string& CurrentRequestId() { return current_request_id; }

std::string SanitizeRequestId(std::string_view raw) {
  std::string id(raw.substr(0, kMaxRequestIdBytes));
  for (char& c : id) {
    const auto u = static_cast<unsigned char>(c);
    if (u < 0x20 || u == 0x7f) c = '?';
  }
  return id;
}

std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface>
RequestLogInterceptorFactory() {
  return std::make_unique<RequestLogFactory>();
}

}  // namespace bg::logging
