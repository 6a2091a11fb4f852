#!/usr/bin/env bash
# The adaptive rate's two signals against the hand-tuned static rate, S1-S4 and a steady
# state, in one invocation: gateway-static (rate 24 bus events/s = 96 % of the sim's 25/s
# drain), gateway-healthcheck (adaptive, rate.signal healthcheck: the healthcheck-growth
# model only) and gateway-adaptive (adaptive, rate.signal auto: Kill Bill's bus counters from
# GET /1.0/metrics), adaptive keys at the product defaults (initial 10, min 1, max 50 events/s,
# increase_step 1, burst 10). GW_GENERATION=new, TAGS=1, TAG_EVENTS=1 (Kill Bill 0.24: a
# registration posts 2 main-bus events, so the sustainable goodput is drain / 2
# registrations/s: 12.5 at 25, 6 at 12). Interleaved per point: all contenders at one S1
# concurrency, then the next, ...; then S2, S3, S4 and the steady state the same way. Every
# run gets a fresh killbill-sim, warmed with SIM_WARM_POLLS (60) healthcheck polls one second
# apart first, so its 60-sample growth window is full as on a Kill Bill that has been up a
# while (a fresh one reports no growth for its first minute: the healthcheck signal would be
# blind; SIM_WARM_POLLS=0 runs cold). The binaries are copied aside at the start (a rebuild
# during the run cannot change them).
#
#   S1      closed loop at S1_POINTS clients ("25 50 100 500 1000"), S1_DURATION (60) s each
#   S2      open loop S2_RATE (30)/s, bus drain 25 -> 12 -> 25, S2_PHASE (60) s each; per
#           phase the goodput from S2_SETTLE (20) s after each change (phase 1: after the
#           start) as a share of that phase's sustainable goodput, and Kill Bill's healthy
#           share over the seconds outside the three S2_SETTLE windows; signals.png
#   S3      s3_run (20/s for 80 s, refuse outage of 20 s at 20 s): seconds from the outage's
#           end to the first success after it (loadgen timeseries, 1-s rows)
#   S4      s4_run (2,000 registrations at once): successes
#   steady  open loop STEADY_RATE (30)/s for STEADY_DURATION (300) s at drain STEADY_DRAIN
#           (25): over the last STEADY_WINDOW (240) s of the load, the bus events posted per
#           second / STEADY_DRAIN (the issue: within 2 % for adaptive on metrics), the bus
#           backlog's least-squares slope (entries/s) and the healthy share
# Per run, sampled every second in the background (lib.sh start_samplers): the sim's own
# counters (<run>.sim-series.csv: GET /sim/stats) and the gateway's /metrics
# (<run>.gateway-series.csv: rate, signal source, the backlog it read, ...); <run>.sim-rates.csv
# has the sim's posted/s, dispatched/s, backlog and unhealthy flag per second. A second is
# unhealthy when the sim's healthcheck_unhealthy_total rose in it (the gateway polls every
# second); a second without a /sim/stats answer (the S3 outage) counts neither way.
# Every table has: goodput/s and success % (billing-loadgen: ok / elapsed, the in-flight
# drain included), DEADLINE_EXCEEDED, rejections, bus growth (least-squares slope of the
# backlog billing-loadgen sampled, from 10 s to the end), bus backlog at the end / max,
# the healthy share (from 10 s to the end unless the scenario says otherwise), and which
# signal the gateway followed (share of its per-second samples on each
# billing_gateway_rate_signal source; "none": no source at 1).
#
#   bench/scenarios/signals.sh            the full run: about 85 minutes. Estimate from the
#                                         quick run (19 min on the shared 2-core machine,
#                                         2026-11-30: 600 s of load, 18 x 10 s of warm-up and
#                                         7-27 s per run of start, in-flight drain and stop):
#                                         27 runs, 2,580 s of load, 27 x 60 s of warm-up,
#                                         ~25 s per run on top (S1 ~36 min, S2 ~13, S3 ~8,
#                                         S4 ~5, steady ~19)
#   bench/scenarios/signals.sh --quick    smoke test: S1 "50 500" at 10 s, S2 phases 20 s
#                                         (settle 10 s), steady 40 s (window 20 s), warm-up
#                                         10 polls (the healthcheck still blind: no verdict
#                                         on the signals), S3 and S4 as in the full run
#   SIGNALS_SCENARIOS="s2 steady" bench/scenarios/signals.sh   a subset
# Environment: SIGNALS_CONTENDERS ("gateway-static gateway-healthcheck gateway-adaptive"),
# SIGNALS_SCENARIOS ("s1 s2 s3 s4 steady"), S1_POINTS, S1_DURATION, S1_COUNT_CAP, S2_RATE,
# S2_PHASE, S2_LOW_DRAIN, S2_HIGH_DRAIN, S2_MAX_OUTSTANDING, S2_SETTLE, S3_*, S4_SPIKE,
# STEADY_RATE, STEADY_DURATION, STEADY_WINDOW, STEADY_DRAIN, SIM_WARM_POLLS, GW_STATIC_EVENTS
# (24), GW_ADAPTIVE_INITIAL_EVENTS / _MIN_EVENTS / _MAX_EVENTS (10 / 1 / 50),
# GW_ADAPTIVE_STEP_EVENTS (1), GW_BURST_EVENTS (10), plus lib.sh's (BUILD, RESULTS,
# DEADLINE_S, FAILURE_WAIT, GW_MAX_IN_FLIGHT, GW_QUEUE_CAPACITY, GW_LOG_LEVEL, ...).
# GW_GENERATION, TAGS and TAG_EVENTS are fixed (new, 1, 1).
# Output: $RESULTS/signals/<s1|s2|s3|s4|steady>/ (each scenario's folder is replaced when it
# runs) with summary.csv (billing-loadgen's rows), extra.csv (the figures above) and per run
# the usual files (<run>.csv, .timeseries.csv, .log, .sim-stats.json, .gateway-metrics.txt,
# .yaml, .gateway.log, sim-<run>.log) plus .sim-series.csv, .sim-rates.csv,
# .gateway-series.csv; s2/signals.png; $RESULTS/signals/builds.txt and summary.md (also
# printed at the end).
set -u
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

