# Common functions of the benchmark scenarios (S1-S4). Sourced, never run.
#
# Every contender runs against a FRESH killbill-sim on a free loopback port:
#   direct            billing-loadgen -> killbill-sim (HTTP)
#   nginx             billing-loadgen -> nginx limit_req -> killbill-sim
#   haproxy           billing-loadgen -> HAProxy maxconn + timeout queue -> killbill-sim
#   gateway-static    billing-loadgen -> billing-gateway (rate.mode static) -> killbill-sim
#   gateway-adaptive  billing-loadgen -> billing-gateway (rate.mode adaptive) -> killbill-sim
# Every process a scenario starts is recorded and stopped by PID when the contender ends and,
# whatever happens, on exit (trap). Generated configs are written next to the results.
#
# Environment (all optional):
#   BUILD        build directory holding the binaries        (default: <repo>/build)
#   SIM_BIN, GATEWAY_BIN, LOADGEN_BIN   override one binary
#   RESULTS      results root                                 (default: <repo>/bench/results)
#   CONTENDERS   space-separated subset of the five above     (default: all five)
#   DEADLINE_S   per-call deadline, seconds                   (default: 30)
#   TAGS         1: every registration adds AUTO_PAY_OFF (SaaSOdoo's flow, 2 Kill Bill
#                calls); 0: account creation only            (default: 1)
#   NGINX_RATE   limit_req rate, requests/s                   (default: 25)
#   HAPROXY_MAXCONN  server maxconn towards the sim           (default: 10)
#   GW_STATIC_RATE   gateway static rate, Kill Bill calls/s   (default: 48)
#   GW_ADAPTIVE_INITIAL, GW_ADAPTIVE_MIN, GW_ADAPTIVE_MAX  adaptive rate bounds, calls/s
#                                                             (default: 20, 2, 60)
#   GW_LOG_LEVEL     gateway logging.level; debug logs every health poll with the
#                    rate controller's state                  (default: info)
#   GW_MAX_IN_FLIGHT, GW_QUEUE_CAPACITY                       (default: 8, 10000)
#   SIM_ARGS     extra killbill-sim flags (e.g. "--config sim.yaml")
#   FAILURE_WAIT closed loop: a client's own wait after a rejection or error that carries no
#                pushback (nginx's bare 429, a refused connection); without it such clients
#                retry at once and the attempt counts measure the retry loop (default: 1s)

set -o pipefail

SCENARIO_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_ROOT="$(cd "$SCENARIO_DIR/../.." && pwd)"
BUILD="${BUILD:-$REPO_ROOT/build}"
SIM_BIN="${SIM_BIN:-$BUILD/bench/killbill_sim/killbill-sim}"
GATEWAY_BIN="${GATEWAY_BIN:-$BUILD/gateway/billing-gateway}"
LOADGEN_BIN="${LOADGEN_BIN:-$BUILD/bench/loadgen/billing-loadgen}"
RESULTS="${RESULTS:-$REPO_ROOT/bench/results}"
CONTENDERS="${CONTENDERS:-direct nginx haproxy gateway-static gateway-adaptive}"
DEADLINE_S="${DEADLINE_S:-30}"
TAGS="${TAGS:-1}"
NGINX_RATE="${NGINX_RATE:-25}"
HAPROXY_MAXCONN="${HAPROXY_MAXCONN:-10}"
GW_STATIC_RATE="${GW_STATIC_RATE:-48}"
GW_ADAPTIVE_INITIAL="${GW_ADAPTIVE_INITIAL:-20}"
GW_ADAPTIVE_MIN="${GW_ADAPTIVE_MIN:-2}"
GW_ADAPTIVE_MAX="${GW_ADAPTIVE_MAX:-60}"
GW_LOG_LEVEL="${GW_LOG_LEVEL:-info}"
GW_MAX_IN_FLIGHT="${GW_MAX_IN_FLIGHT:-8}"
GW_QUEUE_CAPACITY="${GW_QUEUE_CAPACITY:-10000}"
SIM_ARGS="${SIM_ARGS:-}"
FAILURE_WAIT="${FAILURE_WAIT:-1s}"

# PIDs started by this shell, stopped in reverse order.
BG_PIDS=()

