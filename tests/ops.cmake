# Operating the gateway (issue 14 items 2, 6, 8): the Prometheus rules, the Grafana dashboard
# and a real Prometheus against a running gateway; the Kubernetes manifests against the
# configuration and the docs; `cmake --install` into a temporary prefix. The tools they
# need (promtool and prometheus from Debian's `prometheus`, PostgreSQL) are installed by
# scripts/setup.sh; a missing tool fails these tests, it never skips them.

# promtool: the rules are valid, the scrape config is valid (and loads the rules), and the
# rules' unit tests (tests/prometheus/rules_test.yml) pass. `promtool` is looked up on PATH
# when the test runs: missing, CTest reports the test as failed (Not Run).
add_test(NAME PrometheusRules.CheckRules
  COMMAND promtool check rules ${PROJECT_SOURCE_DIR}/deploy/prometheus/billing-gateway.rules.yml)
add_test(NAME PrometheusRules.CheckScrapeConfig
  COMMAND promtool check config ${PROJECT_SOURCE_DIR}/deploy/prometheus/prometheus.yml)
add_test(NAME PrometheusRules.UnitTests
  COMMAND promtool test rules ${CMAKE_CURRENT_LIST_DIR}/prometheus/rules_test.yml
  WORKING_DIRECTORY ${PROJECT_SOURCE_DIR})
set_tests_properties(PrometheusRules.CheckRules PrometheusRules.CheckScrapeConfig
  PrometheusRules.UnitTests PROPERTIES LABELS ops TIMEOUT 60)

# The dashboard's and the rules' series against live gateways (in-memory and durable on a
# throwaway PostgreSQL), and Debian's prometheus scraping a gateway.
foreach(t dashboard_series_test prometheus_test)
  bg_test(${t} SOURCES ${t}.cc
          LIBS bg_proto PkgConfig::HTTPLIB nlohmann_json::nlohmann_json yaml-cpp
               PostgreSQL::PostgreSQL
          LABELS ops)
  target_compile_definitions(${t} PRIVATE
    BG_SOURCE_DIR="${PROJECT_SOURCE_DIR}"
    BG_SIM_BINARY="$<TARGET_FILE:killbill-sim>"
    BG_GATEWAY_BINARY="$<TARGET_FILE:billing-gateway>")
  add_dependencies(${t} killbill-sim billing-gateway)
endforeach()

# deploy/kubernetes/ and deploy/prometheus/prometheus.yml against config/gateway.yaml, the
# README and the gateway itself; README and docs/ stand alone.
bg_test(deploy_test SOURCES deploy_test.cc LIBS yaml-cpp LABELS ops)
target_compile_definitions(deploy_test PRIVATE
  BG_SOURCE_DIR="${PROJECT_SOURCE_DIR}"
  BG_GATEWAY_BINARY="$<TARGET_FILE:billing-gateway>")
add_dependencies(deploy_test billing-gateway)

# cmake --install into a temporary prefix, then the installed billing-gateway --check-config.
# Depends on every installed program, so sanitizer builds (which build test targets only)
# build them too.
bg_test(install_test SOURCES install_test.cc LABELS ops)
target_compile_definitions(install_test PRIVATE
  BG_SOURCE_DIR="${PROJECT_SOURCE_DIR}"
  BG_BINARY_DIR="${PROJECT_BINARY_DIR}"
  BG_CMAKE_COMMAND="${CMAKE_COMMAND}")
add_dependencies(install_test billing-gateway killbill-sim billing-loadgen billing-client)
