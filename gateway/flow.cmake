# Flow-control parts: pure classes with an injected bg::Clock, no threads, no gRPC.
add_library(bg_flow STATIC
  ${CMAKE_CURRENT_SOURCE_DIR}/admission_queue.cc
  ${CMAKE_CURRENT_SOURCE_DIR}/circuit_breaker.cc
  ${CMAKE_CURRENT_SOURCE_DIR}/drain_rate.cc
  ${CMAKE_CURRENT_SOURCE_DIR}/rate_controller.cc
  ${CMAKE_CURRENT_SOURCE_DIR}/retry_policy.cc
  ${CMAKE_CURRENT_SOURCE_DIR}/token_bucket.cc
)
target_include_directories(bg_flow PUBLIC ${PROJECT_SOURCE_DIR})
target_link_libraries(bg_flow PUBLIC bg_common absl::synchronization absl::time
  absl::base absl::function_ref)
bg_warnings(bg_flow)
