#!/usr/bin/env bash
# S6 Kubernetes probes: registrations above Kill Bill's capacity for 15 minutes with the seed
# platform's liveness and readiness probes on, for every contender side by side. Shows which
# contender gets Kill Bill taken out of the Service and restarted by the kubelet.
#
# The platform probes Kill Bill's GET /1.0/healthcheck (both probes) every 30 s with a failure
# threshold of 10 and initialDelaySeconds 120; the healthcheck answers 500 while the bus grows,
# so ~5 minutes of overfeeding makes the pod unready (callers are refused) and restarts it
# (docs/killbill.md). killbill-sim models this (--probes, bench/killbill_sim/probe_model.h):
# its probe calls are samples in the healthcheck's shared 60-sample window, and a probe round
# that gets none of Kill Bill's request threads within S6_PROBE_TIMEOUT s (timeoutSeconds 10)
# fails; after the threshold the sim refuses connections and restarts: down for S6_PROBE_RESTART s (no API, no
# bus drain; an assumption: the manifest does not say how long Kill Bill takes to stop and
# start), probes again S6_PROBE_DELAY s after the restart, back in the Service at the first
# successful readiness probe. The bus backlog and the accounts survive a restart; the
# healthcheck's sample window starts empty.
#
# Load: open loop S6_RATE registrations/s (default 30; create + AUTO_PAY_OFF = 2 Kill Bill
# calls and 2 bus events each: 60 events/s against a 25/s drain), S6_DURATION s (900), per-call
# deadline DEADLINE_S (30 s), at most S6_MAX_OUTSTANDING (1000) in flight. Each sim is warmed
# with 60 healthcheck polls (1/s: its window full, as on a Kill Bill that has been up) and
# polled once a second throughout: by the gateway's health monitor for the gateways, by
# lib.sh's start_health_monitor (an operator's monitoring) for direct, nginx and HAProxy, so
# every sim's window has the same samplers besides the probes. The gateways run the product
# model (lib.sh use_product_model: adaptive 10/1/50 events/s, rate.signal auto) and
# gateway-static 24 events/s (96 % of the 25/s drain), as in S5 and signals.sh. nginx:
# limit_req NGINX_RATE (25) calls/s; HAProxy: maxconn HAPROXY_MAXCONN (10).
#
# The contenders run CONCURRENTLY, each with its own sim, front and loadgen on its own ports
# (30 registrations/s each is light; the whole run takes S6_DURATION plus ~2 minutes instead
# of five times that). They share the machine's CPUs with each other (and with whatever else
# runs): compare them within one run.
#
#   bench/scenarios/s6_probes.sh           15 minutes, the platform's probe schedule
#                                          (30 s / 10 / 120 s delay, 60 s restart): ~17 min
#   bench/scenarios/s6_probes.sh --quick   the demo's variant: probe schedule scaled down
#                                          x1/6 (period 5 s, threshold 10, delay 20 s, restart
#                                          10 s, timeout 2 s), 180 s of load, 60 warm-up polls at 0.5 s:
#                                          ~4 minutes. NOT the platform's schedule; stated in
#                                          its output.
# Environment: S6_RATE (30), S6_DURATION (900; --quick 180), S6_PROBE_PERIOD (30; --quick 5),
# S6_PROBE_THRESHOLD (10), S6_PROBE_DELAY (120; --quick 20), S6_PROBE_RESTART (60; --quick
# 10), S6_PROBE_TIMEOUT (10; --quick 2), S6_MAX_OUTSTANDING (1000), SIM_WARM_POLLS (60),
# SIM_WARM_INTERVAL (1; --quick 0.5), GW_STATIC_EVENTS (24), S6_OUT (results folder name: s6, --quick s6-quick), plus lib.sh's
# (CONTENDERS, BUILD, DEADLINE_S, NGINX_RATE, HAPROXY_MAXCONN, ...). GW_GENERATION, TAGS and
# TAG_EVENTS are fixed (new, 1, 1).
# Output: $RESULTS/$S6_OUT/ (replaced): per contender <c>.csv (billing-loadgen's summary),
# <c>.timeseries.csv (per second: ok, timeouts, errors, sim bus backlog), <c>.probe-series.csv
# (per second from the sim's control port: bus backlog, probe phase, restarts, unready
# seconds), <c>.sim-stats.json (the sim at the end), logs and configs; summary.csv
# (billing-loadgen's rows), extra.csv (probe figures), backlog.png (bus backlog over time per
# contender, unready periods shaded, restarts marked; s6_plot.gp) and summary.md, also
# printed.
set -u
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

