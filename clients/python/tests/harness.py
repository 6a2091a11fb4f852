"""killbill-sim and billing-gateway as real processes for the Python client's tests: started
on free loopback ports (port 0, read back from their logs, as tests/gateway_process.h does),
stopped (SIGTERM, then SIGKILL) when the `with` block ends. Waits are bounded reads of the
processes' output, never sleeps.

The binaries come from the environment (set by tests/python.cmake): BG_SIM_BINARY and
BG_GATEWAY_BINARY.
"""

from __future__ import annotations

import json
import os
import queue
import re
import subprocess
import tempfile
import threading
import time
import urllib.request
from typing import List, Optional


class Process:
    """A child process whose merged stdout/stderr is read line by line by a thread."""

    def __init__(self, argv: List[str], name: str) -> None:
        self.name = name
        self.argv = argv
        self._lines: "queue.Queue[Optional[str]]" = queue.Queue()
        self.output: List[str] = []
        self._proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                      stdin=subprocess.DEVNULL, text=True, errors="replace")
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        for line in self._proc.stdout:
            self._lines.put(line)
        self._lines.put(None)

    def wait_for(self, pattern: str, timeout: float) -> re.Match:
        """The first line (from now on) matching `pattern`; raises if none within `timeout`
        seconds or the process exits first."""
        regex = re.compile(pattern)
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            try:
                line = self._lines.get(timeout=max(left, 0)) if left > 0 else None
            except queue.Empty:
                line = None
            if line is None:
                raise RuntimeError(f"{self.name}: no line matching {pattern!r} within "
                                   f"{timeout} s; output:\n{''.join(self.output)}")
            self.output.append(line)
            match = regex.search(line)
            if match:
                return match

    def stop(self, grace: float = 10.0) -> Optional[int]:
        """SIGTERM, then SIGKILL after `grace` seconds; the exit status."""
        if self._proc.poll() is None:
            self._proc.terminate()
            try:
                self._proc.wait(timeout=grace)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
        self._reader.join(timeout=5)
        while True:
            try:
                line = self._lines.get_nowait()
            except queue.Empty:
                break
            if line is not None:
                self.output.append(line)
        return self._proc.returncode


def _binary(var: str) -> str:
    path = os.environ.get(var)
    if not path or not os.access(path, os.X_OK):
        raise RuntimeError(f"{var} must name the built binary (is {path!r}); run the tests "
                           "through ctest (tests/python.cmake) or set it")
    return path


class Stack:
    """killbill-sim + billing-gateway on loopback. Attributes once started: sim_port,
    grpc_target ("127.0.0.1:PORT"), metrics_port."""

    def __init__(self, sim_args: Optional[List[str]] = None,
                 gateway_yaml: str = "") -> None:
        self._sim_args = sim_args or []
        self._extra_yaml = gateway_yaml
        self._dir = tempfile.TemporaryDirectory(prefix="bg-pyclient-")
        self.sim: Optional[Process] = None
        self.gateway: Optional[Process] = None

    def __enter__(self) -> "Stack":
        try:
            self.sim = Process([_binary("BG_SIM_BINARY"), "--listen", "127.0.0.1:0"]
                               + self._sim_args, "killbill-sim")
            self.sim_port = int(self.sim.wait_for(r"listening on 127\.0\.0\.1:(\d+)", 20)[1])
            config = os.path.join(self._dir.name, "gateway.yaml")
            with open(config, "w") as f:
                f.write("server:\n  listen: 127.0.0.1:0\n"
                        "metrics:\n  listen: 127.0.0.1:0\n"
                        f"killbill:\n  url: http://127.0.0.1:{self.sim_port}\n"
                        + self._extra_yaml)
            self.gateway = Process([_binary("BG_GATEWAY_BINARY"), "--config", config],
                                   "billing-gateway")
            port = int(self.gateway.wait_for(r"grpc listening on port (\d+)", 30)[1])
            self.grpc_target = f"127.0.0.1:{port}"
            self.metrics_port = int(
                self.gateway.wait_for(r"metrics listening on port (\d+)", 10)[1])
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    def __exit__(self, *exc) -> None:
        for p in (self.gateway, self.sim):
            if p is not None:
                p.stop()
        self._dir.cleanup()

    def sim_stats(self) -> dict:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.sim_port}/sim/stats",
                                    timeout=5) as r:
            return json.load(r)

    def metrics(self) -> str:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.metrics_port}/metrics",
                                    timeout=5) as r:
            return r.read().decode()