QUICK=0
case "${1:-}" in
  --quick) QUICK=1 ;;
  "") ;;
  *) die "usage: $0 [--quick]" ;;
esac
if ((QUICK)); then
  S1_POINTS="${S1_POINTS:-50 500}"
  S1_DURATION="${S1_DURATION:-10}"
  S2_PHASE="${S2_PHASE:-20}"
  S2_SETTLE="${S2_SETTLE:-10}"
  STEADY_DURATION="${STEADY_DURATION:-40}"
  SIM_WARM_POLLS="${SIM_WARM_POLLS:-10}"
fi
S1_DURATION="${S1_DURATION:-60}"
scenario_defaults
S2_SETTLE="${S2_SETTLE:-20}"
STEADY_RATE="${STEADY_RATE:-30}"
STEADY_DURATION="${STEADY_DURATION:-300}"
STEADY_WINDOW="${STEADY_WINDOW:-240}"
STEADY_DRAIN="${STEADY_DRAIN:-25}"
SIM_WARM_POLLS="${SIM_WARM_POLLS:-60}"
SIM_WARM_INTERVAL=1
GROWTH_FROM=10
# The model under test (lib.sh: a registration = create + AUTO_PAY_OFF = 2 bus events).
use_product_model
GW_STATIC_EVENTS="${GW_STATIC_EVENTS:-24}"
SIGNALS_CONTENDERS="${SIGNALS_CONTENDERS:-gateway-static gateway-healthcheck gateway-adaptive}"
SIGNALS_SCENARIOS="${SIGNALS_SCENARIOS:-s1 s2 s3 s4 steady}"
CONTENDERS="$SIGNALS_CONTENDERS"
for s in $SIGNALS_SCENARIOS; do
  [[ " s1 s2 s3 s4 steady " == *" $s "* ]] || die "unknown scenario $s (SIGNALS_SCENARIOS: s1 s2 s3 s4 steady)"
done
for c in $SIGNALS_CONTENDERS; do
  [[ "$c" == gateway-* ]] || log "note: $c is no gateway: no gateway series, no signal column"