QUICK=0
case "${1:-}" in
  --quick) QUICK=1 ;;
  "") ;;
  *) die "usage: $0 [--quick]" ;;
esac
if ((QUICK)); then
  S6_DURATION="${S6_DURATION:-180}"
  S6_PROBE_PERIOD="${S6_PROBE_PERIOD:-5}"
  S6_PROBE_DELAY="${S6_PROBE_DELAY:-20}"
  S6_PROBE_RESTART="${S6_PROBE_RESTART:-10}"
  S6_PROBE_TIMEOUT="${S6_PROBE_TIMEOUT:-2}"
  SIM_WARM_INTERVAL="${SIM_WARM_INTERVAL:-0.5}"
  S6_OUT="${S6_OUT:-s6-quick}"
fi
S6_RATE="${S6_RATE:-30}"
S6_DURATION="${S6_DURATION:-900}"
S6_PROBE_PERIOD="${S6_PROBE_PERIOD:-30}"
S6_PROBE_THRESHOLD="${S6_PROBE_THRESHOLD:-10}"
S6_PROBE_DELAY="${S6_PROBE_DELAY:-120}"
S6_PROBE_RESTART="${S6_PROBE_RESTART:-60}"
S6_PROBE_TIMEOUT="${S6_PROBE_TIMEOUT:-10}"
S6_MAX_OUTSTANDING="${S6_MAX_OUTSTANDING:-1000}"
S6_OUT="${S6_OUT:-s6}"
SIM_WARM_POLLS="${SIM_WARM_POLLS:-60}"
SIM_WARM_INTERVAL="${SIM_WARM_INTERVAL:-1}"
use_product_model
GW_STATIC_EVENTS="${GW_STATIC_EVENTS:-24}"
SIM_ARGS="${SIM_ARGS:+$SIM_ARGS }--control_port 0 --probes --probe_period_s $S6_PROBE_PERIOD --probe_failure_threshold $S6_PROBE_THRESHOLD --probe_initial_delay_s $S6_PROBE_DELAY --probe_restart_s $S6_PROBE_RESTART --probe_timeout_s $S6_PROBE_TIMEOUT"
if ((QUICK)); then
  SCHEDULE="--quick: probe schedule scaled down x1/6 (period ${S6_PROBE_PERIOD} s, threshold ${S6_PROBE_THRESHOLD}, initial delay ${S6_PROBE_DELAY} s, restart ${S6_PROBE_RESTART} s, timeout ${S6_PROBE_TIMEOUT} s), NOT the platform schedule (30 s / 10 / 120 s / 10 s)"
else
  SCHEDULE="probes every ${S6_PROBE_PERIOD} s, failure threshold ${S6_PROBE_THRESHOLD}, initial delay ${S6_PROBE_DELAY} s, timeout ${S6_PROBE_TIMEOUT} s, restart ${S6_PROBE_RESTART} s"
fi

require_tools
command -v jq >/dev/null || die "jq is needed (per-second /sim/stats samples)"
OUT="$(fresh_results "$S6_OUT")"
log "S6 probes: ${S6_RATE} registrations/s for ${S6_DURATION} s; $SCHEDULE; contenders [$CONTENDERS] concurrently -> $OUT"

# The sim's /sim/ routes on its control port (reachable while Kill Bill refuses).
sim_stats_json() { curl -sS -m 5 "$SIM_CONTROL_URL/sim/stats" 2>/dev/null || true; }

