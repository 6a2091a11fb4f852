# config/: YAML -> GatewayConfig. The broken-file corpus in testdata/config is also the
# seed corpus of the config fuzz target.
bg_test(config_test
  SOURCES config_test.cc
  LIBS bg_config absl::strings
  LABELS unit)
target_compile_definitions(config_test PRIVATE
  BG_SOURCE_DIR="${PROJECT_SOURCE_DIR}")

bg_test(conninfo_test
  SOURCES conninfo_test.cc
  LIBS bg_config bg_durable
  LABELS unit)

bg_test(config_reload_test
  SOURCES config_reload_test.cc
  LIBS bg_config
  LABELS unit)
