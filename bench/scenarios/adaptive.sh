#!/usr/bin/env bash
# Adaptive rate dynamics, both signals in one invocation: gateway-healthcheck (rate.signal
# healthcheck: the healthcheck-growth model) then gateway-adaptive (rate.signal auto: Kill
# Bill's bus counters from GET /1.0/metrics), each on a fresh killbill-sim, with the rate keys
# at their config defaults (initial 10, min 1, max 50 bus events/s: nothing tuned), an open
# loop of ADAPTIVE_LOAD registrations/s (more than Kill Bill sustains), and killbill-sim's bus
# drain going 25 -> 12 -> 25 events/s. Each sim is first warmed with SIM_WARM_POLLS (60)
# healthcheck polls one second apart, so its 60-sample growth window is full as on a Kill
# Bill that has been up a while (a fresh one reports no growth for a minute: the healthcheck
# signal would be blind; SIM_WARM_POLLS=0 runs cold). Measures what issue 4 asks of the
# controller, per signal:
#   reach   seconds from start until the rate is >= 90 % of the sustainable rate
#           (the drain, 25 events/s: 22.5)
#   follow  seconds from the drop until the rate is <= 110 % of the new sustainable rate
#           (12 events/s: 13.2)
#   recover seconds from the drop until Kill Bill's healthcheck is green for good
#           (the last growing poll of the phase)
#   healthy share of 1-s samples, after warm-up (t >= ADAPTIVE_WARMUP) and outside the
#           drop's transition, in which the healthcheck number the gateway read was
#           <= 0.1 (Kill Bill's own "not growing"); also the sim's own verdict over the same
#           seconds (healthcheck_unhealthy_total did not rise in the second)
#   climb   seconds from the drain's return to 25 until the rate is >= 22.5 for good (for
#           30 s, or to the end: a healthcheck climb probe's burst reaches it for seconds)
# Rates are the gateway's unit, main-bus events/s (a registration with its tag posts 2).
# The gateway's /metrics (rate, signal source, the backlog and growth number it read, queue
# depth, breaker state, drain estimate) and the sim's /sim/stats (posted, dispatched,
# backlog, healthcheck verdicts) are sampled every second (lib.sh start_samplers; neither
# adds a healthcheck sample to the sim). About 13 minutes (2 x (60 s warm-up + 300 s + drain)).
#
#   bench/scenarios/adaptive.sh
#   ADAPTIVE_CONTENDERS=gateway-adaptive bench/scenarios/adaptive.sh     one signal only
# Environment: ADAPTIVE_CONTENDERS ("gateway-healthcheck gateway-adaptive"), ADAPTIVE_LOAD
# (30), ADAPTIVE_PHASES ("90 90 120": seconds at drain 25, 12, 25), ADAPTIVE_WARMUP (60),
# SIM_WARM_POLLS (60), plus lib.sh's.
# Output: $RESULTS/adaptive/ with per contender <c>.gateway-series.csv (the scraped
# /metrics), <c>.sim-series.csv and <c>.sim-rates.csv (the sim per second), the loadgen's
# files, <c>.yaml, <c>.gateway.log; summary.csv, summary.md (both signals side by side) and
# rate.png (per signal: rate, the sim's drain and backlog, the signal source).
set -u
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

ADAPTIVE_LOAD="${ADAPTIVE_LOAD:-30}"
read -r P1 P2 P3 <<<"${ADAPTIVE_PHASES:-90 90 120}"
ADAPTIVE_WARMUP="${ADAPTIVE_WARMUP:-60}"
ADAPTIVE_CONTENDERS="${ADAPTIVE_CONTENDERS:-gateway-healthcheck gateway-adaptive}"
SIM_WARM_POLLS="${SIM_WARM_POLLS:-60}"
SIM_WARM_INTERVAL=1
HIGH=25 LOW=12
GW_ADAPTIVE_INITIAL_EVENTS=10 GW_ADAPTIVE_MIN_EVENTS=1 GW_ADAPTIVE_MAX_EVENTS=50
CONTENDERS="$ADAPTIVE_CONTENDERS"

require_tools
command -v jq >/dev/null || die "jq is needed (per-second /sim/stats samples)"
OUT="$(fresh_results adaptive)"
total=$((P1 + P2 + P3))
log "adaptive: [$ADAPTIVE_CONTENDERS] ${ADAPTIVE_LOAD}/s for ${P1}+${P2}+${P3}s, drain $HIGH -> $LOW -> $HIGH -> $OUT"

