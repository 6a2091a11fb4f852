# Unit tests of the flow-control parts (flow/), all under bg::FakeClock.
bg_test(token_bucket_test SOURCES token_bucket_test.cc LIBS bg_flow bg_sim LABELS unit)
bg_test(circuit_breaker_test SOURCES circuit_breaker_test.cc LIBS bg_flow bg_sim LABELS unit)
bg_test(admission_queue_test SOURCES admission_queue_test.cc LIBS bg_flow bg_sim LABELS unit)
bg_test(rate_controller_test SOURCES rate_controller_test.cc LIBS bg_flow bg_sim LABELS unit)
bg_test(retry_pushback_test SOURCES retry_pushback_test.cc LIBS bg_flow LABELS unit)
bg_test(memory_guard_test SOURCES memory_guard_test.cc LIBS bg_flow LABELS unit)
bg_test(retry_policy_test SOURCES retry_policy_test.cc LIBS bg_flow bg_sim LABELS unit)
bg_test(flow_simulation_test SOURCES flow_simulation_test.cc
        LIBS bg_gateway bg_sim spdlog::spdlog LABELS unit)
target_compile_definitions(flow_simulation_test PRIVATE
  BG_SOURCE_DIR="${PROJECT_SOURCE_DIR}")
bg_test(windowed_counter_test SOURCES windowed_counter_test.cc LIBS bg_flow LABELS unit)
# rate_controller_test replays a health-poll trace recorded from a live gateway.
target_compile_definitions(rate_controller_test PRIVATE
  BG_SOURCE_DIR="${PROJECT_SOURCE_DIR}")
