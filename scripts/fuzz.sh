#!/usr/bin/env bash
# Builds the libFuzzer targets (clang, -fsanitize=fuzzer,address,undefined) and runs each one
# for a bounded time from its seed corpus.
#   scripts/fuzz.sh [SECONDS_PER_TARGET] [TARGET...]     (default: 15 s, every target)
#
# Targets (fuzz/): healthcheck, killbill_json, location, config, request. Seeds come from
# fuzz/corpus/<target>/ (config also from tests/testdata/config/ and config/gateway.yaml) and
# token dictionaries from fuzz/dict/<target>.dict; the
# inputs a run discovers go to build-fuzz/corpus/<target>/ (kept between runs, never into the
# repository). A crash, leak, sanitizer report or timeout fails the script; the input that
# caused it is saved as build-fuzz/artifacts/<target>-crash-* (replay it with
# `build-fuzz/fuzz/fuzz_<target> FILE`). A summary line per target gives the executions run.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
seconds=${1:-15}
shift || true
build=${BG_FUZZ_BUILD_DIR:-$root/build-fuzz}
export CCACHE_DIR=${CCACHE_DIR:-$HOME/.cache/ccache}
all_targets=(healthcheck killbill_json location config request)
targets=("$@")
((${#targets[@]})) || targets=("${all_targets[@]}")

if [ -f "$build/CMakeCache.txt" ] && ! grep -q 'CMAKE_CXX_COMPILER:.*clang++' "$build/CMakeCache.txt"; then
  rm -rf "$build"
fi
echo "== fuzz: building libFuzzer targets ($build)"
cmake -S "$root" -B "$build" -G Ninja \
  -DCMAKE_C_COMPILER=clang -DCMAKE_CXX_COMPILER=clang++ -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DBG_FUZZ=ON -DBG_SANITIZE=fuzzer-no-link,address,undefined \
  -DCMAKE_C_FLAGS="-fno-sanitize-recover=undefined" \
  -DCMAKE_CXX_FLAGS="-fno-sanitize-recover=undefined" >/dev/null
ninja -C "$build" -j"$(nproc)" $(printf 'fuzz/fuzz_%s ' "${targets[@]}")

export ASAN_OPTIONS="detect_leaks=1:allocator_may_return_null=1"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1"
summary=()
failed=0
for t in "${targets[@]}"; do
  work=$build/corpus/$t
  mkdir -p "$work" "$build/artifacts"
  seeds=("$root/fuzz/corpus/$t")
  dict=()
  [ -f "$root/fuzz/dict/$t.dict" ] && dict=(-dict="$root/fuzz/dict/$t.dict")
  if [ "$t" = config ]; then
    seeds+=("$root/tests/testdata/config")
    cp "$root/config/gateway.yaml" "$work/reference-gateway.yaml"
  fi
  log=$build/fuzz-$t.log
  echo "== fuzz: $t for ${seconds}s"
  set +e
  "$build/fuzz/fuzz_$t" "$work" "${seeds[@]}" "${dict[@]}" \
    -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -max_len=65536 \
    -print_final_stats=1 -artifact_prefix="$build/artifacts/$t-" >"$log" 2>&1
  rc=$?
  set -e
  execs=$(awk '/stat::number_of_executed_units/ {print $2}' "$log")
  rate=$(awk '/stat::average_exec_per_sec/ {print $2}' "$log")
  cov=$(grep -oE 'cov: [0-9]+ ft: [0-9]+ corp: [0-9]+/[0-9]+[a-zA-Z]*' "$log" | tail -1)
  if [ "$rc" -ne 0 ]; then
    failed=1
    echo "fuzz: $t FAILED (exit $rc); last lines of $log:" >&2
    tail -60 "$log" >&2
    summary+=("$(printf '%-14s FAILED exit %s  execs %s  (%s)' "$t" "$rc" "${execs:-?}" "$log")")
  else
    summary+=("$(printf '%-14s ok  %10s execs  %7s exec/s  %s' "$t" "${execs:-?}" "${rate:-?}" "$cov")")
  fi
done
echo "== fuzz summary (${seconds}s per target)"
printf '%s\n' "${summary[@]}"
exit "$failed"