done
# Phase windows must leave something to count.
((S2_PHASE > S2_SETTLE)) || die "S2_PHASE ($S2_PHASE) must exceed S2_SETTLE ($S2_SETTLE)"
((STEADY_DURATION > 20)) || die "STEADY_DURATION must exceed 20 s"
((STEADY_WINDOW > STEADY_DURATION - 20)) && STEADY_WINDOW=$((STEADY_DURATION - 20))
STEADY_FROM=$((STEADY_DURATION - STEADY_WINDOW))

require_tools
command -v jq >/dev/null || die "jq is needed (per-second /sim/stats samples)"
[[ -x "$GATEWAY_BIN" ]] || die "billing-gateway not found at $GATEWAY_BIN"

# Copies of the binaries, removed on exit.
BIN_DIR="$(mktemp -d /tmp/signals-bin.XXXXXX)"
on_exit() {
  local rc=$?
  stop_all
  rm -rf "$BIN_DIR"
  exit "$rc"
}
cp "$SIM_BIN" "$GATEWAY_BIN" "$LOADGEN_BIN" "$BIN_DIR/"
ORIG_GATEWAY_BIN="$GATEWAY_BIN" ORIG_SIM_BIN="$SIM_BIN" ORIG_LOADGEN_BIN="$LOADGEN_BIN"
SIM_BIN="$BIN_DIR/killbill-sim" GATEWAY_BIN="$BIN_DIR/billing-gateway" LOADGEN_BIN="$BIN_DIR/billing-loadgen"

ROOT="$RESULTS/signals"
mkdir -p "$ROOT"
for s in $SIGNALS_SCENARIOS; do fresh_results "signals/$s" >/dev/null; done
{
  echo "signals.sh$( ((QUICK)) && echo " --quick") at $(date -u +%Y-%m-%dT%H:%M:%SZ), load average $(cut -d' ' -f1-3 /proc/loadavg), $(nproc) cores"
  echo "source: $REPO_ROOT at $(git -C "$REPO_ROOT" describe --always --dirty 2>/dev/null || echo '?') when the run started"
  for f in "$ORIG_GATEWAY_BIN" "$ORIG_SIM_BIN" "$ORIG_LOADGEN_BIN"; do
    echo "$f (built $(date -u -r "$f" +%Y-%m-%dT%H:%M:%SZ)) sha256 $(sha256sum <"$f" | cut -c1-16)"
  done
  echo "GW_GENERATION=$GW_GENERATION TAGS=$TAGS TAG_EVENTS=$TAG_EVENTS DEADLINE_S=$DEADLINE_S FAILURE_WAIT=$FAILURE_WAIT SIM_WARM_POLLS=$SIM_WARM_POLLS"
  echo "static $GW_STATIC_EVENTS events/s; adaptive initial/min/max $GW_ADAPTIVE_INITIAL_EVENTS/$GW_ADAPTIVE_MIN_EVENTS/$GW_ADAPTIVE_MAX_EVENTS events/s, increase_step $GW_ADAPTIVE_STEP_EVENTS, burst $GW_BURST_EVENTS"
  echo "contenders: $SIGNALS_CONTENDERS; scenarios: $SIGNALS_SCENARIOS"
} >"$ROOT/builds.txt"
cat "$ROOT/builds.txt" >&2
START=$(date +%s)

# Every run samples the sim and the gateway each second from the start of its load.
on_run_start() { start_samplers "$1"; }

# steady_run CONTENDER DIR SUMMARY [RUN]: open loop at STEADY_RATE/s for STEADY_DURATION s at
# bus drain STEADY_DRAIN.
steady_run() {
  local c="$1" dir="$2" summary="$3" run="${4:-$1}"
  start_contender "$c" "$dir" "$run" || return 1
  sim_post /sim/config "{\"bus_drain\": $STEADY_DRAIN}"
  on_run_start "$dir/$run" "$c"
  start_loadgen "$dir/$run" --label "$c" --rate "$STEADY_RATE" --duration "${STEADY_DURATION}s" \
    --max-outstanding "$S2_MAX_OUTSTANDING"
  finish_loadgen "$summary" "$c" "${STEADY_RATE}/s" "$dir/$run"
  stop_all
}

