#!/usr/bin/env bash
# Old vs new gateway: the gateway contenders of S1-S4 (gateway-static, gateway-adaptive) run
# with the old and the new binaries in one invocation, interleaved per point so both see the
# same machine: at each S1 concurrency old static, new static, old adaptive, new adaptive;
# then S2, S3 and S4 the same way. Every run starts a fresh killbill-sim of its own build.
#
# Both run under the sim model of the committed benchmark rows: the new sim with
# --bus_events_per_tag 0 and the new gateway with cost.tag_bus_events 0 (TAG_EVENTS=0, forced
# here); the old sim has no such flag (its only model). The rate keys are written in each
# gateway's unit from the same calls/s knobs (lib.sh, "Rate units"): the new gateway gets the
# same registrations/s, e.g. static 48 calls/s (old) = 24 events/s (new) with tags.
# One billing-loadgen (the old build's unless LOADGEN_BIN is set) measures both sides, and
# the binaries are copied aside first so a rebuild during the run cannot change them.
#
#   bench/scenarios/compare.sh
#   NEW_BUILD=/work/main/build S1_DURATION=60 bench/scenarios/compare.sh   # final figures
#   COMPARE_SCENARIOS="s1" S1_POINTS="50" S1_DURATION=10 bench/scenarios/compare.sh  # trial
# Environment:
#   OLD_BUILD           build directory of the old binaries   (default: /work/baseline/build)
#   NEW_BUILD           build directory of the new binaries   (default: <repo>/build)
#   NEW_GENERATION      how the new side is configured        (default: new; "old" runs the
#                       new side like the old one: an A/A check of two old builds or of the
#                       script itself)
#   COMPARE_SCENARIOS   subset of "s1 s2 s3 s4"               (default: all four)
#   COMPARE_CONTENDERS  subset of "gateway-static gateway-adaptive" (default: both)
#   LOADGEN_BIN         the one billing-loadgen for both sides (default: OLD_BUILD's)
#   S1_POINTS, S1_DURATION, S1_COUNT_CAP, S2_*, S3_*, S4_SPIKE as in s1_storm.sh ..
#   s4_spike.sh (same defaults), and lib.sh's (TAGS, DEADLINE_S, GW_STATIC_RATE,
#   GW_ADAPTIVE_*, GW_*_EVENTS, GW_MAX_IN_FLIGHT, GW_QUEUE_CAPACITY, FAILURE_WAIT, RESULTS, ...).
# Output: $RESULTS/compare/<s1|s2|s3|s4>/<old|new>/ with each side's summary.csv (as the
# scenario scripts write it), extra.csv (bus health, S1 second-half goodput, server-side
# rejection times, S4 peak RSS), and per run the usual files (<run>.csv, .timeseries.csv,
# .log, .sim-stats.json, .gateway-metrics.txt, .yaml, .gateway.log, sim-<run>.log);
# $RESULTS/compare/builds.txt (what ran) and summary.md (the tables, also on stdout).
set -u
LOADGEN_GIVEN="${LOADGEN_BIN:-}"
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

OLD_BUILD="${OLD_BUILD:-/work/baseline/build}"
NEW_BUILD="${NEW_BUILD:-$REPO_ROOT/build}"
OLD_GENERATION=old
NEW_GENERATION="${NEW_GENERATION:-new}"
COMPARE_SCENARIOS="${COMPARE_SCENARIOS:-s1 s2 s3 s4}"
COMPARE_CONTENDERS="${COMPARE_CONTENDERS:-gateway-static gateway-adaptive}"
TAG_EVENTS=0
scenario_defaults
LOADGEN_BIN="${LOADGEN_GIVEN:-$OLD_BUILD/bench/loadgen/billing-loadgen}"

for side in OLD NEW; do
  b="${side}_BUILD"
  for f in bench/killbill_sim/killbill-sim gateway/billing-gateway; do
    [[ -x "${!b}/$f" ]] || die "$side: ${!b}/$f not found (set ${side}_BUILD)"
  done
done
use_build "$OLD_BUILD" "$OLD_GENERATION"
require_tools

