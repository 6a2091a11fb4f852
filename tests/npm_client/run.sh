#!/usr/bin/env bash
# ctest sim_npm_client_test: Kill Bill's official JavaScript client (npm `killbill`,
# pinned by package-lock.json) against the killbill-sim binary on a free loopback port.
#   run.sh BUILD_DIR KILLBILL_SIM_BINARY
# Copies package.json, package-lock.json and subscriptions.mjs into BUILD_DIR/npm_client and
# runs `npm ci` there when its node_modules is missing or older than the lock file (the
# source tree gets no node_modules). Builds the killbill-sim target first if the binary is
# missing (a build that made only some test targets). Fails, never skips, without node/npm.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
build=${1:?usage: run.sh BUILD_DIR KILLBILL_SIM_BINARY}
sim=${2:?usage: run.sh BUILD_DIR KILLBILL_SIM_BINARY}
work=$build/npm_client

fail() { echo "sim_npm_client_test: FAILED: $*" >&2; exit 1; }

command -v node >/dev/null || fail "node is not installed (Debian package nodejs); this test needs it"
command -v npm >/dev/null || fail "npm is not installed (Debian package npm); this test needs it"

mkdir -p "$work"
for f in package.json package-lock.json subscriptions.mjs; do
  cp -p "$here/$f" "$work/$f"  # keeps the dates the npm ci check compares
done
if [ ! -f "$work/node_modules/.package-lock.json" ] ||
   [ "$work/package-lock.json" -nt "$work/node_modules/.package-lock.json" ]; then
  echo "sim_npm_client_test: npm ci in $work"
  npm ci --prefix "$work" --no-audit --no-fund --loglevel=error ||
    fail "npm ci could not install the pinned killbill client (is the npm registry reachable?)"
fi

if [ ! -x "$sim" ]; then
  echo "sim_npm_client_test: building killbill-sim"
  cmake --build "$build" --target killbill-sim >/dev/null || fail "cannot build killbill-sim"
fi

# The sim prints "listening on HOST:PORT" once bound; read it from its stdout.
exec {sim_out}< <(exec "$sim" --listen 127.0.0.1:0 2>&1)
sim_pid=$!
trap 'kill "$sim_pid" 2>/dev/null || true' EXIT
line=""
read -r -t 30 -u "$sim_out" line || fail "killbill-sim did not start: '$line'"
case "$line" in
  "listening on "*) address=${line#listening on } ;;
  *) fail "unexpected first line from killbill-sim: '$line'" ;;
esac

node "$work/subscriptions.mjs" "http://$address"
