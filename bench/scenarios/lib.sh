# Common functions of the benchmark scenarios (S1-S4). Sourced, never run.
#
# Every contender runs against a FRESH killbill-sim on a free loopback port:
#   direct            billing-loadgen -> killbill-sim (HTTP)
#   nginx             billing-loadgen -> nginx limit_req -> killbill-sim
#   haproxy           billing-loadgen -> HAProxy maxconn + timeout queue -> killbill-sim
#   gateway-static    billing-loadgen -> billing-gateway (rate.mode static) -> killbill-sim
#   gateway-adaptive  billing-loadgen -> billing-gateway (rate.mode adaptive) -> killbill-sim
# and, not in CONTENDERS' default:
#   gateway-healthcheck  gateway-adaptive with rate.signal healthcheck (the healthcheck-growth
#                     model only; gateway-adaptive is written with rate.signal auto: Kill
#                     Bill's bus counters from GET /1.0/metrics). GW_GENERATION=new only.
#   gateway-reference the gateway on its reference config file (storm.sh)
# Every process a scenario starts is recorded and stopped by PID when the contender ends and,
# whatever happens, on exit (trap). Generated configs are written next to the results.
#
# Environment (all optional):
#   BUILD        build directory holding the binaries        (default: <repo>/build)
#   SIM_BIN, GATEWAY_BIN, LOADGEN_BIN   override one binary
#   RESULTS      results root                                 (default: <repo>/bench/results)
#   CONTENDERS   space-separated list of the contenders above (default: the first five)
#   DEADLINE_S   per-call deadline, seconds                   (default: 30)
#   TAGS         1: every registration adds AUTO_PAY_OFF (SaaSOdoo's flow, 2 Kill Bill
#                calls); 0: account creation only            (default: 1)
#   NGINX_RATE   limit_req rate, requests/s                   (default: 25)
#   HAPROXY_MAXCONN  server maxconn towards the sim           (default: 10)
#   GW_GENERATION  old | new: which billing-gateway and killbill-sim the generated configs and
#                flags are written for                        (default: new)
#                  old  the committed gateway (as of 6df6033): rate keys in Kill Bill calls/s,
#                       no `cost` section; its sim has no --bus_events_per_tag.
#                  new  rate keys in Kill Bill main-bus events/s, a `cost.tag_bus_events` key;
#                       its sim takes --bus_events_per_tag.
#                Each binary refuses what the other generation needs (unknown key, unknown
#                flag): set GW_GENERATION=old with BUILD=/work/baseline/build or any other
#                build that predates the change.
#   TAG_EVENTS   new only: main-bus events Kill Bill posts per tag added. Passed to every sim as
#                --bus_events_per_tag and written to gateway configs as cost.tag_bus_events
#                (default: 1, Kill Bill 0.24's behaviour). 0 = the sim model under which every
#                committed benchmark row was measured (a tagged registration posts 1 event).
#                Empty = pass neither (both binaries' built-in defaults; the conversion below
#                then assumes 1). Ignored for old.
#   GW_STATIC_RATE, GW_ADAPTIVE_INITIAL, _MIN, _MAX, _STEP, GW_BURST: the gateway's rate keys in
#                Kill Bill calls/s (what the old gateway reads), and GW_*_EVENTS, their
#                main-bus events/s twins for new (see "Rate units" below).
#   GW_LOG_LEVEL     gateway logging.level; debug logs every health poll with the
#                    rate controller's state                  (default: info)
#   GW_MAX_IN_FLIGHT, GW_QUEUE_CAPACITY                       (default: 8, 10000)
#   SIM_WARM_POLLS  healthcheck polls made on each fresh sim before its contender starts, one
#                every SIM_WARM_INTERVAL s (default 1), so Kill Bill's 60-sample growth window is
#                full as on a long-running server (default 0; storm.sh: 60)
#   SIM_ARGS     extra killbill-sim flags (e.g. "--config sim.yaml")
#   SIM_FOREIGN_POLL  seconds between the calls of a second healthcheck poller (a Kubernetes
#                probe, a monitoring poller): each fresh sim gets, from its start (before the
#                warm-up polls) until it stops, a background GET /1.0/healthcheck every
#                SIM_FOREIGN_POLL s besides the contender's own polls, so Kill Bill's
#                60-sample growth window spans fewer seconds (default: 0 = none)
#   FAILURE_WAIT closed loop: a client's own wait after a rejection or error that carries no
#                pushback (nginx's bare 429, a refused connection); without it such clients
#                retry at once and the attempt counts measure the retry loop (default: 1s)
#   GW_REFERENCE_CONFIG  the gateway-reference contender's config file (default: the
#                config/gateway.yaml of the source tree GATEWAY_BIN was built from, read from
#                its build directory's CMakeCache.txt; else <repo>/config/gateway.yaml)
#
# Rate units. The old gateway's rate keys count Kill Bill calls/s; the new one's count Kill Bill
# main-bus events/s. Per registration (create account, plus the AUTO_PAY_OFF tag when TAGS=1):
#     calls/registration  = 1 + TAGS
#     events/registration = 1 + TAGS x TAG_EVENTS
# A new-gateway rate runs the same registrations/s as an old-gateway rate when
#     events/s = calls/s x (1 + TAGS x TAG_EVENTS) / (1 + TAGS)
# The knobs in calls/s are written as given for old. For new, each *_EVENTS twin is written as
# given if set, else derived from its calls/s knob by that formula when the config is written
# (so a script that changes TAGS, TAG_EVENTS or a calls/s knob gets the matching value):
#
#   calls/s knob (old)    default  events/s twin (new)         TAGS=1       TAGS=1       TAGS=0
#                                                              TAG_EVENTS=0 TAG_EVENTS=1 (any)
#   GW_STATIC_RATE          48     GW_STATIC_EVENTS            24           48           48
#   GW_ADAPTIVE_INITIAL     20     GW_ADAPTIVE_INITIAL_EVENTS  10           20           20
#   GW_ADAPTIVE_MIN          2     GW_ADAPTIVE_MIN_EVENTS       1            2            2
#   GW_ADAPTIVE_MAX         60     GW_ADAPTIVE_MAX_EVENTS      30           60           60
#   GW_ADAPTIVE_STEP         1     GW_ADAPTIVE_STEP_EVENTS      0.5          1            1
#   GW_BURST                10     GW_BURST_EVENTS              5           10           10
#
# GW_ADAPTIVE_STEP is rate.increase_step (the old gateway's built-in default, 1 call/s per
# adjust_interval, now written explicitly so the new gateway gets the same ramp); GW_BURST is
# rate.burst (bucket depth: tokens are calls for old, assumed events for new, at least 1).
# So with GW_GENERATION=new TAG_EVENTS=0 the new gateway gets the configuration of the committed
# rows (24 registrations/s static; adaptive 10 / 1 / 30 events/s = 20 / 2 / 60 calls/s).
# Caution with TAG_EVENTS=1 and TAGS=1: the same 24 registrations/s are 48 events/s, about twice
# the sim's bus drain (25 events/s); the committed static rate was sized as 96 % of the drain,
# which under that model is GW_STATIC_EVENTS=24 (12 registrations/s). Set the twin explicitly
# when that is what is measured.

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
GW_GENERATION="${GW_GENERATION:-new}"
TAG_EVENTS="${TAG_EVENTS-1}"
GW_STATIC_RATE="${GW_STATIC_RATE:-48}"
GW_ADAPTIVE_INITIAL="${GW_ADAPTIVE_INITIAL:-20}"
GW_ADAPTIVE_MIN="${GW_ADAPTIVE_MIN:-2}"
GW_ADAPTIVE_MAX="${GW_ADAPTIVE_MAX:-60}"
GW_ADAPTIVE_STEP="${GW_ADAPTIVE_STEP:-1}"
GW_BURST="${GW_BURST:-10}"
# The *_EVENTS twins stay unset unless given: derived when a config is written (gw_rate).
GW_LOG_LEVEL="${GW_LOG_LEVEL:-info}"
GW_MAX_IN_FLIGHT="${GW_MAX_IN_FLIGHT:-8}"
GW_QUEUE_CAPACITY="${GW_QUEUE_CAPACITY:-10000}"
SIM_ARGS="${SIM_ARGS:-}"
FAILURE_WAIT="${FAILURE_WAIT:-1s}"

