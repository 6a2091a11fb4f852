#!/usr/bin/env bash
# Adaptive rate dynamics: the gateway in adaptive mode with the rate keys at their
# config defaults (initial 10, min 1, max 50 bus events/s: nothing tuned), an open loop of
# ADAPTIVE_LOAD registrations/s (more than Kill Bill sustains), and killbill-sim's bus drain
# going 25 -> 12 -> 25 events/s. Measures what issue 4 asks of the controller:
#   reach   seconds from start until the rate is >= 90 % of the sustainable rate
#           (the drain, 25 events/s: 22.5)
#   follow  seconds from the drop until the rate is <= 110 % of the new sustainable rate
#           (12 events/s: 13.2)
#   recover seconds from the drop until Kill Bill's healthcheck is green for good
#           (the last growing poll of the phase)
#   healthy share of 1-s samples, after warm-up (t >= ADAPTIVE_WARMUP) and outside the
#           drop's transition, in which the healthcheck number the gateway read was
#           <= 0.1 (Kill Bill's own "not growing")
#   climb   seconds from the drain's return to 25 until the rate is >= 22.5 again
# Rates are the gateway's unit, main-bus events/s (a registration with its tag posts 2).
# The rate, growth number, queue depth, breaker state and the controller's drain estimate are
# scraped from the gateway's
# /metrics page every second (no extra healthcheck sample reaches the sim).
#
#   bench/scenarios/adaptive.sh
# Environment: ADAPTIVE_LOAD (30), ADAPTIVE_PHASES ("90 90 120": seconds at drain 25, 12,
# 25), ADAPTIVE_WARMUP (60), plus lib.sh's.
# Output: $RESULTS/adaptive/{gateway-adaptive.*,metrics.csv,summary.md,rate.png}.
set -u
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

ADAPTIVE_LOAD="${ADAPTIVE_LOAD:-30}"
read -r P1 P2 P3 <<<"${ADAPTIVE_PHASES:-90 90 120}"
ADAPTIVE_WARMUP="${ADAPTIVE_WARMUP:-60}"
GW_ADAPTIVE_INITIAL_EVENTS=10 GW_ADAPTIVE_MIN_EVENTS=1 GW_ADAPTIVE_MAX_EVENTS=50
CONTENDERS=gateway-adaptive

require_tools
OUT="$(fresh_results adaptive)"
METRICS="$OUT/metrics.csv"
log "adaptive: ${ADAPTIVE_LOAD}/s for ${P1}+${P2}+${P3}s, drain 25 -> 12 -> 25 -> $OUT"

start_contender gateway-adaptive "$OUT" || die "gateway did not start"
sim_post /sim/config '{"bus_drain": 25}'

# One line per second: t, rate (events/s), bus growth number, queue depth, breaker state.
sample_metrics() {
  local t0="$1" total="$2" page t
  echo "t,rate,growth,queue_depth,breaker_state,drain_estimate" >"$METRICS"
  while :; do
    t=$(($(date +%s) - t0))
    ((t > total)) && break
    page="$(curl -sS -m 1 "http://127.0.0.1:$GW_METRICS_PORT/metrics" 2>/dev/null)" || page=""
    awk -v t="$t" '
      /^billing_gateway_rate_limit_events_per_second / { rate = $2 }
      /^billing_gateway_killbill_queue_growth\{.*queue="bus"/ { growth = $2 }
      /^billing_gateway_queue_depth / { depth = $2 }
      /^billing_gateway_rate_drain_estimate_events_per_second / { drain = $2 }
      /^billing_gateway_breaker_state\{/ && $2 == 1 { match($0, /state="[a-z_]*"/); breaker = substr($0, RSTART + 7, RLENGTH - 8) }
      END { printf "%d,%s,%s,%s,%s,%s\n", t, rate, (growth == "" ? 0 : growth), depth, breaker, drain }' \
      <<<"$page" >>"$METRICS"
    sleep 1
  done
}

total=$((P1 + P2 + P3))
t0=$(date +%s)
sample_metrics "$t0" "$total" &
BG_PIDS+=("$!")
start_loadgen "$OUT/gateway-adaptive" --label gateway-adaptive --rate "$ADAPTIVE_LOAD" \
  --duration "${total}s" --max-outstanding 2000
sleep "$P1"
log "bus_drain -> 12"
sim_post /sim/config '{"bus_drain": 12}'
sleep "$P2"
log "bus_drain -> 25"
sim_post /sim/config '{"bus_drain": 25}'
finish_loadgen "$OUT/summary.csv" gateway-adaptive "${ADAPTIVE_LOAD}/s" "$OUT/gateway-adaptive"
stop_all

awk -F, -v p1="$P1" -v p2="$P2" -v warm="$ADAPTIVE_WARMUP" '
  NR == 1 || $2 == "" { next }
  { t = $1; rate = $2; g = $3 }
  reach == "" && rate >= 22.5 { reach = t }
  t >= p1 && t < p1 + p2 && follow == "" && rate <= 13.2 { follow = t - p1 }
  t >= p1 && t < p1 + p2 && g > 0.1 { last_growing = t }
  t >= p1 + p2 && climb == "" && rate >= 22.5 { climb = t - p1 - p2 }
  # Healthy share: after warm-up, outside [drop, drop + 60 s) where the bus is expected to
  # show the drop until the controller has cut.
  t >= warm && !(t >= p1 && t < p1 + 60) { n++; if (g <= 0.1) ok++ }
  t >= p1 + p2 && g > 0.1 { growing_after_return++ }
  END {
    printf "| reach 90%% (22.5 events/s) from 10 | %s |\n", (reach == "" ? "not reached" : reach " s")
    printf "| follow the drop to <= 13.2 events/s | %s |\n", (follow == "" ? "not reached" : follow " s")
    printf "| healthcheck green for good after the drop | %s |\n", (last_growing == "" ? "never growing" : last_growing + 1 - p1 " s")
    printf "| healthy samples after warm-up (excl. 60 s after the drop) | %.1f %% (%d of %d) |\n", 100 * ok / n, ok, n
    printf "| back to >= 22.5 events/s after the drain returns | %s |\n", (climb == "" ? "not within the phase" : climb " s")
  }' "$METRICS" >"$OUT/summary.md.tmp"
{
  echo "### Adaptive rate (defaults: initial 10, min 1, max 50 events/s; open loop ${ADAPTIVE_LOAD}/s; drain 25 -> 12 -> 25 at ${P1} s and $((P1 + P2)) s)"
  echo
  echo "| measure | value |"
  echo "|---|---|"
  cat "$OUT/summary.md.tmp"
  echo
  markdown_table "$OUT/summary.csv"
} >"$OUT/summary.md"
rm -f "$OUT/summary.md.tmp"

if command -v gnuplot >/dev/null; then
  gnuplot <<EOF
set terminal pngcairo size 900,500 noenhanced
set datafile separator ','
set xlabel 'time (s)'
set grid
set key outside right
set y2tics
set ylabel 'rate (bus events/s)'
set y2label 'bus backlog (entries)'
set output '$OUT/rate.png'
set title 'Adaptive rate: drain 25 -> 12 -> 25 events/s (the gateway's rate in events/s)'
plot '$METRICS' using 1:2 every ::1 with lines title 'gateway rate', \
     '$OUT/gateway-adaptive.timeseries.csv' using 1:9 every ::1 axes x1y2 with lines title 'sim bus backlog'
EOF
fi
cat "$OUT/summary.md"
