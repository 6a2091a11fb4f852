#!/usr/bin/env bash
# The "independent caller" storm: STORM_CALLERS callers (default 300) in a closed loop for
# STORM_DURATION seconds (default 60), 30 s deadline, against killbill-sim on its defaults
# and billing-gateway started with the REFERENCE config file (config/gateway.yaml of the
# gateway's source tree) with only server.listen, metrics.listen, killbill.url and
# logging.level replaced: what an operator gets who changes nothing. lib.sh's GW_* rate
# knobs, TAG_EVENTS and GW_GENERATION play no part: the sim gets no model flag (its own
# default), the gateway no generated key (the copy is checked against the reference with
# --check_config: only the four keys may differ).
#
# Run once per STORM_TAGS value (default "0 1": account creation only, then create + the
# AUTO_PAY_OFF tag), each on a fresh sim and gateway. Per run:
#   goodput      successful creations/s over the whole run (billing-loadgen: ok / elapsed,
#                elapsed including the drain of the last calls) and over
#                STORM_WARMUP <= t < STORM_DURATION (warm-up 20 s)
#   bus growth   least-squares slope of the sim's bus backlog (billing-loadgen's per-second
#                /sim/stats sample) over the same window, entries/s; the backlog when the
#                load stops (t = STORM_DURATION) and at the end (after the drain)
#   drained/s    slope of the sim's bus_drained_total over the window (its own stats, sampled
#                each second by this script: <run>.sim-series.csv); posted/s the same for
#                bus_backlog_exact + bus_drained_total (bus events Kill Bill posted per s)
#   DEADLINE_EXCEEDED, errors, rejections per successful creation
#   healthcheck  the sim's last healthcheck answer to the gateway's polls before the load
#                stops (healthy, or Kill Bill's "Growing queues: ..." message) and the share
#                of unhealthy answers within the window
#
#   bench/scenarios/storm.sh
#   STORM_DURATION=20 GW_GENERATION=old BUILD=/work/baseline/build RESULTS=/tmp/trial \
#     bench/scenarios/storm.sh
# Environment: STORM_CALLERS (or N; 300), STORM_DURATION (or D; 60 s), STORM_WARMUP (20 s, at
# most half of STORM_DURATION),
# STORM_TAGS ("0 1"), STORM_COUNT_CAP (1000000), GW_REFERENCE_CONFIG (lib.sh), plus lib.sh's
# BUILD / SIM_BIN / GATEWAY_BIN / LOADGEN_BIN, DEADLINE_S (30), FAILURE_WAIT, GW_LOG_LEVEL,
# SIM_ARGS (empty: the sim's defaults), RESULTS.
# Output: $RESULTS/storm/ with per run (storm-tags<0|1>) the loadgen's .csv, .timeseries.csv,
# .log, .sim-stats.json, .gateway-metrics.txt, .sim-series.csv, the gateway's .yaml (and
# .yaml.effective: its effective configuration), .gateway.log, sim-<run>.log; storm.csv
# (one row per run) and summary.md (the table, also on stdout).
set -u
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
# Kill Bill as it runs in production: its healthcheck window already full (see lib.sh).
SIM_WARM_POLLS="${SIM_WARM_POLLS:-60}"

STORM_CALLERS="${STORM_CALLERS:-${N:-300}}"
STORM_DURATION="${STORM_DURATION:-${D:-60}}"
# Warm-up: 20 s, or half the run when that is shorter (trial runs).
STORM_WARMUP="${STORM_WARMUP:-$((STORM_DURATION / 2 < 20 ? STORM_DURATION / 2 : 20))}"
STORM_TAGS="${STORM_TAGS:-0 1}"
STORM_COUNT_CAP="${STORM_COUNT_CAP:-1000000}"
# Neither --bus_events_per_tag nor a cost key: both binaries on their own defaults (lib.sh).
# shellcheck disable=SC2034
TAG_EVENTS=""
((STORM_DURATION > STORM_WARMUP + 1)) || die "STORM_DURATION ($STORM_DURATION) must exceed STORM_WARMUP ($STORM_WARMUP) + 1"

require_tools
command -v jq >/dev/null || die "jq is needed"
[[ -x "$GATEWAY_BIN" ]] || die "billing-gateway not found at $GATEWAY_BIN"
OUT="$(fresh_results storm)"
SUMMARY="$OUT/summary.csv"
log "storm: $STORM_CALLERS callers, closed loop ${STORM_DURATION}s, deadline ${DEADLINE_S}s, tags [$STORM_TAGS], gateway $GATEWAY_BIN with $(gateway_reference_config) -> $OUT"

# The sim's own counters each second: lib.sh's sample_sim_stats (<run>.sim-series.csv).

