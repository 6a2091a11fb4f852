"""Unit tests of the client's retry policy: deadlines, pushback, what is retried. The gRPC
channel is a fake that answers from a script, the clock is fake and the injected sleep only
advances it: nothing here waits."""

import asyncio
import random

import grpc
import pytest

from billing_gateway_client import (AsyncBillingGatewayClient, BillingGatewayClient,
                                    BillingGatewayError, CallBudget, DeadlineExceeded,
                                    FailedPrecondition, Failure, InvalidArgument, NotFound,
                                    RPCS, Rejected, RetryPolicy, Unavailable, pb)


class FakeClock:
    def __init__(self):
        self.now = 1000.0
        self.sleeps = []

    def __call__(self):
        return self.now

    def sleep(self, seconds):
        self.sleeps.append(seconds)
        self.now += seconds

    async def async_sleep(self, seconds):
        self.sleep(seconds)


def rpc_error(code, details="", **trailing):
    """A failed call as grpc (sync and aio) raises it; trailing metadata keys use '_'."""
    md = grpc.aio.Metadata(*[(k.replace("_", "-"), v) for k, v in trailing.items()])
    return grpc.aio.AioRpcError(code, grpc.aio.Metadata(), md, details)


def rejection(reason, pushback_ms, code=grpc.StatusCode.RESOURCE_EXHAUSTED):
    return rpc_error(code, f"rejected: {reason}; retry in {pushback_ms} ms",
                     billing_gateway_reject_reason=reason,
                     grpc_retry_pushback_ms=str(pushback_ms))


class FakeChannel:
    """Answers each call with the next scripted outcome (a response, or an error to raise),
    taking `latency` seconds of fake time; records every attempt."""

    def __init__(self, clock, script, latency=0.005, aio=False):
        self.clock = clock
        self.script = list(script)
        self.latency = latency
        self.aio = aio
        self.attempts = []  # (method path, request, timeout, metadata, start time)

    def unary_unary(self, path, request_serializer=None, response_deserializer=None):
        def call(request, timeout=None, metadata=None):
            self.attempts.append((path, request, timeout, metadata, self.clock.now))
            self.clock.now += self.latency
            outcome = self.script.pop(0)
            if isinstance(outcome, Exception):
                raise outcome
            return outcome

        if not self.aio:
            return call

        async def acall(request, timeout=None, metadata=None):
            return call(request, timeout, metadata)
        return acall


def sync_client(script, timeout=10.0, policy=None, **kw):
    clock = FakeClock()
    channel = FakeChannel(clock, script)
    client = BillingGatewayClient(channel=channel, timeout=timeout, policy=policy,
                                  sleep=clock.sleep, clock=clock, rng=random.Random(7), **kw)
    return client, channel, clock


CREATE = pb.CreateAccountRequest(external_key="cust-1", email="jane@example.com",
                                 tags=[pb.ACCOUNT_TAG_AUTO_PAY_OFF])
CREATED = pb.CreateAccountResponse(account_id="a" * 36, external_key="cust-1", created=True)


def test_rejection_waits_exactly_the_pushback_then_sends_the_same_request_again():
    client, channel, clock = sync_client([rejection("queue_full", 1234), CREATED])
    assert client.create_account(CREATE) == CREATED
    assert clock.sleeps == [1.234]
    assert [a[0] for a in channel.attempts] == ["/billing.v1.BillingGateway/CreateAccount"] * 2
    assert channel.attempts[0][1] is CREATE and channel.attempts[1][1] is CREATE
    # The retry started right when the wait ended.
    assert channel.attempts[1][4] == pytest.approx(channel.attempts[0][4] + 0.005 + 1.234)


def test_every_attempt_deadline_is_what_is_left_of_the_budget():
    client, channel, clock = sync_client(
        [rejection("deadline_unmeetable", 2000), rejection("breaker_open", 3000,
                                                           grpc.StatusCode.UNAVAILABLE),
         CREATED], timeout=20.0)
    client.create_account(CREATE)
    timeouts = [a[2] for a in channel.attempts]
    assert timeouts == pytest.approx([20.0, 20.0 - 0.005 - 2.0, 20.0 - 0.010 - 5.0])
    assert clock.sleeps == [2.0, 3.0]


def test_per_call_timeout_overrides_the_clients_default():
    client, channel, _ = sync_client([CREATED], timeout=30.0)
    client.create_account(CREATE, timeout=4.5)
    assert channel.attempts[0][2] == pytest.approx(4.5)


def test_pushback_beyond_the_budget_gives_up_at_once_carrying_the_reason():
    client, channel, clock = sync_client([rejection("deadline_unmeetable", 12000)],
                                         timeout=10.0)
    with pytest.raises(Rejected) as raised:
        client.create_account(CREATE)
    e = raised.value
    assert clock.sleeps == []  # at once: no wait at all
    assert len(channel.attempts) == 1
    assert e.reason == "deadline_unmeetable"
    assert e.pushback == pytest.approx(12.0)
    assert e.code == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert e.method == "CreateAccount" and e.attempts == 1
    assert "deadline_unmeetable" in str(e) and "12000 ms" in str(e) and "9995 ms" in str(e)


