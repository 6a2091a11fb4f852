// durable-bench: load driver for the asynchronous API of billing-gateway.
//
//   durable-bench --target 127.0.0.1:50051 --submissions 20000 --concurrency 64
//                 [--prefix bench-] [--tags] [--wait_completion]
//                 [--completion_timeout_s 600]
//
// Phase 1 (acceptance): `concurrency` callers each loop over
// SubmitCreateAccount with fresh keys until `submissions` have been sent;
// prints accepted submissions per second and the submit latency percentiles
// (every accepted one is committed in PostgreSQL). Phase 2 (--wait_completion):
// waits on every operation with GetOperation (server-side wait) and prints time
// from acceptance to completion (finish_time - create_time, both database time)
// percentiles and the drain throughput.
#include <grpcpp/grpcpp.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "billing/v1/billing_gateway.grpc.pb.h"
#include "common/flags.h"

ABSL_FLAG(std::string, target, "127.0.0.1:50051", "gateway gRPC host:port");
ABSL_FLAG(int, submissions, 20000, "SubmitCreateAccount calls to make");
ABSL_FLAG(int, concurrency, 64, "concurrent callers");
ABSL_FLAG(int, channels, 4,
          "gRPC channels (connections) shared round-robin by the callers");
ABSL_FLAG(std::string, prefix, "bench-",
          "external key prefix (keys are PREFIX<n>)");
ABSL_FLAG(bool, tags, false,
          "ask for AUTO_PAY_OFF (two Kill Bill calls per registration)");
ABSL_FLAG(bool, wait_completion, false,
          "then wait for every operation to finish");
ABSL_FLAG(int, completion_timeout_s, 600,
          "give up waiting for completion after this");

namespace {

namespace v1 = billing::v1;
using Clock = std::chrono::steady_clock;

double Percentile(std::vector<double> v, double p) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  const size_t i =
      std::min(v.size() - 1, static_cast<size_t>(p * (v.size() - 1) + 0.5));
  return v[i];
}

}  // namespace