log() { printf '[%s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "error: $*"; exit 1; }

# Stops one PID: TERM, up to 5 s grace, then KILL.
stop_pid() {
  local pid="$1" i
  kill -0 "$pid" 2>/dev/null || { wait "$pid" 2>/dev/null; return 0; }
  kill -TERM "$pid" 2>/dev/null
  for i in $(seq 50); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  kill -0 "$pid" 2>/dev/null && kill -KILL "$pid" 2>/dev/null
  wait "$pid" 2>/dev/null
  return 0
}

# Stops everything this shell started (contender teardown and the exit trap).
stop_all() {
  local i
  for ((i = ${#BG_PIDS[@]} - 1; i >= 0; i--)); do stop_pid "${BG_PIDS[$i]}"; done
  BG_PIDS=()
}

on_exit() {
  local rc=$?
  stop_all
  exit "$rc"
}
trap on_exit EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# The loadgen runs up to 2,000 connections; proxies need two file descriptors per call.
ulimit -n 65536 2>/dev/null || ulimit -n 16384 2>/dev/null || true

require_tools() {
  [[ -x "$LOADGEN_BIN" ]] || die "billing-loadgen not found at $LOADGEN_BIN (build it or set LOADGEN_BIN)"
  [[ -x "$SIM_BIN" ]] || die "killbill-sim not found at $SIM_BIN (build it or set SIM_BIN)"
  command -v curl >/dev/null || die "curl is needed"
}

# A TCP port nobody listens on and not handed out before by this shell (a race with other
# processes is possible; callers check that their server started).
GIVEN_PORTS=" "
free_port() {
  local p _
  for _ in $(seq 100); do
    # Below Linux's ephemeral range (32768-60999): a port there can be taken between this
    # check and the bind by any client connection's local port (seen with 2,000 at once).
    p=$((20000 + RANDOM % 12000))
    [[ "$GIVEN_PORTS" == *" $p "* ]] && continue
    if ! ss -ltnH "sport = :$p" 2>/dev/null | grep -q .; then
      GIVEN_PORTS+="$p "
      echo "$p"
      return 0
    fi
  done
  die "no free port found"
}

# Waits until 127.0.0.1:PORT accepts TCP connections, or PID dies, or TIMEOUT s pass.
wait_port() {
  local port="$1" pid="$2" timeout="${3:-10}" i
  for i in $(seq $((timeout * 10))); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then return 0; fi
    kill -0 "$pid" 2>/dev/null || return 1
    sleep 0.1
  done
  return 1
}

# start_sim LOGFILE: a fresh killbill-sim on a free port; sets SIM_PORT, SIM_URL, SIM_PID.
start_sim() {
  local logf="$1" i
  # shellcheck disable=SC2086
  "$SIM_BIN" --listen 127.0.0.1:0 $SIM_ARGS >"$logf" 2>&1 &
  SIM_PID=$!
  BG_PIDS+=("$SIM_PID")
  SIM_PORT=""
  for i in $(seq 100); do
    SIM_PORT="$(grep -o 'listening on 127\.0\.0\.1:[0-9]*' "$logf" 2>/dev/null | head -1 | sed 's/.*://')"
    [[ -n "$SIM_PORT" ]] && break
    kill -0 "$SIM_PID" 2>/dev/null || { cat "$logf" >&2; die "killbill-sim exited at start"; }
    sleep 0.1
  done
  [[ -n "$SIM_PORT" ]] || die "killbill-sim did not print its port (see $logf)"
  SIM_URL="http://127.0.0.1:$SIM_PORT"
}

# POST a JSON body to the sim's control API: sim_post /sim/config '{"bus_drain":12}'.
# The last answer is kept in $SIM_CONTROL_LOG (default /dev/null).
sim_post() {
  local status
  status="$(curl -sS -m 5 -o "${SIM_CONTROL_LOG:-/dev/null}" -w '%{http_code}' -X POST \
    -H 'Content-Type: application/json' -d "$2" "$SIM_URL$1" 2>&1)"
  [[ "$status" == 2* ]] || log "warning: POST $1 $2 answered $status"
}

# sim_stats_json: the sim's /sim/stats body (empty on failure).
sim_stats_json() { curl -sS -m 5 "$SIM_URL/sim/stats" 2>/dev/null || true; }

# start_nginx DIR UPSTREAM_PORT: nginx limit_req in front of the sim; sets PROXY_PORT.
# The burst is sized so a request that waits its whole turn in the burst queue still leaves
# the registration (REQS_PER_REG requests in a row) inside the client deadline with 3 s of
# margin per request: burst = rate * (deadline / requests_per_registration - 3).
start_nginx() {
  local dir="$1" upstream="$2" reqs=$((TAGS ? 2 : 1))
  local per_req=$((DEADLINE_S / reqs - 3))
  ((per_req < 1)) && per_req=1
  local burst=$((NGINX_RATE * per_req))
  PROXY_PORT="$(free_port)"
  mkdir -p "$dir/nginx"
  cat >"$dir/nginx/nginx.conf" <<EOF
# Generated by bench/scenarios/lib.sh: nginx limit_req in front of killbill-sim.
# rate ${NGINX_RATE}r/s on every Kill Bill call; burst ${burst} = ${NGINX_RATE} r/s * ${per_req} s, so a
# request queued at the back of the burst waits <= ${per_req} s and a ${reqs}-call registration
# still meets the ${DEADLINE_S} s client deadline. Requests beyond the burst get 429 at once.
# One zone key for the one load client (an empty key, e.g. an unset \$server_name, would
# disable limiting altogether).
worker_processes 1;
daemon off;
pid $dir/nginx/nginx.pid;
error_log $dir/nginx/error.log warn;
events { worker_connections 16384; }
http {
  access_log off;
  client_body_temp_path $dir/nginx/tmp_body;
  proxy_temp_path $dir/nginx/tmp_proxy;
  fastcgi_temp_path $dir/nginx/tmp_fastcgi;
  uwsgi_temp_path $dir/nginx/tmp_uwsgi;
  scgi_temp_path $dir/nginx/tmp_scgi;
  limit_req_zone \$binary_remote_addr zone=killbill:1m rate=${NGINX_RATE}r/s;
  limit_req_status 429;
  upstream killbill {
    server 127.0.0.1:${upstream};
    keepalive 64;
  }
  server {
    listen 127.0.0.1:${PROXY_PORT};
    keepalive_requests 100000;
    location /1.0/kb/ {
      limit_req zone=killbill burst=${burst};
      proxy_pass http://killbill;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header Host \$http_host;
      proxy_read_timeout 120s;
    }
    location / {
      proxy_pass http://killbill;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header Host \$http_host;
    }
  }
}
EOF
  nginx -e "$dir/nginx/error.log" -p "$dir/nginx" -c "$dir/nginx/nginx.conf" \
    >"$dir/nginx/stdout.log" 2>&1 &
  local pid=$!
  BG_PIDS+=("$pid")
  wait_port "$PROXY_PORT" "$pid" 10 || { cat "$dir/nginx/error.log" >&2; die "nginx did not start"; }
}

# start_haproxy DIR UPSTREAM_PORT: HAProxy queueing in front of the sim; sets PROXY_PORT.
# maxconn bounds the calls in the sim; the rest wait in HAProxy's queue at most
# `timeout queue` (deadline / requests_per_registration - 3 s, as for nginx), then get 503.
start_haproxy() {
  local dir="$1" upstream="$2" reqs=$((TAGS ? 2 : 1))
  local per_req=$((DEADLINE_S / reqs - 3))
  ((per_req < 1)) && per_req=1
  PROXY_PORT="$(free_port)"
  mkdir -p "$dir/haproxy"
  cat >"$dir/haproxy/haproxy.cfg" <<EOF
# Generated by bench/scenarios/lib.sh: HAProxy maxconn queueing in front of killbill-sim.
# At most ${HAPROXY_MAXCONN} calls in the sim; others queue up to ${per_req} s (timeout queue) so a
# ${reqs}-call registration still meets the ${DEADLINE_S} s client deadline, then get 503.
global
  maxconn 7000
defaults
  mode http
  timeout connect 5s
  timeout client 120s
  timeout server 120s
  timeout queue ${per_req}s
  timeout http-keep-alive 20s
  option http-keep-alive
  http-reuse always
frontend killbill_in
  bind 127.0.0.1:${PROXY_PORT}
  maxconn 7000
  default_backend killbill
backend killbill
  server sim 127.0.0.1:${upstream} maxconn ${HAPROXY_MAXCONN}
EOF
  haproxy -db -f "$dir/haproxy/haproxy.cfg" >"$dir/haproxy/haproxy.log" 2>&1 &
  local pid=$!
  BG_PIDS+=("$pid")
  wait_port "$PROXY_PORT" "$pid" 10 || { cat "$dir/haproxy/haproxy.log" >&2; die "haproxy did not start"; }
}

# start_gateway DIR UPSTREAM_PORT MODE(static|adaptive): sets GW_PORT. Returns 1 (after a
# clear message) when the gateway binary does not exist yet.
start_gateway() {
  local dir="$1" upstream="$2" mode="$3"
  if [[ ! -x "$GATEWAY_BIN" ]]; then
    log "skip gateway-$mode: billing-gateway not built ($GATEWAY_BIN missing)"
    return 1
  fi
  GW_PORT="$(free_port)"
  GW_METRICS_PORT="$(free_port)"
  local metrics_port="$GW_METRICS_PORT"
  local cfg="$dir/gateway-$mode.yaml"
  local initial="$GW_STATIC_RATE" min="$GW_STATIC_RATE" max="$GW_STATIC_RATE"
  if [[ "$mode" == adaptive ]]; then
    initial="$GW_ADAPTIVE_INITIAL" min="$GW_ADAPTIVE_MIN" max="$GW_ADAPTIVE_MAX"
  fi
  cat >"$cfg" <<EOF
# Generated by bench/scenarios/lib.sh for the gateway-$mode contender.
server:
  listen: "127.0.0.1:${GW_PORT}"
metrics:
  listen: "127.0.0.1:${metrics_port}"
killbill:
  url: "http://127.0.0.1:${upstream}"
rate:
  mode: ${mode}
  initial: ${initial}
  min: ${min}
  max: ${max}
  burst: 10
concurrency:
  max_in_flight: ${GW_MAX_IN_FLIGHT}
queue:
  capacity: ${GW_QUEUE_CAPACITY}
logging:
  level: ${GW_LOG_LEVEL}
EOF
  # Not "$dir/gateway-$mode.log": that is the loadgen's progress log in S2-S4 and adaptive.sh.
  "$GATEWAY_BIN" --config "$cfg" >"$dir/gateway-$mode.gateway.log" 2>&1 &
  local pid=$!
  BG_PIDS+=("$pid")
  if ! wait_port "$GW_PORT" "$pid" 15; then
    tail -20 "$dir/gateway-$mode.gateway.log" >&2
    log "skip gateway-$mode: billing-gateway did not start (see $dir/gateway-$mode.gateway.log)"
    stop_pid "$pid"
    return 1
  fi
}

# start_contender NAME DIR: fresh sim + the contender's front; sets TARGET (loadgen --target).
# Returns 1 if the contender must be skipped.
start_contender() {
  local name="$1" dir="$2"
  mkdir -p "$dir"
  SIM_CONTROL_LOG="$dir/sim-$name.control.log"
  start_sim "$dir/sim-$name.log"
  case "$name" in
    direct) TARGET="$SIM_URL" ;;
    nginx) start_nginx "$dir" "$SIM_PORT" && TARGET="http://127.0.0.1:$PROXY_PORT" ;;
    haproxy) start_haproxy "$dir" "$SIM_PORT" && TARGET="http://127.0.0.1:$PROXY_PORT" ;;
    gateway-static | gateway-adaptive)
      start_gateway "$dir" "$SIM_PORT" "${name#gateway-}" || { stop_all; return 1; }
      TARGET="grpc://127.0.0.1:$GW_PORT"
      ;;
    *) die "unknown contender $name" ;;
  esac
  log "$name: sim on :$SIM_PORT, target $TARGET"
}

