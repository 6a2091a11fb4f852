// Microbenchmarks (ns/op) of parsing what Kill Bill sends: the healthcheck body
// the health thread parses every poll, an account body, and a create's Location
// header.
#include <string>

#include "benchmark/benchmark.h"
#include "killbill_client/parse.h"

namespace {

const char kHealthcheck[] =
    R"json({"main.pool.ConnectivityCheck":{"healthy":true},)json"
    R"json("org.killbill.billing.server.healthchecks.KillbillHealthcheck":{"healthy":true,"message":"OK"},)json"
    R"json("org.killbill.billing.server.healthchecks.KillbillPluginsHealthcheck":{"healthy":true},)json"
    R"json("org.killbill.billing.server.healthchecks.KillbillQueuesHealthcheck":{"healthy":false,)json"
    R"json("message":"Growing queues: bus (0.51)","error":{"type":"java.lang.Throwable",)json"
    R"json("message":"java.lang.Throwable","stack":[],"cause":{"type":"java.lang.Throwable",)json"
    R"json("message":null,"stack":[]}},"bus":{"growing":true},"externalBus":{"growing":false},)json"
    R"json("invoice-service:next-billing-date-queue":{"growing":false}}})json";

const char kAccount[] =
    R"json({"accountId":"4a7b1e8c-0b1d-4b8e-9f0a-2d9b6a1c3e5f","name":"John Doe",)json"
    R"json("firstNameLength":null,"externalKey":"customer-42","email":"john@example.com",)json"
    R"json("billCycleDayLocal":0,"currency":"USD","parentAccountId":null,)json"
    R"json("isPaymentDelegatedToParent":false,"paymentMethodId":null,)json"
    R"json("referenceTime":"2018-02-05T22:39:53.000Z","timeZone":"UTC","address1":null,)json"
    R"json("address2":null,"postalCode":null,"company":null,"city":null,"state":null,)json"
    R"json("country":null,"locale":null,"phone":null,"notes":null,"isMigrated":false,)json"
    R"json("accountBalance":null,"accountCBA":null,"auditLogs":[]})json";

void BM_ParseHealthReport(benchmark::State& state) {
  for (auto _ : state) {
    auto report = bg::killbill::ParseHealthReport(500, kHealthcheck);
    benchmark::DoNotOptimize(report);
  }
}
BENCHMARK(BM_ParseHealthReport);

void BM_ParseAccount(benchmark::State& state) {
  for (auto _ : state) {
    auto account = bg::killbill::ParseAccount(kAccount);
    benchmark::DoNotOptimize(account);
  }
}
BENCHMARK(BM_ParseAccount);

void BM_AccountIdFromLocation(benchmark::State& state) {
  const std::string location =
      "http://127.0.0.1:8080/1.0/kb/accounts/"
      "4a7b1e8c-0b1d-4b8e-9f0a-2d9b6a1c3e5f";
  for (auto _ : state) {
    auto id = bg::killbill::AccountIdFromLocation(location);
    benchmark::DoNotOptimize(id);
  }
}
BENCHMARK(BM_AccountIdFromLocation);

}  // namespace
