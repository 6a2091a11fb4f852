#include "bench/killbill_sim/killbill_sim.h"

#include <algorithm>
#include <chrono>
#include <cstdio>

#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "bench/killbill_sim/sim_http_server.h"

namespace bg::sim {
namespace {

using Json = nlohmann::json;
using OJson = nlohmann::ordered_json;

constexpr char kJson[] = "application/json";
constexpr char kAccountApiException[] =
    "org.killbill.billing.account.api.AccountApiException";
constexpr char kIllegalArgument[] = "java.lang.IllegalArgumentException";
constexpr char kQueuesCheck[] =
    "org.killbill.billing.server.healthchecks.KillbillQueuesHealthcheck";
// Longest a waiting thread sleeps before re-reading the model: bounds the error
// of completion estimates made stale by capacity changes (degradation,
// /sim/config).
constexpr auto kMaxWait = std::chrono::milliseconds(20);

// Kill Bill's error body; nulls are written out.
std::string ErrorBody(const std::string& class_name, const Json& code,
                      const std::string& message) {
  OJson body;
  body["className"] = class_name;
  body["code"] = code;
  body["message"] = message;
  body["causeClassName"] = nullptr;
  body["causeMessage"] = nullptr;
  body["stackTrace"] = Json::array();
  return body.dump();
}

void SendError(httplib::Response& res, int status,
               const std::string& class_name, const Json& code,
               const std::string& message) {
  res.status = status;
  res.set_content(ErrorBody(class_name, code, message), kJson);
}

// The servlet container's HTML error page (Tomcat 9 layout).
void SendHtmlError(httplib::Response& res, int status,
                   const std::string& reason, const std::string& message) {
  res.status = status;
  res.set_content(
      absl::StrCat(
          "<!doctype html><html lang=\"en\"><head><title>HTTP Status ", status,
          " \xE2\x80\x93 ", reason, "</title></head><body><h1>HTTP Status ",
          status, " \xE2\x80\x93 ", reason,
          "</h1><hr class=\"line\" /><p><b>Type</b> Status Report</p><p><b>"
          "Message</b> ",
          message,
          "</p><hr class=\"line\" /><h3>Apache "
          "Tomcat/9.0.54</h3></body></html>"),
      "text/html;charset=utf-8");
}

// Every unhealthy result carries this, exception or not (a Kill Bill quirk).
OJson ThrowableQuirk(const char* check_class) {
  const std::string frame =
      absl::StrCat(check_class, ".check(", check_class, ".java)");
  OJson cause;
  cause["type"] = "java.lang.Throwable";
  cause["message"] = nullptr;
  cause["stack"] = Json::array({frame});
  OJson error;
  error["type"] = "java.lang.Throwable";
  error["message"] = "java.lang.Throwable";
  error["stack"] = Json::array({frame});
  error["cause"] = cause;
  return error;
}

// The kernel queue in front of our accept loop. The loop accepts at once, so
// this only absorbs bursts of simultaneous connects; Tomcat's accept_count is
// enforced by ConnectionWorkers.
int ListenBacklog(const SimOptions& options) {
  return std::max(1024, options.accept_count);
}

bool ParamIsTrue(const httplib::Request& req, const char* name) {
  return req.has_param(name) && req.get_param_value(name) == "true";
}

}  // namespace

KillBillSim::KillBillSim(const SimOptions& options, const Clock* clock)
    : clock_(clock),
      start_time_(clock->Now()),
      options_(options),
      model_(clock, options.model),
      bus_detector_(options.growth),
      external_bus_detector_(options.growth),
      fault_rng_(options.seed),
      id_rng_(std::random_device{}()) {
  SimHttpServer::Limits limits;
  limits.max_connections =
      static_cast<size_t>(std::max(1, options.max_connections));
  limits.accept_count = static_cast<size_t>(std::max(0, options.accept_count));
  limits.keep_alive_max_requests =
      static_cast<size_t>(std::max(1, options.keep_alive_max_requests));
  limits.keep_alive_timeout_ms = static_cast<int>(
      std::chrono::milliseconds(options.keep_alive_timeout).count());
  server_ = std::make_unique<SimHttpServer>(limits, [this] {
    connections_rejected_.fetch_add(1, std::memory_order_relaxed);
  });
  RegisterRoutes();
}

KillBillSim::~KillBillSim() { Stop(); }

absl::Status KillBillSim::Start() {
  SimOptions options;
  {
    absl::MutexLock lock(&mu_);
    if (started_) return absl::FailedPreconditionError("already started");
    options = options_;
  }
  absl::Status status = Validate(options);
  if (!status.ok()) return status;
  if (options.port == 0) {
    port_ = server_->bind_to_any_port(options.host);
  } else {
    port_ =
        server_->bind_to_port(options.host, options.port) ? options.port : -1;
  }
  if (port_ <= 0) {
    return absl::UnavailableError(
        absl::StrCat("cannot bind ", options.host, ":", options.port));
  }
  server_->SetListenBacklog(ListenBacklog(options));
  {
    absl::MutexLock lock(&mu_);
    started_ = true;
    listening_ = true;
    options_.port = port_;
  }
  listener_ = std::thread([this] { ListenLoop(); });
  return absl::OkStatus();
}

void KillBillSim::ListenLoop() {
  for (;;) {
    {
      absl::MutexLock lock(&mu_);
      // A refuse outage keeps the listener closed until it ends or is cleared.
      while (!stopping_ && outage_mode_ == "refuse" &&
             clock_->Now() < outage_until_) {
        listener_cv_.WaitWithTimeout(&mu_,
                                     absl::FromChrono(std::min<Clock::Duration>(
                                         outage_until_ - clock_->Now(),
                                         std::chrono::milliseconds(100))));
      }
      if (stopping_) break;
      if (outage_mode_ == "refuse") outage_mode_.clear();  // it has ended
    }
    // Start() bound the first time; after an outage (or a lost race with one)
    // the socket is closed and is bound again on the same port.
    if (!server_->IsBound()) {
      std::string host;
      {
        absl::MutexLock lock(&mu_);
        host = options_.host;
      }
      if (server_->bind_to_port(host, port_)) {
        absl::MutexLock lock(&mu_);
        server_->SetListenBacklog(ListenBacklog(options_));
      } else {
        absl::MutexLock lock(&mu_);
        listener_cv_.WaitWithTimeout(&mu_, absl::Milliseconds(100));
        continue;
      }
    }
    {
      // A fault or Stop() may have come between the check above and the bind.
      absl::MutexLock lock(&mu_);
      if (stopping_ || outage_mode_ == "refuse" || !server_->IsBound()) {
        server_->CloseListener();
        listening_ = false;
        continue;
      }
      listening_ = true;
      listener_cv_.SignalAll();
    }
    server_->listen_after_bind();  // returns once the listener is closed
  }
  server_->CloseListener();
}

bool KillBillSim::WaitForListener(absl::Duration timeout) {
  const absl::Time deadline = absl::Now() + timeout;
  absl::MutexLock lock(&mu_);
  while (!listening_ && !stopping_) {
    if (listener_cv_.WaitWithDeadline(&mu_, deadline)) break;
  }
  return listening_ && !stopping_;
}

void KillBillSim::Stop() {
  {
    absl::MutexLock lock(&mu_);
    if (stopping_) return;
    stopping_ = true;
    ++abort_epoch_;
    model_cv_.SignalAll();
    slot_cv_.SignalAll();
    listener_cv_.SignalAll();
  }
  server_->CloseListener();
  if (listener_.joinable()) listener_.join();
}

// ---------------------------------------------------------------------------------------
// Routing and the per-call envelope.

void KillBillSim::RegisterRoutes() {
  using httplib::Request;
  using httplib::Response;
  auto& s = *server_;
  s.Post("/1.0/kb/accounts", [this](const Request& req, Response& res) {
    Serve("POST /1.0/kb/accounts", req, res, true,
          [&] { CreateAccount(req, res); });
  });
  s.Get("/1.0/kb/accounts", [this](const Request& req, Response& res) {
    Serve("GET /1.0/kb/accounts", req, res, true,
          [&] { GetAccountByKey(req, res); });
  });
  s.Get(R"(/1.0/kb/accounts/([^/]+))",
        [this](const Request& req, Response& res) {
          Serve("GET /1.0/kb/accounts/{id}", req, res, true,
                [&] { GetAccount(req, res); });
        });
  s.Post(R"(/1.0/kb/accounts/([^/]+)/tags)",
         [this](const Request& req, Response& res) {
           Serve("POST /1.0/kb/accounts/{id}/tags", req, res, true,
                 [&] { AddTags(req, res); });
         });
  s.Get(R"(/1.0/kb/accounts/([^/]+)/tags)",
        [this](const Request& req, Response& res) {
          Serve("GET /1.0/kb/accounts/{id}/tags", req, res, true,
                [&] { GetTags(req, res); });
        });
  s.Get("/1.0/healthcheck", [this](const Request& req, Response& res) {
    Serve("GET /1.0/healthcheck", req, res, true,
          [&] { Healthcheck(req, res); });
  });
  s.Delete("/1.0/kb/admin/healthcheck",
           [this](const Request& req, Response& res) {
             Serve("DELETE /1.0/kb/admin/healthcheck", req, res, true,
                   [&] { SetRotation(false, req, res); });
           });
  s.Put("/1.0/kb/admin/healthcheck", [this](const Request& req, Response& res) {
    Serve("PUT /1.0/kb/admin/healthcheck", req, res, true,
          [&] { SetRotation(true, req, res); });
  });

  s.Get("/sim/stats", [this](const Request&, Response& res) {
    res.set_content(Stats().dump(), kJson);
  });
  auto control = [](Response& res, const std::string& body,
                    const std::function<absl::Status(const Json&)>& apply,
                    const std::function<OJson()>& render) {
    Json parsed;
    try {
      parsed = body.empty() ? Json::object() : Json::parse(body);
    } catch (const Json::exception& e) {
      res.status = 400;
      res.set_content(OJson{{"error", e.what()}}.dump(), kJson);
      return;
    }
    absl::Status status = apply(parsed);
    if (!status.ok()) {
      res.status = 400;
      res.set_content(OJson{{"error", std::string(status.message())}}.dump(),
                      kJson);
      return;
    }
    res.set_content(render().dump(), kJson);
  };
  s.Post("/sim/config", [this, control](const Request& req, Response& res) {
    control(
        res, req.body, [this](const Json& j) { return Configure(j); },
        [this] { return Stats()["settings"]; });
  });
  s.Post("/sim/faults", [this, control](const Request& req, Response& res) {
    control(
        res, req.body, [this](const Json& j) { return InjectFaults(j); },
        [this] { return Stats()["faults"]; });
  });

  // Anything else: counted, then Jersey's bare 404.
  auto not_found = [this](const Request& req, Response& res) {
    res.status = 404;
    CountRequest("other", "404");
  };
  s.Get(".*", not_found);
  s.Post(".*", not_found);
  s.Put(".*", not_found);
  s.Delete(".*", not_found);
}

void KillBillSim::CountRequest(const std::string& label,
                               const std::string& outcome) {
  absl::MutexLock lock(&mu_);
  ++requests_[label][outcome];
}

bool KillBillSim::StallOrAbort(uint64_t epoch) {
  // Called with mu_ held; returns false if the call must be abandoned.
  while (!stopping_ && abort_epoch_ == epoch && clock_->Now() < stall_until_) {
    model_cv_.WaitWithTimeout(&mu_, absl::FromChrono(std::min<Clock::Duration>(
                                        stall_until_ - clock_->Now(),
                                        std::chrono::milliseconds(100))));
  }
  return !stopping_ && abort_epoch_ == epoch;
}

void KillBillSim::Serve(const char* label, const httplib::Request& req,
                        httplib::Response& res, bool needs_thread,
                        const std::function<void()>& handler) {
  FaultAction action = FaultAction::kNone;
  bool reset = false;
  bool aborted = false;
  uint64_t epoch;
  {
    absl::MutexLock lock(&mu_);
    ++in_flight_;
    epoch = abort_epoch_;
    const auto now = clock_->Now();
    std::uniform_real_distribution<double> draw(0.0, 1.0);
    if (outage_mode_ == "503" && now < outage_until_) {
      action = FaultAction::kRespond503;
    } else if (!StallOrAbort(epoch)) {
      aborted = true;
    } else if (error_rate_ > 0 && draw(fault_rng_) < error_rate_) {
      action = FaultAction::kError500;
    } else if (garbage_rate_ > 0 && draw(fault_rng_) < garbage_rate_) {
      action = FaultAction::kGarbage;
    } else {
      reset = reset_rate_ > 0 && draw(fault_rng_) < reset_rate_;
      // Tomcat's maxThreads: wait FIFO-ish for a request thread.
      while (needs_thread && busy_threads_ >= options_.max_threads &&
             !stopping_ && abort_epoch_ == epoch) {
        slot_cv_.Wait(&mu_);
      }
      if (stopping_ || abort_epoch_ != epoch) {
        aborted = true;
      } else if (needs_thread) {
        ++busy_threads_;
      }
    }
  }

  std::string outcome;
  switch (action) {
    case FaultAction::kRespond503:
      res.status = 503;
      res.set_content("Service Unavailable", "text/plain");
      break;
    case FaultAction::kError500:
      SendError(res, 500, "java.lang.RuntimeException", nullptr,
                "killbill-sim injected error");
      break;
    case FaultAction::kGarbage:
      res.status = 200;
      res.set_content("}{ killbill-sim garbage \x01\x02 <html>", kJson);
      outcome = "garbage";
      break;
    case FaultAction::kNone:
      if (!aborted) {
        handler();
        absl::MutexLock lock(&mu_);
        if (needs_thread) --busy_threads_;
        slot_cv_.Signal();
        // The handler itself may have been aborted by an outage (RunJob set
        // reset).
        if (CurrentConnection() != nullptr && CurrentConnection()->reset)
          aborted = true;
      }
      break;
  }
  if (aborted || reset) {
    if (ConnectionContext* connection = CurrentConnection())
      connection->reset = true;
    outcome = aborted ? "aborted" : "reset";
  }
  if (outcome.empty()) outcome = std::to_string(res.status);
  absl::MutexLock lock(&mu_);
  --in_flight_;
  if (aborted) ++aborted_calls_;
  ++requests_[label][outcome];
}

void KillBillSim::SendAccountNotFound(httplib::Response& res,
                                      const std::string& id) {
  SendError(res, 404,
            "org.killbill.billing.callcontext.InternalCallContextFactory$"
            "ObjectDoesNotExist",
            nullptr,
            absl::StrCat("Object id=", id, " type=ACCOUNT doesn't exist!"));
}

bool KillBillSim::RunJob(Work work) {
  absl::MutexLock lock(&mu_);
  const uint64_t epoch = abort_epoch_;
  const double units = work == Work::kCreate ? 1.0
                       : work == Work::kTag  ? options_.model.tag_cost
                                             : options_.model.read_cost;
  const CapacityModel::JobId id = model_.Submit(units);
  while (!model_.IsDone(id)) {
    if (stopping_ || abort_epoch_ != epoch) {
      model_.Release(id);  // the server "died": its work is lost
      CurrentConnection()->reset = true;
      return false;
    }
    const Clock::Duration wait = std::clamp<Clock::Duration>(
        model_.EstimatedCompletion(id) - clock_->Now(), Clock::Duration::zero(),
        kMaxWait);
    if (wait > Clock::Duration::zero()) {
      model_cv_.WaitWithTimeout(&mu_, absl::FromChrono(wait));
    }
    if (model_.Advance() > 0) model_cv_.SignalAll();
  }
  model_.Release(id);
  return true;
}

bool KillBillSim::CheckAuth(const httplib::Request& req, httplib::Response& res,
                            bool tenant, bool created_by) {
  std::string user, password, api_key, api_secret;
  {
    absl::MutexLock lock(&mu_);
    user = options_.user;
    password = options_.password;
    api_key = options_.api_key;
    api_secret = options_.api_secret;
  }
  const std::string expected =
      "Basic " + absl::Base64Escape(user + ":" + password);
  const std::string got = req.get_header_value("Authorization");
  bool authorized = got == expected;
  if (!authorized && absl::StartsWithIgnoreCase(got, "basic ")) {
    std::string decoded;
    authorized = absl::Base64Unescape(got.substr(6), &decoded) &&
                 decoded == user + ":" + password;
  }
  if (!authorized) {
    res.set_header("WWW-Authenticate", "BASIC realm=\"application\"");
    SendHtmlError(res, 401, "Unauthorized",
                  "The request has not been applied because it lacks valid "
                  "authentication "
                  "credentials for the target resource.");
    return false;
  }
  if (tenant) {
    if (!req.has_header("X-Killbill-ApiKey") ||
        !req.has_header("X-Killbill-ApiSecret")) {
      SendHtmlError(res, 401, "Unauthorized",
                    "Make sure to set the X-Killbill-ApiKey and "
                    "X-Killbill-ApiSecret headers");
      return false;
    }
    if (req.get_header_value("X-Killbill-ApiKey") != api_key ||
        req.get_header_value("X-Killbill-ApiSecret") != api_secret) {
      SendHtmlError(res, 401, "Unauthorized",
                    absl::StrCat("Unable to find tenant for apiKey=",
                                 req.get_header_value("X-Killbill-ApiKey")));
      return false;
    }
  }
  if (created_by && !req.has_header("X-Killbill-CreatedBy")) {
    SendError(res, 400, kIllegalArgument, nullptr,
              "Header X-Killbill-CreatedBy needs to be set");
    return false;
  }
  return true;
}

std::string KillBillSim::NewUuid() {
  std::uniform_int_distribution<uint64_t> dist;
  uint64_t hi = dist(id_rng_), lo = dist(id_rng_);
  hi = (hi & 0xFFFFFFFFFFFF0FFFULL) | 0x0000000000004000ULL;  // version 4
  lo =
      (lo & 0x3FFFFFFFFFFFFFFFULL) | 0x8000000000000000ULL;  // RFC 4122 variant
  char buf[37];
  std::snprintf(buf, sizeof buf, "%08x-%04x-%04x-%04x-%012llx",
                static_cast<unsigned>(hi >> 32),
                static_cast<unsigned>((hi >> 16) & 0xFFFF),
                static_cast<unsigned>(hi & 0xFFFF),
                static_cast<unsigned>(lo >> 48),
                static_cast<unsigned long long>(lo & 0xFFFFFFFFFFFFULL));
  return buf;
}

std::string KillBillSim::Location(const httplib::Request& req,
                                  const std::string& path) const {
  bool full;
  {
    absl::MutexLock lock(&mu_);
    full = options_.location_full_url;
  }
  if (!full) return path;
  std::string host = req.get_header_value("Host");
  if (host.empty()) host = absl::StrCat(req.local_addr, ":", req.local_port);
  return absl::StrCat("http://", host, path);
}

// ---------------------------------------------------------------------------------------
// Kill Bill endpoints.

void KillBillSim::CreateAccount(const httplib::Request& req,
                                httplib::Response& res) {
  if (!CheckAuth(req, res, true, true)) return;
  if (req.body.empty()) {
    SendError(res, 400, kIllegalArgument, nullptr,
              "AccountJson body should be specified");
    return;
  }
  Json body;
  try {
    body = Json::parse(req.body);
  } catch (const Json::exception& e) {
    SendError(res, 400, "com.fasterxml.jackson.core.JsonParseException",
              nullptr, e.what());
    return;
  }
  if (!body.is_object()) {
    SendError(res, 400, kIllegalArgument, nullptr,
              "AccountJson body should be specified");
    return;
  }
  auto text_field = [&body](const char* name) -> std::string {
    auto it = body.find(name);
    return it != body.end() && it->is_string() ? it->get<std::string>()
                                               : std::string();
  };
  const std::string external_key_in = text_field("externalKey");
  if (external_key_in.size() > 255) {
    SendError(res, 400, kAccountApiException, 5,
              "External key exceeded 255 characters");
    return;
  }

  if (!RunJob(Work::kCreate)) return;

  std::string id;
  {
    absl::MutexLock lock(&mu_);
    id = text_field("accountId");
    if (id.empty() || accounts_.count(id) > 0) id = NewUuid();
    const std::string external_key =
        external_key_in.empty() ? id : external_key_in;
    if (id_by_key_.count(external_key) > 0) {
      ++conflicts_409_;
      SendError(res, 409, kAccountApiException, 3000,
                "Account already exists for key " + external_key);
      return;
    }
    Account account;
    OJson& a = account.json;
    auto copy = [&](const char* name, const Json& fallback) {
      auto it = body.find(name);
      a[name] = it != body.end() && !it->is_null() ? *it : fallback;
    };
    a["accountId"] = id;
    copy("name", nullptr);
    copy("firstNameLength", nullptr);
    a["externalKey"] = external_key;
    copy("email", nullptr);
    copy("billCycleDayLocal", 0);
    copy("currency", nullptr);
    copy("parentAccountId", nullptr);
    copy("isPaymentDelegatedToParent", false);
    copy("paymentMethodId", nullptr);
    copy("referenceTime", absl::FormatTime("%Y-%m-%dT%H:%M:%E3SZ", absl::Now(),
                                           absl::UTCTimeZone()));
    copy("timeZone", "UTC");
    for (const char* field :
         {"address1", "address2", "postalCode", "company", "city", "state",
          "country", "locale", "phone", "notes"}) {
      copy(field, nullptr);
    }
    copy("isMigrated", false);
    id_by_key_[external_key] = id;
    accounts_.emplace(id, std::move(account));
    ++accounts_created_;
    model_.Advance();
    model_.PostBusEvents(1);  // AccountCreationInternalEvent, same transaction
  }
  res.status = 201;
  res.set_header("Location", Location(req, "/1.0/kb/accounts/" + id));
}

OJson KillBillSim::RenderAccount(const Account& account,
                                 const httplib::Request& req) const {
  OJson out = account.json;
  const bool with_cba = ParamIsTrue(req, "accountWithBalanceAndCBA");
  const bool with_balance = with_cba || ParamIsTrue(req, "accountWithBalance");
  out["accountBalance"] = with_balance ? Json(0) : Json(nullptr);
  out["accountCBA"] = with_cba ? Json(0) : Json(nullptr);
  out["auditLogs"] = Json::array();
  return out;
}

void KillBillSim::GetAccountByKey(const httplib::Request& req,
                                  httplib::Response& res) {
  if (!CheckAuth(req, res, true, false)) return;
  const std::string key = req.get_param_value("externalKey");
  if (!RunJob(Work::kRead)) return;
  absl::MutexLock lock(&mu_);
  auto it = id_by_key_.find(key);
  if (it == id_by_key_.end()) {
    SendError(res, 404, kAccountApiException, 3003,
              "Account does not exist for key " + key);
    return;
  }
  res.status = 200;
  res.set_content(RenderAccount(accounts_.at(it->second), req).dump(), kJson);
}

void KillBillSim::GetAccount(const httplib::Request& req,
                             httplib::Response& res) {
  if (!CheckAuth(req, res, true, false)) return;
  const std::string id = req.matches[1];
  if (!RunJob(Work::kRead)) return;
  absl::MutexLock lock(&mu_);
  auto it = accounts_.find(id);
  if (it == accounts_.end()) {
    SendAccountNotFound(res, id);
    return;
  }
  res.status = 200;
  res.set_content(RenderAccount(it->second, req).dump(), kJson);
}

void KillBillSim::AddTags(const httplib::Request& req, httplib::Response& res) {
  if (!CheckAuth(req, res, true, true)) return;
  const std::string id = req.matches[1];
  Json body;
  try {
    body = req.body.empty() ? Json() : Json::parse(req.body);
  } catch (const Json::exception& e) {
    SendError(res, 400, "com.fasterxml.jackson.core.JsonParseException",
              nullptr, e.what());
    return;
  }
  std::vector<std::string> tag_ids;
  if (body.is_array()) {
    for (const auto& item : body) {
      if (item.is_string()) tag_ids.push_back(item.get<std::string>());
    }
  }
  if (tag_ids.empty()) {
    SendError(res, 400, kIllegalArgument, nullptr,
              "TagList body should be specified");
    return;
  }
  if (!RunJob(Work::kTag)) return;
  {
    absl::MutexLock lock(&mu_);
    auto it = accounts_.find(id);
    if (it == accounts_.end()) {
      SendAccountNotFound(res, id);
      return;
    }
    for (auto& tag : tag_ids) {
      auto& tags = it->second.tag_definition_ids;
      if (std::find(tags.begin(), tags.end(), tag) == tags.end())
        tags.push_back(tag);
    }
    ++tags_added_;
  }
  res.status = 201;
  res.set_header("Location", Location(req, "/1.0/kb/accounts/" + id + "/tags"));
}

void KillBillSim::GetTags(const httplib::Request& req, httplib::Response& res) {
  if (!CheckAuth(req, res, true, false)) return;
  const std::string id = req.matches[1];
  absl::MutexLock lock(&mu_);
  auto it = accounts_.find(id);
  if (it == accounts_.end()) {
    SendAccountNotFound(res, id);
    return;
  }
  OJson out = OJson::array();
  for (const auto& tag : it->second.tag_definition_ids) {
    OJson t;
    t["tagId"] = nullptr;
    t["objectType"] = "ACCOUNT";
    t["objectId"] = id;
    t["tagDefinitionId"] = tag;
    t["tagDefinitionName"] =
        tag == "00000000-0000-0000-0000-000000000001"   ? "AUTO_PAY_OFF"
        : tag == "00000000-0000-0000-0000-000000000004" ? "WRITTEN_OFF"
                                                        : nullptr;
    t["auditLogs"] = Json::array();
    out.push_back(t);
  }
  res.status = 200;
  res.set_content(out.dump(), kJson);
}

void KillBillSim::Healthcheck(const httplib::Request&, httplib::Response& res) {
  OJson body;
  bool healthy = true;
  {
    absl::MutexLock lock(&mu_);
    model_.Advance();
    const int64_t t_ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                             clock_->Now() - start_time_)
                             .count();
    // Every call is a sample, whoever makes it (Kill Bill 0.24).
    const auto bus =
        bus_detector_.Sample(t_ms, static_cast<double>(model_.BusBacklog()));
    const auto external = external_bus_detector_.Sample(t_ms, 0.0);

    OJson main;
    main["healthy"] = in_rotation_;
    main["message"] = in_rotation_ ? "OK" : "Out of rotation";
    if (!in_rotation_) {
      main["error"] = ThrowableQuirk(
          "org.killbill.billing.server.healthchecks.KillbillHealthcheck");
    }
    OJson plugins;
    plugins["healthy"] = true;

    std::vector<std::string> growing;
    const bool check_queues = options_.queue_healthcheck;
    if (check_queues && bus.growing) {
      growing.push_back("bus (" + killbill::JavaDoubleToString(bus.slope) +
                        ")");
    }
    if (check_queues && external.growing) {
      growing.push_back("externalBus (" +
                        killbill::JavaDoubleToString(external.slope) + ")");
    }
    OJson queues;
    queues["healthy"] = growing.empty();
    if (!growing.empty()) {
      queues["message"] = "Growing queues: " + absl::StrJoin(growing, ", ");
      queues["error"] = ThrowableQuirk(kQueuesCheck);
    }
    queues["bus"] = OJson{{"growing", check_queues && bus.growing}};
    queues["externalBus"] =
        OJson{{"growing", check_queues && external.growing}};

    body["org.killbill.billing.server.healthchecks.KillbillHealthcheck"] = main;
    body
        ["org.killbill.billing.server.healthchecks."
         "KillbillPluginsHealthcheck"] = plugins;
    body[kQueuesCheck] = queues;
    healthy = in_rotation_ && growing.empty();
    ++healthcheck_calls_;
    if (!healthy) ++healthcheck_unhealthy_;
    last_health_message_ =
        growing.empty() ? "" : queues["message"].get<std::string>();
  }
  res.status = healthy ? 200 : 500;
  res.set_header("Cache-Control", "must-revalidate,no-cache,no-store");
  res.set_content(body.dump(), kJson);
}