# start_loadgen PREFIX LOADGEN_ARGS...: billing-loadgen against $TARGET in the background
# (sets LOADGEN_PID). Writes PREFIX.csv (its summary), PREFIX.timeseries.csv (per second,
# with the sim's bus backlog) and PREFIX.log (progress).
start_loadgen() {
  local prefix="$1"
  shift
  local tags_flag=--tag-auto-pay-off
  ((TAGS)) || tags_flag=--no-tag-auto-pay-off
  "$LOADGEN_BIN" --target "$TARGET" --deadline "${DEADLINE_S}s" "$tags_flag" \
    --failure-wait "$FAILURE_WAIT" --output csv --progress plain \
    --timeseries "$prefix.timeseries.csv" --sim-stats "$SIM_URL" "$@" >"$prefix.csv" 2>"$prefix.log" &
  LOADGEN_PID=$!
  BG_PIDS+=("$LOADGEN_PID")
}

# finish_loadgen SUMMARY_CSV CONTENDER POINT PREFIX: waits for the loadgen started last and
# appends "contender,point,<its csv row>" to SUMMARY_CSV (header written once).
finish_loadgen() {
  local summary="$1" contender="$2" point="$3" prefix="$4" rc=0
  wait "$LOADGEN_PID" || rc=$?
  if ((rc != 0)) || [[ ! -s "$prefix.csv" ]]; then
    log "warning: billing-loadgen exited $rc for $contender $point (see $prefix.log)"
    tail -3 "$prefix.log" >&2
  fi
  [[ -s "$prefix.csv" ]] || return 0
  if [[ ! -s "$summary" ]]; then
    printf 'contender,point,%s\n' "$(head -1 "$prefix.csv")" >"$summary"
  fi
  printf '%s,%s,%s\n' "$contender" "$point" "$(tail -1 "$prefix.csv")" >>"$summary"
  # Kill Bill's state at the end of the run, for the record; the gateway's metrics page
  # (its own view of answer times: server_answer_times).
  sim_stats_json >"$prefix.sim-stats.json"
  if [[ "$contender" == gateway-* && -n "${GW_METRICS_PORT:-}" ]]; then
    curl -sS -m 5 "http://127.0.0.1:$GW_METRICS_PORT/metrics" >"$prefix.gateway-metrics.txt" 2>/dev/null || true
  fi
  log "$contender $point: $(awk -F, 'NR == 2 { printf "attempted %s ok %s (%.1f%%) goodput %.1f/s p95 %.0f ms rejected %s timeout %s error %s not_sent %s", $7, $8, $14, $15, $20, $10, $11, $12, $13 }' "$prefix.csv")"
}

