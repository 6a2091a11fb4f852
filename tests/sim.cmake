# killbill-sim tests: model, healthcheck and metrics-meter arithmetic on FakeClock (unit),
# the in-process HTTP server on port 0 (integration).
# Every GoogleTest name starts with "Sim": run them all with `ctest -R Sim`; the official
# client's check at the end is `ctest -R sim_npm_client_test`.
# (Single labels: bg_test passes LABELS unquoted, so a second label would be lost.)
bg_test(sim_model_test
  SOURCES ${CMAKE_CURRENT_LIST_DIR}/sim_model_test.cc
  LIBS bg_sim
  LABELS unit)
bg_test(sim_options_test
  SOURCES ${CMAKE_CURRENT_LIST_DIR}/sim_options_test.cc
  LIBS bg_sim
  LABELS unit)
bg_test(sim_server_test
  SOURCES ${CMAKE_CURRENT_LIST_DIR}/sim_server_test.cc
  LIBS bg_sim PkgConfig::HTTPLIB nlohmann_json::nlohmann_json absl::strings
  LABELS integration)
bg_test(sim_metrics_test
  SOURCES ${CMAKE_CURRENT_LIST_DIR}/sim_metrics_test.cc
  LIBS bg_sim
  LABELS unit)
# The kubelet's probes: ProbeModel on FakeClock, KillBillSim on a millisecond schedule.
bg_test(sim_probe_test
  SOURCES ${CMAKE_CURRENT_LIST_DIR}/sim_probe_test.cc
  LIBS bg_sim PkgConfig::HTTPLIB nlohmann_json::nlohmann_json
  LABELS integration)
bg_test(sim_subscriptions_test
  SOURCES ${CMAKE_CURRENT_LIST_DIR}/sim_subscriptions_test.cc
  LIBS bg_sim PkgConfig::HTTPLIB nlohmann_json::nlohmann_json absl::strings absl::time
  LABELS integration)
# Kill Bill's official JavaScript client (npm `killbill`, pinned in npm_client/package-lock.json)
# against the killbill-sim binary: tests/npm_client/run.sh. Needs node and npm (fails without
# them) and, the first time in a build directory, the npm registry (npm ci into
# <build>/npm_client). Run it with `ctest -R sim_npm_client_test`.
add_test(NAME sim_npm_client_test
  COMMAND bash ${CMAKE_CURRENT_LIST_DIR}/npm_client/run.sh ${PROJECT_BINARY_DIR}
          $<TARGET_FILE:killbill-sim>)
set_tests_properties(sim_npm_client_test PROPERTIES LABELS integration TIMEOUT 300)
