#!/usr/bin/env bash
# S5 mixed load: registrations, subscription creations and billing-overview reads together,
# open loop above Kill Bill's capacity, against every contender (each on a fresh
# killbill-sim). Shows whether a contender keeps the reads and the writes it accepts healthy
# while the writes alone overfeed Kill Bill's bus.
#
# Offered per second, R = S5_REG_RATE (default 16):
#   registrations   R    half register_tagged (create + AUTO_PAY_OFF), half register_untagged
#   subscriptions   R/4  subscribe: basic-monthly + the instance_id custom field, on an
#                        account this run registered
#   overview reads  2R   overview: account with balance, bundles, payment methods, unpaid
#                        invoices of such an account
# as one billing-loadgen --mix at 3.25 R arrivals/s (the draw is per arrival, seeded: every
# contender gets the same sequence of operations).
# Why R = 16: Kill Bill bus events per operation (TAG_EVENTS=1, Kill Bill 0.24): tagged
# registration 2, untagged 1, subscription 4 + 1 custom field = 5, reads 0. At R = 16 the
# writes offer 8 x 2 + 8 x 1 + 4 x 5 = 44 events/s against the sim's default drain of 25
# events/s: 1.76 times what the bus drains, so a contender that passes every write lets the
# backlog grow by ~19 entries/s, and the 32 reads/s are the calls that must stay fast.
#
# Per run, sampled every second (lib.sh): billing-loadgen's time series (sim bus backlog,
# ok per operation), the sim's own counters (<c>.sim-series.csv) and, for the gateways, their
# /metrics (<c>.gateway-series.csv). Kill Bill's healthcheck is polled once a second for
# every contender (the gateways' health monitor does it itself; for direct, nginx and HAProxy
# start_health_monitor does, as an operator's monitoring would); a second is unhealthy when
# the sim's healthcheck_unhealthy_total rose in it. Each sim is first warmed with
# SIM_WARM_POLLS healthcheck polls so its 60-sample growth window is full as on a Kill Bill
# that has been up a while. The gateways run the product model (lib.sh use_product_model:
# adaptive 10/1/50 events/s, rate.signal auto) and gateway-static 24 events/s (96 % of the
# 25/s drain), as in signals.sh.
#
#   bench/scenarios/s5_mixed.sh           S5_DURATION 120 s per contender, warm-up
#                                         exclusion 30 s, 60 warm-up polls: ~20 minutes
#   bench/scenarios/s5_mixed.sh --quick   a check that every contender produces a row:
#                                         30 s per contender, exclusion 10 s, 10 warm-up
#                                         polls (the healthcheck's window is not full: its
#                                         healthy share means little)
# Environment: S5_REG_RATE (16), S5_DURATION (120; --quick 30), S5_WARMUP (30; --quick 10:
# seconds left out of the per-operation goodput, the bus growth and the healthy share),
# S5_MAX_OUTSTANDING (1000), S5_MIX_SEED (1), SIM_WARM_POLLS (60; --quick 10), GW_STATIC_EVENTS
# (24), plus lib.sh's (CONTENDERS, BUILD, DEADLINE_S, NGINX_RATE, HAPROXY_MAXCONN, ...).
# GW_GENERATION, TAGS and TAG_EVENTS are fixed (new, 1, 1).
# Output: $RESULTS/s5/ (replaced): summary.csv (billing-loadgen's rows, with the
# per-operation <op>_* columns), extra.csv (the figures of the table below), per contender
# the usual files (<c>.csv, .timeseries.csv, .log, .sim-stats.json, .sim-series.csv,
# .gateway-series.csv, .gateway-metrics.txt, .yaml, .gateway.log, sim-<c>.log), nginx/ and
# haproxy/ configs, throughput.png, p95.png, backlog.png (bus backlog over time, one line per
# contender) and summary.md, also printed: one row per contender with the goodput per
# operation after the warm-up, the reads' p99, the writes' success %, timeouts, rejections,
# errors, the bus growth and backlog, and the healthy share.
set -u
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

QUICK=0
case "${1:-}" in
  --quick) QUICK=1 ;;
  "") ;;
  *) die "usage: $0 [--quick]" ;;
