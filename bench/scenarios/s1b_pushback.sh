#!/usr/bin/env bash
# S1b, callers that honour the pushback: S1's closed loop with 5 s deadlines (an interactive
# caller), every rejected request retried after exactly its grpc-retry-pushback-ms (HTTP:
# Retry-After; FAILURE_WAIT when an answer carries none), and S1 itself (30 s deadlines) at
# its largest point, all contenders interleaved per point in one invocation, each run on a
# fresh killbill-sim on its defaults. The gateway is gateway-reference: the reference
# config/gateway.yaml with only the listen ports, killbill.url and logging.level replaced.
#
# Registrations without the tag by default (S1B_TAGS=0, as issue 16's reproduction: one bus
# event and one Kill Bill call each, so the sustainable rate is the sim's bus drain, 25/s);
# lib.sh sizes nginx's burst and HAProxy's queue as deadline / calls per registration - 3 s,
# which a 5 s deadline with the tag (2 calls) leaves negative.
#
# Per run: goodput over the whole run and from S1B_WARMUP (10 s) to the end of issuing, as a
# share of the sustainable rate; rejections and rejections per success; each caller's time to
# its first success (p50 / p99 over all callers, "never" when that rank never succeeded) and
# the callers with no success at all;
# DEADLINE_EXCEEDED; errors; the bus backlog's least-squares growth after the warm-up and its
# end / max (healthy: growth below 1 entry/s); for the gateway, its rejections at admission
# (billing_gateway_rejections_total) and the share of them it answered within 1 ms of
# receiving them (its own request-duration histogram: rejected answers within 1 ms / rejections
# at admission), and the admitted jobs it shed later because they could no longer finish in
# time (billing_gateway_queue_dropped_total{reason="deadline"}, answered before their deadline
# with a pushback; the callers count them as rejections too).
#
#   bench/scenarios/s1b_pushback.sh
#   S1B_POINTS="25 50 100 500 1000" bench/scenarios/s1b_pushback.sh   # all of S1's points
#   bench/scenarios/s1b_pushback.sh --table    # summary.md again from $RESULTS/s1b's files
# Environment: S1B_POINTS ("300 1000", 5 s deadline), S1B_S1_POINTS ("1000", 30 s deadline;
# empty: none), S1B_DURATION (60), S1B_DRAIN (25, the sim's bus drain), S1B_WARMUP (10), S1B_TAGS (0), S1B_CONTENDERS ("direct
# nginx haproxy gateway-reference"), S1B_COUNT_CAP (1000000), plus lib.sh's (FAILURE_WAIT
# 1s, BUILD, RESULTS, ...).
# Output: $RESULTS/s1b/ with summary.csv (contender, point = callers/deadline, then
# billing-loadgen's columns), extra.csv, per run the usual files, summary.md (also on stdout).
set -u
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

S1B_POINTS="${S1B_POINTS-300 1000}"
S1B_S1_POINTS="${S1B_S1_POINTS-1000}"
S1B_DURATION="${S1B_DURATION:-60}"
S1B_WARMUP="${S1B_WARMUP:-10}"
S1B_COUNT_CAP="${S1B_COUNT_CAP:-1000000}"
S1B_CONTENDERS="${S1B_CONTENDERS:-direct nginx haproxy gateway-reference}"
TAGS="${S1B_TAGS:-0}"
# Neither --bus_events_per_tag nor a cost key: sim and gateway on their own defaults.
# shellcheck disable=SC2034
TAG_EVENTS=""
SIM_WARM_POLLS="${SIM_WARM_POLLS:-0}"
((S1B_DURATION > S1B_WARMUP + 1)) || die "S1B_DURATION must exceed S1B_WARMUP + 1"

require_tools
command -v jq >/dev/null || die "jq is needed"
# The sustainable registrations/s: the sim's bus drain (S1B_DRAIN, its default 25 events/s;
# set it with SIM_ARGS' --bus_drain) / bus events per registration (1, 2 with the tag).
sustainable_rate() {
  awk -v d="${S1B_DRAIN:-25}" -v t="$TAGS" 'BEGIN { printf "%.2f\n", d / (t ? 2 : 1) }'
}

EXTRA_HEADER="contender,point,callers,deadline_s,goodput_after_warmup,sustainable_per_s,bus_growth_per_s,backlog_end,backlog_max,gw_admission_rejections,gw_admission_rejections_within_1ms,gw_shed"

# gateway_rejections METRICS_TXT: "ADMISSION SHARE_1MS SHED" from a saved /metrics page.
gateway_rejections() {
  awk '
    index($0, "billing_gateway_rejections_total{") == 1 { adm += $2 }
    index($0, "billing_gateway_queue_dropped_total{reason=\"deadline\"}") == 1 { shed = $2 }
    index($0, "billing_gateway_request_duration_seconds_bucket{method=\"CreateAccount\",outcome=\"rejected\",le=\"0.001\"}") == 1 { b1 = $2; seen = 1 }
    END {
      # Rejected answers within 1 ms (counted, not from a rounded share): sheds waited in
      # the queue first, so those are the rejections at admission (capped at all of them).
      within = (!seen || adm == 0) ? "-" : sprintf("%.4f", (b1 > adm ? 1 : b1 / adm))
      printf "%d %s %d\n", adm, within, shed
    }' "$1"
}

