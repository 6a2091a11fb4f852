# The gRPC service, dispatcher, metrics and the billing-gateway binary.
add_library(bg_gateway STATIC
  account_operations.cc
  dispatcher.cc
  gateway_server.cc
  metrics.cc
  service.cc
  validation.cc)
target_include_directories(bg_gateway PUBLIC ${PROJECT_SOURCE_DIR})
target_link_libraries(bg_gateway
  PUBLIC bg_common bg_proto bg_config bg_killbill_client bg_durable
         gRPC::grpc++ gRPC::grpc++_reflection prometheus-cpp::pull
         absl::status absl::statusor absl::synchronization absl::strings
  PRIVATE spdlog::spdlog)
if(TARGET bg_flow)
  target_link_libraries(bg_gateway PUBLIC bg_flow)
endif()
bg_warnings(bg_gateway)

add_executable(billing-gateway main.cc)
target_link_libraries(billing-gateway PRIVATE bg_gateway absl::flags absl::flags_parse
                                              spdlog::spdlog)
bg_warnings(billing-gateway)
