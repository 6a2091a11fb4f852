"""Exceptions of billing_gateway_client: one per way a call can end without an answer.

Every exception is a BillingGatewayError carrying what the gateway said: the gRPC status code
and message, the flow-control reject reason and retry pushback (trailing metadata
`billing-gateway-reject-reason`, `grpc-retry-pushback-ms`), Kill Bill's own error code
(`billing-gateway-killbill-code`) and how many attempts the client made. Immutable once raised;
safe to pass between threads.
"""

from __future__ import annotations

import re
from typing import Optional

import grpc

# Trailing metadata keys the gateway sends (proto/billing/v1/billing_gateway.proto, header).
REJECT_REASON_KEY = "billing-gateway-reject-reason"
RETRY_PUSHBACK_KEY = "grpc-retry-pushback-ms"
KILLBILL_CODE_KEY = "billing-gateway-killbill-code"
CACHE_AGE_KEY = "billing-gateway-cache-age-ms"

# The gateway's INVALID_ARGUMENT messages start with the field: `email: ...`,
# `tags[1]: ...`, `metadata["plan"]: ...`, `account.external_key: ...`.
_FIELD = re.compile(
    r'^([A-Za-z_][A-Za-z0-9_]*(?:\[(?:\d+|"[^"]*")\])?(?:\.[A-Za-z_][A-Za-z0-9_]*)*): ')


class BillingGatewayError(Exception):
    """A call to billing-gateway that ended without an answer.

    Attributes:
      method: the RPC name, e.g. "CreateAccount".
      code: the grpc.StatusCode of the last attempt.
      details: the gateway's message (for INVALID_ARGUMENT it starts with the field).
      reason: the flow-control reject reason (queue_full, deadline_unmeetable, breaker_open,
        shutting_down, database_unavailable), None when the gateway sent none.
      pushback: the server's retry pushback in seconds, None when it sent none.
      killbill_code: Kill Bill's numeric error code as text (e.g. "2021"), or None.
      attempts: how many attempts the client made.
      note: why the client stopped, when it could have retried.
    """

    def __init__(self, method: str, code: grpc.StatusCode, details: str, *,
                 reason: Optional[str] = None, pushback: Optional[float] = None,
                 killbill_code: Optional[str] = None, attempts: int = 1,
                 note: Optional[str] = None) -> None:
        self.method = method
        self.code = code
        self.details = details
        self.reason = reason
        self.pushback = pushback
        self.killbill_code = killbill_code
        self.attempts = attempts
        self.note = note
        super().__init__(self._describe())

    def _describe(self) -> str:
        text = f"{self.method}: {self.code.name}: {self.details}"
        extra = []
        if self.reason is not None:
            extra.append(f"reason {self.reason}")
        if self.pushback is not None:
            extra.append(f"retry pushback {round(self.pushback * 1000)} ms")
        if self.killbill_code is not None:
            extra.append(f"Kill Bill code {self.killbill_code}")
        extra.append(f"{self.attempts} attempt{'s' if self.attempts != 1 else ''}")
        text += f" ({', '.join(extra)})"
        if self.note:
            text += f"; {self.note}"
        return text


class InvalidArgument(BillingGatewayError):
    """The request is wrong (INVALID_ARGUMENT): fix it, never retry it as is.

    `field` names the offending field (`email`, `tags[0]`, `plan_name`, ...), parsed from the
    message, or None if the message does not start with one.
    """

    @property
    def field(self) -> Optional[str]:
        match = _FIELD.match(self.details)
        return match.group(1) if match else None


class NotFound(BillingGatewayError):
    """NOT_FOUND: the account or subscription does not exist."""


class FailedPrecondition(BillingGatewayError):
    """FAILED_PRECONDITION: e.g. an instance id held by another account, a second trial under
    enforce_single_trial, or an asynchronous submission to a gateway without a database."""


class Rejected(BillingGatewayError):
    """The gateway refused the call (flow control: RESOURCE_EXHAUSTED or UNAVAILABLE with a
    reject reason and a pushback) and the client gave up: the pushback did not fit in what
    was left of the call's budget, the attempts ran out, or the server asked for no retry.
    Nothing was done in Kill Bill by the refused attempt; the same request may be sent again
    later (every write is idempotent on its key)."""


class Unavailable(BillingGatewayError):
    """UNAVAILABLE without a reject reason (the gateway unreachable, or Kill Bill failing
    after the gateway's own retries) and the client's retries, if any, ran out."""


class DeadlineExceeded(BillingGatewayError):
    """DEADLINE_EXCEEDED: the call's budget ran out with an attempt in flight."""


_BY_CODE = {
    grpc.StatusCode.INVALID_ARGUMENT: InvalidArgument,
    grpc.StatusCode.NOT_FOUND: NotFound,
    grpc.StatusCode.FAILED_PRECONDITION: FailedPrecondition,
    grpc.StatusCode.UNAVAILABLE: Unavailable,
    grpc.StatusCode.DEADLINE_EXCEEDED: DeadlineExceeded,
}


def error_class(code: grpc.StatusCode, rejection: bool) -> type:
    """The exception class for a failure with `code`; `rejection`: it carried a pushback."""
    if rejection:
        return Rejected
    return _BY_CODE.get(code, BillingGatewayError)