# PIDs started by this shell, stopped in reverse order.
BG_PIDS=()

log() { printf '[%s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "error: $*"; exit 1; }

# use_product_model: the model issue 11's scenarios measure: the new generation, a
# registration = create + AUTO_PAY_OFF = 2 bus events (Kill Bill 0.24), and the adaptive rate
# keys at config/gateway.yaml's defaults (10/1/50 events/s, step 1, burst 10) unless set.
# Sets EVENTS_PER_REG.
use_product_model() {
  GW_GENERATION=new TAGS=1 TAG_EVENTS=1
  check_generation
  EVENTS_PER_REG=$((1 + TAGS * TAG_EVENTS))
  GW_ADAPTIVE_INITIAL_EVENTS="${GW_ADAPTIVE_INITIAL_EVENTS:-10}"
  GW_ADAPTIVE_MIN_EVENTS="${GW_ADAPTIVE_MIN_EVENTS:-1}"
  GW_ADAPTIVE_MAX_EVENTS="${GW_ADAPTIVE_MAX_EVENTS:-50}"
  GW_ADAPTIVE_STEP_EVENTS="${GW_ADAPTIVE_STEP_EVENTS:-1}"
  GW_BURST_EVENTS="${GW_BURST_EVENTS:-10}"
}

check_generation() {
  [[ "$GW_GENERATION" == old || "$GW_GENERATION" == new ]] ||
    die "GW_GENERATION must be old or new (is '$GW_GENERATION')"
  [[ -z "$TAG_EVENTS" || "$TAG_EVENTS" =~ ^[0-9]+$ ]] ||
    die "TAG_EVENTS must be a whole number or empty (is '$TAG_EVENTS')"
}
check_generation

# use_build DIR GENERATION: the contenders started from now on run DIR's killbill-sim and
# billing-gateway, with configs and flags written for GENERATION (old|new). billing-loadgen
# is not changed: one instrument measures both.
use_build() {
  SIM_BIN="$1/bench/killbill_sim/killbill-sim"
  GATEWAY_BIN="$1/gateway/billing-gateway"
  GW_GENERATION="$2"
  check_generation
}

# calls_to_events CALLS_PER_S: the main-bus event rate that runs the same registrations/s
# (header, "Rate units"); an empty TAG_EVENTS counts as the gateway's default, 1.
calls_to_events() {
  awk -v x="$1" -v tags="$TAGS" -v te="${TAG_EVENTS:-1}" 'BEGIN {
    calls = 1 + (tags ? 1 : 0); events = 1 + (tags ? te : 0)
    printf "%g\n", x * events / calls }'
}

# gw_rate CALLS_PER_S [EVENTS_PER_S]: the value of one rate key for GW_GENERATION: old, the
# calls/s as given; new, the events/s twin if given, else converted from the calls/s.
gw_rate() {
  if [[ "$GW_GENERATION" == old ]]; then
    echo "$1"
  elif [[ -n "${2:-}" ]]; then
    echo "$2"
  else
    calls_to_events "$1"
  fi
}

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
# For GW_GENERATION=new with TAG_EVENTS set, the sim posts TAG_EVENTS bus events per tag.
start_sim() {
  local logf="$1" i model_args=""
  if [[ "$GW_GENERATION" == new && -n "$TAG_EVENTS" ]]; then
    model_args="--bus_events_per_tag $TAG_EVENTS"
  fi
  # shellcheck disable=SC2086
  "$SIM_BIN" --listen 127.0.0.1:0 $model_args $SIM_ARGS >"$logf" 2>&1 &
  SIM_PID=$!
  BG_PIDS+=("$SIM_PID")
  SIM_PORT=""
  for i in $(seq 100); do
    SIM_PORT="$(grep -o 'listening on 127\.0\.0\.1:[0-9]*' "$logf" 2>/dev/null | head -1 | sed 's/.*://')"
    [[ -n "$SIM_PORT" ]] && break
    if ! kill -0 "$SIM_PID" 2>/dev/null; then
      cat "$logf" >&2
      [[ -n "$model_args" ]] && log "note: GW_GENERATION=new passed '$model_args'; a sim that predates it needs GW_GENERATION=old"
      die "killbill-sim ($SIM_BIN) exited at start"
    fi
    sleep 0.1
  done
  [[ -n "$SIM_PORT" ]] || die "killbill-sim did not print its port (see $logf)"
  SIM_URL="http://127.0.0.1:$SIM_PORT"
  start_foreign_poller
  # A Kill Bill that has been up for a while has a full 60-sample healthcheck window; a fresh
  # one reports no growth at all until 60 polls have sampled it (Kill Bill's rule, which the
  # sim follows), so a run shorter than a minute would measure a blind gateway. The polls are
  # spaced as a poller's would be: 60 polls in a burst would crowd the regression's time axis,
  # and the first real samples after them would print huge slopes for tiny backlogs.
  if ((${SIM_WARM_POLLS:-0} > 0)); then
    log "warming the sim's healthcheck window: ${SIM_WARM_POLLS} polls, one per ${SIM_WARM_INTERVAL:-1}s"
  fi
  for ((i = 0; i < ${SIM_WARM_POLLS:-0}; i++)); do
    curl -s -o /dev/null "$SIM_URL/1.0/healthcheck" || break
    sleep "${SIM_WARM_INTERVAL:-1}"
  done
}