# fmt_healthy HEALTHY_S SECONDS POLLS: "98.3 % (118 of 120 s)", "-" without polls.
fmt_healthy() {
  awk -v h="$1" -v n="$2" -v p="$3" 'BEGIN {
    if (n > 0 && p > 0) printf "%.1f %% (%d of %d s)\n", 100 * h / n, h, n; else print "-" }'
}

# signals_run SCENARIO CONTENDER [N]: one run, then its row of extra.csv and of the table
# (DIR/rows.md).
signals_run() {
  local s="$1" c="$2" n="${3:-}" dir="$ROOT/$1" run point
  log "--- $s $c${n:+ c$n}"
  local summary="$dir/summary.csv"
  case "$s" in
    s1) run="$c-c$n" point="$n"; s1_point "$c" "$n" "$dir" "$summary" "$run" ;;
    s2) run="$c" point="${S2_RATE}/s"; s2_run "$c" "$dir" "$summary" ;;
    s3) run="$c" point="${S3_RATE}/s"; s3_run "$c" "$dir" "$summary" ;;
    s4) run="$c" point="spike$S4_SPIKE"; s4_run "$c" "$dir" "$summary" ;;
    steady) run="$c" point="${STEADY_RATE}/s"; steady_run "$c" "$dir" "$summary" ;;
  esac || { log "warning: $s $c $n did not run"; stop_all; return 0; }
  stop_all
  local p="$dir/$run" ts="$dir/$run.timeseries.csv" series="$dir/$run.sim-series.csv"
  [[ -s "$ts" && -s "$p.csv" ]] || { log "warning: $s $c $n: no loadgen output"; return 0; }
  [[ -s "$series" ]] && sim_rates "$series" >"$p.sim-rates.csv"
  local end max slope posted disp bslope hs secs polls signal="-" healthy specific="" extra_csv=""
  read -r end max slope <<<"$(bus_growth "$ts" "$GROWTH_FROM")"
  [[ -s "$p.gateway-series.csv" ]] && signal="$(signal_mix "$p.gateway-series.csv")"
  case "$s" in
    s2)
      # Seconds outside the three settle windows; per phase the goodput after its window.
      local P="$S2_PHASE" S="$S2_SETTLE" k from to drain g share cells=() csv=()
      read -r posted disp bslope hs secs polls <<<"$(sim_window "$series" 0 $((3 * P)) \
        "0:$S $P:$((P + S)) $((2 * P)):$((2 * P + S))")"
      for k in 0 1 2; do
        from=$((k * P + S)) to=$(((k + 1) * P))
        drain=$([[ $k == 1 ]] && echo "$S2_LOW_DRAIN" || echo "$S2_HIGH_DRAIN")
        g="$(ok_rate "$ts" "$from" "$to")"
        share="$(awk -v g="$g" -v d="$drain" -v e="$EVENTS_PER_REG" 'BEGIN { printf "%.1f", 100 * g / (d / e) }')"
        cells+=("$g/s ($share %)")
        csv+=("$g" "$share")
      done
      specific="| ${cells[0]} | ${cells[1]} | ${cells[2]} "
      extra_csv="$(IFS=,; echo "${csv[*]}")"
      ;;
    s3)
      read -r posted disp bslope hs secs polls <<<"$(sim_window "$series" "$GROWTH_FROM" 1e9)"
      local rec
      rec="$(awk -F, -v e=$((S3_AT + S3_OUTAGE)) '
        NR == 1 { for (i = 1; i <= NF; i++) if ($i == "ok") c = i; next }
        $1 >= e && $c > 0 { print $1 - e; found = 1; exit }
        END { if (!found) print "none" }' "$ts")"
      specific="| $rec "
      extra_csv="$rec"
      ;;
    s4)
      read -r posted disp bslope hs secs polls <<<"$(sim_window "$series" "$GROWTH_FROM" 1e9)"
      local okn
      okn="$(awk -F, 'NR == 1 { for (i = 1; i <= NF; i++) col[$i] = i; next } { print $col["succeeded"] }' "$p.csv")"
      specific="| $okn "
      extra_csv="$okn"
      ;;
    steady)
      read -r posted disp bslope hs secs polls <<<"$(sim_window "$series" "$STEADY_FROM" "$STEADY_DURATION")"
      local ratio
      ratio="$(awk -v p="$posted" -v d="$STEADY_DRAIN" 'BEGIN { if (p == "-") print "-"; else printf "%.1f", 100 * p / d }')"
      specific="| $posted/s = $ratio % | $disp/s | $bslope "
      extra_csv="$posted,$ratio,$disp,$bslope"
      ;;
    *)
      read -r posted disp bslope hs secs polls <<<"$(sim_window "$series" "$GROWTH_FROM" 1e9)"
      ;;
  esac
  healthy="$(fmt_healthy "$hs" "$secs" "$polls")"
  local base
  base="$(awk -F, -v c="$c" -v pt="$point" -v slope="$slope" -v end="$end" -v max="$max" \
    -v healthy="$healthy" -v signal="$signal" '
    NR == 1 { for (i = 1; i <= NF; i++) col[$i] = i; next }
    { printf "| %s | %s | %.2f | %.1f | %s | %s | %.2f | %s / %s | %s | %s ", c, pt,
        $col["goodput_per_s"], $col["success_pct"], $col["timeout"], $col["rejected"],
        slope, end, max, healthy, signal }' "$p.csv")"
  echo "$base${specific}|" >>"$dir/rows.md"
  [[ -s "$dir/extra.csv" ]] || {
    local h="contender,point,backlog_end,backlog_max,growth,healthy_s,seconds,polls,signal"
    case "$s" in
      s2) h+=",goodput_p1,share_p1,goodput_p2,share_p2,goodput_p3,share_p3" ;;
      s3) h+=",first_success_after_outage_s" ;;
      s4) h+=",succeeded" ;;
      steady) h+=",posted_per_s,posted_pct_of_drain,dispatched_per_s,backlog_slope" ;;
    esac
    echo "$h" >"$dir/extra.csv"
  }
  echo "$c,$point,$end,$max,$slope,$hs,$secs,$polls,$signal${extra_csv:+,$extra_csv}" >>"$dir/extra.csv"
}

