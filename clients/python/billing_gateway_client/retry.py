"""When to retry a billing-gateway call, and how long to wait first. No I/O, no sleeping:
the clock and the random source are injected, so the whole policy is tested without time
passing (clients/python/tests/test_retry.py).

The rules (proto/billing/v1/billing_gateway.proto, header; service/service.cc):
  * A flow-control rejection is RESOURCE_EXHAUSTED or UNAVAILABLE with trailing metadata
    `grpc-retry-pushback-ms` (and `billing-gateway-reject-reason`). The refused request never
    reached Kill Bill, so it is safe to send again whatever the method. The client waits
    exactly the pushback (the server adds any jitter) and sends the same request again, if
    the call's budget still holds the pushback plus `min_attempt_time`; otherwise it gives up
    at once with Rejected, carrying the reason. A pushback that is negative or not a number is
    the server asking for no retry (gRPC's retry spec): Rejected at once.
  * UNAVAILABLE without a pushback (gateway unreachable or restarting, Kill Bill failing
    after the gateway's own retries) may have been half done: retried only for idempotent
    methods (every BillingGateway method is: creates are keyed by external_key /
    instance_id), after a full-jitter exponential backoff, within the budget.
  * Everything else is final: INVALID_ARGUMENT, NOT_FOUND, FAILED_PRECONDITION,
    DEADLINE_EXCEEDED, CANCELLED, INTERNAL, RESOURCE_EXHAUSTED without a pushback (e.g. a
    message too large), ...
  * Every attempt's gRPC deadline is what is left of the call's budget, so the gateway's
    deadline-aware admission sees the caller's real deadline.
"""

from __future__ import annotations

import dataclasses
import random
from typing import Callable, Iterable, Optional, Tuple

import grpc

from billing_gateway_client import errors

# Codes a flow-control rejection comes with.
_REJECTION_CODES = (grpc.StatusCode.RESOURCE_EXHAUSTED, grpc.StatusCode.UNAVAILABLE)


@dataclasses.dataclass(frozen=True)
class RetryPolicy:
    """How persistent one call is. Immutable; share it freely.

    max_attempts: attempts of one call in all (first included), whatever failed.
    min_attempt_time: seconds a retry needs left of the budget once its wait is over; a
      pushback that leaves less gives up at once (Rejected). The gateway answers an attempt
      it cannot serve in time within milliseconds, so this only has to cover the round trip
      of that refusal on a loaded host.
    initial_backoff, max_backoff: full-jitter exponential backoff, seconds, for UNAVAILABLE
      without a pushback (attempt n waits uniform(0, min(max, initial * 2**(n-1)))).
    """
    max_attempts: int = 10
    min_attempt_time: float = 1.0
    initial_backoff: float = 0.1
    max_backoff: float = 2.0

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError(f"max_attempts: must be at least 1, is {self.max_attempts}")
        if self.min_attempt_time < 0:
            raise ValueError(f"min_attempt_time: must be >= 0, is {self.min_attempt_time}")
        if not 0 < self.initial_backoff <= self.max_backoff:
            raise ValueError("initial_backoff, max_backoff: need 0 < initial_backoff <= "
                             f"max_backoff, are {self.initial_backoff}, {self.max_backoff}")