# start_foreign_poller: with SIM_FOREIGN_POLL > 0, GET $SIM_URL/1.0/healthcheck every
# SIM_FOREIGN_POLL s in the background (added to BG_PIDS, after the sim: stop_all ends it
# first) as another caller of Kill Bill's healthcheck would; it also ends by itself once the
# sim or this shell is gone.
start_foreign_poller() {
  awk -v p="${SIM_FOREIGN_POLL:-0}" 'BEGIN { exit !(p > 0) }' || return 0
  local sim_pid="$SIM_PID" url="$SIM_URL/1.0/healthcheck" parent=$$
  (
    while kill -0 "$sim_pid" 2>/dev/null && kill -0 "$parent" 2>/dev/null; do
      curl -s -o /dev/null -m 2 "$url" 2>/dev/null
      sleep "$SIM_FOREIGN_POLL"
    done
  ) &
  BG_PIDS+=("$!")
  log "foreign healthcheck poller: one GET /1.0/healthcheck every ${SIM_FOREIGN_POLL}s"
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

# write_gateway_config FILE UPSTREAM_PORT MODE(static|adaptive) [SIGNAL(auto|healthcheck)]:
# the gateway-static / gateway-adaptive / gateway-healthcheck config for GW_GENERATION (rate
# keys in its unit, "Rate units" above). For new, adaptive gets rate.signal (default auto)
# written out; old has no such key (and no healthcheck-only choice).
write_gateway_config() {
  local cfg="$1" upstream="$2" mode="$3" signal="${4:-auto}" unit conv="" signal_line=""
  local initial min max step burst
  if [[ "$mode" == adaptive ]]; then
    initial="$(gw_rate "$GW_ADAPTIVE_INITIAL" "${GW_ADAPTIVE_INITIAL_EVENTS:-}")"
    min="$(gw_rate "$GW_ADAPTIVE_MIN" "${GW_ADAPTIVE_MIN_EVENTS:-}")"
    max="$(gw_rate "$GW_ADAPTIVE_MAX" "${GW_ADAPTIVE_MAX_EVENTS:-}")"
  else
    initial="$(gw_rate "$GW_STATIC_RATE" "${GW_STATIC_EVENTS:-}")" min="$initial" max="$initial"
  fi
  step="$(gw_rate "$GW_ADAPTIVE_STEP" "${GW_ADAPTIVE_STEP_EVENTS:-}")"
  burst="$(gw_rate "$GW_BURST" "${GW_BURST_EVENTS:-}")"
  burst="$(awk -v b="$burst" 'BEGIN { printf "%g\n", (b < 1 ? 1 : b) }')"
  if [[ "$GW_GENERATION" == old ]]; then
    unit="Kill Bill calls/s"
  else
    unit="Kill Bill main-bus events/s"
    [[ "$mode" == adaptive ]] && signal_line="  signal: ${signal}"
    conv="# calls/s knobs converted x $(calls_to_events 1) = (1 + TAGS x TAG_EVENTS) / (1 + TAGS), TAGS=$TAGS TAG_EVENTS=${TAG_EVENTS:-(default 1)}; *_EVENTS given: used as is."
  fi
  {
    echo "# Generated by bench/scenarios/lib.sh for the gateway-$([[ "$signal_line" == *healthcheck ]] && echo healthcheck || echo "$mode") contender (GW_GENERATION=$GW_GENERATION${signal_line:+, rate.signal $signal})."
    echo "# Rate keys (initial, min, max, increase_step; burst in tokens) in $unit."
    [[ -n "$conv" ]] && echo "$conv"
    cat <<EOF
server:
  listen: "127.0.0.1:${GW_PORT}"
metrics:
  listen: "127.0.0.1:${GW_METRICS_PORT}"
killbill:
  url: "http://127.0.0.1:${upstream}"
rate:
  mode: ${mode}
${signal_line:+${signal_line}
}  initial: ${initial}
  min: ${min}
  max: ${max}
  burst: ${burst}
  increase_step: ${step}
concurrency:
  max_in_flight: ${GW_MAX_IN_FLIGHT}
queue:
  capacity: ${GW_QUEUE_CAPACITY}
logging:
  level: ${GW_LOG_LEVEL}
EOF
    if [[ "$GW_GENERATION" == new && -n "$TAG_EVENTS" ]]; then
      cat <<EOF
cost:
  tag_bus_events: ${TAG_EVENTS}
EOF
    fi
  } >"$cfg"
}

# gateway_reference_config: the path of the reference config (GW_REFERENCE_CONFIG, else the
# config/gateway.yaml of the source tree GATEWAY_BIN's build directory was configured from).
gateway_reference_config() {
  if [[ -n "${GW_REFERENCE_CONFIG:-}" ]]; then
    echo "$GW_REFERENCE_CONFIG"
    return
  fi
  local build src=""
  build="$(dirname "$(dirname "$GATEWAY_BIN")")"
  [[ -f "$build/CMakeCache.txt" ]] &&
    src="$(sed -n 's/^CMAKE_HOME_DIRECTORY:INTERNAL=//p' "$build/CMakeCache.txt" | head -1)"
  echo "${src:-$REPO_ROOT}/config/gateway.yaml"
}

# override_gateway_keys LISTEN METRICS_LISTEN KILLBILL_URL LOG_LEVEL < YAML > YAML: sets
# server.listen, metrics.listen, killbill.url and logging.level (block style, two-space
# indent, as config/gateway.yaml is written) and copies every other line as it is; a key or
# section that is missing is added.
override_gateway_keys() {
  awk -v listen="$1" -v mlisten="$2" -v url="$3" -v level="$4" '
    BEGIN {
      want["server"] = "\"" listen "\""; want["metrics"] = "\"" mlisten "\""
      want["killbill"] = "\"" url "\""; want["logging"] = level
      keyof["server"] = "listen"; keyof["metrics"] = "listen"; keyof["killbill"] = "url"
      keyof["logging"] = "level"
      nsec = split("server metrics killbill logging", secs, " ")
    }
    function close_section() {
      if (sec in keyof && !done[sec]) { print "  " keyof[sec] ": " want[sec]; done[sec] = 1 }
    }
    /^[A-Za-z_][A-Za-z0-9_]*:/ {
      close_section(); sec = $0; sub(/:.*/, "", sec); seen[sec] = 1; print; next
    }
    sec in keyof && !done[sec] && $0 ~ ("^  " keyof[sec] ":") {
      print "  " keyof[sec] ": " want[sec]; done[sec] = 1; next
    }
    { print }
    END {
      close_section()
      for (i = 1; i <= nsec; i++) if (!seen[secs[i]]) {
        print secs[i] ":"; print "  " keyof[secs[i]] ": " want[secs[i]]
      }
    }'
}

# write_reference_gateway_config FILE UPSTREAM_PORT: the reference config file with only
# server.listen, metrics.listen, killbill.url and logging.level replaced, so the gateway runs
# on its documented defaults. Checked: the gateway's effective configuration
# (--check_config) of the copy differs from the reference's in those four keys only; the
# copy's effective configuration is saved as FILE.effective.
write_reference_gateway_config() {
  local cfg="$1" upstream="$2" ref mask="__L__ __M__ __U__ __V__"
  ref="$(gateway_reference_config)"
  [[ -f "$ref" ]] || { log "reference config $ref not found (set GW_REFERENCE_CONFIG)"; return 1; }
  {
    echo "# Generated by bench/scenarios/lib.sh: $ref with server.listen, metrics.listen,"
    echo "# killbill.url and logging.level replaced; every other line as in the reference."
    override_gateway_keys "127.0.0.1:$GW_PORT" "127.0.0.1:$GW_METRICS_PORT" \
      "http://127.0.0.1:$upstream" "$GW_LOG_LEVEL" <"$ref"
  } >"$cfg"
  if ! "$GATEWAY_BIN" --config "$cfg" --check_config >"$cfg.effective" 2>&1; then
    cat "$cfg.effective" >&2
    log "the gateway refused $cfg"
    return 1
  fi
  # Both effective configurations, the four keys masked, must be identical (line 1 is
  # "FILE: OK").
  # shellcheck disable=SC2086
  if ! diff <("$GATEWAY_BIN" --config "$ref" --check_config 2>&1 | tail -n +2 | override_gateway_keys $mask) \
    <(tail -n +2 "$cfg.effective" | override_gateway_keys $mask) >"$cfg.diff"; then
    cat "$cfg.diff" >&2
    log "$cfg differs from $ref in more than the four overridden keys"
    return 1
  fi
  rm -f "$cfg.diff"
  log "gateway-reference: $ref, overridden: server.listen, metrics.listen, killbill.url, logging.level"
}

# start_gateway DIR UPSTREAM_PORT MODE [STEM]: MODE static, adaptive or healthcheck (adaptive
# with rate.signal healthcheck; configs generated from the GW_* knobs) or reference (the
# reference config file, write_reference_gateway_config).
# Writes DIR/STEM.yaml and the gateway's log DIR/STEM.gateway.log (STEM: gateway-MODE). Sets
# GW_PORT, GW_METRICS_PORT. Returns 1 (after a clear message) when the gateway binary does
# not exist or does not start.
start_gateway() {
  local dir="$1" upstream="$2" mode="$3" stem="${4:-gateway-$3}"
  if [[ ! -x "$GATEWAY_BIN" ]]; then
    log "skip $stem: billing-gateway not built ($GATEWAY_BIN missing)"
    return 1
  fi
  GW_PORT="$(free_port)"
  GW_METRICS_PORT="$(free_port)"
  local cfg="$dir/$stem.yaml"
  if [[ "$mode" == reference ]]; then
    write_reference_gateway_config "$cfg" "$upstream" || { log "skip $stem"; return 1; }
  elif [[ "$mode" == healthcheck ]]; then
    write_gateway_config "$cfg" "$upstream" adaptive healthcheck
  else
    write_gateway_config "$cfg" "$upstream" "$mode"
  fi
  # Not "$dir/gateway-$mode.log": that is the loadgen's progress log in S2-S4 and adaptive.sh.
  local glog="$dir/$stem.gateway.log"
  "$GATEWAY_BIN" --config "$cfg" >"$glog" 2>&1 &
  local pid=$!
  BG_PIDS+=("$pid")
  if ! wait_port "$GW_PORT" "$pid" 15; then
    tail -20 "$glog" >&2
    log "skip $stem: billing-gateway ($GATEWAY_BIN, GW_GENERATION=$GW_GENERATION) did not start (see $glog)"
    stop_pid "$pid"
    return 1
  fi
}

# start_contender NAME DIR [RUN]: fresh sim + the contender's front; sets TARGET (loadgen
# --target). Files are named after RUN (default NAME): DIR/sim-RUN.log,
# DIR/sim-RUN.control.log and, for a gateway, DIR/RUN.yaml and DIR/RUN.gateway.log.
# Contenders: direct, nginx, haproxy, gateway-static, gateway-adaptive, and
# gateway-healthcheck (adaptive on the healthcheck signal only; new generation) and
# gateway-reference (the reference config file), which are not in CONTENDERS' default.
# Returns 1 if the contender must be skipped.
start_contender() {
  local name="$1" dir="$2" run="${3:-$1}"
  mkdir -p "$dir"
  if [[ "$name" == gateway-healthcheck && "$GW_GENERATION" == old ]]; then
    log "skip $run: the old gateway has no rate.signal (gateway-healthcheck needs GW_GENERATION=new)"
    return 1
  fi
  SIM_CONTROL_LOG="$dir/sim-$run.control.log"
  GW_PORT="" GW_METRICS_PORT=""
  start_sim "$dir/sim-$run.log"
  case "$name" in
    direct) TARGET="$SIM_URL" ;;
    nginx) start_nginx "$dir" "$SIM_PORT" && TARGET="http://127.0.0.1:$PROXY_PORT" ;;
    haproxy) start_haproxy "$dir" "$SIM_PORT" && TARGET="http://127.0.0.1:$PROXY_PORT" ;;
    gateway-static | gateway-adaptive | gateway-healthcheck | gateway-reference)
      start_gateway "$dir" "$SIM_PORT" "${name#gateway-}" "$run" || { stop_all; return 1; }
      TARGET="grpc://127.0.0.1:$GW_PORT"
      ;;
    *) die "unknown contender $name" ;;
  esac
  log "$run: sim on :$SIM_PORT, target $TARGET"
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