void KillBillSim::SetRotation(bool in_rotation, const httplib::Request& req,
                              httplib::Response& res) {
  // Admin calls need basic auth; they are not tenant-scoped.
  if (!CheckAuth(req, res, false, false)) return;
  {
    absl::MutexLock lock(&mu_);
    in_rotation_ = in_rotation;
  }
  res.status = 204;
}

// ---------------------------------------------------------------------------------------
// Control.

OJson KillBillSim::FaultsJson() const {
  const auto now = clock_->Now();
  auto remaining = [now](Clock::TimePoint until) {
    return until == Clock::TimePoint::max()
               ? -1.0
               : std::max(0.0, ToSeconds(until - now));
  };
  OJson f;
  const bool outage = !outage_mode_.empty() && now < outage_until_;
  f["outage"] = outage ? Json(outage_mode_) : Json(nullptr);
  f["outage_remaining_s"] = outage ? remaining(outage_until_) : 0.0;
  f["stall_remaining_s"] = now < stall_until_ ? remaining(stall_until_) : 0.0;
  f["error_rate"] = error_rate_;
  f["garbage_rate"] = garbage_rate_;
  f["reset_rate"] = reset_rate_;
  return f;
}

OJson KillBillSim::Stats() {
  absl::MutexLock lock(&mu_);
  model_.Advance();  // no healthcheck sample: observing must not disturb the
                     // signal
  OJson s;
  s["uptime_s"] = ToSeconds(clock_->Now() - start_time_);
  s["accounts_created"] = accounts_created_;
  s["accounts_total"] = accounts_.size();
  s["conflicts_409"] = conflicts_409_;
  s["tag_calls_ok"] = tags_added_;
  s["in_flight"] = in_flight_;
  s["busy_threads"] = busy_threads_;
  s["in_service"] = model_.InService();
  s["bus_backlog"] = model_.BusBacklog();
  s["bus_backlog_exact"] = model_.BusBacklogExact();
  s["bus_drained_total"] = model_.bus_drained_total();
  s["capacity_factor"] = model_.CapacityFactor();
  s["effective_capacity"] = options_.model.capacity * model_.CapacityFactor();
  s["healthcheck_calls"] = healthcheck_calls_;
  s["healthcheck_unhealthy_total"] = healthcheck_unhealthy_;
  s["healthcheck_last_message"] = last_health_message_;
  s["bus_slope_last"] = bus_detector_.last().slope;
  s["in_rotation"] = in_rotation_;
  s["connections_rejected"] =
      connections_rejected_.load(std::memory_order_relaxed);
  s["aborted_calls"] = aborted_calls_;
  OJson requests = OJson::object();
  for (const auto& [label, outcomes] : requests_) {
    OJson by_outcome = OJson::object();
    for (const auto& [outcome, count] : outcomes) by_outcome[outcome] = count;
    requests[label] = by_outcome;
  }
  s["requests"] = requests;
  s["settings"] = SimOptionsToJson(options_);
  s["faults"] = FaultsJson();
  return s;
}

