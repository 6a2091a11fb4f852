// Fuzzes what Kill Bill's account and billing endpoints send back:
// ParseAccount, the billing parsers (subscription, bundles, custom fields,
// invoices, payment methods, catalog: GET answers), ParseErrorBody and
// StatusFromResponse (every non-2xx answer), on the same bytes.
//
// Input: one selector byte (HTTP status for StatusFromResponse), then the body.
#include <cstdint>
#include <cstdlib>
#include <string>

#include "fuzz/fuzzed_input.h"
#include "killbill_client/killbill_client.h"
#include "killbill_client/parse.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  bg::fuzz::FuzzedInput in(data, size);
  static constexpr int kStatuses[] = {400, 401, 403, 404, 409, 500, 502, 503};
  const int status = kStatuses[in.TakeByte() % 8];
  const std::string body(in.Rest());

  auto account = bg::killbill::ParseAccount(body);
  if (account.ok() && !bg::killbill::IsUuid(account->account_id)) std::abort();
  if (!account.ok() && account.status().code() != absl::StatusCode::kInternal)
    std::abort();

  // The billing parsers: an error is always INTERNAL, and the ids they return
  // are UUIDs.
  auto check = [](const absl::Status& st) {
    if (!st.ok() && st.code() != absl::StatusCode::kInternal) std::abort();
  };
  auto sub = bg::killbill::ParseSubscription(body);
  check(sub.status());
  if (sub.ok() && !bg::killbill::IsUuid(sub->subscription_id)) std::abort();
  auto bundles = bg::killbill::ParseBundles(body);
  check(bundles.status());
  if (bundles.ok()) {
    for (const auto& b : *bundles) {
      if (!bg::killbill::IsUuid(b.bundle_id)) std::abort();
    }
  }
  check(bg::killbill::ParseCustomFields(body).status());
  check(bg::killbill::ParseInvoices(body).status());
  check(bg::killbill::ParsePaymentMethods(body).status());
  check(bg::killbill::ParseCatalog(body).status());

  (void)bg::killbill::ParseErrorBody(body);
  absl::Status s = bg::killbill::StatusFromResponse(status, body, "fuzz");
  // A non-2xx answer is never OK, whatever its body says.
  if (s.ok()) std::abort();
  return 0;
}
