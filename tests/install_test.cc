// `cmake --install` into a temporary prefix: the four programs land in
// PREFIX/bin, the reference configuration in PREFIX/etc/billing-gateway (the
// same bytes as config/gateway.yaml), the Prometheus rules, dashboard and
// Kubernetes manifests in PREFIX/share/billing-gateway; the installed
// billing-gateway validates the installed configuration with --check-config
// (and refuses a broken copy), and no installed program points back into the
// build tree.
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

#include "gtest/gtest.h"
#include "tests/subprocess.h"

namespace bg::testing {
namespace {

std::string Slurp(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

// Runs `command` through the shell with stdout and stderr into `log`; the exit
// status.
int Shell(const std::string& command, const std::string& log) {
  const int rc = std::system((command + " > '" + log + "' 2>&1").c_str());
  return rc == -1 ? -1 : WEXITSTATUS(rc);
}

TEST(Install, PutsTheProgramsAndTheReferenceConfigUnderAPrefix) {
  std::string prefix = TestFile("prefix-XXXXXX");
  ASSERT_NE(mkdtemp(prefix.data()), nullptr);
  struct Cleanup {
    std::string dir;
    ~Cleanup() { std::filesystem::remove_all(dir); }
  } cleanup{prefix};
  const std::string log = prefix + ".log";

  ASSERT_EQ(Shell(std::string("'") + BG_CMAKE_COMMAND + "' --install '" +
                      BG_BINARY_DIR + "' --prefix '" + prefix + "'",
                  log),
            0)
      << Slurp(log);

  for (const char* program : {"billing-gateway", "killbill-sim",
                              "billing-loadgen", "billing-client"}) {
    const std::string path = prefix + "/bin/" + program;
    EXPECT_EQ(access(path.c_str(), X_OK), 0) << path << " not installed";
    // Built with no RUNPATH into the build tree (it would break once the
    // build directory is gone).
    if (access("/usr/bin/readelf", X_OK) == 0) {
      ASSERT_EQ(Shell("/usr/bin/readelf -d '" + path + "'", log), 0);
      EXPECT_EQ(Slurp(log).find(BG_BINARY_DIR), std::string::npos)
          << path << " refers to the build tree:\n"
          << Slurp(log);
    }
  }
  const std::string config = prefix + "/etc/billing-gateway/gateway.yaml";
  EXPECT_EQ(Slurp(config),
            Slurp(std::string(BG_SOURCE_DIR) + "/config/gateway.yaml"));
  for (const char* file :
       {"prometheus/billing-gateway.rules.yml", "grafana/billing-gateway.json",
        "kubernetes/deployment.yaml"}) {
    EXPECT_TRUE(
        std::filesystem::exists(prefix + "/share/billing-gateway/" + file))
        << file;
  }

  // The installed gateway checks the installed configuration.
  const std::string gateway = prefix + "/bin/billing-gateway";
  EXPECT_EQ(
      Shell("'" + gateway + "' --config '" + config + "' --check-config", log),
      0)
      << Slurp(log);
  const std::string printed = Slurp(log);
  EXPECT_NE(printed.find("127.0.0.1:50051"), std::string::npos) << printed;

  // ... and refuses a broken one, naming the key (exit status 2).
  const std::string broken = prefix + "/broken.yaml";
  std::ofstream(broken) << "queue:\n  capacity: -5\n";
  EXPECT_EQ(
      Shell("'" + gateway + "' --config '" + broken + "' --check-config", log),
      2)
      << Slurp(log);
  EXPECT_NE(Slurp(log).find("queue.capacity"), std::string::npos) << Slurp(log);
}

}  // namespace
}  // namespace bg::testing
