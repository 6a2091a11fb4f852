// `--help` of every binary lists each flag its main file defines, on one line
// each, and exits 0 (Abseil's own --help printed "No flags matched" for a
// main.cc). The flags are read from the main file's ABSL_FLAG definitions.
#include <fstream>
#include <regex>
#include <sstream>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "tests/subprocess.h"

namespace bg {
namespace {

// The names of the ABSL_FLAG definitions in `source` (a path under the source
// tree).
std::vector<std::string> FlagsDefinedIn(const std::string& source) {
  std::ifstream in(std::string(BG_SOURCE_DIR) + "/" + source);
  std::stringstream text;
  text << in.rdbuf();
  const std::string s = text.str();
  const std::regex def(R"(ABSL_FLAG\(\s*[\w:]+\s*,\s*(\w+)\s*,)");
  std::vector<std::string> names;
  for (auto it = std::sregex_iterator(s.begin(), s.end(), def);
       it != std::sregex_iterator(); ++it) {
    names.push_back((*it)[1].str());
  }
  return names;
}

void ExpectHelpListsEachFlag(const std::string& binary,
                             const std::string& main_file) {
  const std::vector<std::string> flags = FlagsDefinedIn(main_file);
  ASSERT_GE(flags.size(), 2u) << main_file;
  testing::Subprocess process({binary, "--help"}, /*capture_stderr=*/true);
  const std::string out = process.ReadAll(std::chrono::seconds(20));
  EXPECT_EQ(process.Terminate(std::chrono::seconds(5)).value_or(-1), 0);
  EXPECT_EQ(out.find("No flags matched"), std::string::npos) << out;
  std::vector<std::string> lines;
  std::istringstream in(out);
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  for (const std::string& flag : flags) {
    std::string dashed = flag;
    for (char& c : dashed) {
      if (c == '_') c = '-';
    }
    int found = 0;
    for (const std::string& line : lines) {
      if (line.rfind("  --" + dashed + " ", 0) == 0) ++found;
    }
    EXPECT_EQ(found, 1) << "--" << dashed << " in " << binary << ":\n" << out;
  }
}

TEST(HelpTest, Gateway) {
  ExpectHelpListsEachFlag(BG_GATEWAY_BINARY, "gateway/main.cc");
}
TEST(HelpTest, KillBillSim) {
  ExpectHelpListsEachFlag(BG_SIM_BINARY, "bench/killbill_sim/main.cc");
}
TEST(HelpTest, Loadgen) {
  ExpectHelpListsEachFlag(BG_LOADGEN_BINARY, "bench/loadgen/main.cc");
}
TEST(HelpTest, Client) {
  ExpectHelpListsEachFlag(BG_CLIENT_BINARY, "bench/client/billing_client.cc");
}

}  // namespace
}  // namespace bg
