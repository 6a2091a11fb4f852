bg_test(e2e_test SOURCES e2e_test.cc
        LIBS bg_proto bg_health_proto bg_reflection_proto PkgConfig::HTTPLIB
             nlohmann_json::nlohmann_json
        LABELS e2e)
target_compile_definitions(e2e_test PRIVATE
  BG_SIM_BINARY="$<TARGET_FILE:killbill-sim>"
  BG_GATEWAY_BINARY="$<TARGET_FILE:billing-gateway>")
add_dependencies(e2e_test killbill-sim billing-gateway)

# TLS and mutual TLS on the gRPC server, HTTPS with CA verification to Kill Bill. Has its
# own main() (a test environment makes the certificates once).
add_executable(tls_test tls_test.cc)
target_link_libraries(tls_test PRIVATE bg_proto bg_health_proto bg_killbill_client
                      PkgConfig::HTTPLIB GTest::gtest)
target_include_directories(tls_test PRIVATE ${PROJECT_SOURCE_DIR})
target_compile_definitions(tls_test PRIVATE BG_GATEWAY_BINARY="$<TARGET_FILE:billing-gateway>")
bg_warnings(tls_test)
add_dependencies(tls_test billing-gateway)
gtest_discover_tests(tls_test WORKING_DIRECTORY ${PROJECT_SOURCE_DIR} PROPERTIES LABELS e2e
                     DISCOVERY_TIMEOUT 60)

bg_test(secrets_test SOURCES secrets_test.cc
        LIBS bg_proto bg_sim PkgConfig::HTTPLIB LABELS e2e)
target_compile_definitions(secrets_test PRIVATE BG_GATEWAY_BINARY="$<TARGET_FILE:billing-gateway>")
add_dependencies(secrets_test billing-gateway)

# SIGHUP reload under load, bad and restart-only files, and the log formats, on the processes.
bg_test(gateway_reload_test SOURCES gateway_reload_test.cc
        LIBS bg_proto PkgConfig::HTTPLIB nlohmann_json::nlohmann_json
        LABELS e2e)
target_compile_definitions(gateway_reload_test PRIVATE
  BG_SIM_BINARY="$<TARGET_FILE:killbill-sim>"
  BG_GATEWAY_BINARY="$<TARGET_FILE:billing-gateway>")
add_dependencies(gateway_reload_test killbill-sim billing-gateway)

# The json and text log formatters and the request id (gateway/logging.h).
bg_test(logging_test SOURCES logging_test.cc
        LIBS bg_logging nlohmann_json::nlohmann_json LABELS unit)

# --help of each binary names every flag its main file defines.
bg_test(help_test SOURCES help_test.cc LABELS e2e)
target_compile_definitions(help_test PRIVATE
  BG_SOURCE_DIR="${PROJECT_SOURCE_DIR}"
  BG_SIM_BINARY="$<TARGET_FILE:killbill-sim>"
  BG_GATEWAY_BINARY="$<TARGET_FILE:billing-gateway>"
  BG_LOADGEN_BINARY="$<TARGET_FILE:billing-loadgen>"
  BG_CLIENT_BINARY="$<TARGET_FILE:billing-client>")
add_dependencies(help_test killbill-sim billing-gateway billing-loadgen billing-client)
