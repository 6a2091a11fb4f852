"""billing-gateway clients: BillingGatewayClient (grpc, blocking) and AsyncBillingGatewayClient
(grpc.aio). Both have the same methods, one per RPC (snake_case: create_account,
create_subscription, get_billing_overview, ...), each taking the request message and
returning the response message, and both apply the same policy (retry.py): every call has a
budget (`timeout`, default the client's), every attempt's deadline is what is left of it,
flow-control rejections are retried after exactly the server's pushback while the budget
allows, other failures raise an exception of errors.py at once (UNAVAILABLE without a
pushback: a few jittered retries first).

Thread-safety: a BillingGatewayClient may be shared by threads; an AsyncBillingGatewayClient
belongs to the event loop it was created in (as its grpc.aio channel does) and may be shared
by that loop's tasks.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import random
import threading
import time
from typing import Any, Awaitable, Callable, Optional, Sequence, Tuple

import grpc

from billing_gateway_client import errors
from billing_gateway_client.retry import CallBudget, Failure, RetryPolicy
from billing_gateway_client.stubs import IDEMPOTENT, pb, pb_grpc

_log = logging.getLogger("billing_gateway_client")

Metadata = Sequence[Tuple[str, str]]


@dataclasses.dataclass(frozen=True)
class RetryEvent:
    """Passed to `on_retry` before each wait: which call, which attempt failed, how, and how
    long the client now waits (seconds) before sending the same request again."""
    method: str
    attempt: int
    failure: Failure
    wait: float


class _Methods:
    """The RPC methods, shared by both clients; `_call` is blocking or a coroutine."""

    def _call(self, rpc: str, request: Any, timeout: Optional[float],
              metadata: Optional[Metadata]) -> Any:
        raise NotImplementedError

    def create_account(self, request: pb.CreateAccountRequest, *, timeout: Optional[float] = None,
                       metadata: Optional[Metadata] = None):
        """CreateAccountRequest -> CreateAccountResponse (idempotent on external_key)."""
        return self._call("CreateAccount", request, timeout, metadata)

    def get_account(self, request: pb.GetAccountRequest, *, timeout: Optional[float] = None,
                    metadata: Optional[Metadata] = None):
        """GetAccountRequest -> Account."""
        return self._call("GetAccount", request, timeout, metadata)

    def submit_create_account(self, request: pb.CreateAccountRequest, *,
                              timeout: Optional[float] = None,
                              metadata: Optional[Metadata] = None):
        """CreateAccountRequest -> Operation (durable mode only)."""
        return self._call("SubmitCreateAccount", request, timeout, metadata)

    def get_operation(self, request: pb.GetOperationRequest, *, timeout: Optional[float] = None,
                      metadata: Optional[Metadata] = None):
        """GetOperationRequest -> Operation."""
        return self._call("GetOperation", request, timeout, metadata)

    def create_subscription(self, request: pb.CreateSubscriptionRequest, *,
                            timeout: Optional[float] = None,
                            metadata: Optional[Metadata] = None):
        """CreateSubscriptionRequest -> CreateSubscriptionResponse (idempotent on instance_id)."""
        return self._call("CreateSubscription", request, timeout, metadata)

    def get_subscription(self, request: pb.GetSubscriptionRequest, *,
                         timeout: Optional[float] = None, metadata: Optional[Metadata] = None):
        """GetSubscriptionRequest -> Subscription."""
        return self._call("GetSubscription", request, timeout, metadata)

    def list_subscriptions(self, request: pb.ListSubscriptionsRequest, *,
                           timeout: Optional[float] = None,
                           metadata: Optional[Metadata] = None):
        """ListSubscriptionsRequest -> ListSubscriptionsResponse."""
        return self._call("ListSubscriptions", request, timeout, metadata)

    def cancel_subscription(self, request: pb.CancelSubscriptionRequest, *,
                            timeout: Optional[float] = None,
                            metadata: Optional[Metadata] = None):
        """CancelSubscriptionRequest -> CancelSubscriptionResponse."""
        return self._call("CancelSubscription", request, timeout, metadata)

    def get_billing_overview(self, request: pb.GetBillingOverviewRequest, *,
                             timeout: Optional[float] = None,
                             metadata: Optional[Metadata] = None):
        """GetBillingOverviewRequest -> BillingOverview."""
        return self._call("GetBillingOverview", request, timeout, metadata)

    def submit_create_subscription(self, request: pb.CreateSubscriptionRequest, *,
                                   timeout: Optional[float] = None,
                                   metadata: Optional[Metadata] = None):
        """CreateSubscriptionRequest -> Operation (durable mode only)."""
        return self._call("SubmitCreateSubscription", request, timeout, metadata)


class _Core(_Methods):
    def __init__(self, channel: Any, timeout: float, policy: Optional[RetryPolicy],
                 clock: Callable[[], float], rng: Optional[random.Random],
                 on_retry: Optional[Callable[[RetryEvent], None]]) -> None:
        if not timeout > 0:
            raise ValueError(f"timeout: must be > 0 seconds, is {timeout}")
        self._channel = channel
        self._stub = pb_grpc.BillingGatewayStub(channel)
        self._timeout = timeout
        self._policy = policy or RetryPolicy()
        self._clock = clock
        self._rng = rng or random.Random()
        self._on_retry = on_retry

    def _budget(self, rpc: str, timeout: Optional[float]) -> CallBudget:
        return CallBudget(rpc, self._timeout if timeout is None else timeout, self._policy,
                          idempotent=rpc in IDEMPOTENT, clock=self._clock, rng=self._rng)

    def _retrying(self, budget: CallBudget, error: grpc.RpcError) -> float:
        """The wait before the next attempt, or raises the error that ends the call."""
        failure = Failure.from_rpc_error(error)
        wait = budget.after_failure(failure)
        _log.debug("%s attempt %d: %s %s (reason %s); retrying in %.3f s", budget.method,
                   budget.attempts, failure.code.name, failure.details, failure.reason, wait)
        if self._on_retry is not None:
            self._on_retry(RetryEvent(budget.method, budget.attempts, failure, wait))
        return wait


class BillingGatewayClient(_Core):
    """Blocking client (grpc). Use as a context manager, or call close().

    target: "host:port" for a plaintext channel, or pass `channel` (TLS, interceptors, ...).
    timeout: the default budget of a call in seconds (the gateway's own default is 30 s).
    sleep, clock, rng: injected in tests; `sleep` waits a number of seconds (default: a wait
    that close() interrupts).
    on_retry: called with a RetryEvent before every wait (logging, metrics).
    """

    def __init__(self, target: Optional[str] = None, *, channel: Optional[grpc.Channel] = None,
                 timeout: float = 30.0, policy: Optional[RetryPolicy] = None,
                 sleep: Optional[Callable[[float], None]] = None,
                 clock: Callable[[], float] = time.monotonic,
                 rng: Optional[random.Random] = None,
                 on_retry: Optional[Callable[[RetryEvent], None]] = None) -> None:
        if (target is None) == (channel is None):
            raise ValueError("pass exactly one of target and channel")
        self._owns_channel = channel is None
        self._closed = threading.Event()
        self._sleep = sleep or self._wait
        super().__init__(channel or grpc.insecure_channel(target), timeout, policy, clock, rng,
                         on_retry)

    def _wait(self, seconds: float) -> None:
        self._closed.wait(seconds)

    def _call(self, rpc, request, timeout, metadata):
        budget = self._budget(rpc, timeout)
        method = getattr(self._stub, rpc)
        while True:
            attempt_timeout = budget.start_attempt()
            try:
                return method(request, timeout=attempt_timeout, metadata=metadata)
            except grpc.RpcError as e:
                wait = self._retrying(budget, e)
            self._sleep(wait)
            if self._closed.is_set():
                raise errors.BillingGatewayError(rpc, grpc.StatusCode.CANCELLED,
                                                 "client closed while waiting to retry",
                                                 attempts=budget.attempts)

    def close(self) -> None:
        """Interrupts waits for a retry and closes the channel if the client made it."""
        self._closed.set()
        if self._owns_channel:
            self._channel.close()

    def __enter__(self) -> "BillingGatewayClient":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class AsyncBillingGatewayClient(_Core):
    """grpc.aio client: `await client.create_account(request)`. Create it inside the event
    loop that uses it; use `async with`, or await close().

    Arguments as BillingGatewayClient; `sleep` is a coroutine function (default asyncio.sleep:
    cancelling the calling task cancels the wait).
    """

    def __init__(self, target: Optional[str] = None, *,
                 channel: Optional[grpc.aio.Channel] = None, timeout: float = 30.0,
                 policy: Optional[RetryPolicy] = None,
                 sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
                 clock: Callable[[], float] = time.monotonic,
                 rng: Optional[random.Random] = None,
                 on_retry: Optional[Callable[[RetryEvent], None]] = None) -> None:
        if (target is None) == (channel is None):
            raise ValueError("pass exactly one of target and channel")
        self._owns_channel = channel is None
        self._sleep = sleep
        super().__init__(channel or grpc.aio.insecure_channel(target), timeout, policy, clock,
                         rng, on_retry)

    async def _call(self, rpc, request, timeout, metadata):
        budget = self._budget(rpc, timeout)
        method = getattr(self._stub, rpc)
        while True:
            attempt_timeout = budget.start_attempt()
            try:
                return await method(request, timeout=attempt_timeout, metadata=metadata)
            except grpc.RpcError as e:
                wait = self._retrying(budget, e)
            await self._sleep(wait)

    async def close(self) -> None:
        """Closes the channel if the client made it."""
        if self._owns_channel:
            await self._channel.close()

    async def __aenter__(self) -> "AsyncBillingGatewayClient":
        return self

    async def __aexit__(self, *exc) -> None:
        await self.close()
