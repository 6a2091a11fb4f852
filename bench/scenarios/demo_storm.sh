#!/usr/bin/env bash
# The demo's story (scripts/demo.sh): a registration storm of DEMO_CLIENTS callers for
# DEMO_DURATION s, direct to Kill Bill and through billing-gateway, each against a fresh
# killbill-sim, told in the terminal: Kill Bill's bus backlog and goodput every
# DEMO_STEP s side by side, a table whose every row has the backlog at the end and its growth
# per second next to the throughput, a verdict computed from the runs, and the path of one
# picture (goodput and bus backlog over time, direct vs gateway).
#
# Kill Bill model: killbill-sim's defaults (API 30 calls/s, bus drain 25 events/s, a tagged
# registration posts 2 events: 12.5 registrations/s sustainable), except its overload
# degradation, scaled so a minute shows what a longer storm does: contention starts at
# DEMO_DEGRADE_THRESHOLD backlog entries (sim default 1000) and costs DEMO_DEGRADE_PER_ENTRY
# of capacity and drain per entry beyond (sim default 0.0005). The scaling is printed.
#
#   bench/scenarios/demo_storm.sh
# Environment: DEMO_CLIENTS (500), DEMO_DURATION (45), DEMO_STEP (5),
# DEMO_DEGRADE_THRESHOLD (300), DEMO_DEGRADE_PER_ENTRY (0.002), plus lib.sh's (RESULTS,
# SIM_BIN, GATEWAY_BIN, LOADGEN_BIN, DEADLINE_S).
# Output: $RESULTS/demo/{summary.csv,<contender>.*,storm.png}.
set -u
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

DEMO_CLIENTS="${DEMO_CLIENTS:-500}"
DEMO_DURATION="${DEMO_DURATION:-45}"
DEMO_STEP="${DEMO_STEP:-5}"
DEMO_DEGRADE_THRESHOLD="${DEMO_DEGRADE_THRESHOLD:-300}"
DEMO_DEGRADE_PER_ENTRY="${DEMO_DEGRADE_PER_ENTRY:-0.002}"
use_product_model
SIM_ARGS="--degrade_threshold $DEMO_DEGRADE_THRESHOLD --degrade_per_entry $DEMO_DEGRADE_PER_ENTRY $SIM_ARGS"
S1_DURATION="$DEMO_DURATION" S1_COUNT_CAP=1000000
require_tools
OUT="$(fresh_results demo)"
SUMMARY="$OUT/summary.csv"
# The two contenders and their names in the output.
RUNS=(direct gateway-adaptive)
declare -A NAME=([direct]=direct [gateway-adaptive]=gateway)

echo "Storm: $DEMO_CLIENTS customers registering at once (closed loop, each with its AUTO_PAY_OFF tag,"
echo "${DEADLINE_S} s deadlines) for ${DEMO_DURATION} s; each contender against a fresh killbill-sim:"
echo "  direct   billing-loadgen -> Kill Bill's REST API"
echo "  gateway  billing-loadgen -> billing-gateway (rate.mode adaptive, config/gateway.yaml's rate keys) -> Kill Bill"
echo "killbill-sim: API 30 calls/s, bus drain 25 events/s, a registration posts 2 bus events, so"
echo "12.5 registrations/s is what Kill Bill can absorb. Its overload degradation (capacity and drain"
echo "fall as the backlog grows) is scaled to show within ${DEMO_DURATION} s: it starts at $DEMO_DEGRADE_THRESHOLD entries"
echo "(default 1000) and costs $(awk -v p="$DEMO_DEGRADE_PER_ENTRY" 'BEGIN { printf "%g", 100 * p }') % per entry beyond (default 0.05 %)."
echo

demo_run() { s1_point "$1" "$DEMO_CLIENTS" "$OUT" "$SUMMARY" "$1"; }
for_each_contender_in() { local c; for c in "${RUNS[@]}"; do demo_run "$c" || log "warning: $c failed"; stop_all; done; }
for_each_contender_in

[[ -s "$SUMMARY" ]] || die "no run produced a summary"

# window TIMESERIES FROM TO: "OK_PER_S BACKLOG_AT_END" over FROM <= t < TO.
window() {
  awk -F, -v from="$2" -v to="$3" '
    NR == 1 { for (i = 1; i <= NF; i++) c[$i] = i; next }
    $1 >= from && $1 < to { ok += $c["ok"]; if ($c["backlog"] != "") b = $c["backlog"] }
    END { printf "%.1f %s\n", ok / (to - from), (b == "" ? "-" : sprintf("%d", b)) }' "$1"
}
ts() { echo "$OUT/$1.timeseries.csv"; }