esac
if ((QUICK)); then
  S5_DURATION="${S5_DURATION:-30}"
  S5_WARMUP="${S5_WARMUP:-10}"
  SIM_WARM_POLLS="${SIM_WARM_POLLS:-10}"
fi
S5_REG_RATE="${S5_REG_RATE:-16}"
S5_DURATION="${S5_DURATION:-120}"
S5_WARMUP="${S5_WARMUP:-30}"
S5_MAX_OUTSTANDING="${S5_MAX_OUTSTANDING:-1000}"
S5_MIX_SEED="${S5_MIX_SEED:-1}"
SIM_WARM_POLLS="${SIM_WARM_POLLS:-60}"
SIM_WARM_INTERVAL=1
use_product_model
GW_STATIC_EVENTS="${GW_STATIC_EVENTS:-24}"
((S5_DURATION > S5_WARMUP)) || die "S5_DURATION ($S5_DURATION) must exceed S5_WARMUP ($S5_WARMUP)"

# Weights = offered rates per second, so the mix's total is the arrival rate.
read -r W_TAGGED W_UNTAGGED W_SUBSCRIBE W_OVERVIEW S5_RATE <<<"$(awk -v r="$S5_REG_RATE" 'BEGIN {
  printf "%g %g %g %g %g\n", r / 2, r / 2, r / 4, 2 * r, r + r / 4 + 2 * r }')"
S5_MIX="register_tagged=$W_TAGGED,register_untagged=$W_UNTAGGED,subscribe=$W_SUBSCRIBE,overview=$W_OVERVIEW"
S5_EVENTS="$(awk -v a="$W_TAGGED" -v b="$W_UNTAGGED" -v s="$W_SUBSCRIBE" -v te="$TAG_EVENTS" 'BEGIN {
  printf "%g\n", a * (1 + te) + b + s * 5 }')"
S5_POINT="R${S5_REG_RATE}"

require_tools
command -v jq >/dev/null || die "jq is needed (per-second /sim/stats samples)"
OUT="$(fresh_results s5)"
SUMMARY="$OUT/summary.csv"
EXTRA="$OUT/extra.csv"
log "S5 mixed: ${S5_RATE}/s ($S5_MIX), ~${S5_EVENTS} bus events/s offered, ${S5_DURATION}s per contender, contenders [$CONTENDERS] -> $OUT"

# s5_row CONTENDER: the contender's figures, appended to extra.csv.
s5_row() {
  local c="$1" p="$OUT/$1" end max slope posted hs secs polls op rates=()
  [[ -s "$p.csv" && -s "$p.timeseries.csv" ]] || return 0
  read -r end max slope <<<"$(bus_growth "$p.timeseries.csv" "$S5_WARMUP" "$S5_DURATION")"
  hs="" secs="" polls=""
  if [[ -s "$p.sim-series.csv" ]]; then
    read -r posted _ _ hs secs polls <<<"$(sim_window "$p.sim-series.csv" "$S5_WARMUP" "$S5_DURATION")"
  fi
  for op in register_tagged register_untagged subscribe overview; do
    rates+=("$(ok_rate_column "$p.timeseries.csv" "ok_$op" "$S5_WARMUP" "$S5_DURATION")")
  done
  [[ -s "$EXTRA" ]] || echo "contender,point,ok_per_s_register_tagged,ok_per_s_register_untagged,ok_per_s_subscribe,ok_per_s_overview,backlog_end,backlog_max,growth,healthy_s,seconds,polls,posted_per_s" >"$EXTRA"
  echo "$c,$S5_POINT,${rates[0]},${rates[1]},${rates[2]},${rates[3]},$end,$max,$slope,${hs:-},${secs:-},${polls:-},${posted:--}" >>"$EXTRA"
}

s5_contender() {
  local c="$1"
  start_contender "$c" "$OUT" "$c" || return 1
  start_samplers "$OUT/$c"
  start_health_monitor
  start_loadgen "$OUT/$c" --label "$c" --rate "$S5_RATE" --duration "${S5_DURATION}s" \
    --max-outstanding "$S5_MAX_OUTSTANDING" --mix "$S5_MIX" --mix-seed "$S5_MIX_SEED"
  finish_loadgen "$SUMMARY" "$c" "$S5_POINT" "$OUT/$c"
  stop_all
  s5_row "$c"
}
for_each_contender s5_contender

