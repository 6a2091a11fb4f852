#include "killbill_client/killbill_client.h"

#include <httplib.h>

#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "killbill_client/parse.h"
#include "nlohmann/json.hpp"

namespace bg::killbill {
namespace {

using Json = nlohmann::json;

std::string PercentEncode(absl::string_view s) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  for (unsigned char c : s) {
    if (std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~') {
      out.push_back(static_cast<char>(c));
    } else {
      out.push_back('%');
      out.push_back(kHex[c >> 4]);
      out.push_back(kHex[c & 15]);
    }
  }
  return out;
}

absl::Status WithCode(absl::Status status, const std::optional<ErrorBody>& error) {
  if (error && error->code) {
    status.SetPayload(kKillBillCodePayload, absl::Cord(std::to_string(*error->code)));
  }
  return status;
}

}  // namespace

absl::Status StatusFromResponse(int http_status, absl::string_view body, absl::string_view what) {
  std::optional<ErrorBody> error = ParseErrorBody(body);
  std::string detail = absl::StrCat("killbill: ", what, ": HTTP ", http_status);
  if (error) {
    if (error->code) absl::StrAppend(&detail, " code ", *error->code);
    if (!error->message.empty()) absl::StrAppend(&detail, ": ", error->message);
  }
  const std::optional<ErrorBody>& code = error;
  if (http_status == 409) return WithCode(absl::AlreadyExistsError(detail), code);
  if (http_status == 404) return WithCode(absl::NotFoundError(detail), code);
  if (http_status == 401) return WithCode(absl::UnauthenticatedError(detail), code);
  if (http_status == 403) return WithCode(absl::PermissionDeniedError(detail), code);
  if (http_status >= 500) return WithCode(absl::UnavailableError(detail), code);
  if (http_status >= 400) return WithCode(absl::InvalidArgumentError(detail), code);
  return absl::InternalError(absl::StrCat(detail, " (unexpected status)"));
}

absl::StatusOr<std::unique_ptr<KillBillClient>> KillBillClient::Create(ClientOptions options) {
  const std::string& url = options.url;
  const bool http = absl::StartsWith(url, "http://");
  const bool https = absl::StartsWith(url, "https://");
  const size_t host_start = http ? 7 : 8;
  if ((!http && !https) || url.size() <= host_start ||
      url.find('/', host_start) != std::string::npos ||
      url.find_first_of("?#@ ", host_start) != std::string::npos) {
    return absl::InvalidArgumentError(
        "killbill.url must be http://host[:port] or https://host[:port] without a path");
  }
  if (options.max_connections < 1) {
    return absl::InvalidArgumentError("killbill.max_connections must be at least 1");
  }
  std::string origin = url;
  return std::unique_ptr<KillBillClient>(new KillBillClient(std::move(options), origin));
}

KillBillClient::KillBillClient(ClientOptions options, std::string origin)
    : options_(std::move(options)), origin_(std::move(origin)) {}

KillBillClient::~KillBillClient() = default;

std::unique_ptr<httplib::Client> KillBillClient::NewConnection() const {
  auto conn = std::make_unique<httplib::Client>(options_.url);
  conn->set_keep_alive(true);
  // Without it each keep-alive exchange waits ~40 ms for Nagle + delayed ACK.
  conn->set_tcp_nodelay(true);
  conn->set_follow_location(false);
  conn->set_connection_timeout(options_.connect_timeout);
  conn->set_read_timeout(options_.request_timeout);
  conn->set_write_timeout(options_.request_timeout);
  if (!options_.ca_file.empty()) conn->set_ca_cert_path(options_.ca_file);
  conn->enable_server_certificate_verification(true);
  return conn;
}

std::unique_ptr<httplib::Client> KillBillClient::Acquire() {
  absl::MutexLock lock(&mu_);
  mu_.Await(absl::Condition(
      +[](KillBillClient* self) ABSL_EXCLUSIVE_LOCKS_REQUIRED(self->mu_) {
        return !self->idle_.empty() || self->open_ < self->options_.max_connections;
      },
      this));
  if (!idle_.empty()) {
    auto conn = std::move(idle_.back());
    idle_.pop_back();
    return conn;
  }
  ++open_;
  return nullptr;  // The caller opens a new connection outside the lock.
}

