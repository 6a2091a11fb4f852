if(TARGET killbill-sim)
  bg_test(e2e_test SOURCES e2e_test.cc
          LIBS bg_proto bg_health_proto bg_reflection_proto PkgConfig::HTTPLIB
               nlohmann_json::nlohmann_json
          LABELS e2e)
  target_compile_definitions(e2e_test PRIVATE
    BG_SIM_BINARY="$<TARGET_FILE:killbill-sim>"
    BG_GATEWAY_BINARY="$<TARGET_FILE:billing-gateway>")
  add_dependencies(e2e_test killbill-sim billing-gateway)
endif()
