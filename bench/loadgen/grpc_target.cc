#include "bench/loadgen/grpc_target.h"

#include <grpcpp/grpcpp.h>

#include <optional>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"

namespace bg::loadgen {

struct GrpcTarget::Call {
  grpc::ClientContext context;
  billing::v1::CreateAccountRequest request;
  billing::v1::CreateAccountResponse response;
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

void GrpcTarget::Start(int64_t seq, Done done) {
  auto* call = new Call;
  call->done = std::move(done);
  call->context.set_deadline(
      std::chrono::system_clock::now() +
      std::chrono::duration_cast<std::chrono::system_clock::duration>(
          options_.deadline));
  auto& req = call->request;
  req.set_external_key(absl::StrCat(options_.key_prefix, seq));
  req.set_name(absl::StrCat("Load Test ", seq));
  req.set_email(absl::StrCat("loadgen-", seq, "@example.com"));
  req.set_currency("USD");
  if (options_.tag_auto_pay_off)
    req.add_tags(billing::v1::ACCOUNT_TAG_AUTO_PAY_OFF);
  {
    absl::MutexLock lock(&mu_);
    ++in_flight_;
  }
  auto& stub = stubs_[static_cast<size_t>(seq) % stubs_.size()];
  stub->async()->CreateAccount(
      &call->context, &call->request, &call->response,
      [this, call](grpc::Status status) {
        CallResult result = ClassifyGrpc(
            status.error_code(), FindTrailer(call->context, kRejectReasonKey),
            FindTrailer(call->context, kRetryPushbackKey));
        Done done = std::move(call->done);
        delete call;
        done(result);
        absl::MutexLock lock(&mu_);
        --in_flight_;
      });
}

void GrpcTarget::Shutdown() {
  absl::MutexLock lock(&mu_);
  // Each call ends by its deadline; the margin covers a slow callback thread.
  mu_.AwaitWithTimeout(absl::Condition(
                           +[](int64_t* n) { return *n == 0; }, &in_flight_),
                       absl::FromChrono(options_.deadline) + absl::Seconds(10));
}

}  // namespace bg::loadgen