void KillBillClient::Release(std::unique_ptr<httplib::Client> conn) {
  absl::MutexLock lock(&mu_);
  if (conn) {
    idle_.push_back(std::move(conn));
  } else {
    --open_;
  }
}

absl::StatusOr<KillBillClient::Response> KillBillClient::Send(const std::string& method,
                                                              const std::string& path,
                                                              const std::string& body,
                                                              bool authenticated) {
  std::unique_ptr<httplib::Client> conn = Acquire();
  if (!conn) conn = NewConnection();

  httplib::Request req;
  req.method = method;
  req.path = path;
  req.headers.emplace("Accept", "application/json");
  if (authenticated) {
    req.headers.insert(
        httplib::make_basic_authentication_header(options_.username, options_.password));
    req.headers.emplace("X-Killbill-ApiKey", options_.api_key);
    req.headers.emplace("X-Killbill-ApiSecret", options_.api_secret);
  }
  if (method == "POST") {
    req.headers.emplace("X-Killbill-CreatedBy", options_.created_by);
    req.headers.emplace("Content-Type", "application/json");
    req.body = body;
  }
  Response out;
  bool too_large = false;
  req.content_receiver = [&](const char* data, size_t len, uint64_t, uint64_t) {
    if (out.body.size() + len > options_.max_response_bytes) {
      too_large = true;
      return false;
    }
    out.body.append(data, len);
    return true;
  };
  httplib::Response res;
  httplib::Error error = httplib::Error::Success;
  const bool sent = conn->send(req, res, error);
  if (!sent) {
    // A connection that failed mid-request is not reused: drop it and free its slot.
    conn.reset();
    Release(nullptr);
    if (too_large) {
      return absl::InternalError(absl::StrCat("killbill: ", method, " ", path,
                                              ": response larger than ",
                                              options_.max_response_bytes, " bytes"));
    }
    return absl::UnavailableError(absl::StrCat("killbill: ", method, " ", path, ": ",
                                               httplib::to_string(error)));
  }
  Release(std::move(conn));
  out.status = res.status;
  out.location = res.get_header_value("Location");
  return out;
}

absl::StatusOr<std::string> KillBillClient::CreateAccount(const NewAccount& account) {
  Json body = Json::object();
  for (auto [key, value] : {std::pair{"externalKey", &account.external_key},
                            {"name", &account.name},
                            {"email", &account.email},
                            {"currency", &account.currency},
                            {"company", &account.company},
                            {"notes", &account.notes}}) {
    if (!value->empty()) body[key] = *value;
  }
  auto res = Send("POST", "/1.0/kb/accounts", body.dump(), true);
  if (!res.ok()) return res.status();
  if (res->status != 201) return StatusFromResponse(res->status, res->body, "create account");
  return AccountIdFromLocation(res->location, origin_);
}

absl::StatusOr<Account> KillBillClient::GetAccountByKey(const std::string& external_key) {
  auto res = Send("GET", "/1.0/kb/accounts?externalKey=" + PercentEncode(external_key), "",
                  true);
  if (!res.ok()) return res.status();
  if (res->status != 200) return StatusFromResponse(res->status, res->body, "get account");
  return ParseAccount(res->body);
}

absl::StatusOr<Account> KillBillClient::GetAccountById(const std::string& account_id) {
  if (!IsUuid(account_id)) return absl::InvalidArgumentError("account_id is not a UUID");
  auto res = Send("GET", "/1.0/kb/accounts/" + account_id, "", true);
  if (!res.ok()) return res.status();
  if (res->status != 200) return StatusFromResponse(res->status, res->body, "get account");
  return ParseAccount(res->body);
}

absl::Status KillBillClient::AddTags(const std::string& account_id,
                                     const std::vector<std::string>& tag_ids) {
  if (!IsUuid(account_id)) return absl::InvalidArgumentError("account_id is not a UUID");
  auto res = Send("POST", "/1.0/kb/accounts/" + account_id + "/tags", Json(tag_ids).dump(),
                  true);
  if (!res.ok()) return res.status();
  if (res->status != 201) return StatusFromResponse(res->status, res->body, "add tags");
  return absl::OkStatus();
}

absl::StatusOr<HealthReport> KillBillClient::Healthcheck() {
  auto res = Send("GET", "/1.0/healthcheck", "", false);
  if (!res.ok()) return res.status();
  return ParseHealthReport(res->status, res->body);
}

}  // namespace bg::killbill
