#!/usr/bin/env bash
# Runs each sim-calibrate phase against a fresh killbill-sim process on an ephemeral port.
#   bench/killbill_sim/calibrate.sh [BUILD_DIR] [extra sim-calibrate flags]
# Exit status 0 when every phase passes. Every load is bounded (300 creations, 2 x 65 polls).
set -u
BUILD=${1:-build-sim}; shift || true
SIM=$BUILD/bench/killbill_sim/killbill-sim
CAL=$BUILD/bench/killbill_sim/sim-calibrate
status=0
for phase in direct saturation below; do
  out=$(mktemp)
  "$SIM" --listen 127.0.0.1:0 >"$out" 2>/dev/null &
  pid=$!
  for _ in $(seq 50); do grep -q '^listening on' "$out" && break; sleep 0.1; done
  port=$(sed -n 's/^listening on .*:\([0-9]*\)$/\1/p' "$out")
  "$CAL" --target "127.0.0.1:$port" --phases "$phase" "$@" || status=1
  kill -TERM "$pid"; wait "$pid"; rm -f "$out"
done
exit $status
