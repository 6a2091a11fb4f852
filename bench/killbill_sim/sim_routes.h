// SimRoutes: killbill-sim's HTTP face. It registers every route on the
// server, parses requests, checks Kill Bill's authentication, and writes Kill
// Bill's JSON bodies, error bodies and servlet error pages; for /sim/ it
// reads and writes the control JSON. What a call does is asked of KillBillSim
// in typed terms (admit the call, run its work, store the account, sample the
// healthcheck), so no JSON goes past this class except an account's stored
// fields.
//
// Every /1.0/ call goes through one envelope: KillBillSim admits it (faults,
// stall, max_threads), the handler runs, the connection is reset if a fault
// or an outage says so, and the outcome is counted under the route's label.
// Unknown paths are counted as "other" and get Jersey's bare 404; so does
// GET /1.0/metrics when the `metrics` setting is "absent".
//
// Thread-safety: handlers run on many connection threads at once; this class
// has no state of its own besides the KillBillSim it serves, which is
// thread-safe.
#pragma once

#include <functional>
#include <string>

namespace httplib {
class Server;
struct Request;
struct Response;
}  // namespace httplib

namespace bg::sim {

class KillBillSim;

class SimRoutes {
 public:
  explicit SimRoutes(KillBillSim& sim) : sim_(sim) {}

  // Registers every route on `server`. Call once, before it listens.
  void Register(httplib::Server& server);
  // Registers the /sim/ routes only (Register() includes them): for the
  // control listener (SimOptions::control_port).
  void RegisterControl(httplib::Server& server);

 private:
  // The envelope of a /1.0/ call (see the file comment).
  void Serve(const char* label, const httplib::Request& req,
             httplib::Response& res, bool needs_thread,
             const std::function<void()>& handler);
  // Basic auth, then the tenant headers (`tenant`), then X-Killbill-CreatedBy
  // (`created_by`); on failure fills `res` as Kill Bill would and returns
  // false.
  bool CheckAuth(const httplib::Request& req, httplib::Response& res,
                 bool tenant, bool created_by);
  // A Location header value: absolute (http://Host/...) unless
  // location_full_url is off.
  std::string Location(const httplib::Request& req,
                       const std::string& path) const;

  void CreateAccount(const httplib::Request& req, httplib::Response& res);
  void GetAccountByKey(const httplib::Request& req, httplib::Response& res);
  void GetAccount(const httplib::Request& req, httplib::Response& res);
  void AddTags(const httplib::Request& req, httplib::Response& res);
  void GetTags(const httplib::Request& req, httplib::Response& res);
  void GetAccountBundles(const httplib::Request& req, httplib::Response& res);
  void GetAccountInvoices(const httplib::Request& req, httplib::Response& res);
  void GetPaymentMethods(const httplib::Request& req, httplib::Response& res);
  void CreateSubscription(const httplib::Request& req, httplib::Response& res);
  void GetSubscription(const httplib::Request& req, httplib::Response& res);
  void CancelSubscription(const httplib::Request& req, httplib::Response& res);
  void AddCustomFields(const httplib::Request& req, httplib::Response& res);
  void GetCustomFields(const httplib::Request& req, httplib::Response& res);
  void GetBundlesByKey(const httplib::Request& req, httplib::Response& res);
  void GetCatalog(const httplib::Request& req, httplib::Response& res);
  // An account for a route under /1.0/kb/accounts/{id}/: false, with Kill
  // Bill's 404 sent, when unknown.
  bool KnownAccount(const std::string& id, httplib::Response& res);
  void Healthcheck(const httplib::Request& req, httplib::Response& res);
  void Metrics(const httplib::Request& req, httplib::Response& res);
  void SetRotation(bool in_rotation, const httplib::Request& req,
                   httplib::Response& res);
  // DELETE / PUT /1.0/kb/admin/healthcheck.
  void TakeOutOfRotation(const httplib::Request& req, httplib::Response& res) {
    SetRotation(false, req, res);
  }
  void PutInRotation(const httplib::Request& req, httplib::Response& res) {
    SetRotation(true, req, res);
  }

  void SimStatsRoute(httplib::Response& res);
  void SimConfigRoute(const httplib::Request& req, httplib::Response& res);
  void SimFaultsRoute(const httplib::Request& req, httplib::Response& res);

  KillBillSim& sim_;
};

}  // namespace bg::sim
