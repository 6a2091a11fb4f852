#!/usr/bin/env bash
# Installs the Debian packages billing-gateway needs to build, test and benchmark.
# Idempotent: installs only what is missing, and runs `apt-get update` at most once.
set -euo pipefail

PACKAGES=(
  # build
  cmake ninja-build ccache g++ pkg-config
  libgrpc++-dev protobuf-compiler-grpc libprotobuf-dev protobuf-compiler grpc-proto
  libabsl-dev libcpp-httplib-dev prometheus-cpp-dev libyaml-cpp-dev libpq-dev
  libgtest-dev libgmock-dev libbenchmark-dev nlohmann-json3-dev libssl-dev libspdlog-dev
  # tests, benchmarks and the demo
  postgresql curl gnuplot-nox nginx haproxy
  # the Python client's stubs and tests (clients/python, tests/python.cmake)
  python3-grpcio python3-grpc-tools python3-pytest
  # prometheus and promtool: the rules' unit tests and the round trip (tests/ops.cmake),
  # which start their own Prometheus on a free loopback port (where systemd runs, the
  # package also enables Debian's own prometheus service on port 9090; CI has no init)
  prometheus
  # sanitizer and libFuzzer builds (scripts/sanitize.sh, scripts/fuzz.sh); llvm brings
  # llvm-symbolizer for readable sanitizer stacks
  clang libclang-rt-14-dev llvm
)

missing=()
for p in "${PACKAGES[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

# Node.js and npm run Kill Bill's official JavaScript client against killbill-sim
# (tests/npm_client); a machine that already has them (e.g. from NodeSource) keeps its own.
command -v node >/dev/null || missing+=(nodejs)
command -v npm >/dev/null || missing+=(npm)

if ((${#missing[@]})); then
  echo "setup: installing ${missing[*]}"
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
