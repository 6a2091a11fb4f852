#!/usr/bin/env bash
# Runs the benchmark scenarios one after the other and prints their markdown tables.
#
#   bench/scenarios/run_all.sh           S1..S4 (about 45 minutes with all five contenders),
#                                         then adaptive.sh (13 minutes, both adaptive signals)
#   bench/scenarios/run_all.sh --quick   short S1 (2 concurrency levels) + short S2 with
#                                         three contenders: a demo of about 3 minutes
# Environment: see lib.sh (BUILD, CONTENDERS, ...) and each scenario script.
set -u
DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"

rc=0
if [[ "${1:-}" == --quick ]]; then
  # Overloaded contenders drain for up to the 30 s deadline after each run: three contenders
  # keep the demo near 3 minutes. Set CONTENDERS to override.
  export CONTENDERS="${CONTENDERS:-direct nginx gateway-adaptive}"
  "$DIR/s1_storm.sh" --quick || rc=1
  "$DIR/s2_capacity_drop.sh" --quick || rc=1
else
  for s in s1_storm s2_capacity_drop s3_outage s4_spike adaptive; do
    "$DIR/$s.sh" || rc=1
  done
fi
exit "$rc"
