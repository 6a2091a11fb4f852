#!/usr/bin/env bash
# S1 registration storm: closed loop at several concurrency levels, 30 s deadline, for every
# contender, each point on a fresh killbill-sim.
#
# Each point is duration-bounded (S1_DURATION seconds of issuing, then in-flight calls finish
# or time out) with a count cap, so the whole scenario takes ~10-15 minutes.
#
#   bench/scenarios/s1_storm.sh [--quick]
# Environment: S1_POINTS (default "25 50 100 500 1000"), S1_DURATION (default 20),
# S1_COUNT_CAP (default 100000), plus lib.sh's.
# Output: $RESULTS/s1/{summary.csv,<contender>-c<N>.*,*.png}; markdown table on stdout.
set -u
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

if [[ "${1:-}" == --quick ]]; then
  S1_POINTS="${S1_POINTS:-50 200}"
  S1_DURATION="${S1_DURATION:-5}"
fi
scenario_defaults

require_tools
OUT="$(fresh_results s1)"
SUMMARY="$OUT/summary.csv"
log "S1 registration storm: points [$S1_POINTS], ${S1_DURATION}s each, contenders [$CONTENDERS] -> $OUT"

s1_contender() {
  local c="$1" n
  for n in $S1_POINTS; do
    s1_point "$c" "$n" "$OUT" "$SUMMARY" || return 0
  done
}
for_each_contender s1_contender

[[ -s "$SUMMARY" ]] || die "no run produced a summary"
plot_vs_concurrency "$SUMMARY" "$OUT"
echo
echo "### S1 registration storm (closed loop, ${S1_DURATION} s per point, deadline ${DEADLINE_S} s, tags=$TAGS)"
echo
markdown_table "$SUMMARY"
if compgen -G "$OUT/gateway-*.gateway-metrics.txt" >/dev/null; then
  echo
  echo "Rejections as the gateway itself timed them (receive → answer, its request-duration histogram):"
  echo
  echo "| run | rejections | within 1 ms | within 10 ms |"
  echo "|---|---|---|---|"
  for f in "$OUT"/gateway-*.gateway-metrics.txt; do
    read -r n s1 s10 <<<"$(server_answer_times "$f" rejected)"
    ((n > 0)) || continue
    printf '| %s | %s | %s | %s |\n' "$(basename "$f" .gateway-metrics.txt)" "$n" \
      "$(awk -v s="$s1" 'BEGIN { printf "%.2f %%", 100 * s }')" "$(awk -v s="$s10" 'BEGIN { printf "%.2f %%", 100 * s }')"
  done
fi
