// billing-client: a small command-line client of billing-gateway, for demos and
// operators (Debian has no grpcurl).
//
//   billing-client --target 127.0.0.1:50051 create KEY [NAME] [EMAIL]
//   billing-client --target 127.0.0.1:50051 get KEY
//   billing-client subscribe ACCOUNT_KEY PLAN INSTANCE_ID [--trial-once]
//   billing-client subscription (--id SUBSCRIPTION_ID | INSTANCE_ID)
//   billing-client subscriptions ACCOUNT_KEY [--all]
//   billing-client cancel INSTANCE_ID [--immediate] [--reason R]
//   billing-client overview ACCOUNT_KEY
//   billing-client submit-subscription ACCOUNT_KEY PLAN INSTANCE_ID
//
// Prints the answer as one line of text (a few for lists and the overview);
// exit status 0 on success, 1 on a gRPC error (its code, message and the
// gateway's trailing metadata are printed), 2 on a usage error. An answer the
// gateway served from its cache while Kill Bill was unreachable is followed by
// a line `cache-age-ms=N` (trailer `billing-gateway-cache-age-ms`).
#include <grpcpp/grpcpp.h>

#include <chrono>
#include <cstdio>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "billing/v1/billing_gateway.grpc.pb.h"
#include "common/flags.h"
#include "common/help.h"

ABSL_FLAG(std::string, target, "127.0.0.1:50051", "Gateway address host:port.");
ABSL_FLAG(int, deadline_ms, 30000, "Per-call deadline in milliseconds.");
ABSL_FLAG(bool, trial_once, false,
          "subscribe: refuse a trial if the account already had one "
          "(enforce_single_trial).");
ABSL_FLAG(std::string, id, "",
          "subscription: look the subscription up by Kill Bill id instead of "
          "by instance id.");
ABSL_FLAG(bool, all, false, "subscriptions: include cancelled ones.");
ABSL_FLAG(bool, immediate, false,
          "cancel: take effect now (default: end of term).");
ABSL_FLAG(std::string, reason, "",
          "cancel: why, stored in Kill Bill's audit log.");

namespace {

namespace v1 = billing::v1;

constexpr char kUsage[] =
    "usage: billing-client [--target HOST:PORT] [--deadline-ms MS] COMMAND\n"
    "commands:\n"
    "  create KEY [NAME] [EMAIL]      CreateAccount (with AUTO_PAY_OFF)\n"
    "  get KEY                        GetAccount by external key\n"
    "  subscribe ACCOUNT_KEY PLAN INSTANCE_ID [--trial-once]\n"
    "                                 CreateSubscription\n"
    "  subscription (--id ID | INSTANCE_ID)\n"
    "                                 GetSubscription\n"
    "  subscriptions ACCOUNT_KEY [--all]\n"
    "                                 ListSubscriptions\n"
    "  cancel INSTANCE_ID [--immediate] [--reason R]\n"
    "                                 CancelSubscription (end of term by "
    "default)\n"
    "  overview ACCOUNT_KEY           GetBillingOverview\n"
    "  submit-subscription ACCOUNT_KEY PLAN INSTANCE_ID\n"
    "                                 SubmitCreateSubscription (follow with "
    "GetOperation)\n"
    "Exit status: 0 ok, 1 gRPC error (code, message, trailing metadata on "
    "stderr), 2 usage.\n";

constexpr char kCacheAgeKey[] = "billing-gateway-cache-age-ms";

int Usage(const std::string& why) {
  if (!why.empty()) std::fprintf(stderr, "billing-client: %s\n", why.c_str());
  std::fputs(kUsage, stderr);
  return 2;
}

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

// After a successful read: the cache age, when the gateway answered from its
// cache.
void PrintCacheAge(const grpc::ClientContext& ctx) {
  const auto& md = ctx.GetServerTrailingMetadata();
  auto it = md.find(kCacheAgeKey);
  if (it == md.end()) return;
  std::printf("cache-age-ms=%.*s\n", static_cast<int>(it->second.size()),
              it->second.data());
}

std::string PhaseName(v1::PhaseType p) {
  std::string n = v1::PhaseType_Name(p);
  return n.empty() ? absl::StrCat(static_cast<int>(p)) : n;
}

std::string StateName(v1::SubscriptionState s) {
  std::string n = v1::SubscriptionState_Name(s);
  return n.empty() ? absl::StrCat(static_cast<int>(s)) : n;
}

// One subscription on one line.
std::string Line(const v1::Subscription& s) {
  std::string out = absl::StrCat(
      "subscription_id=", s.subscription_id(), " instance_id=", s.instance_id(),
      " account_id=", s.account_id(), " plan=", s.plan_name(),
      " phase=", PhaseName(s.phase()), " state=", StateName(s.state()),
      " start=", s.start_date());
  if (!s.trial_end_date().empty()) {
    absl::StrAppend(&out, " trial_end=", s.trial_end_date());
  }
  if (!s.cancelled_date().empty()) {
    absl::StrAppend(&out, " cancelled=", s.cancelled_date());
  }
  if (!s.charged_through_date().empty()) {
    absl::StrAppend(&out, " charged_through=", s.charged_through_date());
  }
  return out;
}

std::string Line(const v1::Operation& op) {
  std::string out = absl::StrCat("operation_id=", op.operation_id(),
                                 " kind=", v1::OperationKind_Name(op.kind()),
                                 " state=", v1::OperationState_Name(op.state()),
                                 " instance_id=", op.instance_id(),
                                 " external_key=", op.external_key(),
                                 " attempts=", op.attempts());
  if (!op.account_id().empty()) {
    absl::StrAppend(&out, " account_id=", op.account_id());
  }
  if (!op.subscription_id().empty()) {
    absl::StrAppend(&out, " subscription_id=", op.subscription_id());
  }
  if (op.has_error()) {
    absl::StrAppend(&out, " error=", op.error().code(), ":",
                    op.error().message());
  }
  return out;
}

v1::CreateSubscriptionRequest SubscriptionRequest(
    const std::vector<char*>& args) {
  v1::CreateSubscriptionRequest req;
  req.mutable_account()->set_external_key(args[2]);
  req.set_plan_name(args[3]);
  req.set_instance_id(args[4]);
  req.set_enforce_single_trial(absl::GetFlag(FLAGS_trial_once));
  return req;
}

}  // namespace

