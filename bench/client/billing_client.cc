// billing-client: a small command-line client of billing-gateway, for demos and
// operators (Debian has no grpcurl).
//
//   billing-client --target 127.0.0.1:50051 create KEY [NAME] [EMAIL]
//   billing-client --target 127.0.0.1:50051 get KEY
//
// Prints the answer as one line of text; exit status 0 on success, 1 on a gRPC
// error (its code, message and the gateway's rejection metadata are printed).
#include <grpcpp/grpcpp.h>

#include <cstdio>
#include <string>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "billing/v1/billing_gateway.grpc.pb.h"
#include "common/flags.h"

ABSL_FLAG(std::string, target, "127.0.0.1:50051", "Gateway address host:port.");
ABSL_FLAG(int, deadline_ms, 30000, "Per-call deadline in milliseconds.");

namespace {

int Report(const grpc::Status& status, const grpc::ClientContext& ctx) {
  std::fprintf(stderr, "error: %d %s", static_cast<int>(status.error_code()),
               status.error_message().c_str());
  for (const auto& [key, value] : ctx.GetServerTrailingMetadata()) {
    std::fprintf(stderr, " [%.*s=%.*s]", static_cast<int>(key.size()),
                 key.data(), static_cast<int>(value.size()), value.data());
  }
  std::fprintf(stderr, "\n");
  return 1;
}

}  // namespace

int main(int argc, char** argv) {
  absl::SetProgramUsageMessage(
      "billing-client [--target HOST:PORT] create KEY [NAME] [EMAIL] | get "
      "KEY");
  bg::DashedFlags flags(argc, argv);
  std::vector<char*> args = absl::ParseCommandLine(flags.argc(), flags.argv());
  if (args.size() < 3) {
    std::fprintf(
        stderr,
        "usage: billing-client [--target HOST:PORT] create KEY [NAME] [EMAIL] "
        "| get KEY\n");
    return 2;
  }
  auto stub = billing::v1::BillingGateway::NewStub(grpc::CreateChannel(
      absl::GetFlag(FLAGS_target), grpc::InsecureChannelCredentials()));
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() +
                   std::chrono::milliseconds(absl::GetFlag(FLAGS_deadline_ms)));
  const std::string verb = args[1];
  if (verb == "create") {
    billing::v1::CreateAccountRequest req;
    req.set_external_key(args[2]);
    if (args.size() > 3) req.set_name(args[3]);
    if (args.size() > 4) req.set_email(args[4]);
    req.add_tags(billing::v1::ACCOUNT_TAG_AUTO_PAY_OFF);
    billing::v1::CreateAccountResponse resp;
    grpc::Status status = stub->CreateAccount(&ctx, req, &resp);
    if (!status.ok()) return Report(status, ctx);
    std::printf("external_key=%s account_id=%s created=%s\n",
                resp.external_key().c_str(), resp.account_id().c_str(),
                resp.created() ? "true" : "false");
    return 0;
  }
  if (verb == "get") {
    billing::v1::GetAccountRequest req;
    req.set_external_key(args[2]);
    billing::v1::Account account;
    grpc::Status status = stub->GetAccount(&ctx, req, &account);
    if (!status.ok()) return Report(status, ctx);
    std::printf("%s\n", account.ShortDebugString().c_str());
    return 0;
  }
  std::fprintf(stderr, "unknown command '%s' (create | get)\n", verb.c_str());
  return 2;
}