# bus_growth TIMESERIES [FROM_S [TO_S]]: Kill Bill health from the sim's bus backlog that
# billing-loadgen sampled each second (/sim/stats, which adds no healthcheck sample):
# "END MAX SLOPE" = backlog in the last sampled second, its maximum, and its least-squares
# slope in entries/s over FROM_S <= t < TO_S (default: 10 s to the end; bus_health.sh).
# Kill Bill's own "growing" threshold is 0.1 per 100 ms: healthy = SLOPE below 1 entry/s.
bus_growth() {
  awk -F, -v from="${2:-10}" -v to="${3:-1e18}" '
    NR == 1 { for (i = 1; i <= NF; i++) if ($i == "backlog") c = i; next }
    c && $c != "" {
      t = $1; y = $c; last = y; if (y > max) max = y
      if (t >= from && t < to) { n++; sx += t; sy += y; sxx += t * t; sxy += t * y }
    }
    END {
      slope = (n > 1 && n * sxx - sx * sx != 0) ? (n * sxy - sx * sy) / (n * sxx - sx * sx) : 0
      printf "%d %d %.6f\n", last, max, slope
    }' "$1"
}

# ok_rate TIMESERIES FROM_S TO_S: successful calls per second over FROM_S <= t < TO_S
# (billing-loadgen's per-second rows count a call in the second it completed).
ok_rate() {
  awk -F, -v from="$2" -v to="$3" '
    NR == 1 { for (i = 1; i <= NF; i++) if ($i == "ok") c = i; next }
    $1 >= from && $1 < to { ok += $c }
    END { printf "%.2f\n", (to > from ? ok / (to - from) : 0) }' "$1"
}