int main(int argc, char** argv) {
  absl::SetProgramUsageMessage(kUsage);
  if (bg::HandleHelp(argc, argv, "client/billing_client.cc")) return 0;
  bg::DashedFlags flags(argc, argv);
  std::vector<char*> args = absl::ParseCommandLine(flags.argc(), flags.argv());
  if (args.size() < 2) return Usage("");
  const std::string verb = args[1];
  // Positional arguments each command needs (after the command itself).
  auto need = [&](size_t n, const char* what) {
    if (args.size() == n + 2) return true;
    Usage(absl::StrCat(verb, " takes ", what));
    return false;
  };
  auto stub = v1::BillingGateway::NewStub(grpc::CreateChannel(
      absl::GetFlag(FLAGS_target), grpc::InsecureChannelCredentials()));
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() +
                   std::chrono::milliseconds(absl::GetFlag(FLAGS_deadline_ms)));
  if (verb == "create") {
    if (args.size() < 3 || args.size() > 5) {
      return Usage("create takes KEY [NAME] [EMAIL]");
    }
    v1::CreateAccountRequest req;
    req.set_external_key(args[2]);
    if (args.size() > 3) req.set_name(args[3]);
    if (args.size() > 4) req.set_email(args[4]);
    req.add_tags(v1::ACCOUNT_TAG_AUTO_PAY_OFF);
    v1::CreateAccountResponse resp;
    grpc::Status status = stub->CreateAccount(&ctx, req, &resp);
    if (!status.ok()) return Report(status, ctx);
    std::printf("external_key=%s account_id=%s created=%s\n",
                resp.external_key().c_str(), resp.account_id().c_str(),
                resp.created() ? "true" : "false");
    return 0;
  }
  if (verb == "get") {
    if (!need(1, "KEY")) return 2;
    v1::GetAccountRequest req;
    req.set_external_key(args[2]);
    v1::Account account;
    grpc::Status status = stub->GetAccount(&ctx, req, &account);
    if (!status.ok()) return Report(status, ctx);
    std::printf("%s\n", account.ShortDebugString().c_str());
    PrintCacheAge(ctx);
    return 0;
  }
  if (verb == "subscribe") {
    if (!need(3, "ACCOUNT_KEY PLAN INSTANCE_ID [--trial-once]")) return 2;
    v1::CreateSubscriptionResponse resp;
    grpc::Status status =
        stub->CreateSubscription(&ctx, SubscriptionRequest(args), &resp);
    if (!status.ok()) return Report(status, ctx);
    std::printf("created=%s %s\n", resp.created() ? "true" : "false",
                Line(resp.subscription()).c_str());
    return 0;
  }
  if (verb == "subscription") {
    const std::string id = absl::GetFlag(FLAGS_id);
    v1::GetSubscriptionRequest req;
    if (!id.empty()) {
      if (!need(0, "--id SUBSCRIPTION_ID or INSTANCE_ID, not both")) return 2;
      req.set_subscription_id(id);
    } else {
      if (!need(1, "--id SUBSCRIPTION_ID or INSTANCE_ID")) return 2;
      req.set_instance_id(args[2]);
    }
    v1::Subscription sub;
    grpc::Status status = stub->GetSubscription(&ctx, req, &sub);
    if (!status.ok()) return Report(status, ctx);
    std::printf("%s\n", Line(sub).c_str());
    PrintCacheAge(ctx);
    return 0;
  }
  if (verb == "subscriptions") {
    if (!need(1, "ACCOUNT_KEY [--all]")) return 2;
    v1::ListSubscriptionsRequest req;
    req.mutable_account()->set_external_key(args[2]);
    req.set_include_cancelled(absl::GetFlag(FLAGS_all));
    v1::ListSubscriptionsResponse resp;
    grpc::Status status = stub->ListSubscriptions(&ctx, req, &resp);
    if (!status.ok()) return Report(status, ctx);
    std::printf("subscriptions=%d\n", resp.subscriptions_size());
    for (const auto& s : resp.subscriptions()) {
      std::printf("  %s\n", Line(s).c_str());
    }
    PrintCacheAge(ctx);
    return 0;
  }
  if (verb == "cancel") {
    if (!need(1, "INSTANCE_ID [--immediate] [--reason R]")) return 2;
    v1::CancelSubscriptionRequest req;
    req.set_instance_id(args[2]);
    req.set_policy(absl::GetFlag(FLAGS_immediate)
                       ? v1::CANCEL_POLICY_IMMEDIATE
                       : v1::CANCEL_POLICY_END_OF_TERM);
    req.set_reason(absl::GetFlag(FLAGS_reason));
    v1::CancelSubscriptionResponse resp;
    grpc::Status status = stub->CancelSubscription(&ctx, req, &resp);
    if (!status.ok()) return Report(status, ctx);
    std::printf("already_cancelled=%s %s\n",
                resp.already_cancelled() ? "true" : "false",
                Line(resp.subscription()).c_str());
    return 0;
  }
  if (verb == "overview") {
    if (!need(1, "ACCOUNT_KEY")) return 2;
    v1::GetBillingOverviewRequest req;
    req.mutable_account()->set_external_key(args[2]);
    v1::BillingOverview ov;
    grpc::Status status = stub->GetBillingOverview(&ctx, req, &ov);
    if (!status.ok()) return Report(status, ctx);
    std::printf(
        "account_id=%s external_key=%s balance=%s credit=%s subscriptions=%d "
        "payment_methods=%d unpaid_invoices=%d\n",
        ov.account().account_id().c_str(), ov.account().external_key().c_str(),
        ov.balance().c_str(), ov.credit().c_str(), ov.subscriptions_size(),
        ov.payment_methods_size(), ov.unpaid_invoices_size());
    for (const auto& s : ov.subscriptions()) {
      std::printf("  %s\n", Line(s).c_str());
    }
    for (const auto& pm : ov.payment_methods()) {
      std::printf("  payment_method_id=%s plugin=%s default=%s\n",
                  pm.payment_method_id().c_str(), pm.plugin_name().c_str(),
                  pm.is_default() ? "true" : "false");
    }
    for (const auto& inv : ov.unpaid_invoices()) {
      std::printf("  invoice_id=%s number=%s date=%s amount=%s balance=%s %s\n",
                  inv.invoice_id().c_str(), inv.invoice_number().c_str(),
                  inv.invoice_date().c_str(), inv.amount().c_str(),
                  inv.balance().c_str(), inv.currency().c_str());
    }
    PrintCacheAge(ctx);
    return 0;
  }
  if (verb == "submit-subscription") {
    if (!need(3, "ACCOUNT_KEY PLAN INSTANCE_ID")) return 2;
    v1::Operation op;
    grpc::Status status =
        stub->SubmitCreateSubscription(&ctx, SubscriptionRequest(args), &op);
    if (!status.ok()) return Report(status, ctx);
    std::printf("%s\n", Line(op).c_str());
    return 0;
  }
  return Usage(absl::StrCat("unknown command '", verb, "'"));
}