# sample_probes FILE T0: the sim's bus and probe state once a second until stopped.
sample_probes() {
  local file="$1" t0="$2" k=0 wait t
  echo "t,bus_backlog,probe_phase,out_of_service,probe_restarts,probe_unready_seconds,probe_failures,healthcheck_unhealthy_total,accounts_created" >"$file"
  while :; do
    t="$(awk -v a="$(date +%s.%N)" -v b="$t0" 'BEGIN { printf "%.2f", a - b }')"
    curl -sS -m 1 "$SIM_CONTROL_URL/sim/stats" 2>/dev/null | jq -r --arg t "$t" '[$t,
      .bus_backlog, .probe_phase, (if .probe_phase == "ready" then 0 else 1 end),
      .probe_restarts, .probe_unready_seconds, .probe_failures,
      .healthcheck_unhealthy_total, .accounts_created] | map(tostring) | join(",")' >>"$file" 2>/dev/null
    read -r k wait <<<"$(next_tick "$t0" "$k")"
    sleep "$wait"
  done
}

# s6_contender C: one contender, start to finish (run in a subshell of its own: lib.sh's
# globals, BG_PIDS and traps are per shell).
s6_contender() {
  local c="$1" t0
  BG_PIDS=()  # the parent's list (earlier subshells) is not this shell's to stop
  trap on_exit EXIT
  trap 'exit 130' INT
  trap 'exit 143' TERM
  RANDOM=$BASHPID  # free_port's draws differ between the concurrent subshells
  start_contender "$c" "$OUT" "$c" || return 1
  SIM_CONTROL_URL="http://127.0.0.1:$(grep -o 'control on 127\.0\.0\.1:[0-9]*' "$OUT/sim-$c.log" | head -1 | sed 's/.*://')"
  [[ "$SIM_CONTROL_URL" =~ :[0-9]+$ ]] || die "$c: the sim printed no control port (see $OUT/sim-$c.log)"
  start_health_monitor
  t0="$(date +%s.%N)"
  sample_probes "$OUT/$c.probe-series.csv" "$t0" &
  BG_PIDS+=("$!")
  local tags_flag=--tag-auto-pay-off
  "$LOADGEN_BIN" --target "$TARGET" --deadline "${DEADLINE_S}s" "$tags_flag" \
    --failure-wait "$FAILURE_WAIT" --output csv --progress plain \
    --timeseries "$OUT/$c.timeseries.csv" --sim-stats "$SIM_CONTROL_URL" \
    --label "$c" --rate "$S6_RATE" --duration "${S6_DURATION}s" \
    --max-outstanding "$S6_MAX_OUTSTANDING" >"$OUT/$c.csv" 2>"$OUT/$c.log" &
  LOADGEN_PID=$!
  BG_PIDS+=("$LOADGEN_PID")
  finish_loadgen "$OUT/$c.summary-row.csv" "$c" "${S6_RATE}/s" "$OUT/$c"
  stop_all
}

PIDS=()
for c in $CONTENDERS; do
  (s6_contender "$c") &
  PIDS+=("$!")
  BG_PIDS+=("$!")
done
for p in "${PIDS[@]}"; do wait "$p" || log "warning: a contender's run exited $?"; done
BG_PIDS=()

# summary.csv: the contenders' loadgen rows in CONTENDERS order.
SUMMARY="$OUT/summary.csv"
EXTRA="$OUT/extra.csv"
rm -f "$SUMMARY"
for c in $CONTENDERS; do
  f="$OUT/$c.summary-row.csv"
  [[ -s "$f" ]] || continue
  [[ -s "$SUMMARY" ]] || head -1 "$f" >"$SUMMARY"
  tail -n +2 "$f" >>"$SUMMARY"
  rm -f "$f"
done
[[ -s "$SUMMARY" ]] || die "no run produced a summary"