# Copies of the binaries, removed on exit.
BIN_DIR="$(mktemp -d /tmp/compare-bin.XXXXXX)"
on_exit() {
  local rc=$?
  stop_all
  rm -rf "$BIN_DIR"
  exit "$rc"
}
for side in old new; do
  b="$([[ $side == old ]] && echo "$OLD_BUILD" || echo "$NEW_BUILD")"
  mkdir -p "$BIN_DIR/$side/bench/killbill_sim" "$BIN_DIR/$side/gateway"
  cp "$b/bench/killbill_sim/killbill-sim" "$BIN_DIR/$side/bench/killbill_sim/"
  cp "$b/gateway/billing-gateway" "$BIN_DIR/$side/gateway/"
done
cp "$LOADGEN_BIN" "$BIN_DIR/billing-loadgen"

OUT="$(fresh_results compare)"
{
  echo "compare.sh at $(date -u +%Y-%m-%dT%H:%M:%SZ), load average $(cut -d' ' -f1-3 /proc/loadavg)"
  for side in old new; do
    b="$([[ $side == old ]] && echo "$OLD_BUILD" || echo "$NEW_BUILD")"
    g="$([[ $side == old ]] && echo "$OLD_GENERATION" || echo "$NEW_GENERATION")"
    src="$(sed -n 's/^CMAKE_HOME_DIRECTORY:INTERNAL=//p' "$b/CMakeCache.txt" 2>/dev/null | head -1)"
    rev="$( [[ -n "$src" ]] && git -C "$src" describe --always --dirty 2>/dev/null)"
    echo "$side: $b (GW_GENERATION=$g; source ${src:-?} at ${rev:-?} when the run started)"
    (cd "$BIN_DIR/$side" && sha256sum gateway/billing-gateway bench/killbill_sim/killbill-sim | sed 's/^/    /')
  done
  echo "loadgen: $LOADGEN_BIN"
  (cd "$BIN_DIR" && sha256sum billing-loadgen | sed 's/^/    /')
  echo "TAGS=$TAGS TAG_EVENTS=$TAG_EVENTS (new only) DEADLINE_S=$DEADLINE_S FAILURE_WAIT=$FAILURE_WAIT"
  echo "rates (calls/s; new: converted, lib.sh): static $GW_STATIC_RATE, adaptive $GW_ADAPTIVE_INITIAL/$GW_ADAPTIVE_MIN/$GW_ADAPTIVE_MAX"
} >"$OUT/builds.txt"
cat "$OUT/builds.txt" >&2
LOADGEN_BIN="$BIN_DIR/billing-loadgen"
START=$(date +%s)

# compare_run SIDE(old|new) SCENARIO CONTENDER [N]: one run; then its extra.csv row.
compare_run() {
  local side="$1" s="$2" c="$3" n="${4:-}" dir="$OUT/$2/$1" run point end max slope s1ms
  if [[ "$side" == old ]]; then use_build "$BIN_DIR/old" "$OLD_GENERATION"; else use_build "$BIN_DIR/new" "$NEW_GENERATION"; fi
  mkdir -p "$dir"
  log "--- $side (GW_GENERATION=$GW_GENERATION, $([[ $side == old ]] && echo "$OLD_BUILD" || echo "$NEW_BUILD")): $s $c${n:+ c$n}"
  local summary="$dir/summary.csv"
  case "$s" in
    s1) run="$c-c$n" point="$n"; s1_point "$c" "$n" "$dir" "$summary" "$run" ;;
    s2) run="$c" point="${S2_RATE}/s"; s2_run "$c" "$dir" "$summary" ;;
    s3) run="$c" point="${S3_RATE}/s"; s3_run "$c" "$dir" "$summary" ;;
    s4) run="$c" point="spike$S4_SPIKE"; s4_run "$c" "$dir" "$summary" ;;
  esac || { log "warning: $side $s $c $n did not run"; stop_all; return 0; }
  stop_all
  local ts="$dir/$run.timeseries.csv" late="" rej="" rej1="" rss=""
  [[ -s "$ts" ]] || return 0
  read -r end max slope <<<"$(bus_growth "$ts" 10)"
  [[ "$s" == s1 ]] && late="$(ok_rate "$ts" $((S1_DURATION / 2)) "$S1_DURATION")"
  if [[ -s "$dir/$run.gateway-metrics.txt" ]]; then
    read -r rej s1ms _ <<<"$(server_answer_times "$dir/$run.gateway-metrics.txt" rejected)"
    [[ "$s1ms" != - ]] && rej1="$(awk -v s="$s1ms" 'BEGIN { printf "%.2f %%", 100 * s }')"
  fi
  [[ "$s" == s4 ]] && rss="$(awk -v r="$run" '$1 == r { printf "%.1f", $3 / 1024 }' "$dir/peak_rss.txt" 2>/dev/null)"
  [[ -s "$dir/extra.csv" ]] ||
    echo "contender,point,backlog_end,backlog_max,growth,healthy,late_goodput,rej_server,rej_1ms,peak_rss_mib" >"$dir/extra.csv"
  echo "$c,$point,$end,$max,$slope,$(awk -v s="$slope" 'BEGIN { print (s < 1 ? "yes" : "no") }'),$late,$rej,$rej1,$rss" >>"$dir/extra.csv"
}

