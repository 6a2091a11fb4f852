// Fuzzes request validation at the service edge: the bytes are parsed as a
// protobuf CreateAccountRequest (as gRPC would) and handed to
// ValidateCreateAccount; the same bytes as a GetAccountRequest to
// ValidateGetAccount.
#include <cstdint>
#include <cstdlib>

#include "billing/v1/billing_gateway.pb.h"
#include "service/validation.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  billing::v1::CreateAccountRequest create;
  if (create.ParseFromArray(data, static_cast<int>(size))) {
    absl::Status s = bg::service::ValidateCreateAccount(create);
    if (!s.ok() && s.code() != absl::StatusCode::kInvalidArgument) std::abort();
    if (s.ok() && create.external_key().empty()) std::abort();
  }
  billing::v1::GetAccountRequest get;
  if (get.ParseFromArray(data, static_cast<int>(size))) {
    absl::Status s = bg::service::ValidateGetAccount(get);
    if (!s.ok() && s.code() != absl::StatusCode::kInvalidArgument) std::abort();
  }
  return 0;
}
