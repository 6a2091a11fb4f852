#include "service/validation.h"

#include <set>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "killbill_client/parse.h"

namespace bg::service {
namespace {

absl::Status FieldError(absl::string_view field, absl::string_view problem) {
  return absl::InvalidArgumentError(absl::StrCat(field, ": ", problem));
}

// Number of Unicode code points, or -1 when `s` is not valid UTF-8.
long Utf8Length(absl::string_view s) {
  long n = 0;
  for (size_t i = 0; i < s.size();) {
    const unsigned char c = s[i];
    size_t len = c < 0x80         ? 1
                 : (c >> 5) == 6  ? 2
                 : (c >> 4) == 14 ? 3
                 : (c >> 3) == 30 ? 4
                                  : 0;
    if (len == 0 || i + len > s.size()) return -1;
    for (size_t k = 1; k < len; ++k) {
      if ((static_cast<unsigned char>(s[i + k]) >> 6) != 2) return -1;
    }
    i += len;
    ++n;
  }
  return n;
}

absl::Status CheckText(absl::string_view field, absl::string_view value,
                       size_t max_chars) {
  const long chars = Utf8Length(value);
  if (chars < 0) return FieldError(field, "is not valid UTF-8");
  if (static_cast<size_t>(chars) > max_chars) {
    return FieldError(
        field, absl::StrCat("is longer than ", max_chars, " characters"));
  }
  // Control characters: C0 but newline and tab, DEL, C1 (U+0080..U+009F,
  // UTF-8 C2 80..C2 9F, among them U+0085 NEL, a line break to some
  // readers); and the bidirectional controls (U+202A..U+202E, U+2066..U+2069,
  // UTF-8 E2 80 AA..AE and E2 81 A6..A9) that make text display other than it
  // reads.
  for (size_t i = 0; i < value.size(); ++i) {
    const unsigned char c = value[i];
    const unsigned char next =
        i + 1 < value.size() ? static_cast<unsigned char>(value[i + 1]) : 0;
    const unsigned char third =
        i + 2 < value.size() ? static_cast<unsigned char>(value[i + 2]) : 0;
    if ((c < 0x20 && c != '\n' && c != '\t') || c == 0x7f ||
        (c == 0xc2 && next >= 0x80 && next <= 0x9f)) {
      return FieldError(field, "contains control characters");
    }
    if (c == 0xe2 && ((next == 0x80 && third >= 0xaa && third <= 0xae) ||
                      (next == 0x81 && third >= 0xa6 && third <= 0xa9))) {
      return FieldError(field, "contains bidirectional control characters");
    }
  }
  return absl::OkStatus();
}

absl::Status CheckExternalKey(absl::string_view field, absl::string_view key) {
  if (key.empty()) return FieldError(field, "is required");
  if (key.size() > kMaxExternalKeyBytes) {
    return FieldError(
        field, absl::StrCat("is longer than ", kMaxExternalKeyBytes, " bytes"));
  }
  for (unsigned char c : key) {
    if (c <= 0x20 || c >= 0x7f) {
      return FieldError(field, "must be printable ASCII without spaces");
    }
  }
  return absl::OkStatus();
}

// Syntactic check only (local@domain.tld); deliverability is not the gateway's
// business.
absl::Status CheckEmail(absl::string_view email) {
  if (email.size() > kMaxEmailBytes) {
    return FieldError(
        "email", absl::StrCat("is longer than ", kMaxEmailBytes, " bytes"));
  }
  const size_t at = email.find('@');
  if (at == absl::string_view::npos || at == 0 ||
      email.find('@', at + 1) != absl::string_view::npos) {
    return FieldError(
        "email", "must contain exactly one '@' after a non-empty local part");
  }
  for (unsigned char c : email) {
    if (c <= 0x20 || c >= 0x7f)
      return FieldError("email", "must be printable ASCII without spaces");
  }
  absl::string_view domain = email.substr(at + 1);
  const size_t dot = domain.rfind('.');
  if (domain.empty() || dot == absl::string_view::npos || dot == 0 ||
      dot + 1 == domain.size() ||
      domain.find("..") != absl::string_view::npos || domain.front() == '-') {
    return FieldError("email", "domain must look like example.com");
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status ValidateCreateAccount(
    const billing::v1::CreateAccountRequest& request) {
  if (auto s = CheckExternalKey("external_key", request.external_key());
      !s.ok())
    return s;
  if (auto s = CheckText("name", request.name(), kMaxNameChars); !s.ok())
    return s;
  if (!request.email().empty()) {
    if (auto s = CheckEmail(request.email()); !s.ok()) return s;
  }
  const std::string& currency = request.currency();
  if (!currency.empty() &&
      (currency.size() != 3 || !absl::ascii_isupper(currency[0]) ||
       !absl::ascii_isupper(currency[1]) ||
       !absl::ascii_isupper(currency[2]))) {
    return FieldError("currency",
                      "must be three upper-case letters (ISO 4217), e.g. USD");
  }
  if (auto s = CheckText("company", request.company(), kMaxCompanyChars);
      !s.ok())
    return s;
  if (auto s = CheckText("notes", request.notes(), kMaxNotesChars); !s.ok())
    return s;
  std::set<int> seen;
  for (int i = 0; i < request.tags_size(); ++i) {
    const int tag = request.tags(i);
    const std::string field = absl::StrCat("tags[", i, "]");
    if (tag == billing::v1::ACCOUNT_TAG_UNSPECIFIED ||
        !billing::v1::AccountTag_IsValid(tag)) {
      return FieldError(field, absl::StrCat("unknown tag value ", tag));
    }
    if (!seen.insert(tag).second) return FieldError(field, "repeats a tag");
  }
  return absl::OkStatus();
}

absl::Status ValidateGetAccount(const billing::v1::GetAccountRequest& request) {
  switch (request.key_case()) {
    case billing::v1::GetAccountRequest::kExternalKey:
      return CheckExternalKey("external_key", request.external_key());
    case billing::v1::GetAccountRequest::kAccountId:
      if (!killbill::IsUuid(request.account_id())) {
        return FieldError("account_id",
                          "must be a UUID (8-4-4-4-12 hex digits)");
      }
      return absl::OkStatus();
    case billing::v1::GetAccountRequest::KEY_NOT_SET:
      break;
  }
  return FieldError("key", "set external_key or account_id");
}

namespace {

namespace v1 = billing::v1;

absl::Status CheckUuid(absl::string_view field, absl::string_view value) {
  if (killbill::IsUuid(value)) return absl::OkStatus();
  return FieldError(field, "must be a UUID (8-4-4-4-12 hex digits)");
}

absl::Status CheckAccountRef(absl::string_view field, bool present,
                             const v1::AccountRef& ref) {
  if (!present) return FieldError(field, "is required");
  switch (ref.key_case()) {
    case v1::AccountRef::kExternalKey:
      return CheckExternalKey(absl::StrCat(field, ".external_key"),
                              ref.external_key());
    case v1::AccountRef::kAccountId:
      return CheckUuid(absl::StrCat(field, ".account_id"), ref.account_id());
    case v1::AccountRef::KEY_NOT_SET:
      break;
  }
  return FieldError(field, "set external_key or account_id");
}

// A subscription named by Kill Bill id or by instance id.
template <typename Request>
absl::Status CheckSubscriptionKey(const Request& request) {
  if (request.has_subscription_id())
    return CheckUuid("subscription_id", request.subscription_id());
  if (request.has_instance_id())
    return CheckExternalKey("instance_id", request.instance_id());
  return FieldError("key", "set subscription_id or instance_id");
}

}  // namespace

absl::Status ValidateCreateSubscription(
    const v1::CreateSubscriptionRequest& request) {
  if (auto s =
          CheckAccountRef("account", request.has_account(), request.account());
      !s.ok())
    return s;
  if (auto s = CheckExternalKey("plan_name", request.plan_name()); !s.ok())
    return s;
  if (auto s = CheckExternalKey("instance_id", request.instance_id()); !s.ok())
    return s;
  if (request.phase() != v1::PHASE_TYPE_UNSPECIFIED &&
      request.phase() != v1::PHASE_TYPE_TRIAL &&
      request.phase() != v1::PHASE_TYPE_EVERGREEN) {
    return FieldError("phase", absl::StrCat("must be UNSPECIFIED, TRIAL or "
                                            "EVERGREEN, not ",
                                            request.phase()));
  }
  if (request.metadata_size() > static_cast<int>(kMaxMetadataEntries)) {
    return FieldError(
        "metadata",
        absl::StrCat("has more than ", kMaxMetadataEntries, " entries"));
  }
  for (const auto& [name, value] : request.metadata()) {
    const std::string field = absl::StrCat("metadata[\"", name, "\"]");
    if (name.empty()) return FieldError("metadata", "has an empty name");
    if (name == "instance_id") {
      return FieldError(field,
                        "instance_id is stored from the instance_id field");
    }
    if (auto s = CheckText(field, name, kMaxMetadataNameChars); !s.ok())
      return FieldError(field, "name must be at most 64 characters of text");
    if (value.empty()) return FieldError(field, "value is empty");
    if (auto s = CheckText(field, value, kMaxMetadataValueChars); !s.ok())
      return s;
  }
  return absl::OkStatus();
}

absl::Status ValidateGetSubscription(
    const v1::GetSubscriptionRequest& request) {
  return CheckSubscriptionKey(request);
}

absl::Status ValidateListSubscriptions(
    const v1::ListSubscriptionsRequest& request) {
  return CheckAccountRef("account", request.has_account(), request.account());
}

absl::Status ValidateCancelSubscription(
    const v1::CancelSubscriptionRequest& request) {
  if (auto s = CheckSubscriptionKey(request); !s.ok()) return s;
  if (!v1::CancelPolicy_IsValid(request.policy())) {
    return FieldError("policy",
                      absl::StrCat("unknown policy value ", request.policy()));
  }
  if (request.reason().size() > kMaxReasonBytes)
    return FieldError("reason", "is longer than 255 bytes");
  for (unsigned char c : request.reason()) {
    if (c < 0x20 || c >= 0x7f)
      return FieldError("reason", "must be printable ASCII");
  }
  return absl::OkStatus();
}

absl::Status ValidateGetBillingOverview(
    const v1::GetBillingOverviewRequest& request) {
  return CheckAccountRef("account", request.has_account(), request.account());
}

}  // namespace bg::service
