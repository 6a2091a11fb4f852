#!/usr/bin/env bash
# Builds the test suite with clang 14 sanitizers and runs it under ctest.
#   scripts/sanitize.sh [asan|tsan|all]     (default: all)
#
# asan  build-asan/: every test executable (and the killbill-sim and billing-gateway binaries
#       the e2e tests start) with -fsanitize=address,undefined and
#       -fno-sanitize-recover=undefined; the whole ctest suite.
# tsan  build-tsan/: the parts that run without gRPC (flow control, Kill Bill client, sim,
#       config, the concurrency stress test) with -fsanitize=thread; only those tests run.
#       Debian's gRPC is not built for TSan (false races inside it), so nothing that starts a
#       gRPC server or channel is in this list.
#
# Zero reports is the bar: ASan/UBSan/LSan/TSan reports of the test binaries and of every
# process they start are written to <build>/sanitizer-logs/ and any file there fails the run.
# Suppressions (tests/sanitizers/*.supp) name third-party frames only.
# Only the test executables are built (not the benchmark tools), to keep CI time down.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
mode=${1:-all}
export CCACHE_DIR=${CCACHE_DIR:-$HOME/.cache/ccache}
supp=$root/tests/sanitizers
jobs=$(nproc)

# The tests of the TSan subset; names missing from the build (not written yet) are skipped.
TSAN_TESTS=(
  token_bucket_test circuit_breaker_test admission_queue_test rate_controller_test
  retry_policy_test windowed_counter_test flow_simulation_test call_gate_test
  health_monitor_test dispatcher_test flow_control_test
  killbill_parse_test killbill_client_test
  sim_model_test sim_options_test sim_server_test sim_metrics_test
  config_test concurrency_stress_test flow_reload_test config_reload_test
  sim_probe_test retry_pushback_test memory_guard_test
)

configure() {  # configure BUILD_DIR SANITIZERS
  cmake -S "$root" -B "$1" -G Ninja \
    -DCMAKE_C_COMPILER=clang -DCMAKE_CXX_COMPILER=clang++ \
    -DCMAKE_BUILD_TYPE=RelWithDebInfo \
    -DBG_SANITIZE="$2" \
    -DCMAKE_C_FLAGS="-fno-sanitize-recover=undefined" \
    -DCMAKE_CXX_FLAGS="-fno-sanitize-recover=undefined" >/dev/null
}

# Paths of every test executable CMake generated (tests/<name>).
test_executables() {
  ninja -C "$1" -t targets all | awk -F: '/^tests\/[A-Za-z0-9_]+: CXX_EXECUTABLE_LINKER/ {print $1}'
}

# Fails (and prints them) if any sanitizer wrote a report.
check_logs() {
  local logs=$1
  if compgen -G "$logs/*" >/dev/null; then
    echo "sanitize: sanitizer reports in $logs:" >&2
    for f in "$logs"/*; do echo "=== $f" >&2; cat "$f" >&2; done
    return 1
  fi
}

run_asan() {
  local build=$root/build-asan logs=$root/build-asan/sanitizer-logs
  echo "== sanitize: ASan + UBSan build ($build)"
  # A sanitizer build must not pick up a gcc cache: the compiler is fixed at first configure.
  if [ -f "$build/CMakeCache.txt" ] && ! grep -q 'CMAKE_CXX_COMPILER:.*clang++' "$build/CMakeCache.txt"; then
    rm -rf "$build"
  fi
  configure "$build" address,undefined
  mapfile -t targets < <(test_executables "$build")
  ninja -C "$build" -j"$jobs" "${targets[@]}"
  rm -rf "$logs" && mkdir -p "$logs"
  echo "== sanitize: ctest under ASan + UBSan"
  (
    cd "$build"
    export ASAN_OPTIONS="detect_leaks=1:check_initialization_order=1:strict_init_order=1:detect_stack_use_after_return=1:log_path=$logs/asan"
    export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1:log_path=$logs/ubsan"
    export LSAN_OPTIONS="suppressions=$supp/lsan.supp:print_suppressions=0"
    ctest --output-on-failure --timeout 300 -j2
  )
  check_logs "$logs"
}

run_tsan() {
  local build=$root/build-tsan logs=$root/build-tsan/sanitizer-logs
  echo "== sanitize: TSan build of the parts without gRPC ($build)"
  if [ -f "$build/CMakeCache.txt" ] && ! grep -q 'CMAKE_CXX_COMPILER:.*clang++' "$build/CMakeCache.txt"; then
    rm -rf "$build"
  fi
  configure "$build" thread
  mapfile -t available < <(test_executables "$build")
  local targets=() t
  for t in "${TSAN_TESTS[@]}"; do
    if printf '%s\n' "${available[@]}" | grep -qx "tests/$t"; then targets+=("tests/$t"); fi
  done
  ninja -C "$build" -j"$jobs" "${targets[@]}"
  rm -rf "$logs" && mkdir -p "$logs"
  echo "== sanitize: ctest under TSan (${targets[*]#tests/})"
  (
    cd "$build"
    export TSAN_OPTIONS="halt_on_error=1:second_deadlock_stack=1:suppressions=$supp/tsan.supp:log_path=$logs/tsan"
    # Tests of executables outside the subset are registered as <target>_NOT_BUILT: skip them.
    ctest --output-on-failure --timeout 300 -j2 -E '_NOT_BUILT$'
  )
  check_logs "$logs"
}

case "$mode" in
  asan) run_asan ;;
  tsan) run_tsan ;;
  all) run_asan; run_tsan ;;
  *) echo "usage: $0 [asan|tsan|all]" >&2; exit 2 ;;
esac
