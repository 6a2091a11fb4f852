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

S4_SPIKE="${S4_SPIKE:-2000}"

require_tools
OUT="$(fresh_results s4)"
SUMMARY="$OUT/summary.csv"
log "S4 spike: $S4_SPIKE at once, contenders [$CONTENDERS] -> $OUT"

s4_contender() {
  local c="$1" peak=0 rss pid
  start_contender "$c" "$OUT" || return 0
  start_loadgen "$OUT/$c" --label "$c" --spike "$S4_SPIKE" --max-outstanding "$S4_SPIKE"
  # Peak resident memory of the contender's front process(es), sampled every 0.5 s.
  while kill -0 "$LOADGEN_PID" 2>/dev/null; do
    for pid in "${BG_PIDS[@]}"; do
      [[ "$pid" == "$LOADGEN_PID" || "$pid" == "$SIM_PID" ]] && continue
      rss="$(awk '/VmRSS/ { print $2 }' "/proc/$pid/status" 2>/dev/null)"
      [[ -n "$rss" ]] && ((rss > peak)) && peak=$rss
    done
    sleep 0.5
  done
  echo "$c peak_rss_kib $peak" >>"$OUT/peak_rss.txt"
  finish_loadgen "$SUMMARY" "$c" "spike$S4_SPIKE" "$OUT/$c"
}
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
