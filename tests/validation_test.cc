#include "service/validation.h"

#include <string>

#include "gtest/gtest.h"

namespace bg::service {
namespace {

namespace v1 = billing::v1;

v1::CreateAccountRequest Valid() {
  v1::CreateAccountRequest r;
  r.set_external_key("customer-42");
  r.set_name("Jane Doe");
  r.set_email("jane@example.com");
  r.set_currency("EUR");
  r.set_company("Acme");
  r.add_tags(v1::ACCOUNT_TAG_AUTO_PAY_OFF);
  return r;
}

struct BadCreate {
  const char* what;
  void (*mutate)(v1::CreateAccountRequest&);
  const char* field;  // The message must start with this.
};

TEST(ValidateCreateAccount, AcceptsValidAndMinimal) {
  EXPECT_TRUE(ValidateCreateAccount(Valid()).ok());
  v1::CreateAccountRequest minimal;
  minimal.set_external_key("k");
  EXPECT_TRUE(ValidateCreateAccount(minimal).ok());
  v1::CreateAccountRequest longest = Valid();
  longest.set_external_key(std::string(255, 'k'));
  longest.set_name(std::string(100, 'n'));
  EXPECT_TRUE(ValidateCreateAccount(longest).ok());
  // Neighbours of the refused controls: NBSP (C2 A0), an em dash (E2 80 94),
  // U+206A (E2 81 AA), and 4096 two-byte characters with newlines and tabs.
  v1::CreateAccountRequest text = Valid();
  text.set_name("Zo\xc3\xab\xc2\xa0Ng \xe2\x80\x94 \xe2\x81\xaa");
  std::string notes = "\n\t";
  while (notes.size() < 2 * 4096) notes += "\xc3\xa9";
  notes.resize(2 + 2 * 4094);  // 4096 characters
  text.set_notes(notes);
  EXPECT_TRUE(ValidateCreateAccount(text).ok()) << ValidateCreateAccount(text);
}

TEST(ValidateCreateAccount, RefusesEachBadFieldByName) {
  const BadCreate cases[] = {
      {"empty request", [](auto& r) { r = {}; }, "external_key"},
      {"empty key", [](auto& r) { r.clear_external_key(); }, "external_key"},
      {"key too long",
       [](auto& r) { r.set_external_key(std::string(256, 'k')); },
       "external_key"},
      {"key with space", [](auto& r) { r.set_external_key("a b"); },
       "external_key"},
      {"key non-ascii", [](auto& r) { r.set_external_key("clé"); },
       "external_key"},
      {"key control char",
       [](auto& r) { r.set_external_key(std::string("a\0b", 3)); },
       "external_key"},
      {"email no at", [](auto& r) { r.set_email("jane.example.com"); },
       "email"},
      {"email two ats", [](auto& r) { r.set_email("a@b@c.com"); }, "email"},
      {"email empty local", [](auto& r) { r.set_email("@example.com"); },
       "email"},
      {"email no tld", [](auto& r) { r.set_email("jane@example"); }, "email"},
      {"email trailing dot", [](auto& r) { r.set_email("jane@example."); },
       "email"},
      {"email space", [](auto& r) { r.set_email("ja ne@example.com"); },
       "email"},
      {"email too long",
       [](auto& r) { r.set_email(std::string(250, 'a') + "@x.io"); }, "email"},
      {"currency lower", [](auto& r) { r.set_currency("usd"); }, "currency"},
      {"currency long", [](auto& r) { r.set_currency("USDX"); }, "currency"},
      {"currency short", [](auto& r) { r.set_currency("US"); }, "currency"},
      {"currency digits", [](auto& r) { r.set_currency("U5D"); }, "currency"},
      {"name too long", [](auto& r) { r.set_name(std::string(101, 'n')); },
       "name"},
      {"name bad utf8", [](auto& r) { r.set_name("\xff\xfe"); }, "name"},
      {"name control", [](auto& r) { r.set_name("a\x01"); }, "name"},
      {"name DEL", [](auto& r) { r.set_name("a\x7f"); }, "name"},
      {"name U+0085", [](auto& r) { r.set_name("a\xc2\x85"); }, "name"},
      {"name U+009F", [](auto& r) { r.set_name("a\xc2\x9f"); }, "name"},
      {"name U+202E", [](auto& r) { r.set_name("a\xe2\x80\xae"); }, "name"},
      {"name U+2066", [](auto& r) { r.set_name("a\xe2\x81\xa6"); }, "name"},
      {"notes U+202A", [](auto& r) { r.set_notes("\xe2\x80\xaa"); }, "notes"},
      {"company U+0085", [](auto& r) { r.set_company("\xc2\x85"); }, "company"},
      {"company too long",
       [](auto& r) { r.set_company(std::string(101, 'c')); }, "company"},
      {"notes too long", [](auto& r) { r.set_notes(std::string(4097, 'x')); },
       "notes"},
      {"tag unspecified",
       [](auto& r) { r.add_tags(v1::ACCOUNT_TAG_UNSPECIFIED); }, "tags[1]"},
      {"tag unknown enum",
       [](auto& r) { r.add_tags(static_cast<v1::AccountTag>(99)); }, "tags[1]"},
      {"tag repeated",
       [](auto& r) { r.add_tags(v1::ACCOUNT_TAG_AUTO_PAY_OFF); }, "tags[1]"},
  };
  for (const BadCreate& c : cases) {
    v1::CreateAccountRequest r = Valid();
    c.mutate(r);
    absl::Status s = ValidateCreateAccount(r);
    EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << c.what;
    EXPECT_EQ(s.message().substr(0, std::string(c.field).size()), c.field)
        << c.what << ": " << s.message();
  }
}

TEST(ValidateGetAccount, NeedsExactlyOneWellFormedKey) {
  v1::GetAccountRequest r;
  EXPECT_EQ(ValidateGetAccount(r).message().substr(0, 3), "key");
  r.set_account_id("nope");
  EXPECT_EQ(ValidateGetAccount(r).message().substr(0, 10), "account_id");
  r.set_account_id("4a7b1e8c-0b1d-4b8e-9f0a-2d9b6a1c3e5f");
  EXPECT_TRUE(ValidateGetAccount(r).ok());
  r.set_external_key("");
  EXPECT_EQ(ValidateGetAccount(r).message().substr(0, 12), "external_key");
  r.set_external_key("k-1");
  EXPECT_TRUE(ValidateGetAccount(r).ok());
}

}  // namespace
}  // namespace bg::service
