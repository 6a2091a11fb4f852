// Fuzzes AccountIdFromLocation (the Location header of POST /1.0/kb/accounts)
// and IsUuid.
//
// Input: the header value.
#include <cstdint>
#include <cstdlib>
#include <string>

#include "fuzz/fuzzed_input.h"
#include "killbill_client/parse.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string location(reinterpret_cast<const char*>(data), size);

  auto id = bg::killbill::AccountIdFromLocation(location);
  // Whatever is accepted must be a UUID taken from the header itself.
  if (id.ok() &&
      (!bg::killbill::IsUuid(*id) || location.find(*id) == std::string::npos)) {
    std::abort();
  }
  (void)bg::killbill::IsUuid(location);
  return 0;
}
