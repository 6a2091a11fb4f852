// Bad requests over real gRPC: billing-gateway (a real process,
// server.max_message_bytes 16384) in front of an in-process killbill-sim. A
// table of malformed calls, each refused with the right status and, for invalid
// fields, a message that starts with the field's name; then hand-made wire
// bytes (a field sent twice, a wrong wire type, a truncated message, invalid
// UTF-8, an unknown enum value) through a generic stub; unparseable bytes are
// refused by gRPC itself. Afterwards the sim must have seen no request under
// /1.0/kb/ at all: validation happens before admission.
#include <grpcpp/generic/generic_stub.h>
#include <grpcpp/grpcpp.h>

#include <chrono>
#include <fstream>
#include <future>
#include <string>
#include <vector>

#include "absl/strings/str_join.h"
#include "bench/killbill_sim/killbill_sim.h"
#include "billing/v1/billing_gateway.grpc.pb.h"
#include "gtest/gtest.h"
#include "tests/subprocess.h"

namespace bg {
namespace {

using namespace std::chrono_literals;
namespace v1 = billing::v1;
using Code = grpc::StatusCode;

constexpr char kUuid[] = "0b8e1b5e-3c1f-4a6b-9a57-0e6cf1c1e2a4";

v1::CreateAccountRequest ValidCreate() {
  v1::CreateAccountRequest r;
  r.set_external_key("customer-1");
  r.set_name("Jane Doe");
  r.set_email("jane@example.com");
  r.set_currency("EUR");
  r.set_company("Acme");
  r.set_notes("note");
  r.add_tags(v1::ACCOUNT_TAG_AUTO_PAY_OFF);
  return r;
}

struct BadCall {
  const char* name;
  // Exactly one of the two is used, per `get`.
  std::function<void(v1::CreateAccountRequest*)> create;
  std::function<void(v1::GetAccountRequest*)> get;
  Code want;
  // The status message must start with this (the field); "" for gRPC's own
  // refusals, whose message is checked for `message_part` instead.
  const char* field;
  const char* message_part = "";
};

std::vector<BadCall> BadCalls() {
  using C = v1::CreateAccountRequest;
  using G = v1::GetAccountRequest;
  auto create = [](const char* name, std::function<void(C*)> mutate,
                   const char* field) {
    return BadCall{name, std::move(mutate), nullptr, Code::INVALID_ARGUMENT,
                   field};
  };
  auto get = [](const char* name, std::function<void(G*)> mutate,
                const char* field) {
    return BadCall{name, nullptr, std::move(mutate), Code::INVALID_ARGUMENT,
                   field};
  };
  return {
      create(
          "empty_request", [](C* r) { *r = C(); }, "external_key"),
      create(
          "missing_external_key", [](C* r) { r->clear_external_key(); },
          "external_key"),
      create(
          "external_key_256_bytes",
          [](C* r) { r->set_external_key(std::string(256, 'k')); },
          "external_key"),
      create(
          "external_key_with_space",
          [](C* r) { r->set_external_key("cust 1"); }, "external_key"),
      create(
          "external_key_non_ascii",
          [](C* r) { r->set_external_key("cust\xc3\xa9"); }, "external_key"),
      create(
          "external_key_newline", [](C* r) { r->set_external_key("cust\n1"); },
          "external_key"),
      create(
          "name_101_chars", [](C* r) { r->set_name(std::string(101, 'n')); },
          "name"),
      create(
          "name_101_two_byte_chars",
          [](C* r) {
            std::string s;
            for (int i = 0; i < 101; ++i) s += "\xc3\xa9";
            r->set_name(s);
          },
          "name"),
      create(
          "name_control_char", [](C* r) { r->set_name("Jane\x01"); }, "name"),
      create(
          "email_without_at", [](C* r) { r->set_email("jane.example.com"); },
          "email"),
      create(
          "email_two_ats", [](C* r) { r->set_email("jane@doe@example.com"); },
          "email"),
      create(
          "email_empty_local_part", [](C* r) { r->set_email("@example.com"); },
          "email"),
      create(
          "email_domain_without_dot",
          [](C* r) { r->set_email("jane@localhost"); }, "email"),
      create(
          "email_domain_double_dot",
          [](C* r) { r->set_email("jane@example..com"); }, "email"),
      create(
          "email_with_space",
          [](C* r) { r->set_email("jane doe@example.com"); }, "email"),
      create(
          "email_255_bytes",
          [](C* r) { r->set_email(std::string(243, 'j') + "@example.com"); },
          "email"),
      create(
          "currency_lower_case", [](C* r) { r->set_currency("usd"); },
          "currency"),
      create(
          "currency_two_letters", [](C* r) { r->set_currency("US"); },
          "currency"),
      create(
          "currency_four_letters", [](C* r) { r->set_currency("USDT"); },
          "currency"),
      create(
          "currency_symbol", [](C* r) { r->set_currency("U$D"); }, "currency"),
      create(
          "company_101_chars",
          [](C* r) { r->set_company(std::string(101, 'c')); }, "company"),
      create(
          "notes_4097_chars",
          [](C* r) { r->set_notes(std::string(4097, 'x')); }, "notes"),
      create(
          "notes_control_char", [](C* r) { r->set_notes("line\x1b[31m"); },
          "notes"),
      create(
          "name_del", [](C* r) { r->set_name("Jane\x7f"); }, "name"),
      create(
          "notes_del", [](C* r) { r->set_notes("a\x7f b"); }, "notes"),
      // U+0085 NEL (C1 control), UTF-8 C2 85.
      create(
          "name_nel",
          [](C* r) {
            r->set_name(
                "Jane\xc2\x85"
                "Doe");
          },
          "name"),
      create(
          "notes_nel",
          [](C* r) {
            r->set_notes(
                "a\xc2\x85"
                "b");
          },
          "notes"),
      // U+202E RIGHT-TO-LEFT OVERRIDE, UTF-8 E2 80 AE.
      create(
          "name_rlo",
          [](C* r) {
            r->set_name(
                "Jane\xe2\x80\xae"
                "eoD");
          },
          "name"),
      create(
          "notes_rlo",
          [](C* r) {
            r->set_notes(
                "\xe2\x80\xae"
                "txt.exe");
          },
          "notes"),
      create(
          "tag_unspecified",
          [](C* r) {
            r->clear_tags();
            r->add_tags(v1::ACCOUNT_TAG_UNSPECIFIED);
          },
          "tags[0]"),
      create(
          "tag_unknown_enum_value",
          [](C* r) {
            r->clear_tags();
            r->add_tags(static_cast<v1::AccountTag>(99));
          },
          "tags[0]"),
      create(
          "tag_negative_enum_value",
          [](C* r) { r->add_tags(static_cast<v1::AccountTag>(-1)); },
          "tags[1]"),
      create(
          "tag_repeated",
          [](C* r) {
            r->add_tags(v1::ACCOUNT_TAG_WRITTEN_OFF);
            r->add_tags(v1::ACCOUNT_TAG_AUTO_PAY_OFF);
          },
          "tags[2]"),
      get(
          "get_no_key", [](G* r) { r->Clear(); }, "key"),
      get(
          "get_empty_external_key", [](G* r) { r->set_external_key(""); },
          "external_key"),
      get(
          "get_external_key_too_long",
          [](G* r) { r->set_external_key(std::string(300, 'k')); },
          "external_key"),
      get(
          "get_external_key_with_space",
          [](G* r) { r->set_external_key("a b"); }, "external_key"),
      get(
          "get_bad_uuid", [](G* r) { r->set_account_id("not-a-uuid"); },
          "account_id"),
      get(
          "get_uuid_without_dashes",
          [](G* r) { r->set_account_id("0b8e1b5e3c1f4a6b9a570e6cf1c1e2a4"); },
          "account_id"),
      get(
          "get_uuid_with_braces",
          [](G* r) { r->set_account_id(std::string("{") + kUuid + "}"); },
          "account_id"),
      get(
          "get_uuid_non_hex",
          [](G* r) {
            r->set_account_id("0b8e1b5e-3c1f-4a6b-9a57-0e6cf1c1e2zz");
          },
          "account_id"),
      BadCall{"message_over_max_message_bytes",
              [](C* r) { r->set_notes(std::string(20000, 'x')); }, nullptr,
              Code::RESOURCE_EXHAUSTED, "", "larger than max"},
  };
}

class BadRequestTest : public ::testing::Test {
 protected:
  void SetUp() override {
    sim::SimOptions options;
    options.port = 0;
    sim_ = std::make_unique<sim::KillBillSim>(options);
    ASSERT_TRUE(sim_->Start().ok());
    const std::string config = testing::TestFile("gateway.yaml");
    std::ofstream(config)
        << "server:\n  listen: 127.0.0.1:0\n  max_message_bytes: 16384\n"
        << "metrics:\n  listen: 127.0.0.1:0\n"
        << "logging:\n  level: warn\n"
        << "killbill:\n  url: http://127.0.0.1:" << sim_->port() << "\n";
    gateway_ = std::make_unique<testing::Subprocess>(
        std::vector<std::string>{BG_GATEWAY_BINARY, "--config", config});
    auto grpc_port =
        gateway_->WaitForLine(R"(grpc listening on port (\d+))", 20s);
    ASSERT_TRUE(grpc_port.has_value())
        << "gateway did not start: " << gateway_->output();
    channel_ = grpc::CreateChannel("127.0.0.1:" + *grpc_port,
                                   grpc::InsecureChannelCredentials());
    stub_ = v1::BillingGateway::NewStub(channel_);
  }
  void TearDown() override {
    if (gateway_) {
      EXPECT_EQ(gateway_->Terminate(10s), std::optional<int>(0));
    }
  }