for s in $SIGNALS_SCENARIOS; do
  case "$s" in
    s1)
      log "S1: points [$S1_POINTS], ${S1_DURATION}s each"
      for n in $S1_POINTS; do
        for c in $SIGNALS_CONTENDERS; do signals_run s1 "$c" "$n"; done
      done
      ;;
    *) for c in $SIGNALS_CONTENDERS; do signals_run "$s" "$c"; done ;;
  esac
done

if [[ " $SIGNALS_SCENARIOS " == *" s2 "* ]]; then
  plot_cs=()
  for c in $SIGNALS_CONTENDERS; do [[ "$c" == gateway-static ]] || plot_cs+=("$c"); done
  plot_rate_signals "$ROOT/s2/signals.png" \
    "S2: open loop ${S2_RATE}/s, bus drain $S2_HIGH_DRAIN -> $S2_LOW_DRAIN -> $S2_HIGH_DRAIN events/s at ${S2_PHASE} s and $((2 * S2_PHASE)) s (TAG_EVENTS=$TAG_EVENTS: $EVENTS_PER_REG events per registration)" \
    "$ROOT/s2" "$S2_PHASE $((2 * S2_PHASE))" "$S2_HIGH_DRAIN $S2_LOW_DRAIN $S2_HIGH_DRAIN" \
    $((3 * S2_PHASE + 10)) ${plot_cs[@]+"${plot_cs[@]}"}
fi

