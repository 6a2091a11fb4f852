#!/usr/bin/env bash
# One gateway against three gateway replicas sharing one PostgreSQL, scenario S2 (open loop,
# bus drain 25 -> 12 -> 25), in one invocation:
#   (a) one billing-gateway with a database (the same PostgreSQL set-up as (b), so the replica
#       count is the only difference), one billing-loadgen at REPLICAS_RATE (30)/s;
#   (b) REPLICAS_N (3) billing-gateways on one PostgreSQL and one killbill-sim, each on its own
#       gRPC and metrics ports, and one billing-loadgen per gateway at REPLICAS_RATE / N each.
# Each replica heartbeats the others through the database and runs its token bucket at 1/N of
# the rate (FlowControl::SetRateShare); with rate.signal auto each reads Kill Bill's bus
# counters (GET /1.0/metrics) and computes the same global rate. Adaptive keys at the product
# defaults (initial 10, min 1, max 50 events/s, increase_step 1, burst 10), GW_GENERATION=new,
# TAGS=1, TAG_EVENTS=1: a registration posts 2 main-bus events, so the sustainable goodput is
# drain / 2 registrations/s (12.5 at 25, 6 at 12). Deadline DEADLINE_S (30) s.
#
# Each run gets a fresh PostgreSQL cluster (scripts/pg.sh, loopback, its own directory: a fresh
# database) and a fresh killbill-sim warmed with SIM_WARM_POLLS (60) healthcheck polls one
# second apart; the load starts once every gateway reports N live replicas. Sampled every
# second from the start of the load: the sim's /sim/stats (<run>.sim-series.csv,
# <run>.sim-rates.csv) and each gateway's /metrics (<run>-gw<i>.gateway-series.csv: its bucket
# rate, the rate share and live replicas it sees, the global rate = rate / share, the signal
# source, the bus backlog it read, its drain estimate, queue depth, breaker state).
#
# Figures (summary.md), per run: total goodput (successes/s summed over the loadgens) per phase
# from REPLICAS_SETTLE (20) s after each change (phase 1: after the start) to the phase's end,
# as a share of the phase's sustainable goodput; success %, DEADLINE_EXCEEDED, rejections and
# errors summed over the loadgens; per phase the bus growth (least-squares slope of the sim's
# exact backlog over the same window) and bus events posted/s; the backlog at the end / max;
# Kill Bill's healthy share over the seconds of the load outside the three settle windows (a
# second is unhealthy when the sim's healthcheck_unhealthy_total rose in it); the signal each
# replica followed; and goodput(b) / goodput(a) per phase and over the three windows (the
# issue asks >= 95 %). replicas.png: per run the sim's bus backlog, posted/s, dispatched/s,
# the drain setting and the sum of the replicas' bucket rates over time.
#
#   bench/scenarios/replicas.sh                                   the full run, ~10 minutes
#   REPLICAS_PHASE=15 SIM_WARM_POLLS=5 bench/scenarios/replicas.sh   a smoke test, ~3 minutes
#                                         (settle shortened to 5 s; healthcheck figures then
#                                         mean little: the sim's window is not full)
# Environment: REPLICAS_PHASE (60), REPLICAS_SETTLE (20, or PHASE/3 when PHASE <= 20),
# REPLICAS_RATE (30, total), REPLICAS_N (3), REPLICAS_LOW_DRAIN (12), REPLICAS_HIGH_DRAIN (25),
# REPLICAS_MAX_OUTSTANDING (1000 per loadgen), SIM_WARM_POLLS (60), GW_ADAPTIVE_INITIAL_EVENTS
# / _MIN_EVENTS / _MAX_EVENTS (10 / 1 / 50), GW_ADAPTIVE_STEP_EVENTS (1), GW_BURST_EVENTS (10),
# PG_SH (<repo>/scripts/pg.sh), plus lib.sh's (BUILD, RESULTS, DEADLINE_S, GW_LOG_LEVEL,
# GW_MAX_IN_FLIGHT, GW_QUEUE_CAPACITY, ...). GW_GENERATION, TAGS and TAG_EVENTS are fixed.
# Output: $RESULTS/replicas/ (replaced): summary.md (also printed), builds.txt, runs.csv,
# phases.csv, replicas.csv, summary.csv (billing-loadgen rows), replicas.png (+ .gp), and per
# run the loadgens' <run>-gw<i>.csv / .timeseries.csv / .log, the gateways' .yaml /
# .gateway.log / .gateway-metrics.txt / .gateway-series.csv, the sim's files.
# Everything listens on 127.0.0.1; every process is stopped at the end of each run and on exit
# (trap), the PostgreSQL clusters included; the loadgens are stopped if they outlive their
# schedule by more than the deadline + 60 s.
set -u
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

