"""A bounded registration storm through the async client: STORM_CALLERS tasks register
customers back to back (the example's Registrar: tagged account, then a trial subscription)
for STORM_SECONDS against billing-gateway in front of a killbill-sim at its default capacity
(bus drain 25 events/s; a registration posts about 7 events, so ~3.5 registrations/s fit).

Must hold: no DEADLINE_EXCEEDED anywhere (client or gateway); every registration either
succeeded or ended with Rejected (an explicit refusal with a reason); every retry came after
exactly the pushback the gateway sent, as seen on the wire (a channel interceptor records each
attempt's start, end and trailing metadata, independently of the client's own bookkeeping).
"""

import asyncio
import collections
import os
import statistics
import time

import grpc

from billing_gateway_client import AsyncBillingGatewayClient, BillingGatewayError, Rejected
from billing_gateway_client.retry import Failure
from harness import Stack
from user_service import Customer, Registrar

STORM_CALLERS = int(os.environ.get("STORM_CALLERS", "200"))
STORM_SECONDS = float(os.environ.get("STORM_SECONDS", "18"))
STEP_BUDGET = 8.0  # seconds per registration step (account, subscription)


class AttemptRecorder(grpc.aio.UnaryUnaryClientInterceptor):
    """Records every attempt on the wire: (x-request-id, method, start, end, code, failure)."""

    def __init__(self):
        self.attempts = []

    async def intercept_unary_unary(self, continuation, details, request):
        start = time.monotonic()
        call = await continuation(details, request)
        code = await call.code()
        end = time.monotonic()
        failure = None
        if code != grpc.StatusCode.OK:
            failure = Failure.from_metadata(code, await call.details(),
                                            await call.trailing_metadata())
        request_id = dict(details.metadata or ()).get("x-request-id")
        method = details.method.decode() if isinstance(details.method, bytes) else details.method
        self.attempts.append((request_id, method, start, end, code, failure))
        return call


def test_storm_every_registration_succeeds_or_is_rejected_and_pushbacks_are_honoured():
    recorder = AttemptRecorder()
    outcomes = collections.Counter()
    unexpected = []
    rejected_reasons = collections.Counter()

    async def caller(registrar, index, stop_at):
        n = 0
        while time.monotonic() < stop_at:
            key = f"storm-{index}-{n}"
            n += 1
            try:
                await registrar.register(
                    Customer(key, f"Customer {key}", f"{key}@example.com", f"odoo-{key}"),
                    request_id=key)
                outcomes["registered"] += 1
            except Rejected as e:
                outcomes["rejected"] += 1
                rejected_reasons[(e.method, e.reason)] += 1
            except BillingGatewayError as e:
                unexpected.append(e)

    async def storm():
        channel = grpc.aio.insecure_channel(stack.grpc_target, interceptors=[recorder])
        async with AsyncBillingGatewayClient(channel=channel) as client:
            registrar = Registrar(client, step_budget=STEP_BUDGET)
            stop_at = time.monotonic() + STORM_SECONDS
            await asyncio.gather(*(caller(registrar, i, stop_at) for i in range(STORM_CALLERS)))
        await channel.close()

    with Stack() as stack:
        started = time.monotonic()
        asyncio.run(storm())
        elapsed = time.monotonic() - started
        stats = stack.sim_stats()
        metrics = stack.metrics()

    # Retries on the wire: consecutive attempts of one call (same request id and method).
    calls = collections.defaultdict(list)
    for request_id, method, start, end, code, failure in recorder.attempts:
        calls[(request_id, method)].append((start, end, code, failure))
    overshoots = []
    early = []
    for attempts in calls.values():
        attempts.sort()
        for (_, end, _, failure), (next_start, _, _, _) in zip(attempts, attempts[1:]):
            if failure is not None and failure.pushback is not None:
                gap = next_start - end
                overshoots.append(gap - failure.pushback)
                if gap < failure.pushback - 0.002:
                    early.append((gap, failure.pushback))
    codes = collections.Counter(a[4].name for a in recorder.attempts)
    deadline_lines = [line for line in metrics.splitlines()
                      if line.startswith("billing_gateway_requests_total")
                      and 'code="DEADLINE_EXCEEDED"' in line]

    summary = (f"{STORM_CALLERS} callers, {STORM_SECONDS:.0f} s storm, {elapsed:.1f} s in all: "
               f"{dict(outcomes)}; rejected by (method, reason) {dict(rejected_reasons)}; "
               f"attempts by code {dict(codes)}; retries after a pushback {len(overshoots)}, "
               f"wait beyond the pushback median "
               f"{statistics.median(overshoots) * 1000 if overshoots else float('nan'):.1f} ms, "
               f"max {max(overshoots) * 1000 if overshoots else float('nan'):.1f} ms; sim: "
               f"accounts {stats['accounts_created']}, subscriptions "
               f"{stats['subscriptions_total']}, bus backlog {stats['bus_backlog']}")
    print(summary)

    assert not unexpected, f"{unexpected[:5]} ... ({len(unexpected)}); {summary}"
    assert codes["DEADLINE_EXCEEDED"] == 0, summary
    for line in deadline_lines:
        assert line.endswith(" 0"), line
    # It was a storm: the gateway refused some, and still let registrations through.
    assert outcomes["rejected"] > 0, summary
    assert outcomes["registered"] >= 10, summary
    # Pushbacks honoured on the wire: never early, and no longer than needed.
    assert len(overshoots) >= 20, summary
    assert not early, f"retried before the pushback: {early[:5]}; {summary}"
    assert statistics.median(overshoots) < 0.1, summary
    # Every registration that succeeded made exactly one subscription (one per instance id).
    assert stats["subscriptions_total"] == outcomes["registered"], summary