# extra_row CONTENDER POINT N DEADLINE RUN SUSTAINABLE: the run's extra.csv row.
extra_row() {
  local c="$1" point="$2" n="$3" deadline="$4" run="$5" sustainable="$6"
  local ts="$OUT/$run.timeseries.csv" late end max slope adm="-" within="-" shed="-"
  [[ -s "$ts" ]] || return 0
  late="$(ok_rate "$ts" "$S1B_WARMUP" "$S1B_DURATION")"
  read -r end max slope <<<"$(bus_growth "$ts" "$S1B_WARMUP" "$S1B_DURATION")"
  if [[ -s "$OUT/$run.gateway-metrics.txt" ]]; then
    read -r adm within shed <<<"$(gateway_rejections "$OUT/$run.gateway-metrics.txt")"
  fi
  echo "$c,$point,$n,$deadline,$late,$sustainable,$slope,$end,$max,$adm,$within,$shed"
}

if [[ "${1:-}" == --table ]]; then
  OUT="$RESULTS/s1b"
else
  OUT="$(fresh_results s1b)"
fi
SUMMARY="$OUT/summary.csv"
EXTRA="$OUT/extra.csv"
if [[ "${1:-}" == --table ]]; then
  [[ -s "$SUMMARY" ]] || die "no $SUMMARY"
  echo "$EXTRA_HEADER" >"$EXTRA"
  awk -F, 'NR > 1 { print $1, $2 }' "$SUMMARY" | while read -r c point; do
    n="${point%%/*}" deadline="${point#*/}" deadline="${deadline%s}"
    extra_row "$c" "$point" "$n" "$deadline" "$c-c$n-d$deadline" "$(sustainable_rate)" >>"$EXTRA"
  done
else
echo "$EXTRA_HEADER" >"$EXTRA"
log "S1b: points [$S1B_POINTS] at 5 s, S1 points [$S1B_S1_POINTS] at 30 s, ${S1B_DURATION}s each, tags $TAGS, contenders [$S1B_CONTENDERS] -> $OUT"

s1b_run() {
  local c="$1" n="$2" deadline="$3" point="$2/${3}s" run="$1-c$2-d$3"
  DEADLINE_S="$deadline"
  start_contender "$c" "$OUT" "$run" || return 1
  local sustainable
  sustainable="$(sustainable_rate)"
  run_loadgen "$SUMMARY" "$c" "$point" "$OUT/$run" \
    --concurrency "$n" --count "$S1B_COUNT_CAP" --duration "${S1B_DURATION}s"
  stop_all
  extra_row "$c" "$point" "$n" "$deadline" "$run" "$sustainable" >>"$EXTRA"
}

for n in $S1B_POINTS; do
  for c in $S1B_CONTENDERS; do s1b_run "$c" "$n" 5 || log "warning: $c $n failed; continuing"; done
done
for n in $S1B_S1_POINTS; do
  for c in $S1B_CONTENDERS; do s1b_run "$c" "$n" 30 || log "warning: $c $n failed; continuing"; done
done

[[ -s "$SUMMARY" ]] || die "no run produced a summary"
fi
{
  echo "### S1b: callers honouring the pushback (closed loop, ${S1B_DURATION} s per point, tags=$TAGS)"
  echo
  echo "Goodput after ${S1B_WARMUP} s: ok/s over ${S1B_WARMUP} s <= t < ${S1B_DURATION} s, and as a share of the sustainable rate (the sim's bus drain / bus events per registration). First success: each caller's time from the start to its first success, over all callers. Bus growth: least-squares slope of the sim's bus backlog over the same window (healthy below 1 entry/s). Admission rejections within 1 ms: the gateway's rejections at admission answered within 1 ms by its own request-duration histogram; shed: admitted jobs it later answered deadline_unmeetable because they could no longer finish in time (the callers count them among the rejections)."
  echo
  echo "| contender | callers / deadline | ok | goodput/s after ${S1B_WARMUP} s (% of sustainable) | rejections | rejections per success | first success p50 / p99 | callers with no success | DEADLINE_EXCEEDED | errors | bus growth/s | backlog end / max | gateway: admission rejections within 1 ms | gateway: shed |"
  echo "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"
  awk -F, '
    function ttfs(v) { return (v + 0 < 0) ? "never" : sprintf("%.1f s", v) }
    FNR == 1 { delete col; for (i = 1; i <= NF; i++) col[$i] = i; next }
    FILENAME == ARGV[1] {
      k = $col["contender"] SUBSEP $col["point"]
      late[k] = $col["goodput_after_warmup"]; sus[k] = $col["sustainable_per_s"]
      slope[k] = $col["bus_growth_per_s"]; bend[k] = $col["backlog_end"]; bmax[k] = $col["backlog_max"]
      gn[k] = $col["gw_admission_rejections"]; g1[k] = $col["gw_admission_rejections_within_1ms"]
      gs[k] = $col["gw_shed"]
      next
    }
    {
      k = $col["contender"] SUBSEP $col["point"]
      within = (gn[k] == "-" || gn[k] == "" || gn[k] + 0 == 0 || g1[k] == "-") ? "-" : sprintf("%.2f %% of %d", 100 * g1[k], gn[k])
      printf "| %s | %s | %s | %.1f (%.0f %%) | %s | %.2f | %s / %s | %s | %s | %s | %.2f | %s / %s | %s | %s |\n",
        $col["contender"], $col["point"], $col["succeeded"], late[k], (sus[k] > 0 ? 100 * late[k] / sus[k] : 0),
        $col["rejected"], $col["rejections_per_success"], ttfs($col["first_success_p50_s"]),
        ttfs($col["first_success_p99_s"]), $col["callers_without_success"], $col["timeout"], $col["error"], slope[k], bend[k], bmax[k], within,
        (gs[k] == "" ? "-" : gs[k])
    }' "$EXTRA" "$SUMMARY"
} >"$OUT/summary.md"
echo
cat "$OUT/summary.md"
