#!/usr/bin/env bash
# Gateway overhead: what billing-gateway itself costs, with Kill Bill out of the way
# (killbill-sim at capacity 1e6, no base latency, no degradation).
#   1. Added latency: closed loop, 1 client, CreateAccount without tags (one Kill Bill call),
#      direct HTTP to the sim vs gRPC through the gateway; p50/p99 of each and the difference.
#   2. Most CreateAccount/s through the gateway (static rate far above, 64 in flight).
#   3. Memory held with 10,000 queued requests (Kill Bill stalled, 10,000 calls at once): RSS
#      idle, sampled every 0.5 s (mem-samples.csv) and the kernel's peak (VmHWM), the most
#      queued, the refusals with reason memory (with OVERHEAD_MAX_RESIDENT_MB, the guard
#      queue.max_resident_mb) and RSS once every call has been answered.
#
#   bench/scenarios/overhead.sh
#   OVERHEAD_PHASES=3 OVERHEAD_MAX_RESIDENT_MB=96 bench/scenarios/overhead.sh   # phase 3 alone,
#                                                  with the memory guard (queue.max_resident_mb)
# Environment: OVERHEAD_PHASES ("1 2 3"), OVERHEAD_LATENCY_COUNT (3000),
# OVERHEAD_MAX_CONCURRENCY (128), OVERHEAD_MAX_SECONDS (20), OVERHEAD_MAX_RESIDENT_MB (0: the
# guard off) for phase 3, plus lib.sh's (BUILD, SIM_BIN, GATEWAY_BIN, LOADGEN_BIN).
# Output: $RESULTS/overhead/{*.csv,*.log,gateway.yaml}; a markdown table on stdout.
set -u
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
require_tools
OUT="$(fresh_results overhead)"
COUNT="${OVERHEAD_LATENCY_COUNT:-3000}"
MAXC="${OVERHEAD_MAX_CONCURRENCY:-128}"
MAXS="${OVERHEAD_MAX_SECONDS:-20}"
PHASES="${OVERHEAD_PHASES:-1 2 3}"
MAX_RESIDENT_MB="${OVERHEAD_MAX_RESIDENT_MB:-0}"
phase() { [[ " $PHASES " == *" $1 "* ]]; }
SIM_ARGS="--capacity 1000000 --base_latency_ms 0 --degrade=false"

# start_gw QUEUE_CAPACITY [MAX_RESIDENT_MB]: a gateway with a static rate far above anything
# measured.
start_gw() {
  GW_PORT="$(free_port)"
  GW_METRICS="$(free_port)"
  cat >"$OUT/gateway.yaml" <<YAML
server: {listen: "127.0.0.1:$GW_PORT", default_deadline: 60s}
metrics: {listen: "127.0.0.1:$GW_METRICS"}
killbill: {url: "http://127.0.0.1:$SIM_PORT", max_connections: 64}
rate: {mode: static, initial: 100000, min: 100000, max: 100000, burst: 1000}
concurrency: {max_in_flight: 64}
queue: {capacity: $1$( ((${2:-0} > 0)) && echo ", max_resident_mb: $2")}
YAML
  "$GATEWAY_BIN" --config "$OUT/gateway.yaml" >"$OUT/gateway.log" 2>&1 &
  GW_PID=$!
  BG_PIDS+=("$GW_PID")
  wait_port "$GW_PORT" "$GW_PID" 15 || die "gateway did not start (see $OUT/gateway.log)"
}

# p50/p99 (ms) of ok calls from a billing-loadgen CSV row.
col() { awk -F, -v name="$2" 'NR == 1 { for (i = 1; i <= NF; i++) if ($i == name) c = i } NR == 2 { print $c }' "$1"; }

# metric NAME_AND_LABELS: its value on the gateway's metrics page (0 when absent).
metric() {
  curl -s "http://127.0.0.1:$GW_METRICS/metrics" |
    awk -v m="$1" '$1 == m { v = $2 } END { printf "%d\n", v + 0 }'
}
rss_kib() { awk '/VmRSS/ { print $2 }' "/proc/$GW_PID/status"; }