@dataclasses.dataclass(frozen=True)
class Failure:
    """One failed attempt, as the client saw it."""
    code: grpc.StatusCode
    details: str
    reason: Optional[str] = None
    # The pushback in seconds; None when the server sent none.
    pushback: Optional[float] = None
    # The server sent `grpc-retry-pushback-ms` but it was negative or not a number.
    no_retry: bool = False
    killbill_code: Optional[str] = None

    @property
    def rejection(self) -> bool:
        """A flow-control refusal: the request never reached Kill Bill."""
        return self.code in _REJECTION_CODES and (self.pushback is not None or self.no_retry)

    @staticmethod
    def from_metadata(code: grpc.StatusCode, details: Optional[str],
                      trailing: Optional[Iterable[Tuple[str, str]]]) -> "Failure":
        meta = {}
        for key, value in trailing or ():
            meta.setdefault(key.lower(), value if isinstance(value, str) else value.decode())
        pushback = None
        no_retry = False
        raw = meta.get(errors.RETRY_PUSHBACK_KEY)
        if raw is not None:
            try:
                ms = int(raw.strip())
            except ValueError:
                ms = -1
            if ms < 0:
                no_retry = True
            else:
                pushback = ms / 1000.0
        return Failure(code=code, details=details or "", reason=meta.get(errors.REJECT_REASON_KEY),
                       pushback=pushback, no_retry=no_retry,
                       killbill_code=meta.get(errors.KILLBILL_CODE_KEY))

    @staticmethod
    def from_rpc_error(error: grpc.RpcError) -> "Failure":
        """From a failed call of grpc (sync) or grpc.aio: both are grpc.Call-like errors."""
        return Failure.from_metadata(error.code(), error.details(), error.trailing_metadata())


class CallBudget:
    """The retry state of one call: its budget (an absolute deadline on `clock`) and the
    attempts made. One per call, used by one thread or task: not thread-safe."""

    def __init__(self, method: str, timeout: float, policy: RetryPolicy, *,
                 idempotent: bool = True, clock: Callable[[], float],
                 rng: random.Random) -> None:
        if not timeout > 0:
            raise ValueError(f"timeout: must be > 0 seconds, is {timeout}")
        self.method = method
        self.timeout = timeout
        self.policy = policy
        self.idempotent = idempotent
        self._clock = clock
        self._rng = rng
        self.deadline = clock() + timeout
        self.attempts = 0
        self._last: Optional[Failure] = None

    def remaining(self) -> float:
        return self.deadline - self._clock()

    def start_attempt(self) -> float:
        """Counts an attempt and returns its gRPC timeout: what is left of the budget. Raises
        the last failure's error if the budget ran out while waiting to retry."""
        left = self.remaining()
        if self._last is not None and left <= 0:
            raise self._error(self._last, "the budget ran out while waiting to retry")
        self.attempts += 1
        return left

    def after_failure(self, failure: Failure) -> float:
        """Seconds to wait before the next attempt, or raises the error that ends the call."""
        self._last = failure
        left = self.remaining()
        if failure.rejection:
            reason = failure.reason or "unknown"
            if failure.no_retry:
                raise self._error(failure, "the server asked for no retry")
            if self.attempts >= self.policy.max_attempts:
                raise self._error(failure, f"gave up after {self.attempts} attempts")
            if failure.pushback + self.policy.min_attempt_time > left:
                raise self._error(
                    failure,
                    f"rejected ({reason}): the server asks to wait "
                    f"{_ms(failure.pushback)} ms but only {_ms(max(left, 0))} ms of the "
                    f"{_ms(self.timeout)} ms budget remain (a retry needs "
                    f"{_ms(self.policy.min_attempt_time)} ms after the wait)")
            return failure.pushback
        if failure.code == grpc.StatusCode.UNAVAILABLE and self.idempotent:
            cap = min(self.policy.max_backoff,
                      self.policy.initial_backoff * 2 ** (self.attempts - 1))
            wait = self._rng.uniform(0, cap)
            if self.attempts >= self.policy.max_attempts:
                raise self._error(failure, f"gave up after {self.attempts} attempts")
            if wait + self.policy.min_attempt_time > left:
                raise self._error(failure, f"no budget left for a retry ({_ms(max(left, 0))} "
                                           f"ms of {_ms(self.timeout)} ms remain)")
            return wait
        raise self._error(failure, None)

    def _error(self, failure: Failure, note: Optional[str]) -> errors.BillingGatewayError:
        cls = errors.error_class(failure.code, failure.rejection)
        return cls(self.method, failure.code, failure.details, reason=failure.reason,
                   pushback=failure.pushback, killbill_code=failure.killbill_code,
                   attempts=self.attempts, note=note)


def _ms(seconds: float) -> int:
    return round(seconds * 1000)