absl::Status KillBillSim::Configure(const nlohmann::json& settings) {
  absl::MutexLock lock(&mu_);
  SimOptions candidate = options_;
  absl::Status status = ApplyJson(settings, &candidate);
  if (!status.ok()) return status;
  if (candidate.host != options_.host || candidate.port != options_.port ||
      candidate.max_connections != options_.max_connections ||
      candidate.accept_count != options_.accept_count ||
      candidate.keep_alive_max_requests != options_.keep_alive_max_requests ||
      candidate.keep_alive_timeout != options_.keep_alive_timeout) {
    return absl::InvalidArgumentError(
        "host, port and connection limits cannot change while running");
  }
  const auto& g0 = options_.growth;
  const auto& g1 = candidate.growth;
  if (g0.window != g1.window || g0.alpha != g1.alpha ||
      g0.growing_threshold != g1.growing_threshold) {
    bus_detector_ =
        killbill::QueueGrowthDetector(g1);  // a new regression from scratch
    external_bus_detector_ = killbill::QueueGrowthDetector(g1);
  }
  if (candidate.seed != options_.seed) fault_rng_.seed(candidate.seed);
  model_.set_options(candidate.model);
  options_ = candidate;
  model_cv_.SignalAll();  // completion estimates changed
  slot_cv_.SignalAll();   // max_threads may have grown
  return absl::OkStatus();
}