def test_a_retry_needs_min_attempt_time_left_after_the_wait():
    policy = RetryPolicy(min_attempt_time=1.0)
    # 10 s budget, 5 ms spent: a 8.9 s pushback leaves 1.095 s (retry), 9.1 s leaves 0.895 s.
    client, _, clock = sync_client([rejection("queue_full", 8900), CREATED], policy=policy)
    client.create_account(CREATE)
    assert clock.sleeps == [8.9]
    client, _, clock = sync_client([rejection("queue_full", 9100)], policy=policy)
    with pytest.raises(Rejected, match="queue_full"):
        client.create_account(CREATE)
    assert clock.sleeps == []


def test_rejections_stop_after_max_attempts():
    client, channel, clock = sync_client([rejection("queue_full", 100)] * 3, timeout=60.0,
                                         policy=RetryPolicy(max_attempts=3))
    with pytest.raises(Rejected, match="gave up after 3 attempts") as raised:
        client.create_account(CREATE)
    assert len(channel.attempts) == 3 and clock.sleeps == [0.1, 0.1]
    assert raised.value.attempts == 3


@pytest.mark.parametrize("message, field", [
    ("email: must look like local@domain.tld", "email"),
    ("tags[1]: unknown tag value 9", "tags[1]"),
    ('metadata["a b: c"]: is longer than 255 characters', 'metadata["a b: c"]'),
    ("account.external_key: is required", "account.external_key"),
    ("plan_name: the catalog has no plan 'gold'", "plan_name"),
    ("no field here", None),
])
def test_invalid_argument_is_never_retried_and_names_the_field(message, field):
    client, channel, clock = sync_client(
        [rpc_error(grpc.StatusCode.INVALID_ARGUMENT, message,
                   billing_gateway_killbill_code="2021")])
    with pytest.raises(InvalidArgument) as raised:
        client.create_account(CREATE)
    assert raised.value.field == field
    assert raised.value.killbill_code == "2021"
    assert len(channel.attempts) == 1 and clock.sleeps == []


@pytest.mark.parametrize("code, cls", [
    (grpc.StatusCode.NOT_FOUND, NotFound),
    (grpc.StatusCode.FAILED_PRECONDITION, FailedPrecondition),
    (grpc.StatusCode.DEADLINE_EXCEEDED, DeadlineExceeded),
    (grpc.StatusCode.INTERNAL, BillingGatewayError),
    (grpc.StatusCode.CANCELLED, BillingGatewayError),
    (grpc.StatusCode.ALREADY_EXISTS, BillingGatewayError),
    (grpc.StatusCode.UNAUTHENTICATED, BillingGatewayError),
    # Without a pushback RESOURCE_EXHAUSTED is not the gateway's flow control (e.g. a
    # message larger than the server accepts): sending it again cannot help.
    (grpc.StatusCode.RESOURCE_EXHAUSTED, BillingGatewayError),
])
def test_final_codes_are_never_retried(code, cls):
    client, channel, clock = sync_client([rpc_error(code, "no")])
    with pytest.raises(cls) as raised:
        client.create_account(CREATE)
    assert type(raised.value) is cls and raised.value.code == code
    assert len(channel.attempts) == 1 and clock.sleeps == []


def test_unavailable_without_pushback_is_retried_after_a_jittered_backoff():
    policy = RetryPolicy(initial_backoff=0.1, max_backoff=0.3)
    down = rpc_error(grpc.StatusCode.UNAVAILABLE, "failed to connect to all addresses")
    client, channel, clock = sync_client([down] * 4 + [CREATED], policy=policy)
    assert client.create_account(CREATE) == CREATED
    caps = [0.1, 0.2, 0.3, 0.3]
    assert len(clock.sleeps) == 4
    assert all(0 <= s <= cap for s, cap in zip(clock.sleeps, caps)), clock.sleeps
    assert len(set(clock.sleeps)) == 4  # jittered, not a fixed schedule


def test_unavailable_retries_are_bounded_by_attempts_and_budget():
    down = rpc_error(grpc.StatusCode.UNAVAILABLE, "down")
    client, channel, _ = sync_client([down] * 3, policy=RetryPolicy(max_attempts=3))
    with pytest.raises(Unavailable, match="gave up after 3 attempts"):
        client.create_account(CREATE)
    assert len(channel.attempts) == 3
    # A budget with no room for another attempt: the first failure is final.
    client, channel, _ = sync_client([down], timeout=0.5)
    with pytest.raises(Unavailable, match="no budget left"):
        client.create_account(CREATE)
    assert len(channel.attempts) == 1


