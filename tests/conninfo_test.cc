// The database URI as libpq reads it (issue 13, defect 4): every secret
// redacted whatever characters it holds or however its option is spelled; a
// URI libpq cannot parse refused without echoing it; libpq's own messages
// scrubbed before they reach a log or a status.
#include "durable/conninfo.h"

#include <string>

#include "common/clock.h"
#include "config/gateway_config.h"
#include "durable/pg_session.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace bg::durable {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

constexpr char kSecret[] = "S3CRET";

TEST(ConnInfo, RedactedUriAndTargetHoldNoSecret) {
  struct Case {
    std::string uri, redacted, target;
  };
  const Case cases[] = {
      {"postgresql://u:S3CRET@h:5432/db", "postgresql://u:<redacted>@h:5432/db",
       "postgresql://h:5432/db"},
      // A password passed as a parameter is a password all the same.
      {"postgresql://u@h/db?sslmode=require&password=S3CRET",
       "postgresql://u:<redacted>@h/db?sslmode=require", "postgresql://h/db"},
      {"postgres://h", "postgres://h", "postgres://h"},
      {"postgresql://u:S3CRET@[::1]:5/d", "postgresql://u:<redacted>@[::1]:5/d",
       "postgresql://[::1]:5/d"},
      // Reserved characters inside the password: '?' and '#' are the
      // password's to libpq, not a query or a fragment.
      {"postgresql://u:S3CRET?x@h/db", "postgresql://u:<redacted>@h/db",
       "postgresql://h/db"},
      {"postgresql://u:S3CRET#x@h/db", "postgresql://u:<redacted>@h/db",
       "postgresql://h/db"},
      {"postgresql://u:S3%2FCRET@h/db", "postgresql://u:<redacted>@h/db",
       "postgresql://h/db"},
      // Secrets other than `password`, and a percent-encoded key name.
      {"postgresql://u@h/db?sslpassword=S3CRET",
       "postgresql://u@h/db?sslpassword=<redacted>", "postgresql://h/db"},
      {"postgresql://u@h/db?pass%77ord=S3CRET",
       "postgresql://u:<redacted>@h/db", "postgresql://h/db"},
      // Several hosts.
      {"postgresql://u:S3CRET@h1:5,h2:6/db",
       "postgresql://u:<redacted>@h1:5,h2:6/db", "postgresql://h1:5,h2:6/db"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.uri);
    EXPECT_TRUE(ParseConnInfo(c.uri).ok()) << ParseConnInfo(c.uri).status();
    EXPECT_EQ(RedactedUri(c.uri), c.redacted);
    EXPECT_EQ(UriTarget(c.uri), c.target);
    EXPECT_EQ(config::RedactDatabaseUrl(c.uri), c.redacted);
  }
}

TEST(ConnInfo, WhatLibpqCannotUseIsRefusedWithoutEchoingIt) {
  for (const char* uri : {
           "postgresql://u:S3CRET@[::1/db",  // unterminated IPv6 address
           "postgresql://u:S3/CRET@h/db",    // '/' read as the path: host "u",
                                             // port "S3", dbname "CRET@h/db"
           "postgresql://u:12/S3CRET@h/db",  // the same with a numeric "port"
           "postgresql://h/db?nosuchoption=S3CRET",
           "mysql://u:S3CRET@h/db",
       }) {
    SCOPED_TRACE(uri);
    absl::StatusOr<ConnInfo> info = ParseConnInfo(uri);
    ASSERT_FALSE(info.ok());
    EXPECT_THAT(std::string(info.status().message()), Not(HasSubstr(kSecret)));
    EXPECT_THAT(RedactedUri(uri), Not(HasSubstr(kSecret)));
    EXPECT_THAT(UriTarget(uri), Not(HasSubstr(kSecret)));
    // The config refuses it, naming the key and not the value.
    absl::StatusOr<config::GatewayConfig> config =
        config::ParseConfig(std::string("database:\n  url: \"") + uri + "\"\n",
                            "db.yaml", config::Environment::Empty());
    ASSERT_FALSE(config.ok());
    EXPECT_THAT(std::string(config.status().message()),
                HasSubstr("db.yaml:2:8: database.url"));
    EXPECT_THAT(std::string(config.status().message()),
                Not(HasSubstr(kSecret)));
  }
}

TEST(ConnInfo, LibpqMessagesAreScrubbed) {
  EXPECT_EQ(ScrubSecrets("bad URI: \"postgresql://u:S3CRET@[::1/db\"",
                         "postgresql://u:S3CRET@[::1/db"),
            "bad URI: \"<redacted>\"");
  EXPECT_EQ(ScrubSecrets("password S3CRET?x rejected",
                         "postgresql://u:S3CRET?x@h/db"),
            "password <redacted> rejected");
}

TEST(ConnInfo, ASessionOnAnUnparsableUriNeverSaysTheSecret) {
  // Past the config (a URI handed to the session directly): libpq's own error
  // quotes the whole URI; what the session answers must not.
  PgSessionOptions options;
  options.url = "postgresql://u:S3CRET@[::1/db";
  PgSession session(SteadyClock::Instance(), options);
  absl::StatusOr<PgResult> r = session.Exec("SELECT 1");
  ASSERT_FALSE(r.ok());
  EXPECT_THAT(std::string(r.status().message()), Not(HasSubstr(kSecret)))
      << r.status();
}

}  // namespace
}  // namespace bg::durable
