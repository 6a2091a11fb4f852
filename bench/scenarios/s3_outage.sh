#!/usr/bin/env bash
# S3 Kill Bill outage: open loop at S3_RATE/s for S3_TOTAL seconds; at S3_AT seconds
# killbill-sim goes down for S3_OUTAGE seconds (POST /sim/faults). Shows fail-fast, no
# hammering during the outage, and recovery time (time series).
#
#   bench/scenarios/s3_outage.sh
# Environment: S3_RATE (20), S3_TOTAL (80), S3_AT (20), S3_OUTAGE (20), S3_MODE (refuse: the
# port is closed; or 503), plus lib.sh's.
# Output: $RESULTS/s3/...; markdown table on stdout.
set -u
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

scenario_defaults

require_tools
OUT="$(fresh_results s3)"
SUMMARY="$OUT/summary.csv"
log "S3 outage: ${S3_RATE}/s for ${S3_TOTAL}s, $S3_MODE outage of ${S3_OUTAGE}s at ${S3_AT}s, contenders [$CONTENDERS] -> $OUT"

s3_contender() { s3_run "$1" "$OUT" "$SUMMARY" || return 0; }
for_each_contender s3_contender

[[ -s "$SUMMARY" ]] || die "no run produced a summary"
plot_timeseries "$OUT" "S3 outage ($S3_MODE, ${S3_OUTAGE}s at ${S3_AT}s)"
echo
echo "### S3 Kill Bill outage (open loop ${S3_RATE}/s for ${S3_TOTAL} s, $S3_MODE outage ${S3_OUTAGE} s at ${S3_AT} s, tags=$TAGS)"
echo
markdown_table "$SUMMARY"
