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
