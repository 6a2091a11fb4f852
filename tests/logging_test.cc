// gateway/logging.h: the json and text formatters and the request id, on a
// logger writing to a string.
#include "gateway/logging.h"

#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "spdlog/sinks/ostream_sink.h"
#include "spdlog/spdlog.h"

namespace bg::logging {
namespace {

std::vector<std::string> Lines(const std::string& text) {
  std::vector<std::string> lines;
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) lines.push_back(line);
  return lines;
}

class LoggingTest : public ::testing::Test {
 protected:
  std::shared_ptr<spdlog::logger> Logger(config::LogFormat format) {
    auto sink = std::make_shared<spdlog::sinks::ostream_sink_mt>(out_);
    auto logger = std::make_shared<spdlog::logger>("test-logger", sink);
    logger->set_formatter(MakeFormatter(format));
    logger->set_level(spdlog::level::trace);
    return logger;
  }
  std::ostringstream out_;
};

TEST_F(LoggingTest, JsonIsOneObjectPerLineWithTheRequestIdWhenKnown) {
  auto logger = Logger(config::LogFormat::kJson);
  logger->info("started on {}", "port 5");
  {
    ScopedRequestId id("req-7");
    logger->warn("quote \" and newline \n inside");
  }
  logger->error("after the scope");
  const std::vector<std::string> lines = Lines(out_.str());
  ASSERT_EQ(lines.size(), 3u) << out_.str();
  // Fields in a fixed order, time first (a human scanning the raw lines).
  EXPECT_EQ(lines[0].rfind("{\"time\":\"", 0), 0u) << lines[0];
  EXPECT_LT(lines[1].find("\"message\""), lines[1].find("\"request_id\""));
  const auto first = nlohmann::json::parse(lines[0]);
  EXPECT_EQ(first.at("message"), "started on port 5");
  EXPECT_EQ(first.at("level"), "info");
  EXPECT_EQ(first.at("logger"), "test-logger");
  EXPECT_FALSE(first.contains("request_id"));
  const std::string time = first.at("time");
  // 2026-11-30T05:12:00.123456Z
  EXPECT_EQ(time.size(), 27u) << time;
  EXPECT_EQ(time[10], 'T');
  EXPECT_EQ(time.back(), 'Z');
  const auto second = nlohmann::json::parse(lines[1]);
  EXPECT_EQ(second.at("message"), "quote \" and newline \n inside");
  EXPECT_EQ(second.at("request_id"), "req-7");
  EXPECT_EQ(second.at("level"), "warning");
  const auto third = nlohmann::json::parse(lines[2]);
  EXPECT_FALSE(third.contains("request_id"));
  EXPECT_EQ(third.at("level"), "error");
}

TEST_F(LoggingTest, JsonSurvivesInvalidUtf8) {
  auto logger = Logger(config::LogFormat::kJson);
  logger->info("bad byte \xff here");
  const std::vector<std::string> lines = Lines(out_.str());
  ASSERT_EQ(lines.size(), 1u);
  EXPECT_TRUE(nlohmann::json::accept(lines[0])) << lines[0];
}

TEST_F(LoggingTest, TextEndsWithTheRequestIdWhenKnown) {
  auto logger = Logger(config::LogFormat::kText);
  logger->info("plain");
  {
    ScopedRequestId id("abc");
    logger->info("tagged");
  }
  const std::vector<std::string> lines = Lines(out_.str());
  ASSERT_EQ(lines.size(), 2u);
  EXPECT_NE(lines[0].find("[test-logger] [info] plain"), std::string::npos)
      << lines[0];
  EXPECT_EQ(lines[0].find("request_id"), std::string::npos);
  EXPECT_NE(lines[1].find("tagged request_id=abc"), std::string::npos)
      << lines[1];
}

TEST(RequestIdTest, ScopesNestAndRestore) {
  EXPECT_EQ(CurrentRequestId(), "");
  {
    ScopedRequestId outer("a");
    {
      ScopedRequestId inner("b");
      EXPECT_EQ(CurrentRequestId(), "b");
    }
    EXPECT_EQ(CurrentRequestId(), "a");
  }
  EXPECT_EQ(CurrentRequestId(), "");
}

TEST(RequestIdTest, SanitizeCapsAndReplacesControlCharacters) {
  EXPECT_EQ(SanitizeRequestId("ok-1"), "ok-1");
  EXPECT_EQ(SanitizeRequestId("a\nb\x01"), "a?b?");
  EXPECT_EQ(SanitizeRequestId(std::string(500, 'x')).size(), 128u);
}

}  // namespace
}  // namespace bg::logging
