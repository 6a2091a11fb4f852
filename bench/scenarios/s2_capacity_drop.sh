#!/usr/bin/env bash
# S2 capacity drop: open loop at S2_RATE/s while killbill-sim's bus drain goes
# 25 -> 12 -> 25 events/s (POST /sim/config), one phase of S2_PHASE seconds each. Shows
# whether each contender's rate follows Kill Bill's capacity without a human.
#
#   bench/scenarios/s2_capacity_drop.sh [--quick]
# Environment: S2_RATE (30), S2_PHASE (60; --quick: 5), S2_LOW_DRAIN (12), S2_HIGH_DRAIN
# (25), S2_MAX_OUTSTANDING (1000), plus lib.sh's.
# Output: $RESULTS/s2/{summary.csv,<contender>.timeseries.csv,throughput.png,p95.png,
# backlog.png}; markdown table on stdout.
set -u
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

[[ "${1:-}" == --quick ]] && S2_PHASE="${S2_PHASE:-5}"
scenario_defaults

require_tools
OUT="$(fresh_results s2)"
SUMMARY="$OUT/summary.csv"
log "S2 capacity drop: ${S2_RATE}/s for 3 x ${S2_PHASE}s, drain $S2_HIGH_DRAIN -> $S2_LOW_DRAIN -> $S2_HIGH_DRAIN, contenders [$CONTENDERS] -> $OUT"

s2_contender() { s2_run "$1" "$OUT" "$SUMMARY" || return 0; }
for_each_contender s2_contender

[[ -s "$SUMMARY" ]] || die "no run produced a summary"
plot_timeseries "$OUT" "S2 capacity drop (drain $S2_HIGH_DRAIN/$S2_LOW_DRAIN/$S2_HIGH_DRAIN at ${S2_PHASE}s phases)"
echo
echo "### S2 capacity drop (open loop ${S2_RATE}/s, bus drain $S2_HIGH_DRAIN -> $S2_LOW_DRAIN -> $S2_HIGH_DRAIN, ${S2_PHASE} s phases, tags=$TAGS)"
echo
markdown_table "$SUMMARY"
