#!/usr/bin/env bash
# Gateway overhead: what billing-gateway itself costs, with Kill Bill out of the way
# (killbill-sim at capacity 1e6, no base latency, no degradation).
#   1. Added latency: closed loop, 1 client, CreateAccount without tags (one Kill Bill call),
#      direct HTTP to the sim vs gRPC through the gateway; p50/p99 of each and the difference.
#   2. Most CreateAccount/s through the gateway (static rate far above, 64 in flight).
#   3. Memory held with 10,000 queued requests (Kill Bill stalled, 10,000 calls at once).
#
#   bench/scenarios/overhead.sh
# Environment: OVERHEAD_LATENCY_COUNT (3000), OVERHEAD_MAX_CONCURRENCY (128),
# OVERHEAD_MAX_SECONDS (20), plus lib.sh's (BUILD, SIM_BIN, GATEWAY_BIN, LOADGEN_BIN).
# Output: $RESULTS/overhead/{*.csv,*.log,gateway.yaml}; a markdown table on stdout.
set -u
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
require_tools
OUT="$(fresh_results overhead)"
COUNT="${OVERHEAD_LATENCY_COUNT:-3000}"
MAXC="${OVERHEAD_MAX_CONCURRENCY:-128}"
MAXS="${OVERHEAD_MAX_SECONDS:-20}"
SIM_ARGS="--capacity 1000000 --base_latency_ms 0 --degrade=false"

# start_gw QUEUE_CAPACITY: a gateway with a static rate far above anything measured.
start_gw() {
  GW_PORT="$(free_port)"
  GW_METRICS="$(free_port)"
  cat >"$OUT/gateway.yaml" <<YAML
server: {listen: "127.0.0.1:$GW_PORT", default_deadline: 60s}
metrics: {listen: "127.0.0.1:$GW_METRICS"}
killbill: {url: "http://127.0.0.1:$SIM_PORT", max_connections: 64}
rate: {mode: static, initial: 100000, min: 100000, max: 100000, burst: 1000}
concurrency: {max_in_flight: 64}
queue: {capacity: $1}
YAML
  "$GATEWAY_BIN" --config "$OUT/gateway.yaml" >"$OUT/gateway.log" 2>&1 &
  GW_PID=$!
  BG_PIDS+=("$GW_PID")
  wait_port "$GW_PORT" "$GW_PID" 15 || die "gateway did not start (see $OUT/gateway.log)"
}

# p50/p99 (ms) of ok calls from a billing-loadgen CSV row.
col() { awk -F, -v name="$2" 'NR == 1 { for (i = 1; i <= NF; i++) if ($i == name) c = i } NR == 2 { print $c }' "$1"; }

TAGS=0
DEADLINE_S=30
log "1/3 added latency: $COUNT sequential creations, direct vs through the gateway"
start_sim "$OUT/sim-latency.log"
TARGET="$SIM_URL"
run_loadgen "$OUT/summary.csv" direct 1 "$OUT/latency-direct" --concurrency 1 --count "$COUNT" \
  --key-prefix direct
start_gw 10000
TARGET="grpc://127.0.0.1:$GW_PORT"
run_loadgen "$OUT/summary.csv" gateway 1 "$OUT/latency-gateway" --concurrency 1 --count "$COUNT" \
  --key-prefix gw --channels 1
stop_all

log "2/3 most CreateAccount/s through the gateway ($MAXC clients, ${MAXS}s)"
start_sim "$OUT/sim-max.log"
start_gw 10000
TARGET="grpc://127.0.0.1:$GW_PORT"
run_loadgen "$OUT/summary.csv" gateway-max "$MAXC" "$OUT/max-gateway" --concurrency "$MAXC" \
  --count 1000000 --duration "${MAXS}s"
gw_cpu="$(ps -o cputime= -p "$GW_PID" | tr -d ' ')"
stop_all

log "3/3 memory with 10,000 queued requests (Kill Bill stalled)"
start_sim "$OUT/sim-mem.log"
start_gw 20000
rss_idle="$(awk '/VmRSS/ { print $2 }' "/proc/$GW_PID/status")"
sim_post /sim/faults '{"stall_seconds": 60}'
TARGET="grpc://127.0.0.1:$GW_PORT"
DEADLINE_S=50
start_loadgen "$OUT/mem-gateway" --label memory --spike 10000 --max-outstanding 10000
peak_depth=0
rss_peak=0
for _ in $(seq 60); do
  depth="$(curl -s "http://127.0.0.1:$GW_METRICS/metrics" | awk '/^billing_gateway_queue_depth / { print int($2) }')"
  rss="$(awk '/VmRSS/ { print $2 }' "/proc/$GW_PID/status")"
  ((depth > peak_depth)) && peak_depth=$depth
  ((rss > rss_peak)) && rss_peak=$rss
  ((depth >= 9900)) && break
  sleep 0.5
done
rss_queued="$(awk '/VmRSS/ { print $2 }' "/proc/$GW_PID/status")"
sim_post /sim/faults '{"clear": true}'
finish_loadgen "$OUT/summary.csv" memory 10000 "$OUT/mem-gateway"
stop_all

d50="$(col "$OUT/latency-direct.csv" p50_ms)"; d99="$(col "$OUT/latency-direct.csv" p99_ms)"
g50="$(col "$OUT/latency-gateway.csv" p50_ms)"; g99="$(col "$OUT/latency-gateway.csv" p99_ms)"
echo
echo "### Gateway overhead (killbill-sim at capacity 1e6, no latency; tags off: 1 Kill Bill call per create)"
echo
echo "| measure | direct HTTP | through gateway | gateway adds |"
echo "|---|---|---|---|"
awk -v d="$d50" -v g="$g50" 'BEGIN { printf "| p50 latency, 1 client (ms) | %.3f | %.3f | %.3f |\n", d, g, g - d }'
awk -v d="$d99" -v g="$g99" 'BEGIN { printf "| p99 latency, 1 client (ms) | %.3f | %.3f | %.3f |\n", d, g, g - d }'
echo "| CreateAccount/s, $MAXC clients, ${MAXS}s | | $(col "$OUT/max-gateway.csv" goodput_per_s) | (gateway CPU time $gw_cpu) |"
echo "| resident memory, idle → with $peak_depth queued (MiB) | | $((rss_idle / 1024)) → $((rss_queued / 1024)) (peak $((rss_peak / 1024))) | |"