for s in $COMPARE_SCENARIOS; do
  case "$s" in
    s1)
      log "S1: points [$S1_POINTS], ${S1_DURATION}s each"
      for n in $S1_POINTS; do
        for c in $COMPARE_CONTENDERS; do
          compare_run old s1 "$c" "$n"
          compare_run new s1 "$c" "$n"
        done
      done
      ;;
    s2 | s3 | s4)
      for c in $COMPARE_CONTENDERS; do
        compare_run old "$s" "$c"
        compare_run new "$s" "$c"
      done
      ;;
    *) die "unknown scenario $s (COMPARE_SCENARIOS: s1 s2 s3 s4)" ;;
  esac
done

# The tables.
client_specs=("goodput_per_s|goodput/s|%.1f" "success_pct|success %|%.1f" "p50_ms|p50 ms|%.0f"
  "p99_ms|p99 ms|%.0f" "rejected|rejected|%d" "rej_p99_ms|reject p99 ms|%.1f|rej_count"
  "timeout|DEADLINE_EXCEEDED|%d" "error|error|%d")
health_specs=("backlog_end|bus backlog at end|%d" "backlog_max|max|%d"
  "growth|bus growth/s (from 10 s)|%.2f" "healthy|healthy (growth < 1/s)|%s")
{
  echo "## Old vs new gateway (compare.sh, $(date -u +%Y-%m-%d), $((($(date +%s) - START) / 60)) min)"
  echo
  echo '```'
  cat "$OUT/builds.txt"
  echo '```'
  for s in $COMPARE_SCENARIOS; do
    d="$OUT/$s"
    echo
    case "$s" in
      s1) echo "### S1 registration storm (closed loop, ${S1_DURATION} s per point, deadline ${DEADLINE_S} s, tags=$TAGS)" ;;
      s2) echo "### S2 capacity drop (open loop ${S2_RATE}/s, bus drain $S2_HIGH_DRAIN -> $S2_LOW_DRAIN -> $S2_HIGH_DRAIN, ${S2_PHASE} s phases, tags=$TAGS)" ;;
      s3) echo "### S3 Kill Bill outage (open loop ${S3_RATE}/s for ${S3_TOTAL} s, $S3_MODE outage ${S3_OUTAGE} s at ${S3_AT} s, tags=$TAGS)" ;;
      s4) echo "### S4 spike ($S4_SPIKE registrations at once, deadline ${DEADLINE_S} s, tags=$TAGS)" ;;
    esac
    echo
    side_by_side "$d/old/summary.csv" "$d/new/summary.csv" "${client_specs[@]}"
    echo
    echo "Kill Bill health (sim bus backlog sampled each second by billing-loadgen):"
    echo
    extra=()
    [[ "$s" == s1 ]] && extra=("late_goodput|goodput/s, 2nd half|%.1f" "rej_1ms|rejections answered within 1 ms (gateway histogram)|%s")
    [[ "$s" == s4 ]] && extra=("peak_rss_mib|peak RSS MiB|%.1f")
    side_by_side "$d/old/extra.csv" "$d/new/extra.csv" "${health_specs[@]}" ${extra[@]+"${extra[@]}"}
  done
} >"$OUT/summary.md"
echo
cat "$OUT/summary.md"
log "compare: done in $((($(date +%s) - START) / 60)) min -> $OUT"