  // Sends `bytes` as the serialized request of `method` (full name) with a
  // generic stub.
  grpc::Status SendRaw(const std::string& method, const std::string& bytes) {
    grpc::GenericStub generic(channel_);
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + 5s);
    grpc::Slice slice(bytes);
    grpc::ByteBuffer request(&slice, 1);
    grpc::ByteBuffer response;
    std::promise<grpc::Status> done;
    generic.UnaryCall(
        &ctx, method, grpc::StubOptions(), &request, &response,
        [&done](grpc::Status s) { done.set_value(std::move(s)); });
    auto future = done.get_future();
    if (future.wait_for(10s) != std::future_status::ready) {
      ADD_FAILURE() << "raw call did not complete";
      ctx.TryCancel();
    }
    return future.get();
  }

  // Asserts that Kill Bill never heard of any of it.
  void ExpectKillBillUntouched() {
    const sim::SimStats stats = sim_->Stats();
    EXPECT_EQ(stats.accounts_created, 0u);
    for (const auto& [label, outcomes] : stats.requests) {
      EXPECT_EQ(label.find("/1.0/kb/"), std::string::npos)
          << "Kill Bill received " << label << ": "
          << absl::StrJoin(outcomes, ", ", absl::PairFormatter("="));
    }
  }

  std::unique_ptr<sim::KillBillSim> sim_;
  std::unique_ptr<testing::Subprocess> gateway_;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<v1::BillingGateway::Stub> stub_;
};

TEST_F(BadRequestTest, EachMalformedCallIsRefusedNamingTheField) {
  const std::vector<BadCall> cases = BadCalls();
  ASSERT_GE(cases.size(), 25u);
  for (const BadCall& c : cases) {
    SCOPED_TRACE(c.name);
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + 5s);
    grpc::Status s;
    if (c.create) {
      v1::CreateAccountRequest req = ValidCreate();
      c.create(&req);
      v1::CreateAccountResponse resp;
      s = stub_->CreateAccount(&ctx, req, &resp);
    } else {
      v1::GetAccountRequest req;
      req.set_external_key("customer-1");
      c.get(&req);
      v1::Account resp;
      s = stub_->GetAccount(&ctx, req, &resp);
    }
    EXPECT_EQ(s.error_code(), c.want) << s.error_message();
    if (*c.field != '\0') {
      EXPECT_EQ(s.error_message().rfind(std::string(c.field) + ": ", 0), 0u)
          << "message does not start with the field: " << s.error_message();
    }
    EXPECT_NE(s.error_message().find(c.message_part), std::string::npos)
        << s.error_message();
  }
  ExpectKillBillUntouched();
}

