# Reliability (issue 6): the gateway in front of every killbill-sim fault mode, SIGTERM with
# hundreds of queued calls, a table of malformed gRPC requests, and the Kill Bill client
# against an impostor that answers badly. The first three start billing-gateway as a process
# and embed the sim in the test (bg_sim), so faults are injected without HTTP round trips.
# Single labels: bg_test passes LABELS unquoted.
bg_test(bad_killbill_answer_test
  SOURCES ${CMAKE_CURRENT_LIST_DIR}/bad_killbill_answer_test.cc
  LIBS bg_killbill_client bg_proto PkgConfig::HTTPLIB Threads::Threads
  LABELS integration)
# Its ThroughGateway tests put billing-gateway in front of the impostor.
target_compile_definitions(bad_killbill_answer_test PRIVATE
  BG_GATEWAY_BINARY="$<TARGET_FILE:billing-gateway>")
add_dependencies(bad_killbill_answer_test billing-gateway)

foreach(test fault_test shutdown_test bad_request_test subscription_e2e_test)
  bg_test(${test}
    SOURCES ${CMAKE_CURRENT_LIST_DIR}/${test}.cc
    LIBS bg_sim bg_proto bg_health_proto PkgConfig::HTTPLIB nlohmann_json::nlohmann_json
         absl::strings
    LABELS e2e)
  target_compile_definitions(${test} PRIVATE
    BG_GATEWAY_BINARY="$<TARGET_FILE:billing-gateway>")
  add_dependencies(${test} billing-gateway)
endforeach()
