#!/usr/bin/env bash
# S4 spike: S4_SPIKE registrations all due at t=0 (open loop, nothing held back by the
# client), 30 s deadline. Shows bounded memory, no timeouts, explicit rejections.
#
#   bench/scenarios/s4_spike.sh
# Environment: S4_SPIKE (2000), plus lib.sh's.
# Output: $RESULTS/s4/... (the sim's and gateway's logs hold their own memory figures);
# markdown table on stdout.
set -u
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

scenario_defaults

require_tools
OUT="$(fresh_results s4)"
SUMMARY="$OUT/summary.csv"
log "S4 spike: $S4_SPIKE at once, contenders [$CONTENDERS] -> $OUT"

# Peak resident memory of the contender's front process(es) goes to $OUT/peak_rss.txt.
s4_contender() { s4_run "$1" "$OUT" "$SUMMARY" || return 0; }
for_each_contender s4_contender

[[ -s "$SUMMARY" ]] || die "no run produced a summary"
plot_timeseries "$OUT" "S4 spike ($S4_SPIKE at once)"
echo
echo "### S4 spike ($S4_SPIKE registrations at once, deadline ${DEADLINE_S} s, tags=$TAGS)"
echo
markdown_table "$SUMMARY"
echo
echo "Peak RSS of the front process (KiB; direct has none):"
sed 's/^/    /' "$OUT/peak_rss.txt" 2>/dev/null || true
