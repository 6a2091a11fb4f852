#!/usr/bin/env bash
# The test command: installs what is missing, builds, and runs the whole test suite.
#   scripts/test.sh
# Exits non-zero if any stage fails. Every server a test needs is started by the test itself
# on free loopback ports and stopped afterwards.
#
# Stages, in order (each one fails the script on its own):
#   1. gcc build (build/) and the full ctest suite;
#   2. the full suite again under AddressSanitizer + UndefinedBehaviorSanitizer (clang,
#      build-asan/), see scripts/sanitize.sh;
#   3. the parts without gRPC under ThreadSanitizer (build-tsan/);
#   4. every libFuzzer target for BG_FUZZ_SECONDS (default 15) seconds (build-fuzz/), see
#      scripts/fuzz.sh.
# BG_TEST_QUICK=1 runs stage 1 only (a fast local loop; CI runs everything).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
fuzz_seconds=${BG_FUZZ_SECONDS:-15}
start=$SECONDS
stage() { echo; echo "=== test.sh: $1 (t+$((SECONDS - start))s)"; }

stage "setup"
"$root/scripts/setup.sh"

stage "gcc build + ctest"
"$root/scripts/build.sh" "$root/build"
(cd "$root/build" && ctest --output-on-failure --timeout 300 -j2)

if [ "${BG_TEST_QUICK:-0}" != 1 ]; then
  stage "ASan + UBSan build + ctest"
  "$root/scripts/sanitize.sh" asan
  stage "TSan build + ctest (parts without gRPC)"
  "$root/scripts/sanitize.sh" tsan
  stage "libFuzzer targets, ${fuzz_seconds}s each"
  "$root/scripts/fuzz.sh" "$fuzz_seconds"
fi
echo
echo "=== test.sh: all stages passed in $((SECONDS - start))s"