[[ $# -eq 0 ]] || die "usage: [REPLICAS_PHASE=60 SIM_WARM_POLLS=60 ...] $0"
REPLICAS_PHASE="${REPLICAS_PHASE:-60}"
if [[ -z "${REPLICAS_SETTLE:-}" ]]; then
  REPLICAS_SETTLE=20
  ((REPLICAS_PHASE <= 20)) && REPLICAS_SETTLE=$((REPLICAS_PHASE / 3))
fi
REPLICAS_RATE="${REPLICAS_RATE:-30}"
REPLICAS_N="${REPLICAS_N:-3}"
REPLICAS_LOW_DRAIN="${REPLICAS_LOW_DRAIN:-12}"
REPLICAS_HIGH_DRAIN="${REPLICAS_HIGH_DRAIN:-25}"
REPLICAS_MAX_OUTSTANDING="${REPLICAS_MAX_OUTSTANDING:-1000}"
SIM_WARM_POLLS="${SIM_WARM_POLLS:-60}"
SIM_WARM_INTERVAL=1
PG_SH="${PG_SH:-$REPO_ROOT/scripts/pg.sh}"
use_product_model
P="$REPLICAS_PHASE" S="$REPLICAS_SETTLE"
((P > S && S >= 0)) || die "REPLICAS_PHASE ($P) must exceed REPLICAS_SETTLE ($S)"
((REPLICAS_N >= 2)) || die "REPLICAS_N must be at least 2"

require_tools
command -v jq >/dev/null || die "jq is needed (per-second /sim/stats samples)"
[[ -x "$GATEWAY_BIN" ]] || die "billing-gateway not found at $GATEWAY_BIN"
[[ -x "$PG_SH" ]] || die "$PG_SH not found"

# Copies of the binaries (a rebuild during the run cannot change them) and the PostgreSQL
# clusters' directories (readable by the postgres user pg.sh runs the server as).
WORK_DIR="$(mktemp -d /tmp/replicas-bench.XXXXXX)"
chmod 755 "$WORK_DIR"
PG_DIR=""
WATCHDOG_PID=""
on_exit() {
  local rc=$?
  stop_all
  [[ -n "$PG_DIR" ]] && "$PG_SH" stop "$PG_DIR" >/dev/null 2>&1
  [[ -n "$WATCHDOG_PID" ]] && kill "$WATCHDOG_PID" 2>/dev/null
  rm -rf "$WORK_DIR"
  exit "$rc"
}
cp "$SIM_BIN" "$GATEWAY_BIN" "$LOADGEN_BIN" "$WORK_DIR/"
ORIG_GATEWAY_BIN="$GATEWAY_BIN" ORIG_SIM_BIN="$SIM_BIN" ORIG_LOADGEN_BIN="$LOADGEN_BIN"
SIM_BIN="$WORK_DIR/killbill-sim" GATEWAY_BIN="$WORK_DIR/billing-gateway" LOADGEN_BIN="$WORK_DIR/billing-loadgen"

# Whole-invocation bound: two runs of warm-up + 3 phases + deadline + start/stop margins.
MAX_S=$((2 * (SIM_WARM_POLLS * 2 + 3 * P + DEADLINE_S + 180)))
(
  trap 'kill "$sp" 2>/dev/null; exit 0' TERM
  sleep "$MAX_S" &
  sp=$!
  wait "$sp" && log "watchdog: ${MAX_S}s passed, stopping" && kill -TERM $$
) &
WATCHDOG_PID=$!

ROOT="$(fresh_results replicas)"
START=$(date +%s)
LOAD_START="$(cut -d' ' -f1-3 /proc/loadavg)"
{
  echo "replicas.sh at $(date -u +%Y-%m-%dT%H:%M:%SZ), load average $LOAD_START at the start, $(nproc) cores"
  echo "source: $REPO_ROOT at $(git -C "$REPO_ROOT" describe --always --dirty 2>/dev/null || echo '?') when the run started"
  for f in "$ORIG_GATEWAY_BIN" "$ORIG_SIM_BIN" "$ORIG_LOADGEN_BIN"; do
    echo "$f (built $(date -u -r "$f" +%Y-%m-%dT%H:%M:%SZ)) sha256 $(sha256sum <"$f" | cut -c1-16)"
  done
  echo "GW_GENERATION=$GW_GENERATION TAGS=$TAGS TAG_EVENTS=$TAG_EVENTS DEADLINE_S=$DEADLINE_S SIM_WARM_POLLS=$SIM_WARM_POLLS REPLICAS_PHASE=$P REPLICAS_SETTLE=$S REPLICAS_RATE=$REPLICAS_RATE REPLICAS_N=$REPLICAS_N"
  echo "adaptive (rate.signal auto) initial/min/max $GW_ADAPTIVE_INITIAL_EVENTS/$GW_ADAPTIVE_MIN_EVENTS/$GW_ADAPTIVE_MAX_EVENTS events/s, increase_step $GW_ADAPTIVE_STEP_EVENTS, burst $GW_BURST_EVENTS; database: a fresh PostgreSQL 15 cluster per run (scripts/pg.sh), database.* keys at their defaults"
} >"$ROOT/builds.txt"
cat "$ROOT/builds.txt" >&2

# --- replicas ------------------------------------------------------------------------------

RP_PORT=() RP_MPORT=() RP_STEM=()

# start_replica DIR STEM PG_URL: one adaptive gateway (write_gateway_config, rate.signal auto)
# with database.url PG_URL on free loopback ports, against the sim; appends its ports and stem
# to RP_PORT / RP_MPORT / RP_STEM. Returns 1 if it did not start.
start_replica() {
  local dir="$1" stem="$2" url="$3" cfg="$1/$2.yaml" glog="$1/$2.gateway.log" pid
  GW_PORT="$(free_port)"
  GW_METRICS_PORT="$(free_port)"
  write_gateway_config "$cfg" "$SIM_PORT" adaptive auto
  cat >>"$cfg" <<EOF
# replicas.sh: the replicas of a run share this database (heartbeats -> rate share 1/N).
database:
  url: "$url"
EOF
  "$GATEWAY_BIN" --config "$cfg" >"$glog" 2>&1 &
  pid=$!
  BG_PIDS+=("$pid")
  if ! wait_port "$GW_PORT" "$pid" 20; then
    tail -20 "$glog" >&2
    log "$stem did not start (see $glog)"
    return 1
  fi
  RP_PORT+=("$GW_PORT") RP_MPORT+=("$GW_METRICS_PORT") RP_STEM+=("$stem")
}

# metric PORT NAME: the value of an unlabelled metric on a gateway's /metrics page.
metric() {
  curl -sS -m 2 "http://127.0.0.1:$1/metrics" 2>/dev/null | awk -v n="$2" '$1 == n { print $2; exit }'
}

# wait_replicas N TIMEOUT_S: until every started replica reports N live replicas.
wait_replicas() {
  local n="$1" timeout="$2" i port live ok
  for ((i = 0; i < timeout * 2; i++)); do
    ok=1
    for port in "${RP_MPORT[@]}"; do
      live="$(metric "$port" billing_gateway_durable_live_replicas)"
      [[ "$live" == "$n" ]] || ok=0
    done
    ((ok)) && return 0
    sleep 0.5
  done
  return 1
}

# sample_replica_metrics FILE T0 PORT: a gateway's /metrics once a second until stopped
# (lib.sh's sample_gateway_metrics plus the durable rate share and live replicas): t, rate
# (this replica's bucket, events/s), share, live_replicas, global_rate (rate / share), signal,
# signal_metrics (1 metrics, 0 healthcheck), kb_bus_backlog, drain_estimate, queue_depth,
# breaker_state, kb_healthy.
sample_replica_metrics() {
  local file="$1" t0="$2" port="$3" k=0 wait t page
  echo "t,rate,share,live_replicas,global_rate,signal,signal_metrics,kb_bus_backlog,drain_estimate,queue_depth,breaker_state,kb_healthy" >"$file"
  while :; do
    t="$(awk -v a="$(date +%s.%N)" -v b="$t0" 'BEGIN { printf "%.2f", a - b }')"
    page="$(curl -sS -m 1 "http://127.0.0.1:$port/metrics" 2>/dev/null)" || page=""
    [[ -n "$page" ]] && awk -v t="$t" '
      /^billing_gateway_rate_limit_events_per_second / { rate = $2 }
      /^billing_gateway_durable_rate_share / { share = $2 }
      /^billing_gateway_durable_live_replicas / { live = $2 }
      /^billing_gateway_rate_signal\{/ && $2 == 1 { match($0, /source="[a-z_]*"/); src = substr($0, RSTART + 8, RLENGTH - 9) }
      /^billing_gateway_killbill_bus_backlog / { backlog = $2 }
      /^billing_gateway_queue_depth / { depth = $2 }
      /^billing_gateway_rate_drain_estimate_events_per_second / { drain = $2 }
      /^billing_gateway_killbill_healthy / { healthy = $2 }
      /^billing_gateway_breaker_state\{/ && $2 == 1 { match($0, /state="[a-z_]*"/); breaker = substr($0, RSTART + 7, RLENGTH - 8) }
      END {
        if (src == "") src = "none"
        sm = (src == "metrics") ? 1 : (src == "healthcheck" ? 0 : "")
        global = (share > 0 && rate != "") ? sprintf("%.3f", rate / share) : ""
        printf "%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s\n", t, rate, share, live, global, src, sm,
          backlog, drain, depth, breaker, healthy
      }' <<<"$page" >>"$file"
    read -r k wait <<<"$(next_tick "$t0" "$k")"
    sleep "$wait"
  done
}

# --- one run -----------------------------------------------------------------------------

# replicas_run RUN N: a fresh PostgreSQL and sim, N replicas, N loadgens at REPLICAS_RATE / N,
# S2's drain schedule; files $ROOT/RUN*.
replicas_run() {
  local run="$1" n="$2" dir="$ROOT" i pg_url per_rate label t0 lg_pids=() limit rc=0
  per_rate="$(awk -v r="$REPLICAS_RATE" -v n="$n" 'BEGIN { printf "%g", r / n }')"
  label="gateway-${n}replica$( ((n > 1)) && echo s)"
  log "--- run $run: $n gateway(s), $n loadgen(s) at ${per_rate}/s, load average $(cut -d' ' -f1-3 /proc/loadavg)"
  echo "$run start $(cut -d' ' -f1-3 /proc/loadavg)" >>"$ROOT/loadavg.txt"
  PG_DIR="$WORK_DIR/pg-$run"
  pg_url="$("$PG_SH" start "$PG_DIR" 2>"$dir/$run.pg.log")" || {
    cat "$dir/$run.pg.log" >&2
    log "run $run: PostgreSQL did not start"
    return 1
  }
  log "run $run: PostgreSQL at $pg_url"
  SIM_CONTROL_LOG="$dir/sim-$run.control.log"
  start_sim "$dir/sim-$run.log"
  RP_PORT=() RP_MPORT=() RP_STEM=()
  for ((i = 1; i <= n; i++)); do
    start_replica "$dir" "$run-gw$i" "$pg_url" || { rc=1; break; }
  done
  if ((rc == 0)) && ! wait_replicas "$n" 20; then
    log "run $run: the replicas did not all see $n live replicas within 20 s"
    rc=1
  fi
  if ((rc)); then
    stop_all
    "$PG_SH" stop "$PG_DIR" >/dev/null 2>&1
    PG_DIR=""
    return 1
  fi
  log "run $run: sim on :$SIM_PORT, gateways on ${RP_PORT[*]} (metrics ${RP_MPORT[*]}), $n live replicas"
  sim_post /sim/config "{\"bus_drain\": $REPLICAS_HIGH_DRAIN}"
  # Samplers from T0 = now, right before the loadgens, so t matches their timeseries.
  t0="$(date +%s.%N)"
  sample_sim_stats "$dir/$run.sim-series.csv" "$t0" &
  BG_PIDS+=("$!")
  # The machine's load (other benchmarks may share it), every 5 s.
  (
    echo "t,load1,load5,load15" >"$dir/$run.loadavg.csv"
    while :; do
      awk -v a="$(date +%s.%N)" -v b="$t0" '{ printf "%.0f,%s,%s,%s\n", a - b, $1, $2, $3 }' /proc/loadavg >>"$dir/$run.loadavg.csv"
      sleep 5
    done
  ) &
  BG_PIDS+=("$!")
  for ((i = 0; i < n; i++)); do
    sample_replica_metrics "$dir/${RP_STEM[$i]}.gateway-series.csv" "$t0" "${RP_MPORT[$i]}" &
    BG_PIDS+=("$!")
  done
  for ((i = 0; i < n; i++)); do
    TARGET="grpc://127.0.0.1:${RP_PORT[$i]}"
    start_loadgen "$dir/${RP_STEM[$i]}" --label "$label" --rate "$per_rate" \
      --duration "$((3 * P))s" --max-outstanding "$REPLICAS_MAX_OUTSTANDING" \
      --key-prefix "rep-$run-gw$((i + 1))-$(date +%s)-"
    lg_pids+=("$LOADGEN_PID")
  done
  sleep "$P"
  log "run $run: bus_drain -> $REPLICAS_LOW_DRAIN"
  sim_post /sim/config "{\"bus_drain\": $REPLICAS_LOW_DRAIN}"
  sleep "$P"
  log "run $run: bus_drain -> $REPLICAS_HIGH_DRAIN"
  sim_post /sim/config "{\"bus_drain\": $REPLICAS_HIGH_DRAIN}"
  # The schedule ends at 3P; calls still in flight end by their deadline. Bounded wait.
  limit=$(($(date +%s) + P + DEADLINE_S + 60))
  for i in "${!lg_pids[@]}"; do
    while kill -0 "${lg_pids[$i]}" 2>/dev/null && (($(date +%s) < limit)); do sleep 1; done
    if kill -0 "${lg_pids[$i]}" 2>/dev/null; then
      log "warning: run $run: loadgen ${RP_STEM[$i]} still running past its bound: stopped"
      stop_pid "${lg_pids[$i]}"
    fi
  done
  for ((i = 0; i < n; i++)); do
    LOADGEN_PID="${lg_pids[$i]}" GW_METRICS_PORT="${RP_MPORT[$i]}"
    finish_loadgen "$dir/summary.csv" "$label" "gw$((i + 1)) ${per_rate}/s" "$dir/${RP_STEM[$i]}"
  done
  echo "$run end $(cut -d' ' -f1-3 /proc/loadavg)" >>"$ROOT/loadavg.txt"
  stop_all
  "$PG_SH" stop "$PG_DIR" >/dev/null 2>&1
  PG_DIR=""
  sim_rates "$dir/$run.sim-series.csv" >"$dir/$run.sim-rates.csv"
  log "run $run: done"
}

# --- analysis ----------------------------------------------------------------------------

# ok_total FROM TO TIMESERIES...: successes per second over FROM <= t < TO summed over the
# loadgens' timeseries.
ok_total() {
  local from="$1" to="$2"
  shift 2
  awk -F, -v from="$from" -v to="$to" '
    FNR == 1 { for (i = 1; i <= NF; i++) if ($i == "ok") c = i; next }
    $1 >= from && $1 < to { ok += $c }
    END { printf "%.2f\n", (to > from ? ok / (to - from) : 0) }' "$@"
}

# per_second_total OUT TIMESERIES...: "t,sent,ok" summed over the loadgens per second.
per_second_total() {
  local out="$1"
  shift
  awk -F, 'FNR == 1 { for (i = 1; i <= NF; i++) c[$i] = i; next }
    { t = $1 + 0; s[t] += $c["sent"]; o[t] += $c["ok"]; if (t > m) m = t }
    END { print "t,sent,ok"; for (t = 0; t <= m; t++) print t "," s[t] + 0 "," o[t] + 0 }' "$@" >"$out"
}

# series_mean FILE COLUMN FROM TO: mean of a column of a per-second series over FROM <= t < TO.
series_mean() {
  awk -F, -v col="$2" -v from="$3" -v to="$4" '
    NR == 1 { for (i = 1; i <= NF; i++) if ($i == col) c = i; next }
    c && $1 >= from && $1 < to && $c != "" { s += $c; n++ }
    END { if (n) printf "%.2f\n", s / n; else print "-" }' "$1"
}

# series_range FILE COLUMN: "MIN-MAX" of a column over the whole series ("-" if empty).
series_range() {
  awk -F, -v col="$2" '
    NR == 1 { for (i = 1; i <= NF; i++) if ($i == col) c = i; next }
    c && $c != "" { v = $c + 0; if (!n || v < lo) lo = v; if (!n || v > hi) hi = v; n++ }
    END { if (!n) print "-"; else if (lo == hi) printf "%g\n", lo; else printf "%g-%g\n", lo, hi }' "$1"
}

# rate_sum OUT SERIES...: per whole second, the sum of the replicas' bucket rates.
rate_sum() {
  local out="$1"
  shift
  awk -F, 'FNR == 1 { for (i = 1; i <= NF; i++) if ($i == "rate") c = i; next }
    $c != "" { t = int($1 + 0.5); s[t] += $c; if (t > m) m = t }
    END { print "t,rate_sum"; for (t = 0; t <= m; t++) if (t in s) print t "," s[t] }' "$@" >"$out"
}

PHASE_DRAINS=("$REPLICAS_HIGH_DRAIN" "$REPLICAS_LOW_DRAIN" "$REPLICAS_HIGH_DRAIN")
echo "run,phase,drain,from_s,to_s,goodput_per_s,sustainable_per_s,share_pct,posted_per_s,dispatched_per_s,backlog_slope,replica_rate_sum" >"$ROOT/phases.csv"
echo "run,replica,goodput_per_s_windows,attempted,succeeded,success_pct,timeout,rejected,error,not_sent,signal,share,live_replicas,rate_p1,rate_p2,rate_p3,global_rate_p1,global_rate_p2,global_rate_p3" >"$ROOT/replicas.csv"
echo "run,replicas,goodput_p1,goodput_p2,goodput_p3,goodput_windows,attempted,succeeded,success_pct,timeout,rejected,error,not_sent,backlog_end,backlog_max,healthy_s,seconds,polls,signals" >"$ROOT/runs.csv"

# analyse RUN N: rows of phases.csv, replicas.csv, runs.csv and the run's markdown rows
# ($ROOT/RUN.row.md, $ROOT/RUN.replicas.md).
analyse() {
  local run="$1" n="$2" dir="$ROOT" i k from to drain g sus share posted disp slope hs secs polls
  local ts=() gs=() series="$dir/$1.sim-series.csv" cells=() growth=() gw=() sigs=()
  for ((i = 1; i <= n; i++)); do
    ts+=("$dir/$run-gw$i.timeseries.csv")
    gs+=("$dir/$run-gw$i.gateway-series.csv")
  done
  [[ -s "$series" && -s "${ts[0]}" ]] || { log "warning: run $run: no series"; return 1; }
  per_second_total "$dir/$run.total.csv" "${ts[@]}"
  rate_sum "$dir/$run.rate-sum.csv" "${gs[@]}"
  for k in 0 1 2; do
    from=$((k * P + S)) to=$(((k + 1) * P)) drain="${PHASE_DRAINS[$k]}"
    g="$(ok_total "$from" "$to" "${ts[@]}")"
    sus="$(awk -v d="$drain" -v e="$EVENTS_PER_REG" 'BEGIN { printf "%g", d / e }')"
    share="$(awk -v g="$g" -v s="$sus" 'BEGIN { printf "%.1f", 100 * g / s }')"
    read -r posted disp slope _ <<<"$(sim_window "$series" "$from" "$to")"
    local rs
    rs="$(series_mean "$dir/$run.rate-sum.csv" rate_sum "$from" "$to")"
    echo "$run,$((k + 1)),$drain,$from,$to,$g,$sus,$share,$posted,$disp,$slope,$rs" >>"$ROOT/phases.csv"
    cells+=("$g/s ($share %)")
    growth+=("$slope")
    gw+=("$g")
  done
  local gwin
  gwin="$(awk -F, -v r="$run" '$1 == r { s += $6 * ($5 - $4); t += $5 - $4 } END { printf "%.2f\n", t ? s / t : 0 }' "$ROOT/phases.csv")"
  read -r posted disp slope hs secs polls <<<"$(sim_window "$series" 0 $((3 * P)) \
    "0:$S $P:$((P + S)) $((2 * P)):$((2 * P + S))")"
  local healthy bend bmax
  healthy="$(awk -v h="$hs" -v n="$secs" -v p="$polls" 'BEGIN {
    if (n > 0 && p > 0) printf "%.1f %% (%d of %d s; %.1f healthchecks/s)\n", 100 * h / n, h, n, p / n; else print "-" }')"
  read -r bend bmax <<<"$(awk -F, 'NR == 1 { for (i = 1; i <= NF; i++) if ($i == "bus_backlog") c = i; next }
    $c != "" && $c != "null" { last = $c; if ($c + 0 > max) max = $c + 0 } END { printf "%d %d\n", last, max }' "$series")"
  # Loadgen totals (summary.csv rows of this run: label column = the run's label).
  local label="gateway-${n}replica$( ((n > 1)) && echo s)" tot
  tot="$(awk -F, -v l="$label" 'NR == 1 { for (i = 1; i <= NF; i++) c[$i] = i; next }
    $c["contender"] == l { a += $c["attempted"]; o += $c["succeeded"]; t += $c["timeout"];
      r += $c["rejected"]; e += $c["error"]; ns += $c["not_sent"] }
    END { printf "%d %d %.1f %d %d %d %d\n", a, o, (a ? 100 * o / a : 0), t, r, e, ns }' "$dir/summary.csv")"
  local att okn spct tmo rej err nsent
  read -r att okn spct tmo rej err nsent <<<"$tot"
  # Per replica.
  : >"$dir/$run.replicas.md"
  for ((i = 1; i <= n; i++)); do
    local stem="$run-gw$i" sig sh lv r=() gr=() row gwi
    sig="$(signal_mix "$dir/$stem.gateway-series.csv" 0 $((3 * P)))"
    sigs+=("gw$i: $sig")
    sh="$(series_range "$dir/$stem.gateway-series.csv" share)"
    lv="$(series_range "$dir/$stem.gateway-series.csv" live_replicas)"
    for k in 0 1 2; do
      r+=("$(series_mean "$dir/$stem.gateway-series.csv" rate $((k * P + S)) $(((k + 1) * P)))")
      gr+=("$(series_mean "$dir/$stem.gateway-series.csv" global_rate $((k * P + S)) $(((k + 1) * P)))")
    done
    gwi="$(awk -F, -v P="$P" -v S="$S" 'NR == 1 { for (i = 1; i <= NF; i++) if ($i == "ok") c = i; next }
      { t = $1 + 0; k = int(t / P); if (k < 3 && t - k * P >= S) ok += $c }
      END { printf "%.2f\n", ok / (3 * (P - S)) }' "$dir/$stem.timeseries.csv")"
    row="$(awk -F, 'NR == 2 { for (i = 1; i <= NF; i++) v[i] = $i } NR == 1 { for (i = 1; i <= NF; i++) c[$i] = i }
      END { printf "%s %s %.1f %s %s %s %s\n", v[c["attempted"]], v[c["succeeded"]], v[c["success_pct"]],
        v[c["timeout"]], v[c["rejected"]], v[c["error"]], v[c["not_sent"]] }' "$dir/$stem.csv" 2>/dev/null)"
    local ra ro rp rt rr re rn
    read -r ra ro rp rt rr re rn <<<"$row"
    echo "$run,gw$i,$gwi,$ra,$ro,$rp,$rt,$rr,$re,$rn,$sig,$sh,$lv,${r[0]},${r[1]},${r[2]},${gr[0]},${gr[1]},${gr[2]}" >>"$ROOT/replicas.csv"
    echo "| $run | gw$i | $gwi | $ro / $ra ($rp %) | $rt | $rr | $re | $sig | $sh | $lv | ${r[0]} / ${r[1]} / ${r[2]} | ${gr[0]} / ${gr[1]} / ${gr[2]} |" >>"$dir/$run.replicas.md"
  done
  local sigtxt
  sigtxt="$(IFS=';'; echo "${sigs[*]}")"
  sigtxt="${sigtxt//;/; }"
  echo "$run,$n,${gw[0]},${gw[1]},${gw[2]},$gwin,$att,$okn,$spct,$tmo,$rej,$err,$nsent,$bend,$bmax,$hs,$secs,$polls,$sigtxt" >>"$ROOT/runs.csv"
  echo "| ($run) $n gateway$( ((n > 1)) && echo s), $n x $(awk -v r="$REPLICAS_RATE" -v n="$n" 'BEGIN { printf "%g", r / n }')/s | ${cells[0]} | ${cells[1]} | ${cells[2]} | $gwin/s | $spct % ($okn of $att) | $tmo | $rej | $err | ${growth[0]} / ${growth[1]} / ${growth[2]} | $bend / $bmax | $healthy | $sigtxt |" >"$dir/$run.row.md"
}

# --- plot --------------------------------------------------------------------------------

plot_replicas() {
  local png="$ROOT/replicas.png" gp="$ROOT/replicas.gp" xmax=$((3 * P + DEADLINE_S + 5))
  command -v gnuplot >/dev/null || { log "gnuplot missing: no $png"; return 0; }
  local setting="(\$1 < $P ? $REPLICAS_HIGH_DRAIN : (\$1 < $((2 * P)) ? $REPLICAS_LOW_DRAIN : $REPLICAS_HIGH_DRAIN))"
  {
    cat <<EOF
set terminal pngcairo size 1300,1000 noenhanced
set output '$png'
set datafile separator ','
set datafile missing ''
set multiplot layout 2,1 title 'S2 with replicas: open loop ${REPLICAS_RATE}/s in total, bus drain $REPLICAS_HIGH_DRAIN -> $REPLICAS_LOW_DRAIN -> $REPLICAS_HIGH_DRAIN events/s at ${P} s and $((2 * P)) s ($EVENTS_PER_REG events per registration)'
set grid
set key outside right top
set xrange [0:$xmax]
set samples 2000
set xlabel 'time (s)'
set ylabel 'events/s (registrations/s for ok)'
set yrange [0:*]
set y2label 'bus backlog (entries)'
set y2tics
set y2range [0:*]
EOF
    local run n title
    for run in a b; do
      n=$([[ $run == a ]] && echo 1 || echo "$REPLICAS_N")
      [[ -s "$ROOT/$run.sim-rates.csv" ]] || continue
      if ((n == 1)); then
        title="(a) 1 gateway (database.url set), 1 loadgen at ${REPLICAS_RATE}/s"
      else
        title="(b) $n gateways on one PostgreSQL, $n loadgens at $(awk -v r="$REPLICAS_RATE" -v n="$n" 'BEGIN { printf "%g", r / n }')/s"
      fi
      cat <<EOF
set title '$title; dotted: counted windows start'
set arrow 1 from $S, graph 0 to $S, graph 1 nohead dt 3 lc rgb '#999999'
set arrow 2 from $((P + S)), graph 0 to $((P + S)), graph 1 nohead dt 3 lc rgb '#999999'
set arrow 3 from $((2 * P + S)), graph 0 to $((2 * P + S)), graph 1 nohead dt 3 lc rgb '#999999'
plot '$ROOT/$run.sim-rates.csv' using 1:2 every ::1 with lines lw 2 lc rgb '#1f77b4' title 'total bus events posted/s (sim)', \\
  '$ROOT/$run.sim-rates.csv' using 1:3 every ::1 with lines lw 1 lc rgb '#2ca02c' title 'bus events dispatched/s (sim)', \\
  '+' using 1:$setting with lines dt 2 lc rgb 'black' title 'drain setting', \\
  '$ROOT/$run.rate-sum.csv' using 1:2 every ::1 with lines lw 1 dt 4 lc rgb '#9467bd' title 'sum of replicas bucket rates', \\
  '$ROOT/$run.total.csv' using 1:3 every ::1 with lines lw 1 lc rgb '#ff7f0e' title 'total ok/s (registrations)', \\
  '$ROOT/$run.sim-rates.csv' using 1:4 every ::1 axes x1y2 with lines lw 2 lc rgb '#d62728' title 'bus backlog (right axis)'
unset arrow
EOF
    done
    echo "unset multiplot"
  } >"$gp"
  gnuplot "$gp" || log "warning: gnuplot failed on $gp"
}

# --- main --------------------------------------------------------------------------------

replicas_run a 1 || log "warning: run a failed"
replicas_run b "$REPLICAS_N" || log "warning: run b failed"
echo "final $(cut -d' ' -f1-3 /proc/loadavg)" >>"$ROOT/loadavg.txt"
analyse a 1 || true
analyse b "$REPLICAS_N" || true
plot_replicas

# summary.md
ratio() {
  awk -F, -v col="$1" 'NR == 1 { for (i = 1; i <= NF; i++) c[$i] = i; next }
    $1 == "a" { a = $c[col] } $1 == "b" { b = $c[col] }
    END { if (a > 0 && b != "") printf "%.1f %%", 100 * b / a; else print "-" }' "$ROOT/runs.csv"
}
{
  echo "## Replicas: one gateway vs $REPLICAS_N replicas on one PostgreSQL, S2 (replicas.sh, $(date -u +%Y-%m-%d), $((($(date +%s) - START) / 60)) min)"
  echo
  echo '```'
  cat "$ROOT/builds.txt"
  echo "load average (1/5/15 min) at each run's start and end (other benchmarks ran on this 2-core machine at the same time):"
  sed 's/^/  /' "$ROOT/loadavg.txt"
  for run in a b; do
    [[ -s "$ROOT/$run.loadavg.csv" ]] && awk -F, -v r="$run" 'NR > 1 { s += $2; n++; if ($2 > m) m = $2 }
      END { if (n) printf "  run %s, during the load (every 5 s): 1-min load average mean %.2f, max %.2f\n", r, s / n, m }' "$ROOT/$run.loadavg.csv"
  done
  echo '```'
  echo
  echo "S2: open loop ${REPLICAS_RATE} registrations/s in total with the AUTO_PAY_OFF tag ($EVENTS_PER_REG bus events each), deadline ${DEADLINE_S} s, bus drain $REPLICAS_HIGH_DRAIN -> $REPLICAS_LOW_DRAIN -> $REPLICAS_HIGH_DRAIN events/s, ${P} s phases. (a) one gateway with database.url set, one loadgen at ${REPLICAS_RATE}/s; (b) $REPLICAS_N gateways on one PostgreSQL and one killbill-sim, one loadgen per gateway at $(awk -v r="$REPLICAS_RATE" -v n="$REPLICAS_N" 'BEGIN { printf "%g", r / n }')/s. Fresh PostgreSQL cluster and fresh sim (warmed with $SIM_WARM_POLLS healthcheck polls) per run; the load starts when every gateway sees the expected number of live replicas."
  echo
  echo "Goodput per phase: successes/s summed over the loadgens from ${S} s after each change (phase 1: after the start) to the phase's end, and its share of the phase's sustainable goodput (drain / $EVENTS_PER_REG: $(awk -v a="$REPLICAS_HIGH_DRAIN" -v b="$REPLICAS_LOW_DRAIN" -v e="$EVENTS_PER_REG" 'BEGIN { printf "%g, %g, %g", a / e, b / e, a / e }')/s). Windows: the same three windows together. DEADLINE_EXCEEDED, rejections, errors and success %: summed over the loadgens (success % = ok / attempted). Bus growth: least-squares slope of the sim's exact bus backlog over each phase's window (entries/s). Healthy share: seconds of the load outside [0, ${S}), [${P}, $((P + S))), [$((2 * P)), $((2 * P + S))) in which the sim's healthcheck_unhealthy_total did not rise (every gateway polls the healthcheck each second, so in (b) Kill Bill's 60-sample growth window spans about 60 / $REPLICAS_N s; healthchecks/s in the cell). Signal: share of each replica's per-second /metrics samples on each billing_gateway_rate_signal source. Picture: replicas.png (bus backlog, total bus events posted/s, dispatched/s, the drain setting, the sum of the replicas' bucket rates and the total ok/s)."
  echo
  echo "| run | goodput phase 1 (drain $REPLICAS_HIGH_DRAIN) | phase 2 (drain $REPLICAS_LOW_DRAIN) | phase 3 (drain $REPLICAS_HIGH_DRAIN) | goodput over the 3 windows | success % | DEADLINE_EXCEEDED | rejections | errors | bus growth p1 / p2 / p3 (entries/s) | bus backlog end / max | healthy share (outside the ${S} s windows) | signal per replica |"
  echo "|---|---|---|---|---|---|---|---|---|---|---|---|---|"
  cat "$ROOT/a.row.md" "$ROOT/b.row.md" 2>/dev/null
  echo
  echo "**goodput(b) / goodput(a)** (the issue asks >= 95 %): phase 1 $(ratio goodput_p1), phase 2 $(ratio goodput_p2), phase 3 $(ratio goodput_p3), over the three windows **$(ratio goodput_windows)**."
  echo
  echo "Per phase (phases.csv): sim's bus events posted/s and dispatched/s over each window, and the sum of the replicas' bucket rates (events/s, mean of per-second samples):"
  echo
  echo "| run | phase | drain | window (s) | goodput/s | % of drain/$EVENTS_PER_REG | posted/s | dispatched/s | bus growth | sum of bucket rates |"
  echo "|---|---|---|---|---|---|---|---|---|---|"
  awk -F, 'NR > 1 { printf "| %s | %s | %s | %s-%s | %s | %s %% | %s | %s | %s | %s |\n", $1, $2, $3, $4, $5, $6, $8, $9, $10, $11, $12 }' "$ROOT/phases.csv"
  echo
  echo "Per replica (replicas.csv): goodput over the three windows, the loadgen's totals, the signal, the rate share and live replicas the replica reported (min-max over the run), and its bucket rate and global rate (rate / share) per phase window, events/s:"
  echo
  echo "| run | replica | goodput/s | ok / attempted | DEADLINE_EXCEEDED | rejections | errors | signal | share | live replicas | bucket rate p1 / p2 / p3 | global rate p1 / p2 / p3 |"
  echo "|---|---|---|---|---|---|---|---|---|---|---|---|"
  cat "$ROOT/a.replicas.md" "$ROOT/b.replicas.md" 2>/dev/null
} >"$ROOT/summary.md"
rm -f "$ROOT"/*.row.md "$ROOT"/*.replicas.md
find "$ROOT" -maxdepth 1 -name '*.pg.log' -empty -delete
echo
cat "$ROOT/summary.md"
log "replicas: done in $((($(date +%s) - START) / 60)) min -> $ROOT"
