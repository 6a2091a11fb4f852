#!/usr/bin/env bash
# The main command: installs what is missing, builds, then starts killbill-sim and
# billing-gateway on loopback, creates a few accounts and subscriptions over gRPC, prints
# them and the gateway's metrics page, stops everything, then runs the storm that shows what
# the gateway is for (direct to Kill Bill vs through the gateway; about 3 minutes in all).
#   scripts/demo.sh
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=$root/build
"$root/scripts/setup.sh"
"$root/scripts/build.sh" "$build"

work=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT

# Reads "… on …:PORT" / "… on port PORT" from a process's stdout file, waiting up to 20 s.
port_of() {
  local file=$1 pattern=$2
  for _ in $(seq 200); do
    local p; p=$(grep -oE "$pattern" "$file" | grep -oE '[0-9]+$' | head -n1 || true)
    [ -n "$p" ] && { echo "$p"; return; }
    sleep 0.1
  done
  echo "demo: timed out waiting for '$pattern' in $file" >&2; exit 1
}

"$build/bench/killbill_sim/killbill-sim" --listen 127.0.0.1:0 >"$work/sim.out" 2>"$work/sim.err" &
pids+=($!)
sim_port=$(port_of "$work/sim.out" 'listening on 127\.0\.0\.1:[0-9]+')

cat >"$work/gateway.yaml" <<YAML
server:
  listen: 127.0.0.1:0
metrics:
  listen: 127.0.0.1:0
killbill:
  url: http://127.0.0.1:$sim_port
YAML
"$build/gateway/billing-gateway" --config "$work/gateway.yaml" >"$work/gw.out" 2>"$work/gw.err" &
pids+=($!)
grpc_port=$(port_of "$work/gw.out" 'grpc listening on port [0-9]+')
metrics_port=$(port_of "$work/gw.out" 'metrics listening on port [0-9]+')
echo "killbill-sim on 127.0.0.1:$sim_port, billing-gateway gRPC on 127.0.0.1:$grpc_port," \
     "metrics on http://127.0.0.1:$metrics_port/metrics"

client="$build/bench/client/billing-client --target 127.0.0.1:$grpc_port"
echo; echo "== CreateAccount x3, then the first again (idempotent on external_key)"
for i in 1 2 3; do $client create "demo-customer-$i" "Demo Customer $i" "demo$i@example.com"; done
$client create demo-customer-1 "Demo Customer 1" demo1@example.com
echo; echo "== GetAccount"
for i in 1 2 3; do $client get "demo-customer-$i"; done
echo; echo "== CreateSubscription (14-day trial; idempotent on the instance id), then the billing overview"
$client subscribe demo-customer-1 basic-monthly demo-instance-1
$client subscribe demo-customer-1 basic-monthly demo-instance-1
$client subscribe demo-customer-2 standard-monthly demo-instance-2
$client overview demo-customer-2
echo; echo "== Kill Bill stand-in's view (/sim/stats)"
curl -s "http://127.0.0.1:$sim_port/sim/stats"; echo
echo; echo "== Gateway metrics (billing_gateway_*, non-zero series)"
curl -s "http://127.0.0.1:$metrics_port/metrics" | grep -E '^billing_gateway_' | grep -vE '_bucket\{| 0$'
cleanup
trap - EXIT

# The story: a registration storm direct to Kill Bill vs through the gateway, told in the
# terminal (bench/scenarios/demo_storm.sh: a timeline, the table, a verdict computed from the
# runs, and the path of one picture); about 2.5 minutes. Results go to bench/results/demo/;
# the full scenarios (nginx and HAProxy too, S1-S5) are in bench/RESULTS.md.
echo; echo "== The storm: direct to Kill Bill vs billing-gateway (about 2.5 minutes)"
export SIM_BIN="$build/bench/killbill_sim/killbill-sim" GATEWAY_BIN="$build/gateway/billing-gateway" \
       LOADGEN_BIN="$build/bench/loadgen/billing-loadgen" RESULTS="$root/bench/results"
"$root/bench/scenarios/demo_storm.sh"
