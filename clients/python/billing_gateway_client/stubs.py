"""The generated gRPC stubs of proto/billing/v1/billing_gateway.proto, imported with a clear
error when they have not been generated. They are not committed: generate them with
clients/python/generate_stubs.py (Debian's python3-grpc-tools) into a folder on sys.path.
"""

try:
    from billing.v1 import billing_gateway_pb2 as pb
    from billing.v1 import billing_gateway_pb2_grpc as pb_grpc
except ImportError as e:  # pragma: no cover - exercised by hand
    raise ImportError(
        "billing_gateway_client needs the generated stubs billing/v1/billing_gateway_pb2*.py "
        "on sys.path: run `python3 clients/python/generate_stubs.py OUT_DIR` and add OUT_DIR "
        f"to PYTHONPATH ({e})") from e

# Every RPC of BillingGateway, by the client method that calls it. All of them are
# idempotent (proto header: every write is idempotent on its key; cancelling a cancelled
# subscription succeeds), so a failure without a pushback may be retried.
RPCS = {
    "create_account": "CreateAccount",
    "get_account": "GetAccount",
    "submit_create_account": "SubmitCreateAccount",
    "get_operation": "GetOperation",
    "create_subscription": "CreateSubscription",
    "get_subscription": "GetSubscription",
    "list_subscriptions": "ListSubscriptions",
    "cancel_subscription": "CancelSubscription",
    "get_billing_overview": "GetBillingOverview",
    "submit_create_subscription": "SubmitCreateSubscription",
}
IDEMPOTENT = frozenset(RPCS.values())

__all__ = ["pb", "pb_grpc", "RPCS", "IDEMPOTENT"]