TAGS=0
DEADLINE_S=30
d50=0 d99=0 g50=0 g99=0 gw_cpu="-" peak_depth=0 rss_idle=0 rss_queued=0 rss_peak=0 rss_hwm=0 rss_after=0 refused_memory=0
if phase 1; then
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
d50="$(col "$OUT/latency-direct.csv" p50_ms)"; d99="$(col "$OUT/latency-direct.csv" p99_ms)"
g50="$(col "$OUT/latency-gateway.csv" p50_ms)"; g99="$(col "$OUT/latency-gateway.csv" p99_ms)"
fi

if phase 2; then
log "2/3 most CreateAccount/s through the gateway ($MAXC clients, ${MAXS}s)"
start_sim "$OUT/sim-max.log"
start_gw 10000
TARGET="grpc://127.0.0.1:$GW_PORT"
run_loadgen "$OUT/summary.csv" gateway-max "$MAXC" "$OUT/max-gateway" --concurrency "$MAXC" \
  --count 1000000 --duration "${MAXS}s"
gw_cpu="$(ps -o cputime= -p "$GW_PID" | tr -d ' ')"
stop_all
fi

if phase 3; then
log "3/3 memory with 10,000 queued requests (Kill Bill stalled; memory guard ${MAX_RESIDENT_MB} MiB, 0 = off)"
start_sim "$OUT/sim-mem.log"
start_gw 20000 "$MAX_RESIDENT_MB"
rss_idle="$(rss_kib)"
sim_post /sim/faults '{"stall_seconds": 60}'
TARGET="grpc://127.0.0.1:$GW_PORT"
DEADLINE_S=50
start_loadgen "$OUT/mem-gateway" --label memory --spike 10000 --max-outstanding 10000
# Sampled every 0.5 s for 30 s (or until 9,900 are queued), RSS as seen by the kernel.
echo "seconds,queue_depth,rss_kib,refused_memory" >"$OUT/mem-samples.csv"
for i in $(seq 60); do
  depth="$(metric billing_gateway_queue_depth)"
  rss="$(rss_kib)"
  refused_memory="$(metric 'billing_gateway_rejections_total{reason="memory"}')"
  echo "$(awk -v i="$i" 'BEGIN { printf "%.1f", i / 2 }'),$depth,$rss,$refused_memory" >>"$OUT/mem-samples.csv"
  ((depth > peak_depth)) && peak_depth=$depth
  ((rss > rss_peak)) && rss_peak=$rss
  ((depth >= 9900)) && break
  sleep 0.5
done
rss_queued="$(rss_kib)"
# The gateway's own peak (VmHWM): also covers the moments between two samples.
rss_hwm="$(awk '/VmHWM/ { print $2 }' "/proc/$GW_PID/status")"
sim_post /sim/faults '{"clear": true}'
finish_loadgen "$OUT/summary.csv" memory 10000 "$OUT/mem-gateway"
refused_memory="$(metric 'billing_gateway_rejections_total{reason="memory"}')"
rss_after="$(rss_kib)"
log "phase 3: idle ${rss_idle} KiB, peak sampled ${rss_peak} KiB, VmHWM ${rss_hwm} KiB, most queued ${peak_depth}, refused (memory) ${refused_memory}, after the run ${rss_after} KiB"
stop_all
fi

echo
echo "### Gateway overhead (killbill-sim at capacity 1e6, no latency; tags off: 1 Kill Bill call per create)"
echo
echo "| measure | direct HTTP | through gateway | gateway adds |"
echo "|---|---|---|---|"
if phase 1; then
  awk -v d="$d50" -v g="$g50" 'BEGIN { printf "| p50 latency, 1 client (ms) | %.3f | %.3f | %.3f |\n", d, g, g - d }'
  awk -v d="$d99" -v g="$g99" 'BEGIN { printf "| p99 latency, 1 client (ms) | %.3f | %.3f | %.3f |\n", d, g, g - d }'
fi
if phase 2; then
  echo "| CreateAccount/s, $MAXC clients, ${MAXS}s | | $(col "$OUT/max-gateway.csv" goodput_per_s) | (gateway CPU time $gw_cpu) |"
fi
if phase 3; then
  echo "| resident memory, idle → with $peak_depth queued (MiB; guard $MAX_RESIDENT_MB MiB, 0 = off) | | $((rss_idle / 1024)) → $((rss_queued / 1024)) (peak sampled $((rss_peak / 1024)), VmHWM $((rss_hwm / 1024)), after the run $((rss_after / 1024)); refused for memory: $refused_memory) | |"
fi