# extra.csv: per contender, from the end-of-run /sim/stats and the per-second series:
# restarts, seconds out of the Service (unready, down or starting), unready periods, probe
# failures and timed-out probe rounds (no request thread within the timeout: 2 failures
# each), when the restarts happened (s after the load started), the largest and the last
# bus backlog.
echo "contender,restarts,unready_s,unready_periods,probe_failures,probe_timeouts,restart_at_s,backlog_max,backlog_end" >"$EXTRA"
for c in $CONTENDERS; do
  j="$OUT/$c.sim-stats.json" s="$OUT/$c.probe-series.csv"
  [[ -s "$j" && -s "$s" ]] || continue
  read -r restarts unready periods failures timeouts <<<"$(jq -r '[.probe_restarts, .probe_unready_seconds, .probe_unready_periods, .probe_failures, (.probe_timeouts // 0)] | map(tostring) | join(" ")' "$j")"
  read -r at bmax bend <<<"$(awk -F, 'NR > 1 && $2 != "" {
      if (pr != "" && $5 > pr) at = at (at == "" ? "" : ";") sprintf("%.0f", $1)
      pr = $5; if ($2 > max) max = $2; last = $2 }
    END { print (at == "" ? "-" : at), max + 0, last + 0 }' "$s")"
  printf '%s,%s,%.1f,%s,%s,%s,%s,%s,%s\n' "$c" "$restarts" "$unready" "$periods" "$failures" "$timeouts" "$at" "$bmax" "$bend" >>"$EXTRA"
done

if command -v gnuplot >/dev/null; then
  gnuplot -e "dir='$OUT'; contenders='$CONTENDERS'; xmax=$((S6_DURATION + 60)); title='S6: bus backlog, ${S6_RATE} registrations/s for ${S6_DURATION} s; ${SCHEDULE//\'/}'" \
    "$SCENARIO_DIR/s6_plot.gp" || log "warning: gnuplot failed"
else
  log "gnuplot missing: no backlog.png"
fi

{
  echo "### S6 Kubernetes probes (open loop ${S6_RATE} registrations/s = $((S6_RATE * EVENTS_PER_REG)) bus events/s against a 25/s drain, ${S6_DURATION} s, contenders concurrently; $SCHEDULE)"
  echo
  echo "Restarts and seconds out of the Service (unready, down or starting) from the sim's /sim/stats at the end of the run; restart times in seconds after the load started. Registrations: ok / attempted over the whole run; goodput = ok / elapsed. Errors include refused connections while Kill Bill was out of the Service."
  echo
  echo "| contender | Kill Bill restarts | seconds unready | unready periods | probe failures (timed-out rounds) | restarts at (s) | successful registrations | attempted | goodput /s | timeouts | errors | rejected | not_sent | bus backlog max / end |"
  echo "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"
  awk -F, '
    FNR == 1 { delete col; for (i = 1; i <= NF; i++) col[$i] = i; file++; next }
    file == 1 { for (k in col) x[$col["contender"], k] = $col[k]; next }
    {
      c = $col["contender"]
      printf "| %s | %s | %s | %s | %s | %s | %s | %s | %.2f | %s | %s | %s | %s | %s |\n", c,
        x[c, "restarts"], x[c, "unready_s"], x[c, "unready_periods"], x[c, "probe_failures"] " (" x[c, "probe_timeouts"] ")",
        x[c, "restart_at_s"], $col["succeeded"], $col["attempted"], $col["goodput_per_s"],
        $col["timeout"], $col["error"], $col["rejected"], $col["not_sent"],
        x[c, "backlog_max"] " / " x[c, "backlog_end"]
    }' "$EXTRA" "$SUMMARY"
  echo
  echo "Error codes: $(awk -F, 'NR == 1 { for (i = 1; i <= NF; i++) col[$i] = i; next }
    { printf "%s%s %s", (NR > 2 ? "; " : ""), $col["contender"], ($col["error_codes"] == "" ? "none" : $col["error_codes"]) }' "$SUMMARY")"
} >"$OUT/summary.md"
echo
cat "$OUT/summary.md"