# series_stats SIM_SERIES FROM TO: "DRAINED_PER_S POSTED_PER_S UNHEALTHY POLLS|HEALTH" over
# FROM <= t < TO (slopes by least squares; "-" when the sim does not report the field);
# HEALTH is the last answer before TO.
series_stats() {
  awk -F, -v from="$2" -v to="$3" '
    function fit(sx, sy, sxx, sxy, n) {
      return (n > 1 && n * sxx - sx * sx != 0) ? sprintf("%.2f", (n * sxy - sx * sy) / (n * sxx - sx * sx)) : "-"
    }
    NR == 1 { next }
    $1 >= from && $1 < to {
      t = $1
      if ($5 != "null" && $5 != "") { n1++; sx1 += t; sy1 += $5; sxx1 += t * t; sxy1 += t * $5 }
      if ($4 != "null" && $5 != "null" && $4 != "" && $5 != "") {
        p = $4 + $5; n2++; sx2 += t; sy2 += p; sxx2 += t * t; sxy2 += t * p
      }
      if (!started) { c0 = $6; u0 = $7; started = 1 }
      c1 = $6; u1 = $7; calls = $6; rot = $8; msg = $9
    }
    END {
      health = (calls == "" || calls == 0) ? "no healthcheck yet" : (rot == "false" ? "out of rotation" : (msg == "" ? "healthy" : msg))
      printf "%s %s %d %d|%s\n", fit(sx1, sy1, sxx1, sxy1, n1), fit(sx2, sy2, sxx2, sxy2, n2), u1 - u0, c1 - c0, health
    }' "$1"
}

echo "tags,callers,duration_s,attempted,ok,goodput_per_s,goodput_after_warmup,bus_growth_per_s,backlog_at_stop,backlog_end,drained_per_s,posted_per_s,deadline_exceeded,errors,error_codes,rejected,rejected_per_ok,healthcheck_at_stop,unhealthy_polls,polls" >"$OUT/storm.csv"
for TAGS in $STORM_TAGS; do
  run="storm-tags$TAGS"
  start_contender gateway-reference "$OUT" "$run" || die "the gateway did not start with the reference config"
  t0="$(date +%s.%N)"
  sample_sim_stats "$OUT/$run.sim-series.csv" "$t0" &
  BG_PIDS+=("$!")
  run_loadgen "$SUMMARY" gateway-reference "tags=$TAGS" "$OUT/$run" \
    --concurrency "$STORM_CALLERS" --count "$STORM_COUNT_CAP" --duration "${STORM_DURATION}s"
  stop_all
  [[ -s "$OUT/$run.csv" ]] || { log "warning: no summary for $run"; continue; }

  ts="$OUT/$run.timeseries.csv"
  read -r end _ slope <<<"$(bus_growth "$ts" "$STORM_WARMUP" "$STORM_DURATION")"
  late="$(ok_rate "$ts" "$STORM_WARMUP" "$STORM_DURATION")"
  at_stop="$(awk -F, -v d="$STORM_DURATION" 'NR > 1 && $1 < d && $9 != "" { b = $9 } END { printf "%d", b }' "$ts")"
  IFS='|' read -r nums health <<<"$(series_stats "$OUT/$run.sim-series.csv" "$STORM_WARMUP" "$STORM_DURATION")"
  read -r drained posted unhealthy polls <<<"$nums"
  awk -F, -v OFS=, -v tags="$TAGS" -v callers="$STORM_CALLERS" -v dur="$STORM_DURATION" \
    -v late="$late" -v slope="$slope" -v at_stop="$at_stop" -v end="$end" -v drained="$drained" \
    -v posted="$posted" -v health="$health" -v unhealthy="$unhealthy" -v polls="$polls" '
    NR == 1 { for (i = 1; i <= NF; i++) col[$i] = i; next }
    {
      ok = $col["succeeded"]; rej = $col["rejected"]
      print tags, callers, dur, $col["attempted"], ok, $col["goodput_per_s"], late, sprintf("%.2f", slope),
        at_stop, end, drained, posted, $col["timeout"], $col["error"], $col["error_codes"], rej,
        (ok > 0 ? sprintf("%.2f", rej / ok) : "-"), health, unhealthy, polls
    }' "$OUT/$run.csv" >>"$OUT/storm.csv"
done

{
  echo "### Independent-caller storm ($STORM_CALLERS callers, closed loop ${STORM_DURATION} s, deadline ${DEADLINE_S} s; gateway and sim on their defaults)"
  echo
  echo "Gateway: $GATEWAY_BIN with $(gateway_reference_config) (listen ports, killbill.url, logging.level replaced); sim: $SIM_BIN ${SIM_ARGS:-(defaults)}. \"after ${STORM_WARMUP} s\": ${STORM_WARMUP} s <= t < ${STORM_DURATION} s."
  echo
  echo "| tags | ok | goodput/s (whole run) | goodput/s after ${STORM_WARMUP} s | bus growth entries/s after ${STORM_WARMUP} s | bus backlog at ${STORM_DURATION} s / at end | bus drained events/s | bus posted events/s | DEADLINE_EXCEEDED | errors | rejections per success | healthcheck at ${STORM_DURATION} s | unhealthy polls after ${STORM_WARMUP} s |"
  echo "|---|---|---|---|---|---|---|---|---|---|---|---|---|"
  awk -F, 'NR > 1 {
    printf "| %s | %s | %.1f | %.1f | %s | %s / %s | %s | %s | %s | %s%s | %s | %s | %s of %s |\n",
      ($1 ? "AUTO_PAY_OFF" : "none"), $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, ($15 != "" ? " (" $15 ")" : ""),
      $17, $18, $19, $20 }' "$OUT/storm.csv"
} >"$OUT/summary.md"
echo
cat "$OUT/summary.md"