echo
echo "Every ${DEMO_STEP} s: registrations answered OK per second in the window, and Kill Bill's bus backlog"
echo "(entries waiting on its internal bus) at its end. The storm stops issuing at ${DEMO_DURATION} s; calls"
echo "still in flight then finish or time out."
echo
last_t=$(awk -F, 'FNR > 1 && $1 > m { m = $1 } END { print m + 1 }' "$(ts direct)" "$(ts gateway-adaptive)")
printf '| %7s | %11s | %14s | %12s | %15s |\n' "t (s)" "direct ok/s" "direct backlog" "gateway ok/s" "gateway backlog"
printf '|%s|%s|%s|%s|%s|\n' "---------" "-------------" "----------------" "--------------" "-----------------"
for ((t = 0; t < last_t; t += DEMO_STEP)); do
  read -r d_ok d_b <<<"$(window "$(ts direct)" "$t" $((t + DEMO_STEP)))"
  read -r g_ok g_b <<<"$(window "$(ts gateway-adaptive)" "$t" $((t + DEMO_STEP)))"
  [[ "$d_b" == - && "$g_b" == - ]] && continue  # both runs over: a trailing partial sample
  printf '| %3d-%-3d | %11s | %14s | %12s | %15s |\n' "$t" $((t + DEMO_STEP)) "$d_ok" "$d_b" "$g_ok" "$g_b"
done

# Per contender: the loadgen summary, plus the bus at the end, its growth while the storm
# lasted (least squares over 10 s .. DEMO_DURATION), the goodput of the storm's last 15 s and
# the time Kill Bill then needs, with no new load, to work the backlog off (its drain of 25/s
# slowed by the same degradation while the backlog is above the threshold).
catchup_s() {
  awk -v b="$1" -v th="$DEMO_DEGRADE_THRESHOLD" -v p="$DEMO_DEGRADE_PER_ENTRY" 'BEGIN {
    for (t = 0; b > 0.5; t += 0.1) { f = (b > th ? 1 - p * (b - th) : 1); if (f < 0.25) f = 0.25; b -= 25 * f * 0.1 }
    printf "%.0f s", t }'
}
echo
echo "| contender | attempted | ok | success % | timeouts (30 s) | rejected with pushback | goodput/s | goodput/s, last 15 s | Kill Bill bus backlog at end | bus growth/s | Kill Bill catch-up | p50 ms | p95 ms |"
echo "|---|---|---|---|---|---|---|---|---|---|---|---|---|"
for c in "${RUNS[@]}"; do
  row="$(awk -F, -v c="$c" 'NR == 1 { for (i = 1; i <= NF; i++) col[$i] = i; next }
    $1 == c { printf "%s %s %.1f %s %s %.1f %.0f %.0f\n", $col["attempted"], $col["succeeded"], $col["success_pct"],
      $col["timeout"], $col["rejected"], $col["goodput_per_s"], $col["p50_ms"], $col["p95_ms"] }' "$SUMMARY")"
  [[ -n "$row" ]] || continue
  read -r attempted ok pct timeouts rejected goodput p50 p95 <<<"$row"
  read -r end _ slope <<<"$(bus_growth "$(ts "$c")" 10 "$DEMO_DURATION")"
  read -r late _ <<<"$(window "$(ts "$c")" $((DEMO_DURATION - 15)) "$DEMO_DURATION")"
  catchup="$(catchup_s "$end")"
  printf '| %s | %s | %s | %s | %s | %s | %s | %s | **%s** | **%+.2f** | %s | %s | %s |\n' "${NAME[$c]}" "$attempted" "$ok" \
    "$pct" "$timeouts" "$rejected" "$goodput" "$late" "$end" "$slope" "$catchup" "$p50" "$p95"
  eval "END_${NAME[$c]}=$end SLOPE_${NAME[$c]}=$slope LATE_${NAME[$c]}=$late TIMEOUTS_${NAME[$c]}=$timeouts"
  eval "CATCHUP_${NAME[$c]}='$catchup' GOODPUT_${NAME[$c]}=$goodput"
done