# summary.md
common_head="| contender | point | goodput/s | success % | DEADLINE_EXCEEDED | rejections | bus growth from ${GROWTH_FROM} s (entries/s) | bus backlog end / max | healthy share HEALTHY | signal |"
common_rule="|---|---|---|---|---|---|---|---|---|---|"
{
  echo "## Rate signals: static vs healthcheck vs bus counters (signals.sh$( ((QUICK)) && echo " --quick"), $(date -u +%Y-%m-%d), $((($(date +%s) - START) / 60)) min)"
  echo
  echo '```'
  cat "$ROOT/builds.txt"
  echo '```'
  echo
  echo "Sustainable goodput = bus drain / $EVENTS_PER_REG registrations/s. Healthy share: seconds in which the sim's healthcheck_unhealthy_total did not rise (the gateway polls every second). Signal: share of the gateway's per-second samples on each billing_gateway_rate_signal source (none: no source at 1)."
  for s in $SIGNALS_SCENARIOS; do
    d="$ROOT/$s"
    echo
    case "$s" in
      s1)
        echo "### S1 registration storm (closed loop, ${S1_DURATION} s per point, deadline ${DEADLINE_S} s)"
        echo
        echo "${common_head/HEALTHY/(from ${GROWTH_FROM} s)}"
        echo "$common_rule"
        ;;
      s2)
        echo "### S2 capacity drop (open loop ${S2_RATE}/s, bus drain $S2_HIGH_DRAIN -> $S2_LOW_DRAIN -> $S2_HIGH_DRAIN, ${S2_PHASE} s phases)"
        echo
        echo "Per phase: goodput from ${S2_SETTLE} s after the change (phase 1: after the start) to the phase's end, and its share of the phase's sustainable goodput ($(awk -v a="$S2_HIGH_DRAIN" -v b="$S2_LOW_DRAIN" -v e="$EVENTS_PER_REG" 'BEGIN { printf "%g, %g, %g", a / e, b / e, a / e }')/s). Healthy share: the seconds of the load outside [0, ${S2_SETTLE}), [${S2_PHASE}, $((S2_PHASE + S2_SETTLE))), [$((2 * S2_PHASE)), $((2 * S2_PHASE + S2_SETTLE))). Picture: s2/signals.png."
        echo
        echo "${common_head/HEALTHY/(outside the ${S2_SETTLE} s windows)} goodput phase 1 (drain $S2_HIGH_DRAIN) | phase 2 (drain $S2_LOW_DRAIN) | phase 3 (drain $S2_HIGH_DRAIN) |"
        echo "$common_rule---|---|---|"
        ;;
      s3)
        echo "### S3 Kill Bill outage (open loop ${S3_RATE}/s for ${S3_TOTAL} s, $S3_MODE outage ${S3_OUTAGE} s at ${S3_AT} s)"
        echo
        echo "First success after the outage: the loadgen's first 1-s row at or after t = $((S3_AT + S3_OUTAGE)) s with a success, minus $((S3_AT + S3_OUTAGE)) s (the success fell within that second). The healthy share counts only seconds the sim answered /sim/stats (not the outage)."
        echo
        echo "${common_head/HEALTHY/(from ${GROWTH_FROM} s)} first success after the outage (s) |"
        echo "$common_rule---|"
        ;;
      s4)
        echo "### S4 spike ($S4_SPIKE registrations at once, deadline ${DEADLINE_S} s)"
        echo
        echo "${common_head/HEALTHY/(from ${GROWTH_FROM} s)} successes |"
        echo "$common_rule---|"
        ;;
      steady)
        echo "### Steady state (open loop ${STEADY_RATE}/s for ${STEADY_DURATION} s, bus drain $STEADY_DRAIN)"
        echo
        echo "Over the last ${STEADY_WINDOW} s of the load ($STEADY_FROM s <= t < ${STEADY_DURATION} s), from the sim's counters sampled each second: bus events posted per second and as a share of the drain $STEADY_DRAIN (the issue: within 2 % for adaptive on metrics), events dispatched per second, the bus backlog's least-squares slope; the healthy share over the same seconds."
        echo
        echo "${common_head/HEALTHY/(last ${STEADY_WINDOW} s)} posted/s = % of $STEADY_DRAIN (last ${STEADY_WINDOW} s) | dispatched/s | bus slope (entries/s, last ${STEADY_WINDOW} s) |"
        echo "$common_rule---|---|---|"
        ;;
    esac
    cat "$d/rows.md" 2>/dev/null || echo "(no run)"
  done
} >"$ROOT/summary.md"
echo
cat "$ROOT/summary.md"
log "signals: done in $((($(date +%s) - START) / 60)) min -> $ROOT"
