// Stored requests that the edge would refuse (issue 13, defect 7): rows written
// straight into the database (by another version, or altered there) must end
// FAILED with an error naming the field, without a Kill Bill call and without
// crashing the replica; a row that cannot be parsed at all ends FAILED too. A
// valid row next to them still succeeds.
#include <chrono>
#include <string>
#include <vector>

#include "durable/operation_store.h"
#include "durable/pg_session.h"
#include "gtest/gtest.h"
#include "tests/durable_harness.h"
#include "tests/gateway_process.h"
#include "tests/pg_fixture.h"

namespace bg::testing {
namespace {

using namespace std::chrono_literals;

TEST(DurableStoredRequest, InvalidStoredRequestsEndFailedWithoutAKillBillCall) {
  if (auto skip = PgFixture::SkipReason()) GTEST_SKIP() << *skip;
  PgFixture pg;
  ASSERT_EQ(pg.Start(), "");
  Sim sim = Sim::Ample();
  ASSERT_NE(sim.port, 0);

  durable::PgSessionOptions options;
  options.url = pg.Url();
  durable::PgSession session(SteadyClock::Instance(), options);
  durable::OperationStore store(&session);
  ASSERT_TRUE(store.Migrate().ok());

  v1::CreateAccountRequest bad_email = CreateRequest("stored-bad-email");
  bad_email.set_email("not an email");
  v1::CreateAccountRequest good = CreateRequest("stored-good");
  v1::CreateSubscriptionRequest no_plan;
  no_plan.mutable_account()->set_external_key("stored-good");
  no_plan.set_instance_id("stored-instance");
  std::vector<durable::Submission> rows = {
      {"stored-bad-email", bad_email.SerializeAsString()},
      {"stored-unparsable", std::string("\xff\xff\xff", 3)},
      {"stored-instance", no_plan.SerializeAsString(),
       durable::OperationKind::kCreateSubscription, "stored-good"},
      {"stored-good", good.SerializeAsString()},
  };
  auto written = store.SubmitBatch(rows);
  ASSERT_TRUE(written.ok()) << written.status();

  Gateway gateway =
      Gateway::Start(TestFile("stored.yaml"),
                     "server:\n  listen: 127.0.0.1:0\n  shutdown_grace: 1s\n"
                     "metrics:\n  listen: 127.0.0.1:0\n"
                     "logging:\n  level: warn\n"
                     "killbill:\n  url: http://127.0.0.1:" +
                         std::to_string(sim.port) +
                         "\n"
                         "database:\n  url: \"" +
                         pg.Url() + "\"\n  poll_interval: 50ms\n");
  ASSERT_TRUE(gateway.ok()) << gateway.process->output();

  struct Expect {
    grpc::StatusCode code;
    std::string field;  // The error message starts with it.
  };
  const Expect expected[] = {
      {grpc::StatusCode::INVALID_ARGUMENT, "email"},
      {grpc::StatusCode::INTERNAL, "stored request cannot be parsed"},
      {grpc::StatusCode::INVALID_ARGUMENT, "plan_name"},
  };
  for (size_t i = 0; i < rows.size(); ++i) {
    SCOPED_TRACE(rows[i].external_key);
    v1::Operation op;
    ASSERT_TRUE(WaitFinished(gateway.stub.get(),
                             std::to_string((*written)[i].id), 30s, &op));
    if (i == 3) {
      EXPECT_EQ(op.state(), v1::OPERATION_STATE_SUCCEEDED) << op.DebugString();
      continue;
    }
    EXPECT_EQ(op.state(), v1::OPERATION_STATE_FAILED) << op.DebugString();
    EXPECT_EQ(op.error().code(), static_cast<int>(expected[i].code))
        << op.DebugString();
    EXPECT_EQ(op.error().message().rfind(expected[i].field, 0), 0u)
        << op.DebugString();
  }
  // Only the valid row reached Kill Bill.
  EXPECT_EQ(sim.Stats()["accounts_created"].get<int>(), 1) << sim.Stats();
}

}  // namespace
}  // namespace bg::testing
