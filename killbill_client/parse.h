// Parsers for everything Kill Bill sends back: account JSON, error bodies, the
// healthcheck body and the Location header of a create.
//
// Pure functions over strings: no I/O, no exceptions escape (JSON errors become
// absl::Status INTERNAL naming what was wrong). Safe to call from any thread;
// these are the fuzz targets' entry points.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "killbill_client/types.h"

namespace bg::killbill {

// Kill Bill's JSON error body: {"className":…,"code":3000,"message":…,…}.
struct ErrorBody {
  std::string class_name;
  std::optional<int> code;  // Null for errors that are not billing errors.
  std::string message;
};

// Parses an account object (GET /1.0/kb/accounts/{id} or ?externalKey=).
absl::StatusOr<Account> ParseAccount(absl::string_view body);

// Parses an error body; nullopt when the body is not Kill Bill's error JSON
// (e.g. the servlet container's HTML page on 401).
std::optional<ErrorBody> ParseErrorBody(absl::string_view body);

// Parses GET /1.0/healthcheck. `http_status` is kept in the report; 200 and 500
// are the statuses Kill Bill uses, anything else is an error.
absl::StatusOr<HealthReport> ParseHealthReport(int http_status,
                                               absl::string_view body);

// Parses a 200 answer of GET /1.0/metrics (Dropwizard MetricsServlet JSON) into
// the main bus's counters. An object whose sections are all empty or missing
// is `present = false`; a body that is not a JSON object, a section that is not
// an object, or a bus timer whose `count` is not a non-negative integer is an
// error naming the part.
absl::StatusOr<BusCounters> ParseBusCounters(absl::string_view body);

// Parses "Growing queues: bus (0.51), externalBus (0.2)" into queue -> number.
// Returns an empty map for any other message.
std::map<std::string, double> ParseGrowingQueues(absl::string_view message);

// The id at the end of a create's Location header: an absolute URL or a path,
// whose path must be `collection`/<uuid> (e.g. "/1.0/kb/subscriptions/<uuid>").
// The URL's host is not checked: a proxy or TLS terminator in front of Kill
// Bill may rewrite it, and the client only reads the id, never follows it.
absl::StatusOr<std::string> IdFromLocation(absl::string_view location,
                                           absl::string_view collection);
// IdFromLocation under /1.0/kb/accounts.
absl::StatusOr<std::string> AccountIdFromLocation(absl::string_view location);

// The billing objects (parse_billing.cc). Each checks the ids it returns are
// UUIDs and names the object and field that is wrong.
// GET /1.0/kb/subscriptions/{id}.
absl::StatusOr<Subscription> ParseSubscription(absl::string_view body);
// GET /1.0/kb/bundles?externalKey= and GET /1.0/kb/accounts/{id}/bundles: an
// array of bundles with their subscriptions.
absl::StatusOr<std::vector<Bundle>> ParseBundles(absl::string_view body);
// GET /1.0/kb/subscriptions/{id}/customFields.
absl::StatusOr<std::vector<CustomField>> ParseCustomFields(
    absl::string_view body);
// GET /1.0/kb/accounts/{id}/invoices.
absl::StatusOr<std::vector<Invoice>> ParseInvoices(absl::string_view body);
// GET /1.0/kb/accounts/{id}/paymentMethods.
absl::StatusOr<std::vector<PaymentMethod>> ParsePaymentMethods(
    absl::string_view body);
// GET /1.0/kb/catalog: an array of catalog versions; the plans
// of every version, a later version's plan replacing an earlier one of the
// same name.
absl::StatusOr<std::vector<CatalogPlan>> ParseCatalog(absl::string_view body);

// Percent-encodes everything but RFC 3986 unreserved characters (a query
// parameter's value).
std::string PercentEncode(absl::string_view s);

// True when `s` is a canonical 8-4-4-4-12 hexadecimal UUID.
bool IsUuid(absl::string_view s);

}  // namespace bg::killbill
