#!/usr/bin/env python3
"""Generates the Python gRPC stubs of proto/billing/v1/billing_gateway.proto into OUT_DIR
(OUT_DIR/billing/v1/billing_gateway_pb2.py and _pb2_grpc.py) with grpc_tools (Debian:
python3-grpc-tools), so `from billing.v1 import billing_gateway_pb2` works with OUT_DIR on
sys.path.

    python3 clients/python/generate_stubs.py build/clients/python/gen

The stubs are generated, never committed: the proto is their only source, so they cannot go
stale. The test suite regenerates them before every run (tests/python.cmake).
"""

import pathlib
import sys

from grpc_tools import protoc

PROTO_ROOT = pathlib.Path(__file__).resolve().parent.parent.parent / "proto"
PROTOS = ["billing/v1/billing_gateway.proto"]


def main(argv):
    if len(argv) != 2:
        print(f"usage: {argv[0]} OUT_DIR", file=sys.stderr)
        return 2
    out = pathlib.Path(argv[1])
    out.mkdir(parents=True, exist_ok=True)
    status = protoc.main(["grpc_tools.protoc", f"-I{PROTO_ROOT}", f"--python_out={out}",
                          f"--grpc_python_out={out}"] + [str(PROTO_ROOT / p) for p in PROTOS])
    if status != 0:
        print(f"generate_stubs: protoc failed ({status}) on {PROTOS} in {PROTO_ROOT}",
              file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
