#include "bench/loadgen/grpc_target.h"

#include <grpcpp/grpcpp.h>

#include <optional>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"

namespace bg::loadgen {

template <typename Request, typename Response>
struct GrpcTarget::Call {
  grpc::ClientContext context;
  Request request;
  Response response;
  Done done;
};

namespace {

std::optional<absl::string_view> FindTrailer(const grpc::ClientContext& context,
                                             absl::string_view key) {
  const auto& md = context.GetServerTrailingMetadata();
  auto it = md.find(grpc::string_ref(key.data(), key.size()));
  if (it == md.end()) return std::nullopt;
  return absl::string_view(it->second.data(), it->second.size());
}

}  // namespace

GrpcTarget::GrpcTarget(GrpcTargetOptions options)
    : options_(std::move(options)) {
  const int n = options_.channels > 0 ? options_.channels : 1;
  for (int i = 0; i < n; ++i) {
    grpc::ChannelArguments args;
    // A local subchannel pool plus a distinct argument: a separate connection
    // per channel.
    args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
    args.SetInt("bg.loadgen.channel_index", i);
    args.SetInt(GRPC_ARG_ENABLE_RETRIES,
                0);  // every attempt is counted by us, not retried
    auto channel = grpc::CreateCustomChannel(
        options_.address, grpc::InsecureChannelCredentials(), args);
    stubs_.push_back(billing::v1::BillingGateway::NewStub(channel));
  }
}

GrpcTarget::~GrpcTarget() { Shutdown(); }

std::chrono::system_clock::time_point GrpcTarget::Deadline() const {
  return std::chrono::system_clock::now() +
         std::chrono::duration_cast<std::chrono::system_clock::duration>(
             options_.deadline);
}

template <typename Request, typename Response, typename Invoke>
void GrpcTarget::Launch(int64_t seq,
                        std::unique_ptr<Call<Request, Response>> owned,
                        Invoke invoke) {
  auto* call = owned.release();
  call->context.set_deadline(Deadline());
  {
    absl::MutexLock lock(&mu_);
    ++in_flight_;
  }
  auto& stub = stubs_[static_cast<size_t>(seq) % stubs_.size()];
  invoke(stub->async(), &call->context, &call->request, &call->response,
         [this, call](grpc::Status status) {
           CallResult result =
               ClassifyGrpc(status.error_code(),
                            FindTrailer(call->context, kRejectReasonKey),
                            FindTrailer(call->context, kRetryPushbackKey));
           Done done = std::move(call->done);
           delete call;
           done(result);
           absl::MutexLock lock(&mu_);
           --in_flight_;
         });
}

void GrpcTarget::Start(const CallSpec& spec, Done done) {
  using Async = billing::v1::BillingGateway::StubInterface::async_interface;
  switch (spec.op) {
    case Operation::kRegisterTagged:
    case Operation::kRegisterUntagged: {
      auto call = std::make_unique<Call<billing::v1::CreateAccountRequest,
                                        billing::v1::CreateAccountResponse>>();
      call->done = std::move(done);
      auto& req = call->request;
      req.set_external_key(AccountKey(options_.key_prefix, spec.seq));
      req.set_name(absl::StrCat("Load Test ", spec.seq));
      req.set_email(absl::StrCat("loadgen-", spec.seq, "@example.com"));
      req.set_currency("USD");
      if (spec.op == Operation::kRegisterTagged) {
        req.add_tags(billing::v1::ACCOUNT_TAG_AUTO_PAY_OFF);
      }
      Launch(spec.seq, std::move(call),
             [](Async* async, grpc::ClientContext* ctx, const auto* request,
                auto* response, std::function<void(grpc::Status)> on_done) {
               async->CreateAccount(ctx, request, response, std::move(on_done));
             });
      return;
    }
    case Operation::kSubscribe: {
      auto call =
          std::make_unique<Call<billing::v1::CreateSubscriptionRequest,
                                billing::v1::CreateSubscriptionResponse>>();
      call->done = std::move(done);
      auto& req = call->request;
      req.mutable_account()->set_external_key(
          AccountKey(options_.key_prefix, spec.account_seq));
      req.set_plan_name(kSubscribePlan);
      req.set_instance_id(InstanceId(options_.key_prefix, spec.seq));
      Launch(spec.seq, std::move(call),
             [](Async* async, grpc::ClientContext* ctx, const auto* request,
                auto* response, std::function<void(grpc::Status)> on_done) {
               async->CreateSubscription(ctx, request, response,
                                         std::move(on_done));
             });
      return;
    }
    case Operation::kOverview: {
      auto call = std::make_unique<Call<billing::v1::GetBillingOverviewRequest,
                                        billing::v1::BillingOverview>>();
      call->done = std::move(done);
      call->request.mutable_account()->set_external_key(
          AccountKey(options_.key_prefix, spec.account_seq));
      Launch(spec.seq, std::move(call),
             [](Async* async, grpc::ClientContext* ctx, const auto* request,
                auto* response, std::function<void(grpc::Status)> on_done) {
               async->GetBillingOverview(ctx, request, response,
                                         std::move(on_done));
             });
      return;
    }
  }
}

void GrpcTarget::Shutdown() {
  absl::MutexLock lock(&mu_);
  // Each call ends by its deadline; the margin covers a slow callback thread.
  mu_.AwaitWithTimeout(absl::Condition(
                           +[](int64_t* n) { return *n == 0; }, &in_flight_),
                       absl::FromChrono(options_.deadline) + absl::Seconds(10));
}

}  // namespace bg::loadgen
