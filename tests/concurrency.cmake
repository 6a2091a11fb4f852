# Concurrency stress test of the flow-control parts and the Kill Bill client pool (label
# `concurrency`). Meant for ThreadSanitizer (scripts/sanitize.sh tsan) but runs in every build.
bg_test(concurrency_stress_test SOURCES concurrency_stress_test.cc
        LIBS bg_flow bg_killbill_client bg_sim LABELS concurrency)

# ThreadSanitizer build only: Debian's Abseil is not instrumented, so every test executable
# gets the shim that reports absl::Mutex/CondVar synchronization to TSan
# (sanitizers/tsan_absl_shim.cc explains why and how). This fragment is included last, so
# every test target of this folder exists here.
if(BG_SANITIZE MATCHES "thread")
  add_library(bg_tsan_absl_shim OBJECT ${CMAKE_CURRENT_LIST_DIR}/sanitizers/tsan_absl_shim.cc)
  target_link_libraries(bg_tsan_absl_shim PUBLIC absl::synchronization absl::time ${CMAKE_DL_LIBS})
  get_property(bg_test_targets DIRECTORY ${CMAKE_CURRENT_SOURCE_DIR} PROPERTY BUILDSYSTEM_TARGETS)
  foreach(t IN LISTS bg_test_targets)
    get_target_property(type ${t} TYPE)
    if(type STREQUAL "EXECUTABLE")
      target_link_libraries(${t} PRIVATE bg_tsan_absl_shim)
    endif()
  endforeach()
  # The killbill-sim binary runs under TSan too (sim_npm_client_test starts it).
  target_link_libraries(killbill-sim PRIVATE bg_tsan_absl_shim)
endif()