# adaptive_figures C: the measures of contender C, one per line (in the order of LABELS).
adaptive_figures() {
  local c="$1" hs secs polls
  awk -F, -v p1="$P1" -v p2="$P2" -v total="$total" -v warm="$ADAPTIVE_WARMUP" \
    -v hi="$HIGH" -v lo="$LOW" '
    function s(t) { return sprintf("%d s", int(t + 0.5)) }
    NR == 1 { for (i = 1; i <= NF; i++) col[$i] = i; next }
    $col["rate"] == "" || $1 >= total { next }
    { t = $1; rate = $col["rate"]; g = $col["growth"] }
    reach == "" && rate >= 0.9 * hi { reach = t }
    t >= p1 && t < p1 + p2 && follow == "" && rate <= 1.1 * lo { follow = t - p1 }
    t >= p1 && t < p1 + p2 && g > 0.1 { last_growing = t }
    # Climb: back for good, not the few seconds of burst of a healthcheck climb probe at the
    # old rate: the first second from which the rate stays >= 90 % for 30 s (or to the end).
    t >= p1 + p2 { nt++; ct[nt] = t; cr[nt] = rate }
    # Healthy share: after warm-up, outside [drop, drop + 60 s) where the bus is expected to
    # show the drop until the controller has cut.
    t >= warm && !(t >= p1 && t < p1 + 60) { n++; if (g <= 0.1) ok++ }
    END {
      for (i = 1; i <= nt && climb == ""; i++) {
        held = 1
        for (j = i; j <= nt && ct[j] < ct[i] + 30; j++) if (cr[j] < 0.9 * hi) held = 0
        if (held) climb = ct[i] - p1 - p2
      }
      print (reach == "" ? "not reached" : s(reach))
      print (follow == "" ? "not reached" : s(follow))
      print (last_growing == "" ? "never growing" : s(last_growing + 1 - p1))
      if (n) printf "%.1f %% (%d of %d)\n", 100 * ok / n, ok, n; else print "-"
      print (climb == "" ? "not within the phase" : s(climb))
    }' "$OUT/$c.gateway-series.csv"
  read -r _ _ _ hs secs polls <<<"$(sim_window "$OUT/$c.sim-series.csv" "$ADAPTIVE_WARMUP" "$total" "$P1:$((P1 + 60))")"
  awk -v h="$hs" -v n="$secs" -v p="$polls" 'BEGIN {
    if (n > 0 && p > 0) printf "%.1f %% (%d of %d s)\n", 100 * h / n, h, n; else print "-" }'
  signal_mix "$OUT/$c.gateway-series.csv" 0 "$total"
}
LABELS=("reach 90% (22.5 events/s) from 10"
  "follow the drop to <= 13.2 events/s"
  "healthcheck green for good after the drop"
  "healthy samples after warm-up (excl. 60 s after the drop; growth the gateway read <= 0.1)"
  "back to >= 22.5 events/s after the drain returns"
  "Kill Bill healthy seconds, same span (sim: no unhealthy healthcheck answer in the second)"
  "signal followed (share of 1-s samples)")

ran=()
for c in $ADAPTIVE_CONTENDERS; do
  if ! start_contender "$c" "$OUT"; then
    log "warning: $c did not start; continuing"
    continue
  fi
  sim_post /sim/config "{\"bus_drain\": $HIGH}"
  start_samplers "$OUT/$c"
  start_loadgen "$OUT/$c" --label "$c" --rate "$ADAPTIVE_LOAD" \
    --duration "${total}s" --max-outstanding 2000
  sleep "$P1"
  log "$c: bus_drain -> $LOW"
  sim_post /sim/config "{\"bus_drain\": $LOW}"
  sleep "$P2"
  log "$c: bus_drain -> $HIGH"
  sim_post /sim/config "{\"bus_drain\": $HIGH}"
  finish_loadgen "$OUT/summary.csv" "$c" "${ADAPTIVE_LOAD}/s" "$OUT/$c"
  stop_all
  [[ -s "$OUT/$c.gateway-series.csv" && -s "$OUT/$c.sim-series.csv" ]] || { log "warning: no series for $c"; continue; }
  sim_rates "$OUT/$c.sim-series.csv" >"$OUT/$c.sim-rates.csv"
  adaptive_figures "$c" >"$OUT/$c.figures"
  ran+=("$c")
done
((${#ran[@]} > 0)) || die "no contender ran"

{
  echo "### Adaptive rate by signal (defaults: initial 10, min 1, max 50 events/s; open loop ${ADAPTIVE_LOAD}/s; drain $HIGH -> $LOW -> $HIGH at ${P1} s and $((P1 + P2)) s; sim warmed with $SIM_WARM_POLLS polls)"
  echo
  head="| measure |" rule="|---|"
  for c in "${ran[@]}"; do head+=" $c |" rule+="---|"; done
  echo "$head"
  echo "$rule"
  for i in "${!LABELS[@]}"; do
    row="| ${LABELS[$i]} |"
    for c in "${ran[@]}"; do row+=" $(sed -n "$((i + 1))p" "$OUT/$c.figures") |"; done
    echo "$row"
  done
  echo
  markdown_table "$OUT/summary.csv"
} >"$OUT/summary.md"

plot_rate_signals "$OUT/rate.png" \
  "Adaptive rate by signal: open loop ${ADAPTIVE_LOAD}/s, drain $HIGH -> $LOW -> $HIGH events/s at ${P1} s and $((P1 + P2)) s (rate in events/s)" \
  "$OUT" "$P1 $((P1 + P2))" "$HIGH $LOW $HIGH" $((total + 10)) "${ran[@]}"
cat "$OUT/summary.md"