# server_answer_times METRICS_TXT OUTCOME: from a saved gateway /metrics page, how many
# CreateAccount answers of OUTCOME (ok, rejected, error) the gateway gave and the share it
# gave within 1 ms and within 10 ms of receiving the request (its
# billing_gateway_request_duration_seconds histogram): "count share_1ms share_10ms".
server_answer_times() {
  awk -v outcome="$2" '
    index($0, "billing_gateway_request_duration_seconds_bucket{") == 1 &&
    index($0, "method=\"CreateAccount\"") && index($0, "outcome=\"" outcome "\"") {
      if (index($0, "le=\"0.001\"")) b1 = $2
      if (index($0, "le=\"0.01\"")) b10 = $2
      if (index($0, "le=\"+Inf\"")) n = $2
    }
    END { if (n > 0) printf "%d %.4f %.4f\n", n, b1 / n, b10 / n; else print "0 - -" }' "$1"
}

# run_loadgen SUMMARY_CSV CONTENDER POINT PREFIX LOADGEN_ARGS...: start + finish.
run_loadgen() {
  local summary="$1" contender="$2" point="$3" prefix="$4"
  shift 4
  start_loadgen "$prefix" --label "$contender" "$@"
  finish_loadgen "$summary" "$contender" "$point" "$prefix"
}

