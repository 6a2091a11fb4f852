// Fuzzes AccountIdFromLocation (the Location header of POST /1.0/kb/accounts)
// and IsUuid.
//
// Input: one selector byte; odd selects an expected origin read from the input
// up to the first '\n', even the client's usual "http://127.0.0.1:8080". The
// rest is the header value.
#include <cstdint>
#include <cstdlib>
#include <string>

#include "fuzz/fuzzed_input.h"
#include "killbill_client/parse.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  bg::fuzz::FuzzedInput in(data, size);
  const bool own_origin = in.TakeByte() & 1;
  const std::string origin = own_origin ? std::string(in.TakeUntil('\n'))
                                        : std::string("http://127.0.0.1:8080");
  const std::string location(in.Rest());

  auto id = bg::killbill::AccountIdFromLocation(location, origin);
  // Whatever is accepted must be a UUID taken from the header itself.
  if (id.ok() &&
      (!bg::killbill::IsUuid(*id) || location.find(*id) == std::string::npos)) {
    std::abort();
  }
  (void)bg::killbill::IsUuid(location);
  return 0;
}