# ---------------------------------------------------------------------------------------
# Per-second samplers (background; add "$!" to BG_PIDS so stop_all ends them) and their
# analysis. Samples are taken on whole seconds after T0 (date +%s.%N of the run's start),
# so row k of a series is about t = k; t is the time the sample was actually taken.

# next_tick T0 K: "K' WAIT" where K' is the next whole second after T0 not yet past (K, or
# later when the sampler fell behind) and WAIT the seconds to sleep until it.
next_tick() {
  awk -v now="$(date +%s.%N)" -v t0="$1" -v k="$2" 'BEGIN {
    e = now - t0; if (k <= e) k = int(e) + 1
    printf "%d %.3f\n", k, k - e }'
}

# sample_sim_stats FILE T0: the sim's own counters (GET /sim/stats, which adds no
# healthcheck sample) once a second until stopped. A second in which /sim/stats did not
# answer (a refuse outage closes /sim/ too) has no row.
sample_sim_stats() {
  local file="$1" t0="$2" k=0 wait t
  echo "t,uptime_s,bus_backlog,bus_backlog_exact,bus_drained_total,healthcheck_calls,healthcheck_unhealthy_total,in_rotation,healthcheck_last_message,bus_posted_total,bus_dispatched_total" >"$file"
  while :; do
    t="$(awk -v a="$(date +%s.%N)" -v b="$t0" 'BEGIN { printf "%.2f", a - b }')"
    curl -sS -m 1 "$SIM_URL/sim/stats" 2>/dev/null | jq -r --arg t "$t" '[$t, .uptime_s,
      .bus_backlog, .bus_backlog_exact, .bus_drained_total, .healthcheck_calls,
      .healthcheck_unhealthy_total, .in_rotation,
      ((.healthcheck_last_message // "") | gsub(","; ";")), .bus_posted_total,
      .bus_dispatched_total] | map(tostring) | join(",")' >>"$file" 2>/dev/null
    read -r k wait <<<"$(next_tick "$t0" "$k")"
    sleep "$wait"
  done
}

# sample_gateway_metrics FILE T0 [METRICS_PORT]: the gateway's /metrics page once a second
# until stopped (default port GW_METRICS_PORT): t, rate (events/s), signal (the source whose
# billing_gateway_rate_signal is 1: metrics, healthcheck, static; "none" when no source is
# set), signal_metrics (1 = metrics, 0 = healthcheck, empty otherwise: a step line), the
# bus backlog the gateway read from GET /1.0/metrics (-1 = not read), the healthcheck's bus
# growth number it read, its queue depth, breaker state, the controller's drain estimate and
# Kill Bill's last healthcheck verdict (1 healthy).
sample_gateway_metrics() {
  local file="$1" t0="$2" port="${3:-$GW_METRICS_PORT}" k=0 wait t page
  echo "t,rate,signal,signal_metrics,kb_bus_backlog,growth,queue_depth,breaker_state,drain_estimate,kb_healthy" >"$file"
  while :; do
    t="$(awk -v a="$(date +%s.%N)" -v b="$t0" 'BEGIN { printf "%.2f", a - b }')"
    page="$(curl -sS -m 1 "http://127.0.0.1:$port/metrics" 2>/dev/null)" || page=""
    [[ -n "$page" ]] && awk -v t="$t" '
      /^billing_gateway_rate_limit_events_per_second / { rate = $2 }
      /^billing_gateway_rate_signal\{/ && $2 == 1 { match($0, /source="[a-z_]*"/); src = substr($0, RSTART + 8, RLENGTH - 9) }
      /^billing_gateway_killbill_bus_backlog / { backlog = $2 }
      /^billing_gateway_killbill_queue_growth\{.*queue="bus"/ { growth = $2 }
      /^billing_gateway_queue_depth / { depth = $2 }
      /^billing_gateway_rate_drain_estimate_events_per_second / { drain = $2 }
      /^billing_gateway_killbill_healthy / { healthy = $2 }
      /^billing_gateway_breaker_state\{/ && $2 == 1 { match($0, /state="[a-z_]*"/); breaker = substr($0, RSTART + 7, RLENGTH - 8) }
      END {
        if (src == "") src = "none"
        sm = (src == "metrics") ? 1 : (src == "healthcheck" ? 0 : "")
        printf "%s,%s,%s,%s,%s,%s,%s,%s,%s,%s\n", t, rate, src, sm, backlog,
          (growth == "" ? 0 : growth), depth, breaker, drain, healthy
      }' <<<"$page" >>"$file"
    read -r k wait <<<"$(next_tick "$t0" "$k")"
    sleep "$wait"
  done
}

# start_samplers PREFIX: sample_sim_stats to PREFIX.sim-series.csv and, for a gateway
# contender (GW_METRICS_PORT set by start_gateway, cleared by start_contender),
# sample_gateway_metrics to PREFIX.gateway-series.csv, both from now (T0 = now: call it right
# before the load starts, so t matches billing-loadgen's timeseries).
start_samplers() {
  local prefix="$1" t0
  t0="$(date +%s.%N)"
  sample_sim_stats "$prefix.sim-series.csv" "$t0" &
  BG_PIDS+=("$!")
  if [[ -n "${GW_METRICS_PORT:-}" ]]; then
    sample_gateway_metrics "$prefix.gateway-series.csv" "$t0" &
    BG_PIDS+=("$!")
  fi
}

# sim_window SIM_SERIES FROM TO ["A:B A:B ..."]: Kill Bill over FROM <= t < TO of a
# sample_sim_stats series, printed as
#   "POSTED_PER_S DISPATCHED_PER_S BACKLOG_SLOPE HEALTHY_S SECONDS POLLS"
# POSTED/DISPATCHED_PER_S: bus events posted / dispatched per second (the counters'
# difference between the samples nearest FROM and TO, over their time difference);
# BACKLOG_SLOPE: least-squares slope of bus_backlog_exact, entries/s; SECONDS: the whole
# seconds s (FROM <= s < TO, none inside an excluded [A, B)) covered by two consecutive
# samples at most 2 s apart (a gap, e.g. an outage closing /sim/, counts no second);
# HEALTHY_S: those in which healthcheck_unhealthy_total did not increase (the gateway polls
# every second, so each second has a verdict); POLLS: healthchecks answered in them.
# "-" for a figure the series cannot give (too few samples, or a sim without the counter).
sim_window() {
  awk -F, -v from="$2" -v to="$3" -v excl="${4:-}" '
    function excluded(s, j) {
      for (j = 1; j <= nx; j++) if (s >= xa[j] && s < xb[j]) return 1
      return 0
    }
    function num(v) { return v != "" && v != "null" }
    NR == 1 {
      for (i = 1; i <= NF; i++) c[$i] = i
      nx = split(excl, xs, " ")
      for (j = 1; j <= nx; j++) { split(xs[j], ab, ":"); xa[j] = ab[1]; xb[j] = ab[2] }
      next
    }
    {
      t = $1 + 0
      if (t >= from - 0.5 && t < to + 0.5 && num($c["bus_posted_total"])) {
        if (!have) { ta = t; pa = $c["bus_posted_total"]; da = $c["bus_dispatched_total"]; have = 1 }
        tb = t; pb = $c["bus_posted_total"]; db = $c["bus_dispatched_total"]
      }
      if (t >= from && t < to && num($c["bus_backlog_exact"])) {
        y = $c["bus_backlog_exact"]; n++; sx += t; sy += y; sxx += t * t; sxy += t * y
      }
      u = $c["healthcheck_unhealthy_total"]; calls = $c["healthcheck_calls"]
      if (prev != "" && num(u) && num(pu)) {
        w = int(t - prev + 0.5); s0 = int(prev + 0.5)
        if (w >= 1 && w <= 2)
          for (k = 0; k < w; k++) {
            s = s0 + k
            if (s < from || s >= to || excluded(s)) continue
            secs++; if (u == pu) ok++
            counted = 1
          }
        if (counted) polls += calls - pc
        counted = 0
      }
      prev = t; pu = u; pc = calls
    }
    END {
      posted = (have && tb > ta) ? sprintf("%.3f", (pb - pa) / (tb - ta)) : "-"
      disp = (have && tb > ta && num(da)) ? sprintf("%.3f", (db - da) / (tb - ta)) : "-"
      slope = (n > 1 && n * sxx - sx * sx != 0) ? sprintf("%.3f", (n * sxy - sx * sy) / (n * sxx - sx * sx)) : "-"
      printf "%s %s %s %d %d %d\n", posted, disp, slope, ok, secs, polls
    }' "$1"
}

# sim_rates SIM_SERIES: per interval between consecutive samples of a sample_sim_stats
# series "t,posted_per_s,dispatched_per_s,backlog,unhealthy" (t the interval's end;
# unhealthy 1 when healthcheck_unhealthy_total increased in it), for plots.
sim_rates() {
  awk -F, -v OFS=, '
    NR == 1 { for (i = 1; i <= NF; i++) c[$i] = i; print "t,posted_per_s,dispatched_per_s,backlog,unhealthy"; next }
    {
      t = $1; p = $c["bus_posted_total"]; d = $c["bus_dispatched_total"]; u = $c["healthcheck_unhealthy_total"]
      if (pt != "" && t > pt)
        print t, sprintf("%.2f", (p - pp) / (t - pt)), sprintf("%.2f", (d - pd) / (t - pt)),
          $c["bus_backlog"], (u > pu ? 1 : 0)
      pt = t; pp = p; pd = d; pu = u
    }' "$1"
}

# signal_mix GATEWAY_SERIES [FROM [TO]]: which rate signal the gateway followed, as the share
# of its per-second samples on each source, most used first ("metrics 100%",
# "healthcheck 93% metrics 7%"); "-" without samples.
signal_mix() {
  awk -F, -v from="${2:-0}" -v to="${3:-1e18}" '
    NR == 1 { for (i = 1; i <= NF; i++) c[$i] = i; next }
    $1 >= from && $1 < to && $c["signal"] != "" { n++; k[$c["signal"]]++ }
    END {
      if (!n) { print "-"; exit }
      out = ""
      while (1) {
        best = ""; for (s in k) if (best == "" || k[s] > k[best]) best = s
        if (best == "") break
        out = out (out == "" ? "" : " ") best " " sprintf("%.0f%%", 100 * k[best] / n); delete k[best]
      }
      print out
    }' "$1"
}

# ---------------------------------------------------------------------------------------
# One run of each scenario on a fresh contender, shared by the sN_*.sh scripts and compare.sh.
# scenario_defaults first (a script sets its --quick values before calling it).

# on_run_start PREFIX CONTENDER: called by s1_point, s2_run, s3_run and s4_run when the
# contender is up, right before the load starts (PREFIX: the run's files, DIR/RUN). A no-op
# here; a script redefines it after sourcing lib.sh, e.g. to start_samplers "$1".
on_run_start() { :; }

scenario_defaults() {
  : "${S1_POINTS:=25 50 100 500 1000}" "${S1_DURATION:=20}" "${S1_COUNT_CAP:=100000}"
  : "${S2_RATE:=30}" "${S2_PHASE:=60}" "${S2_LOW_DRAIN:=12}" "${S2_HIGH_DRAIN:=25}"
  : "${S2_MAX_OUTSTANDING:=1000}"
  : "${S3_RATE:=20}" "${S3_TOTAL:=80}" "${S3_AT:=20}" "${S3_OUTAGE:=20}" "${S3_MODE:=refuse}"
  : "${S4_SPIKE:=2000}"
}

# s1_point CONTENDER N DIR SUMMARY [RUN]: S1, closed loop of N clients for S1_DURATION s.
# Files DIR/RUN.* (default RUN: CONTENDER-cN; without RUN the sim's and gateway's own files
# are named after the contender, as s1_storm.sh always did). Returns 1 if the contender
# could not start.
s1_point() {
  local c="$1" n="$2" dir="$3" summary="$4" run="${5:-}"
  start_contender "$c" "$dir" ${run:+"$run"} || return 1
  on_run_start "$dir/${run:-$c-c$n}" "$c"
  run_loadgen "$summary" "$c" "$n" "$dir/${run:-$c-c$n}" \
    --concurrency "$n" --count "$S1_COUNT_CAP" --duration "${S1_DURATION}s"
  stop_all
}

# s2_run CONTENDER DIR SUMMARY [RUN]: S2, open loop at S2_RATE/s, bus drain high -> low ->
# high for S2_PHASE s each. Files DIR/RUN.* (default: the contender's name).
s2_run() {
  local c="$1" dir="$2" summary="$3" run="${4:-$1}"
  start_contender "$c" "$dir" "$run" || return 1
  sim_post /sim/config "{\"bus_drain\": $S2_HIGH_DRAIN}"
  on_run_start "$dir/$run" "$c"
  start_loadgen "$dir/$run" --label "$c" --rate "$S2_RATE" --duration "$((3 * S2_PHASE))s" \
    --max-outstanding "$S2_MAX_OUTSTANDING"
  sleep "$S2_PHASE"
  log "$run: bus_drain -> $S2_LOW_DRAIN"
  sim_post /sim/config "{\"bus_drain\": $S2_LOW_DRAIN}"
  sleep "$S2_PHASE"
  log "$run: bus_drain -> $S2_HIGH_DRAIN"
  sim_post /sim/config "{\"bus_drain\": $S2_HIGH_DRAIN}"
  finish_loadgen "$summary" "$c" "${S2_RATE}/s" "$dir/$run"
  stop_all
}

# s3_run CONTENDER DIR SUMMARY [RUN]: S3, open loop at S3_RATE/s for S3_TOTAL s with a
# S3_MODE outage of S3_OUTAGE s at S3_AT s.
s3_run() {
  local c="$1" dir="$2" summary="$3" run="${4:-$1}"
  start_contender "$c" "$dir" "$run" || return 1
  on_run_start "$dir/$run" "$c"
  start_loadgen "$dir/$run" --label "$c" --rate "$S3_RATE" --duration "${S3_TOTAL}s"
  sleep "$S3_AT"
  log "$run: outage ($S3_MODE) for ${S3_OUTAGE}s"
  sim_post /sim/faults "{\"outage\": \"$S3_MODE\", \"outage_seconds\": $S3_OUTAGE}"
  finish_loadgen "$summary" "$c" "${S3_RATE}/s" "$dir/$run"
  stop_all
}

# s4_run CONTENDER DIR SUMMARY [RUN]: S4, S4_SPIKE registrations due at t=0. The peak
# resident memory of the front process(es) (not the loadgen, not the sim), sampled every
# 0.5 s, is appended to DIR/peak_rss.txt as "RUN peak_rss_kib KIB".
s4_run() {
  local c="$1" dir="$2" summary="$3" run="${4:-$1}" peak=0 rss pid
  start_contender "$c" "$dir" "$run" || return 1
  on_run_start "$dir/$run" "$c"
  start_loadgen "$dir/$run" --label "$c" --spike "$S4_SPIKE" --max-outstanding "$S4_SPIKE"
  while kill -0 "$LOADGEN_PID" 2>/dev/null; do
    for pid in "${BG_PIDS[@]}"; do
      [[ "$pid" == "$LOADGEN_PID" || "$pid" == "$SIM_PID" ]] && continue
      rss="$(awk '/VmRSS/ { print $2 }' "/proc/$pid/status" 2>/dev/null)"
      [[ -n "$rss" ]] && ((rss > peak)) && peak=$rss
    done
    sleep 0.5
  done
  echo "$run peak_rss_kib $peak" >>"$dir/peak_rss.txt"
  finish_loadgen "$summary" "$c" "spike$S4_SPIKE" "$dir/$run"
  stop_all
}

# side_by_side OLD_CSV NEW_CSV SPEC...: a markdown table joining two CSVs (header row, key
# columns "contender" and "point") row by row, for each SPEC "column|label|printf format"
# or "column|label|format|guard column" the OLD and the NEW value side by side ("-" where a
# file has no such row or value, or the guard column is 0).
# Rows in order of first appearance, OLD's first. A missing file counts as empty.
side_by_side() {
  local old="$1" new="$2"
  shift 2
  [[ -s "$old" ]] || old=/dev/null
  [[ -s "$new" ]] || new=/dev/null
  awk -F, -v specs="$(printf '%s\n' "$@")" '
    BEGIN {
      ns = split(specs, sp, "\n")
      for (i = 1; i <= ns; i++) {
        split(sp[i], f, "|"); colname[i] = f[1]; label[i] = f[2]; fmt[i] = f[3]; guard[i] = f[4]
      }
    }
    { file = (FILENAME == ARGV[1]) ? 1 : 2 }
    FNR == 1 { delete idx; for (i = 1; i <= NF; i++) idx[$i] = i; next }
    {
      key = $idx["contender"] SUBSEP $idx["point"]
      if (!(key in seen)) { seen[key] = 1; order[++nk] = key }
      for (i = 1; i <= ns; i++)
        if ((colname[i] in idx) && $idx[colname[i]] != "" &&
            !(guard[i] != "" && (guard[i] in idx) && $idx[guard[i]] + 0 == 0))
          val[file, key, i] = $idx[colname[i]]
    }
    function cell(f, k, i) {
      if (!((f, k, i) in val)) return "-"
      v = val[f, k, i]
      return (v ~ /^-?[0-9.]+(e[-+]?[0-9]+)?$/) ? sprintf(fmt[i], v) : v
    }
    END {
      h = "| contender | point |"; r = "|---|---|"
      for (i = 1; i <= ns; i++) { h = h " " label[i] " old | new |"; r = r "---|---|" }
      print h; print r
      for (j = 1; j <= nk; j++) {
        split(order[j], kk, SUBSEP); line = "| " kk[1] " | " kk[2] " |"
        for (i = 1; i <= ns; i++) line = line " " cell(1, order[j], i) " | " cell(2, order[j], i) " |"
        print line
      }
    }' "$old" "$new"
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
  # One concurrency level gives single points on a log axis (gnuplot: "empty x range"):
  # the table says it all then.
  if (($(awk -F, 'NR > 1 { seen[$2] = 1 } END { print length(seen) }' "$summary") < 2)); then
    log "one concurrency level: no goodput/success vs concurrency plot"
    return 0
  fi
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

# plot_rate_signals PNG TITLE DIR "T1 T2 .." "D0 D1 D2 .." XMAX CONTENDER...: one panel per
# CONTENDER (from DIR/<c>.gateway-series.csv and DIR/<c>.sim-rates.csv; one without them is
# left out): the gateway's rate, the sim's real drain (dispatched/s), its posted/s and the
# bus drain setting (D0 until T1, D1 until T2, ...) in events/s on the left axis, the sim's
# bus backlog on the right; under each panel a strip with the signal source as a step line
# (1 metrics, 0 healthcheck) and the seconds the sim's healthcheck answered unhealthy.
plot_rate_signals() {
  local png="$1" title="$2" dir="$3" times="$4" drains="$5" xmax="$6" c cs=() i n
  shift 6
  command -v gnuplot >/dev/null || { log "gnuplot missing: no $png"; return 0; }
  for c in "$@"; do
    [[ -s "$dir/$c.gateway-series.csv" && -s "$dir/$c.sim-rates.csv" ]] && cs+=("$c")
  done
  n=${#cs[@]}
  ((n > 0)) || { log "no series for $png"; return 0; }
  {
    cat <<EOF
set terminal pngcairo size 1300,$((420 * n + 60)) noenhanced
set output '$png'
set datafile separator ','
set datafile missing ''
set multiplot title '$title'
set grid
set lmargin at screen 0.10
set rmargin at screen 0.72
set xrange [0:$xmax]
set key outside right top
set samples 2000
EOF
    for ((i = 0; i < n; i++)); do
      c="${cs[$i]}"
      awk -v i="$i" -v n="$n" -v c="$c" -v dir="$dir" -v times="$times" -v drains="$drains" 'BEGIN {
        nt = split(times, T, " "); split(drains, D, " ")
        setting = D[nt + 1]
        for (j = nt; j >= 1; j--) setting = sprintf("($1 < %s ? %s : %s)", T[j], D[j], setting)
        top = 0.95; h = top / n; base = top - (i + 1) * h
        printf "set origin 0,%.4f\nset size 1,%.4f\n", base + 0.24 * h, 0.76 * h
        printf "set tmargin 1.5\nset bmargin 0\nset format x \"\"\nunset xlabel\n"
        printf "set title \"%s\" offset 0,-0.5\n", c
        printf "set ylabel \"events/s\"\nset yrange [0:*]\nset y2label \"bus backlog (entries)\"\nset y2tics\nset y2range [0:*]\n"
        printf "plot \"%s/%s.gateway-series.csv\" using 1:2 every ::1 with lines lw 2 lc rgb \"#1f77b4\" title \"gateway rate\", \\\n", dir, c
        printf "  \"%s/%s.sim-rates.csv\" using 1:3 every ::1 with lines lw 1 lc rgb \"#2ca02c\" title \"sim drain (dispatched/s)\", \\\n", dir, c
        printf "  \"%s/%s.sim-rates.csv\" using 1:2 every ::1 with lines lw 1 dt 3 lc rgb \"#7f7f7f\" title \"sim posted/s\", \\\n", dir, c
        printf "  \"+\" using 1:%s with lines dt 2 lc rgb \"black\" title \"drain setting\", \\\n", setting
        printf "  \"%s/%s.sim-rates.csv\" using 1:4 every ::1 axes x1y2 with lines lw 2 lc rgb \"#d62728\" title \"sim bus backlog\"\n", dir, c
        printf "set origin 0,%.4f\nset size 1,%.4f\n", base, 0.24 * h
        printf "unset title\nset tmargin 0\nset bmargin 2.5\nset format x \"%%g\"\nset xlabel \"time (s)\" offset 0,0.5\n"
        printf "set ylabel \"signal\"\nset yrange [-0.3:1.3]\nset ytics (\"healthcheck\" 0, \"metrics\" 1)\nunset y2tics\nunset y2label\n"
        printf "plot \"%s/%s.gateway-series.csv\" using 1:4 every ::1 with steps lw 2 lc rgb \"#9467bd\" title \"rate signal\", \\\n", dir, c
        printf "  \"%s/%s.sim-rates.csv\" using 1:($5 > 0 ? -0.15 : NaN) every ::1 with points pt 7 ps 0.4 lc rgb \"#d62728\" title \"healthcheck unhealthy\"\n", dir, c
        printf "set ytics autofreq\n"
      }'
    done
    echo "unset multiplot"
  } >"${png%.png}.gp"
  gnuplot "${png%.png}.gp" || log "warning: gnuplot failed on ${png%.png}.gp"
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

# ---------------------------------------------------------------------------------------
# Healthcheck polling for contenders that do not poll Kill Bill themselves (s5_mixed.sh).

# poll_healthcheck T0: GET $SIM_URL/1.0/healthcheck once a second, on whole seconds after T0,
# until stopped, as an operator's monitoring would (each poll is one sample of the sim's
# growth window and one healthy/unhealthy verdict in healthcheck_unhealthy_total).
poll_healthcheck() {
  local t0="$1" k=0 wait
  while :; do
    curl -s -o /dev/null -m 2 "$SIM_URL/1.0/healthcheck" 2>/dev/null
    read -r k wait <<<"$(next_tick "$t0" "$k")"
    sleep "$wait"
  done
}

# start_health_monitor: poll_healthcheck in the background (added to BG_PIDS) unless the
# contender is a gateway (GW_METRICS_PORT set by start_gateway): the gateway's health monitor
# already polls every second (health.poll_interval 1s). Every contender's sim then gets one
# healthcheck per second, so sim_window's healthy share means the same thing for all of them.
start_health_monitor() {
  [[ -n "${GW_METRICS_PORT:-}" ]] && return 0
  poll_healthcheck "$(date +%s.%N)" &
  BG_PIDS+=("$!")
}

# fmt_healthy_share HEALTHY_S SECONDS POLLS: "98.3 % (118 of 120 s)", "-" without polls (as
# signals.sh prints it).
fmt_healthy_share() {
  awk -v h="$1" -v n="$2" -v p="$3" 'BEGIN {
    if (n > 0 && p > 0) printf "%.1f %% (%d of %d s)\n", 100 * h / n, h, n; else print "-" }'
}

# ok_rate_column TIMESERIES COLUMN FROM_S TO_S: COLUMN (e.g. ok_overview) per second over
# FROM_S <= t < TO_S of a billing-loadgen time series; "-" when the column is missing.
ok_rate_column() {
  awk -F, -v col="$2" -v from="$3" -v to="$4" '
    NR == 1 { for (i = 1; i <= NF; i++) if ($i == col) c = i; next }
    c && $1 >= from && $1 < to { n += $c }
    END { if (!c || to <= from) print "-"; else printf "%.2f\n", n / (to - from) }' "$1"
}