int main(int argc, char** argv) {
  absl::SetProgramUsageMessage(
      "durable-bench --target HOST:PORT [--submissions N] ...");
  bg::DashedFlags flags(argc, argv);
  absl::ParseCommandLine(flags.argc(), flags.argv());
  const int n = absl::GetFlag(FLAGS_submissions);
  const int concurrency = absl::GetFlag(FLAGS_concurrency);
  const std::string prefix = absl::GetFlag(FLAGS_prefix);
  std::vector<std::unique_ptr<v1::BillingGateway::Stub>> stubs;
  for (int i = 0; i < std::max(1, absl::GetFlag(FLAGS_channels)); ++i) {
    grpc::ChannelArguments args;
    args.SetInt("grpc.channel_id",
                i);  // Distinct channels, distinct connections.
    stubs.push_back(v1::BillingGateway::NewStub(
        grpc::CreateCustomChannel(absl::GetFlag(FLAGS_target),
                                  grpc::InsecureChannelCredentials(), args)));
  }

  std::vector<std::string> ids(n);
  std::vector<double> submit_ms(n, -1);
  std::mutex mu;
  std::map<std::string, int> errors;
  std::atomic<int> next{0};
  const Clock::time_point start = Clock::now();
  std::vector<std::thread> callers;
  for (int t = 0; t < concurrency; ++t) {
    callers.emplace_back([&, t] {
      v1::BillingGateway::Stub* stub = stubs[t % stubs.size()].get();
      for (int i = next++; i < n; i = next++) {
        v1::CreateAccountRequest req;
        req.set_external_key(prefix + std::to_string(i));
        req.set_name("Bench Customer");
        req.set_email(prefix + std::to_string(i) + "@example.com");
        if (absl::GetFlag(FLAGS_tags))
          req.add_tags(v1::ACCOUNT_TAG_AUTO_PAY_OFF);
        grpc::ClientContext ctx;
        ctx.set_deadline(std::chrono::system_clock::now() +
                         std::chrono::seconds(30));
        v1::Operation op;
        const Clock::time_point t0 = Clock::now();
        grpc::Status s = stub->SubmitCreateAccount(&ctx, req, &op);
        const double ms =
            std::chrono::duration<double, std::milli>(Clock::now() - t0)
                .count();
        if (s.ok()) {
          ids[i] = op.operation_id();
          submit_ms[i] = ms;
        } else {
          std::lock_guard<std::mutex> lock(mu);
          ++errors[std::to_string(s.error_code()) + " " +
                   s.error_message().substr(0, 80)];
        }
      }
    });
  }
  for (auto& c : callers) c.join();
  const double elapsed =
      std::chrono::duration<double>(Clock::now() - start).count();
  std::vector<double> ok_ms;
  for (double ms : submit_ms) {
    if (ms >= 0) ok_ms.push_back(ms);
  }
  std::printf(
      "accepted %zu/%d in %.3f s: %.0f submissions/s (concurrency %d)\n",
      ok_ms.size(), n, elapsed, ok_ms.size() / elapsed, concurrency);
  std::printf("submit latency ms: p50 %.2f p95 %.2f p99 %.2f max %.2f\n",
              Percentile(ok_ms, 0.5), Percentile(ok_ms, 0.95),
              Percentile(ok_ms, 0.99), Percentile(ok_ms, 1.0));
  for (const auto& [what, count] : errors)
    std::printf("error x%d: %s\n", count, what.c_str());
  if (!absl::GetFlag(FLAGS_wait_completion)) return errors.empty() ? 0 : 1;

  // Phase 2: acceptance -> completion, from the operations' own timestamps.
  std::vector<double> to_done_s;
  int64_t first_create = INT64_MAX, last_finish = 0;
  int succeeded = 0, failed = 0, unfinished = 0;
  const Clock::time_point give_up =
      Clock::now() +
      std::chrono::seconds(absl::GetFlag(FLAGS_completion_timeout_s));
  next = 0;
  callers.clear();
  for (int t = 0; t < std::min(concurrency, 32); ++t) {
    callers.emplace_back([&, t] {
      v1::BillingGateway::Stub* stub = stubs[t % stubs.size()].get();
      for (int i = next++; i < n; i = next++) {
        if (ids[i].empty()) continue;
        v1::Operation op;
        bool finished = false;
        while (!finished && Clock::now() < give_up) {
          grpc::ClientContext ctx;
          ctx.set_deadline(std::chrono::system_clock::now() +
                           std::chrono::seconds(11));
          v1::GetOperationRequest req;
          req.set_operation_id(ids[i]);
          req.set_wait_timeout_ms(10000);
          if (!stub->GetOperation(&ctx, req, &op).ok()) continue;
          finished = op.state() == v1::OPERATION_STATE_SUCCEEDED ||
                     op.state() == v1::OPERATION_STATE_FAILED;
        }
        std::lock_guard<std::mutex> lock(mu);
        if (!finished) {
          ++unfinished;
          continue;
        }
        (op.state() == v1::OPERATION_STATE_SUCCEEDED ? succeeded : failed)++;
        to_done_s.push_back((op.finish_time_ms() - op.create_time_ms()) /
                            1000.0);
        first_create = std::min(first_create, op.create_time_ms());
        last_finish = std::max(last_finish, op.finish_time_ms());
      }
    });
  }
  for (auto& c : callers) c.join();
  std::printf("completed: %d succeeded, %d failed, %d unfinished\n", succeeded,
              failed, unfinished);
  std::printf(
      "acceptance -> completion s: p50 %.2f p95 %.2f p99 %.2f max %.2f\n",
      Percentile(to_done_s, 0.5), Percentile(to_done_s, 0.95),
      Percentile(to_done_s, 0.99), Percentile(to_done_s, 1.0));
  if (last_finish > first_create) {
    std::printf(
        "drain: %.1f operations/s (first acceptance to last completion %.1f "
        "s)\n",
        (succeeded + failed) / ((last_finish - first_create) / 1000.0),
        (last_finish - first_create) / 1000.0);
  }
  return unfinished == 0 ? 0 : 1;
}