TEST_F(BadRequestTest, HandMadeWireBytes) {
  const std::string create = "/billing.v1.BillingGateway/CreateAccount";
  const std::string get = "/billing.v1.BillingGateway/GetAccount";
  struct Raw {
    const char* name;
    const std::string* method;
    std::string bytes;
    Code want;
    const char* field;  // "" when gRPC itself refuses (no field to name)
  };
  const std::vector<Raw> cases = {
      // Field 1 twice: protobuf keeps the last one, which is validated ("a b"
      // has a space).
      {"external_key_sent_twice", &create,
       std::string("\x0a\x01"
                   "a"
                   "\x0a\x03"
                   "a b",
                   8),
       Code::INVALID_ARGUMENT, "external_key"},
      // Field 1 as a varint: an unknown field for protobuf, so the key is
      // missing.
      {"external_key_wrong_wire_type", &create, std::string("\x08\x01", 2),
       Code::INVALID_ARGUMENT, "external_key"},
      // Packed tags [1, 99]: the open enum keeps 99, validation refuses it.
      {"packed_unknown_tag", &create,
       std::string("\x0a\x01k"
                   "\x3a\x02\x01\x63",
                   7),
       Code::INVALID_ARGUMENT, "tags[1]"},
      // Both oneof members: the last one wins (a bad UUID).
      {"get_both_keys", &get,
       std::string("\x0a\x01k"
                   "\x12\x03xyz",
                   8),
       Code::INVALID_ARGUMENT, "account_id"},
      // Not parseable at all: gRPC C++ refuses before the service sees it, and
      // (a known
      // quirk, grpc/grpc#30454) says UNIMPLEMENTED with an empty message.
      {"truncated_length", &create,
       std::string("\x0a\x05"
                   "ab",
                   4),
       Code::UNIMPLEMENTED, ""},
      {"invalid_utf8_string", &create, std::string("\x0a\x02\xff\xfe", 4),
       Code::UNIMPLEMENTED, ""},
      {"garbage", &get,
       std::string("\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff", 11),
       Code::UNIMPLEMENTED, ""},
  };
  for (const Raw& c : cases) {
    SCOPED_TRACE(c.name);
    grpc::Status s = SendRaw(*c.method, c.bytes);
    EXPECT_EQ(s.error_code(), c.want) << "'" << s.error_message() << "'";
    if (*c.field != '\0') {
      EXPECT_EQ(s.error_message().rfind(std::string(c.field) + ": ", 0), 0u)
          << s.error_message();
    }
  }
  ExpectKillBillUntouched();
}

}  // namespace
}  // namespace bg