# markdown_table SUMMARY_CSV: the scenario's table on stdout.
markdown_table() {
  awk -F, '
    NR == 1 { for (i = 1; i <= NF; i++) col[$i] = i; 
      print "| contender | point | attempted | ok | success % | goodput/s | goodput/min | p50 ms | p95 ms | p99 ms | rejected | timeout | error | not_sent | reject p99 ms |";
      print "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"; next }
    { printf "| %s | %s | %s | %s | %.1f | %.1f | %.0f | %.0f | %.0f | %.0f | %s | %s | %s | %s | %s |\n",
        $col["contender"], $col["point"], $col["attempted"], $col["succeeded"], $col["success_pct"],
        $col["goodput_per_s"], $col["goodput_per_min"], $col["p50_ms"], $col["p95_ms"], $col["p99_ms"],
        $col["rejected"], $col["timeout"], $col["error"], $col["not_sent"],
        ($col["rej_count"] > 0 ? sprintf("%.1f", $col["rej_p99_ms"]) : "-") }' "$1"
}

# plot_vs_concurrency SUMMARY_CSV OUTDIR: goodput and success % against concurrency, one line
# per contender (S1).
plot_vs_concurrency() {
  local summary="$1" out="$2" c plots_g="" plots_s=""
  command -v gnuplot >/dev/null || { log "gnuplot missing: no PNGs"; return 0; }
  for c in $CONTENDERS; do
    awk -F, -v c="$c" 'NR == 1 { for (i = 1; i <= NF; i++) col[$i] = i; next }
      $1 == c { print $col["point"], $col["goodput_per_s"], $col["success_pct"] }' \
      "$summary" | sort -n >"$out/$c.vs-concurrency.dat"
    [[ -s "$out/$c.vs-concurrency.dat" ]] || continue
    plots_g+="'$out/$c.vs-concurrency.dat' using 1:2 with linespoints title '$c', "
    plots_s+="'$out/$c.vs-concurrency.dat' using 1:3 with linespoints title '$c', "
  done
  [[ -n "$plots_g" ]] || return 0
  gnuplot <<EOF
set terminal pngcairo size 900,500 noenhanced
set logscale x
set xlabel 'concurrent clients'
set grid
set key outside right
set output '$out/goodput_vs_concurrency.png'
set ylabel 'goodput (successful creations/s)'
set yrange [0:*]
plot ${plots_g%, }
set output '$out/success_vs_concurrency.png'
set ylabel 'success %'
set yrange [0:105]
plot ${plots_s%, }
EOF
}

