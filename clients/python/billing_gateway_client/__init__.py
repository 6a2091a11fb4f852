"""A Python client for billing-gateway (proto/billing/v1/billing_gateway.proto).

    from billing_gateway_client import AsyncBillingGatewayClient, pb
    async with AsyncBillingGatewayClient("127.0.0.1:50051") as client:
        account = await client.create_account(pb.CreateAccountRequest(
            external_key="cust-1", email="jane@example.com",
            tags=[pb.ACCOUNT_TAG_AUTO_PAY_OFF]), timeout=15)

Rejections are retried after exactly the server's `grpc-retry-pushback-ms` while the call's
budget allows; everything else ends in an exception of `errors` (clients/python/README.md).
"""

from billing_gateway_client.client import (AsyncBillingGatewayClient, BillingGatewayClient,
                                           RetryEvent)
from billing_gateway_client.errors import (BillingGatewayError, DeadlineExceeded,
                                           FailedPrecondition, InvalidArgument, NotFound,
                                           Rejected, Unavailable)
from billing_gateway_client.retry import CallBudget, Failure, RetryPolicy
from billing_gateway_client.stubs import RPCS, pb, pb_grpc

__all__ = [
    "AsyncBillingGatewayClient", "BillingGatewayClient", "RetryEvent", "BillingGatewayError",
    "DeadlineExceeded", "FailedPrecondition", "InvalidArgument", "NotFound", "Rejected",
    "Unavailable", "CallBudget", "Failure", "RetryPolicy", "RPCS", "pb", "pb_grpc",
]