absl::Status KillBillSim::InjectFaults(const nlohmann::json& faults) {
  if (!faults.is_object())
    return absl::InvalidArgumentError("faults must be a JSON object");
  bool refuse_now = false;
  {
    absl::MutexLock lock(&mu_);
    const auto now = clock_->Now();
    try {
      // Validate everything before changing anything.
      const bool clear = faults.value("clear", false);
      std::string outage = faults.value("outage", std::string());
      const double outage_s = faults.value("outage_seconds", 0.0);
      const double stall_s = faults.value("stall_seconds", 0.0);
      auto rate = [&faults](const char* name, double current) {
        const double r = faults.value(name, current);
        if (!(r >= 0 && r <= 1))
          throw std::invalid_argument(std::string(name) + " not in [0,1]");
        return r;
      };
      for (const auto& [key, value] : faults.items()) {
        static const char* kKnown[] = {
            "clear",      "outage",       "outage_seconds", "stall_seconds",
            "error_rate", "garbage_rate", "reset_rate"};
        if (std::find_if(std::begin(kKnown), std::end(kKnown),
                         [&key = key](const char* k) { return key == k; }) ==
            std::end(kKnown)) {
          return absl::InvalidArgumentError("unknown fault '" + key + "'");
        }
      }
      if (!outage.empty() && outage != "refuse" && outage != "503") {
        return absl::InvalidArgumentError(
            "outage must be \"refuse\" or \"503\"");
      }
      if (outage == "refuse" && !(outage_s > 0)) {
        return absl::InvalidArgumentError(
            "outage \"refuse\" needs outage_seconds > 0 (/sim/ is unreachable "
            "meanwhile)");
      }
      if (outage_s < 0 || stall_s < 0) {
        return absl::InvalidArgumentError("durations must be >= 0");
      }
      const double error_rate = rate("error_rate", clear ? 0 : error_rate_);
      const double garbage_rate =
          rate("garbage_rate", clear ? 0 : garbage_rate_);
      const double reset_rate = rate("reset_rate", clear ? 0 : reset_rate_);

      if (clear) {
        outage_mode_.clear();
        stall_until_ = Clock::TimePoint();
      }
      error_rate_ = error_rate;
      garbage_rate_ = garbage_rate;
      reset_rate_ = reset_rate;
      if (stall_s > 0) stall_until_ = now + FromSeconds(stall_s);
      if (!outage.empty()) {
        outage_mode_ = outage;
        outage_until_ = outage_s > 0 ? now + FromSeconds(outage_s)
                                     : Clock::TimePoint::max();
        if (outage == "refuse") {
          refuse_now = true;
          ++abort_epoch_;  // in-flight calls die with the server
        }
      }
    } catch (const std::exception& e) {  // nlohmann type errors, bad rates
      return absl::InvalidArgumentError(e.what());
    }
    model_cv_.SignalAll();
    slot_cv_.SignalAll();
    listener_cv_.SignalAll();
  }
  if (refuse_now) {
    server_->CloseListener();
    absl::MutexLock lock(&mu_);
    listening_ = false;
  }
  return absl::OkStatus();
}

void KillBillSim::ClearFaults() {
  absl::Status status = InjectFaults(Json{{"clear", true}});
  (void)status;  // clearing cannot fail
}

}  // namespace bg::sim
