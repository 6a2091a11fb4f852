// Fuzzes what Kill Bill's account endpoints send back: ParseAccount (GET
// answers), ParseErrorBody and StatusFromResponse (every non-2xx answer), on
// the same bytes.
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

  (void)bg::killbill::ParseErrorBody(body);
  absl::Status s = bg::killbill::StatusFromResponse(status, body, "fuzz");
  // A non-2xx answer is never OK, whatever its body says.
  if (s.ok()) std::abort();
  return 0;
}