echo
echo "attempted counts every call a client made, retries after a rejection included; \"rejected\":"
echo "answered RESOURCE_EXHAUSTED with a grpc-retry-pushback-ms, which the client waited before trying"
echo "again; bus growth: least-squares slope of the backlog from 10 s to ${DEMO_DURATION} s; catch-up: time Kill"
echo "Bill needs after the storm, with no new load, to work the backlog off (its degraded drain);"
echo "p50/p95: time to a success (the gateway's include the wait in its bounded queue, which admits a"
echo "call only when it can be served before its deadline)."
echo
if [[ -n "${END_direct:-}" && -n "${END_gateway:-}" ]]; then
  read -r rej_n _ rej_10ms <<<"$(server_answer_times "$OUT/gateway-adaptive.gateway-metrics.txt" rejected 2>/dev/null || echo "0 - -")"
  factor="$(grep -o '"capacity_factor":[0-9.e-]*' "$OUT/direct.sim-stats.json" 2>/dev/null | cut -d: -f2)"
  echo "Direct: Kill Bill's bus grew $(printf '%+.1f' "$SLOPE_direct") entries/s to $END_direct entries, $CATCHUP_direct of work left after the"
  if [[ -n "$factor" ]]; then
    echo "  storm; past $DEMO_DEGRADE_THRESHOLD entries Kill Bill slowed down (at the end it ran at $(awk -v f="$factor" 'BEGIN { printf "%.0f", 100 * f }') % of its"
    echo "  capacity, /sim/stats), so direct got $GOODPUT_direct registrations/s over the run, $LATE_direct/s in the storm's"
  else
    echo "  storm; past $DEMO_DEGRADE_THRESHOLD entries Kill Bill slowed down, so direct got $GOODPUT_direct registrations/s over"
    echo "  the run, $LATE_direct/s in the storm's"
  fi
  echo "  last 15 s, and $TIMEOUTS_direct callers waited ${DEADLINE_S} s for nothing."
  echo "Gateway: Kill Bill's bus stayed flat ($(printf '%+.2f' "$SLOPE_gateway") entries/s, $END_gateway entries at the end) at"
  echo "  $LATE_gateway registrations/s, what the bus drains; $TIMEOUTS_gateway timeouts; the excess was refused with a retry"
  if [[ "$rej_n" != 0 && "$rej_10ms" != - ]]; then
    echo "  pushback ($(awk -v s="$rej_10ms" 'BEGIN { printf "%.1f", 100 * s }') % of $rej_n rejections answered within 10 ms of arrival, the"
    echo "  gateway's own histogram) instead of piling up inside Kill Bill."
  else
    echo "  pushback instead of piling up inside Kill Bill."
  fi
fi

# One picture: goodput (5 s moving average: a closed loop of 500 against processor sharing
# completes in bursts) and bus backlog over time, direct vs gateway.
smooth() {
  awk -F, 'NR > 1 { t[n] = $1; ok[n] = $3; b[n] = $9; n++ }
    END { for (i = 0; i < n; i++) { s = 0; k = 0
            for (j = i - 2; j <= i + 2; j++) if (j >= 0 && j < n) { s += ok[j]; k++ }
            printf "%s,%.2f,%s\n", t[i], s / k, b[i] } }' "$1"
}
if command -v gnuplot >/dev/null; then
  smooth "$(ts direct)" >"$OUT/direct.plot.csv"
  smooth "$(ts gateway-adaptive)" >"$OUT/gateway.plot.csv"
  gnuplot <<GP 2>"$OUT/storm.gnuplot.log" || log "warning: gnuplot failed (see $OUT/storm.gnuplot.log)"
set terminal pngcairo size 1100,700 noenhanced
set datafile separator ','
set output '$OUT/storm.png'
set multiplot layout 2,1 title 'Registration storm, $DEMO_CLIENTS clients for $DEMO_DURATION s: direct to Kill Bill vs billing-gateway (killbill-sim, degradation scaled)'
set grid
set key top left
set xrange [0:*]
set arrow 1 from $DEMO_DURATION, graph 0 to $DEMO_DURATION, graph 1 nohead dt 3
set title 'goodput, 5 s moving average (Kill Bill absorbs 12.5/s)'
set ylabel 'registrations OK per second'
plot '$OUT/direct.plot.csv' using 1:2 with lines lw 2 title 'direct', \
     '$OUT/gateway.plot.csv' using 1:2 with lines lw 2 title 'gateway'
set xlabel 'time since the storm began (s); dotted: the storm stops issuing'
set ylabel 'entries'
set title "Kill Bill's bus backlog"
plot '$OUT/direct.plot.csv' using 1:3 with lines lw 2 title 'direct', \
     '$OUT/gateway.plot.csv' using 1:3 with lines lw 2 title 'gateway'
unset multiplot
GP
  [[ -s "$OUT/storm.png" ]] && echo && echo "Picture (goodput and Kill Bill's bus backlog over time, direct vs gateway): $OUT/storm.png"
else
  log "gnuplot not installed: no picture"
fi