# plot_timeseries OUTDIR TITLE: throughput, p95 and sim backlog over time, one line per
# contender, from OUTDIR/<contender>.timeseries.csv (S2-S4).
plot_timeseries() {
  local out="$1" title="$2" c plots_t="" plots_p="" plots_b="" f
  command -v gnuplot >/dev/null || { log "gnuplot missing: no PNGs"; return 0; }
  for c in $CONTENDERS; do
    f="$out/$c.timeseries.csv"
    [[ -s "$f" ]] || continue
    plots_t+="'$f' using 1:3 with lines title '$c', "
    plots_p+="'$f' using 1:(\$8 > 0 ? \$8 : NaN) with lines title '$c', "
    plots_b+="'$f' using 1:9 with lines title '$c', "
  done
  [[ -n "$plots_t" ]] || return 0
  gnuplot <<EOF
set terminal pngcairo size 900,500 noenhanced
set datafile separator ','
set datafile missing ''
set key autotitle columnhead
set xlabel 'time (s)'
set grid
set key outside right
set output '$out/throughput.png'
set title '$title: successful creations per second'
set ylabel 'ok/s'
plot ${plots_t%, }
set output '$out/p95.png'
set title '$title: p95 latency of successful calls, per second'
set ylabel 'p95 (ms)'
plot ${plots_p%, }
set output '$out/backlog.png'
set title '$title: killbill-sim bus backlog'
set ylabel 'bus backlog (entries)'
plot ${plots_b%, }
EOF
}

# fresh_results SCENARIO: an empty results folder for the scenario; prints its path.
fresh_results() {
  local dir="$RESULTS/$1"
  rm -rf "$dir"
  mkdir -p "$dir"
  echo "$dir"
}

# A nonzero exit from a scenario function must not skip the other contenders.
for_each_contender() {
  local fn="$1" c
  shift
  for c in $CONTENDERS; do
    "$fn" "$c" "$@" || log "warning: $c failed; continuing"
    stop_all
  done
}
