# bench/loadgen: the pure parts of billing-loadgen (no sockets, no threads but the recorder's
# mutex).
bg_test(loadgen_stats_test
  SOURCES loadgen_stats_test.cc
  LIBS bg_loadgen_core
  LABELS unit)
bg_test(loadgen_schedule_test
  SOURCES loadgen_schedule_test.cc
  LIBS bg_loadgen_core
  LABELS unit)
bg_test(loadgen_summary_test
  SOURCES loadgen_summary_test.cc
  LIBS bg_loadgen_core
  LABELS unit)
bg_test(loadgen_mix_test
  SOURCES loadgen_mix_test.cc
  LIBS bg_loadgen_core
  LABELS unit)