def test_only_idempotent_calls_retry_a_failure_that_may_have_been_half_done():
    clock = FakeClock()
    budget = CallBudget("Cancel", 30.0, RetryPolicy(), idempotent=False, clock=clock,
                        rng=random.Random(1))
    budget.start_attempt()
    # A flow-control rejection never reached Kill Bill: retried even so.
    assert budget.after_failure(Failure.from_rpc_error(rejection("queue_full", 500))) == 0.5
    budget.start_attempt()
    with pytest.raises(Unavailable):
        budget.after_failure(Failure.from_rpc_error(
            rpc_error(grpc.StatusCode.UNAVAILABLE, "Kill Bill: connection reset")))


@pytest.mark.parametrize("raw", ["-1", "soon", ""])
def test_a_negative_or_unparseable_pushback_asks_for_no_retry(raw):
    client, channel, clock = sync_client(
        [rpc_error(grpc.StatusCode.UNAVAILABLE, "stop", billing_gateway_reject_reason="x",
                   grpc_retry_pushback_ms=raw)])
    with pytest.raises(Rejected, match="asked for no retry"):
        client.create_account(CREATE)
    assert len(channel.attempts) == 1 and clock.sleeps == []


def test_a_budget_spent_while_waiting_ends_the_call_without_a_late_attempt():
    clock = FakeClock()
    budget = CallBudget("CreateAccount", 3.0, RetryPolicy(min_attempt_time=0.5), clock=clock,
                        rng=random.Random(1))
    budget.start_attempt()
    assert budget.after_failure(Failure.from_rpc_error(rejection("queue_full", 2000))) == 2.0
    clock.sleep(2.0 + 1.5)  # the wait overran by 1.5 s (a stalled host)
    with pytest.raises(Rejected, match="ran out while waiting"):
        budget.start_attempt()


def test_metadata_is_sent_with_every_attempt_and_on_retry_sees_every_wait():
    events = []
    client, channel, _ = sync_client([rejection("queue_full", 250), CREATED],
                                     on_retry=events.append)
    md = (("x-request-id", "reg-7"),)
    client.create_account(CREATE, metadata=md)
    assert [a[3] for a in channel.attempts] == [md, md]
    assert len(events) == 1
    assert (events[0].method, events[0].attempt, events[0].wait) == ("CreateAccount", 1, 0.25)
    assert events[0].failure.reason == "queue_full"


def test_closing_the_client_ends_a_wait_for_a_retry():
    clock = FakeClock()
    channel = FakeChannel(clock, [rejection("queue_full", 60000)])
    client = BillingGatewayClient(channel=channel, timeout=120.0, clock=clock)
    client.close()  # the default wait returns at once on a closed client
    with pytest.raises(BillingGatewayError, match="client closed") as raised:
        client.create_account(CREATE)
    assert raised.value.code == grpc.StatusCode.CANCELLED
    assert len(channel.attempts) == 1


def test_async_client_applies_the_same_policy():
    async def run():
        clock = FakeClock()
        channel = FakeChannel(clock, [rejection("breaker_open", 1500, grpc.StatusCode.UNAVAILABLE),
                                      CREATED, rejection("deadline_unmeetable", 40000)],
                              aio=True)
        client = AsyncBillingGatewayClient(channel=channel, timeout=30.0,
                                           sleep=clock.async_sleep, clock=clock)
        assert await client.create_account(CREATE) == CREATED
        assert clock.sleeps == [1.5]
        assert channel.attempts[1][2] == pytest.approx(30.0 - 0.005 - 1.5)
        with pytest.raises(Rejected) as raised:
            await client.create_account(CREATE)
        assert raised.value.reason == "deadline_unmeetable"
        assert clock.sleeps == [1.5]
        await client.close()
    asyncio.run(run())


def test_the_client_covers_every_rpc_of_the_generated_stubs():
    service = pb.DESCRIPTOR.services_by_name["BillingGateway"]
    assert set(RPCS.values()) == {m.name for m in service.methods}
    for py_name, rpc in RPCS.items():
        for cls in (BillingGatewayClient, AsyncBillingGatewayClient):
            assert callable(getattr(cls, py_name)), (cls, py_name)


def test_bad_arguments_are_refused_with_the_argument_named():
    with pytest.raises(ValueError, match="max_attempts"):
        RetryPolicy(max_attempts=0)
    with pytest.raises(ValueError, match="initial_backoff"):
        RetryPolicy(initial_backoff=3, max_backoff=1)
    with pytest.raises(ValueError, match="timeout"):
        sync_client([], timeout=0)
    client, _, _ = sync_client([])
    with pytest.raises(ValueError, match="timeout"):
        client.create_account(CREATE, timeout=-1)
    with pytest.raises(ValueError, match="exactly one"):
        BillingGatewayClient()
