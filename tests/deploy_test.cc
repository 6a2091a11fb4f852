// The Kubernetes manifests (deploy/kubernetes/), the Prometheus scrape config
// (deploy/prometheus/prometheus.yml), the reference configuration
// (config/gateway.yaml), the README and docs/ agree: ports, paths, names and
// the environment variables the gateway reads. The ConfigMap's configuration
// is validated by the built billing-gateway itself, and every environment
// variable the Deployment sets is shown to be read by it (set empty, the
// gateway refuses to start naming it). Also: README and docs/ stand alone (no
// link to a file the repository lacks), and no file of the repository refers
// to the notes it was built from, which live outside it.
#include <stdlib.h>
#include <sys/wait.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <regex>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "tests/subprocess.h"
#include "yaml-cpp/yaml.h"

namespace bg::testing {
namespace {

namespace fs = std::filesystem;
const std::string kSource = BG_SOURCE_DIR;

std::string Slurp(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

int PortOf(const std::string& host_port) {
  return std::stoi(host_port.substr(host_port.rfind(':') + 1));
}

// Seconds of a duration written like "20s", "1m", "1m30s".
int Seconds(const std::string& d) {
  int total = 0;
  std::regex part(R"((\d+)(h|m|s))");
  for (std::sregex_iterator it(d.begin(), d.end(), part), end; it != end;
       ++it) {
    const int n = std::stoi((*it)[1]);
    const char unit = (*it)[2].str()[0];
    total += unit == 'h' ? n * 3600 : unit == 'm' ? n * 60 : n;
  }
  return total;
}

// Every document of every manifest, by kind and name.
std::map<std::string, YAML::Node> Manifests() {
  std::map<std::string, YAML::Node> out;
  for (const auto& entry :
       fs::directory_iterator(kSource + "/deploy/kubernetes")) {
    for (const YAML::Node& doc : YAML::LoadAllFromFile(entry.path().string())) {
      if (!doc["kind"]) continue;
      out[doc["kind"].as<std::string>() + "/" +
          doc["metadata"]["name"].as<std::string>()] = doc;
    }
  }
  return out;
}

// Runs `command` with output to `log`; the exit status.
int Shell(const std::string& command, const std::string& log) {
  const int rc = std::system((command + " > '" + log + "' 2>&1").c_str());
  return rc == -1 ? -1 : WEXITSTATUS(rc);
}

class DeployTest : public ::testing::Test {
 protected:
  void SetUp() override {
    manifests_ = Manifests();
    ASSERT_EQ(manifests_.count("Deployment/billing-gateway"), 1u);
    ASSERT_EQ(manifests_.count("ConfigMap/billing-gateway-config"), 1u);
    ASSERT_EQ(manifests_.count("Secret/billing-gateway-killbill"), 1u);
    ASSERT_EQ(manifests_.count("Service/billing-gateway"), 1u);
    ASSERT_EQ(manifests_.count("Service/billing-gateway-headless"), 1u);
    deployment_ = manifests_["Deployment/billing-gateway"];
    container_ = deployment_["spec"]["template"]["spec"]["containers"][0];
    for (const auto& p : container_["ports"]) {
      container_ports_[p["name"].as<std::string>()] =
          p["containerPort"].as<int>();
    }
    config_text_ =
        manifests_["ConfigMap/billing-gateway-config"]["data"]["gateway.yaml"]
            .as<std::string>();
    config_ = YAML::Load(config_text_);
    reference_ = YAML::LoadFile(kSource + "/config/gateway.yaml");
    readme_ = Slurp(kSource + "/README.md");
    operating_ = Slurp(kSource + "/docs/operating.md");
  }

  std::map<std::string, YAML::Node> manifests_;
  YAML::Node deployment_, container_, config_, reference_;
  std::map<std::string, int> container_ports_;
  std::string config_text_, readme_, operating_;
};

TEST_F(DeployTest, PortsAgreeWithTheConfigurationTheReferenceAndTheReadme) {
  const std::string grpc_listen = config_["server"]["listen"].as<std::string>();
  const std::string metrics_listen =
      config_["metrics"]["listen"].as<std::string>();
  // In a pod the listeners must bind beyond loopback.
  EXPECT_EQ(grpc_listen.rfind("0.0.0.0:", 0), 0u) << grpc_listen;
  EXPECT_EQ(metrics_listen.rfind("0.0.0.0:", 0), 0u) << metrics_listen;
  const int grpc = PortOf(grpc_listen);
  const int metrics = PortOf(metrics_listen);
  // The reference config's ports.
  EXPECT_EQ(grpc, PortOf(reference_["server"]["listen"].as<std::string>()));
  EXPECT_EQ(metrics, PortOf(reference_["metrics"]["listen"].as<std::string>()));
  // The container's named ports and both probes.
  EXPECT_EQ(container_ports_["grpc"], grpc);
  EXPECT_EQ(container_ports_["metrics"], metrics);
  for (const char* probe : {"readinessProbe", "livenessProbe"}) {
    ASSERT_TRUE(container_[probe]["grpc"]) << probe << " is not a gRPC probe";
    EXPECT_EQ(container_[probe]["grpc"]["port"].as<int>(), grpc) << probe;
  }
  // Both Services route to those ports, select the pods, and name them so
  // the scrape config finds the metrics port.
  const YAML::Node pod_labels =
      deployment_["spec"]["template"]["metadata"]["labels"];
  for (const char* name :
       {"Service/billing-gateway", "Service/billing-gateway-headless"}) {
    const YAML::Node service = manifests_[name];
    for (const auto& kv : service["spec"]["selector"]) {
      const std::string key = kv.first.as<std::string>();
      ASSERT_TRUE(pod_labels[key]) << name << " selects on " << key;
      EXPECT_EQ(pod_labels[key].as<std::string>(), kv.second.as<std::string>())
          << name;
    }
    std::map<std::string, int> ports;
    for (const auto& p : service["spec"]["ports"]) {
      const std::string target = p["targetPort"].as<std::string>();
      ASSERT_EQ(container_ports_.count(target), 1u) << name << " " << target;
      EXPECT_EQ(p["port"].as<int>(), container_ports_[target]) << name;
      ports[p["name"].as<std::string>()] = container_ports_[target];
    }
    EXPECT_EQ(ports["grpc"], grpc) << name;
    EXPECT_EQ(ports["metrics"], metrics) << name;
  }
  // The README's and the operating guide's Kubernetes advice names them.
  for (const std::string* doc : {&readme_, &operating_}) {
    EXPECT_NE(doc->find("0.0.0.0:" + std::to_string(grpc)), std::string::npos);
    EXPECT_NE(doc->find("deploy/kubernetes/"), std::string::npos);
  }
  EXPECT_NE(operating_.find(std::to_string(metrics)), std::string::npos);
}

TEST_F(DeployTest, ConfigMountAndShutdownGraceFitThePod) {
  // --config names the ConfigMap's key where the volume is mounted.
  std::vector<std::string> args;
  for (const auto& a : container_["args"]) args.push_back(a.as<std::string>());
  ASSERT_EQ(args.size(), 2u);
  EXPECT_EQ(args[0], "--config");
  const fs::path config_path = args[1];
  const YAML::Node mount = container_["volumeMounts"][0];
  EXPECT_EQ(config_path.parent_path().string(),
            mount["mountPath"].as<std::string>());
  const YAML::Node volume =
      deployment_["spec"]["template"]["spec"]["volumes"][0];
  EXPECT_EQ(volume["name"].as<std::string>(), mount["name"].as<std::string>());
  EXPECT_EQ(volume["configMap"]["name"].as<std::string>(),
            "billing-gateway-config");
  EXPECT_EQ(config_path.filename().string(), "gateway.yaml");
  // The reference config is installed under etc/billing-gateway too.
  EXPECT_EQ(config_path.parent_path().filename().string(), "billing-gateway");
  // The kubelet's SIGKILL comes after the gateway's drain.
  const int grace =
      Seconds(config_["server"]["shutdown_grace"].as<std::string>());
  EXPECT_GT(grace, 0);
  EXPECT_GT(
      deployment_["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
          .as<int>(),
      grace);
}

TEST_F(DeployTest, TheGatewayAcceptsTheConfigMapAndReadsEveryVariableSet) {
  const std::string file = TestFile("configmap-gateway.yaml");
  const std::string log = TestFile("check.log");
  std::ofstream(file) << config_text_;
  const std::string check = std::string("'") + BG_GATEWAY_BINARY +
                            "' --config '" + file + "' --check-config";
  ASSERT_EQ(Shell(check, log), 0) << Slurp(log);

  // Each variable comes from the Secret, under a key it has (or optional),
  // is named in the README and in docs/operating.md, and is read by the
  // gateway: set empty, it refuses to start and names it.
  const YAML::Node secret = manifests_["Secret/billing-gateway-killbill"];
  int variables = 0;
  for (const auto& env : container_["env"]) {
    const std::string name = env["name"].as<std::string>();
    SCOPED_TRACE(name);
    ++variables;
    const YAML::Node ref = env["valueFrom"]["secretKeyRef"];
    ASSERT_TRUE(ref) << "secrets come from the Secret";
    EXPECT_EQ(ref["name"].as<std::string>(),
              secret["metadata"]["name"].as<std::string>());
    const std::string key = ref["key"].as<std::string>();
    EXPECT_TRUE(secret["stringData"][key] ||
                (ref["optional"] && ref["optional"].as<bool>()))
        << key;
    EXPECT_NE(readme_.find(name), std::string::npos) << "README lacks it";
    EXPECT_NE(operating_.find(name), std::string::npos)
        << "docs/operating.md lacks it";
    EXPECT_EQ(Shell(name + "= " + check, log), 2) << Slurp(log);
    EXPECT_NE(Slurp(log).find("environment variable " + name),
              std::string::npos)
        << Slurp(log);
  }
  EXPECT_EQ(variables, 5);
}

TEST_F(DeployTest, ScrapeConfigFindsTheMetricsPortOfTheHeadlessService) {
  const YAML::Node prometheus =
      YAML::LoadFile(kSource + "/deploy/prometheus/prometheus.yml");
  const YAML::Node job = prometheus["scrape_configs"][0];
  EXPECT_EQ(job["job_name"].as<std::string>(), "billing-gateway");
  // The rules' "down" alert watches that job.
  EXPECT_NE(Slurp(kSource + "/deploy/prometheus/billing-gateway.rules.yml")
                .find("up{job=\"billing-gateway\"}"),
            std::string::npos);
  // The gateway serves /metrics (README says so, and the dashboard test reads
  // it there).
  EXPECT_EQ(job["metrics_path"].as<std::string>(), "/metrics");
  EXPECT_NE(readme_.find("/metrics"), std::string::npos);
  const YAML::Node dns = job["dns_sd_configs"][0];
  EXPECT_EQ(dns["port"].as<int>(),
            PortOf(config_["metrics"]["listen"].as<std::string>()));
  const std::string name = dns["names"][0].as<std::string>();
  EXPECT_EQ(name.substr(0, name.find('.')), "billing-gateway-headless");
  EXPECT_EQ(manifests_["Service/billing-gateway-headless"]["spec"]["clusterIP"]
                .as<std::string>(),
            "None");
  // Its rule file is the repository's, next to it.
  EXPECT_EQ(prometheus["rule_files"][0].as<std::string>(),
            "billing-gateway.rules.yml");
}

// README.md and docs/*.md: every relative link resolves to a file of the
// repository, and no text points outside it (the notes the project was built
// from are not part of it).
TEST(Docs, StandAlone) {
  std::vector<fs::path> docs = {fs::path(kSource) / "README.md"};
  for (const auto& e : fs::directory_iterator(kSource + "/docs"))
    docs.push_back(e.path());
  ASSERT_GE(docs.size(),
            5u);  // README + problem, killbill, architecture, operating
  const std::regex link(R"(\]\(([^)\s]+)\))");
  const std::regex repo_path(
      "`((?:docs|deploy|bench|config|tests|scripts|durable|proto|flow|dispatch|"
      "service|killbill_client|metrics|gateway|common|clients|fuzz)/"
      "[A-Za-z0-9_./-]+)`");
  const std::string outside[] = {std::string("..") + "/shared",
                                 std::string("/work") + "/shared"};
  for (const fs::path& doc : docs) {
    SCOPED_TRACE(doc.string());
    const std::string text = Slurp(doc.string());
    for (const std::string& bad : outside)
      EXPECT_EQ(text.find(bad), std::string::npos) << bad;
    for (std::sregex_iterator it(text.begin(), text.end(), link), end;
         it != end; ++it) {
      std::string target = (*it)[1].str();
      if (target.rfind("http", 0) == 0 || target[0] == '#') continue;
      target = target.substr(0, target.find('#'));
      EXPECT_TRUE(fs::exists(doc.parent_path() / target)) << target;
    }
    // Repository paths in backquotes (root-relative) exist, except the output
    // directories runs create under bench/results/.
    for (std::sregex_iterator it(text.begin(), text.end(), repo_path), end;
         it != end; ++it) {
      const std::string path = (*it)[1].str();
      if (path.rfind("bench/results/", 0) == 0) continue;
      EXPECT_TRUE(fs::exists(fs::path(kSource) / path)) << path;
    }
  }
  // Nor does any other file of the repository (build trees, .git and
  // node_modules left out).
  for (auto it = fs::recursive_directory_iterator(kSource);
       it != fs::recursive_directory_iterator(); ++it) {
    const std::string name = it->path().filename().string();
    if (it->is_directory() && (name[0] == '.' || name.rfind("build", 0) == 0 ||
                               name == "node_modules")) {
      it.disable_recursion_pending();
      continue;
    }
    if (!it->is_regular_file() || it->file_size() > (4 << 20)) continue;
    const std::string text = Slurp(it->path().string());
    for (const std::string& bad : outside)
      EXPECT_EQ(text.find(bad), std::string::npos) << it->path() << ": " << bad;
  }
  // docs/ is where a user starts: the four guides exist.
  for (const char* page :
       {"problem.md", "killbill.md", "architecture.md", "operating.md"}) {
    EXPECT_TRUE(fs::exists(fs::path(kSource) / "docs" / page)) << page;
  }
}

}  // namespace
}  // namespace bg::testing