[[ -s "$SUMMARY" ]] || die "no run produced a summary"
plot_timeseries "$OUT" "S5 mixed (${S5_RATE}/s: R=${S5_REG_RATE})"

# The table: summary.csv joined with extra.csv on the contender.
[[ -s "$EXTRA" ]] || echo "contender" >"$EXTRA"
{
  echo "### S5 mixed load (open loop ${S5_RATE}/s for ${S5_DURATION} s: registrations ${S5_REG_RATE}/s half tagged, subscriptions ${W_SUBSCRIBE}/s, overview reads ${W_OVERVIEW}/s; ~${S5_EVENTS} bus events/s offered; deadline ${DEADLINE_S} s$( ((QUICK)) && echo "; --quick"))"
  echo
  echo "ok/s per operation over ${S5_WARMUP} s <= t < ${S5_DURATION} s (offered ${W_TAGGED} / ${W_UNTAGGED} / ${W_SUBSCRIBE} / ${W_OVERVIEW}). Read p99: overview answers that succeeded, whole run. Writes: registrations and subscriptions, ok / attempted, whole run. Timeouts: DEADLINE_EXCEEDED or the client's timeout; fallbacks: subscribe/overview arrivals made as registrations because no account existed yet. Bus growth: least-squares slope of the sim's bus backlog over the same window (entries/s); healthy: seconds of that window in which the sim's healthcheck_unhealthy_total did not rise."
  echo
  echo "| contender | tagged reg ok/s | untagged reg ok/s | subscribe ok/s | overview ok/s | overview p99 ms | writes success % | timeouts | rejected | errors | not_sent | fallbacks | bus growth (entries/s) | bus backlog end / max | healthy share |"
  echo "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"
  awk -F, '
    function fmt_healthy(h, n, p) { return (n > 0 && p > 0) ? sprintf("%.1f %% (%d of %d s)", 100 * h / n, h, n) : "-" }
    FNR == 1 { delete col; for (i = 1; i <= NF; i++) col[$i] = i; file++; next }
    file == 1 { for (k in col) x[$col["contender"], k] = $col[k]; next }
    {
      c = $col["contender"]
      wa = 0; wo = 0
      split("register_tagged register_untagged subscribe", ws, " ")
      for (j = 1; j <= 3; j++) { wa += $col[ws[j] "_attempted"]; wo += $col[ws[j] "_ok"] }
      printf "| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n", c,
        x[c, "ok_per_s_register_tagged"], x[c, "ok_per_s_register_untagged"],
        x[c, "ok_per_s_subscribe"], x[c, "ok_per_s_overview"],
        ($col["overview_ok"] > 0 ? sprintf("%.0f", $col["overview_p99_ms"]) : "-"),
        (wa > 0 ? sprintf("%.1f", 100 * wo / wa) : "-"),
        $col["timeout"], $col["rejected"], $col["error"], $col["not_sent"],
        $col["fallback_registrations"],
        ((c, "growth") in x ? sprintf("%.2f", x[c, "growth"]) : "-"),
        ((c, "backlog_end") in x ? x[c, "backlog_end"] " / " x[c, "backlog_max"] : "-"),
        fmt_healthy(x[c, "healthy_s"], x[c, "seconds"], x[c, "polls"])
    }' "$EXTRA" "$SUMMARY"
  echo
  echo "Errors by operation (code:count):"
  echo
  awk -F, 'NR == 1 { for (i = 1; i <= NF; i++) col[$i] = i; next }
    {
      line = ""
      split("register_tagged register_untagged subscribe overview", ops, " ")
      for (j = 1; j <= 4; j++) {
        e = $col[ops[j] "_error_codes"]
        if (e != "") line = line (line == "" ? "" : "; ") ops[j] " " e
      }
      printf "    %s: %s\n", $col["contender"], (line == "" ? "none" : line)
    }' "$SUMMARY"
} >"$OUT/summary.md"
echo
cat "$OUT/summary.md"
