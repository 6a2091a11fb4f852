# durable/: the PostgreSQL-backed operation store (real server started by tests/pg_fixture.h),
# and the crash and replica tests with killbill-sim and billing-gateway as processes.
bg_test(durable_store_test SOURCES durable_store_test.cc LIBS bg_durable LABELS durable)

foreach(t durable_crash_test durable_replica_test gateway_start_test durable_stored_request_test)
  bg_test(${t} SOURCES ${t}.cc
          LIBS bg_durable bg_proto PkgConfig::HTTPLIB nlohmann_json::nlohmann_json
          LABELS durable e2e)
  target_compile_definitions(${t} PRIVATE
    BG_SIM_BINARY="$<TARGET_FILE:killbill-sim>"
    BG_GATEWAY_BINARY="$<TARGET_FILE:billing-gateway>")
  add_dependencies(${t} killbill-sim billing-gateway)
endforeach()

bg_test(durable_submit_test SOURCES durable_submit_test.cc LIBS bg_durable LABELS durable)
