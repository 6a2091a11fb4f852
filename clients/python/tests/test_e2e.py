"""End to end: the Python client (sync and grpc.aio) and the example registration against a
real billing-gateway in front of a real killbill-sim, both on free loopback ports."""

import asyncio
import json
import urllib.request

import grpc
import pytest

from billing_gateway_client import (AsyncBillingGatewayClient, BillingGatewayClient,
                                    InvalidArgument, NotFound, RetryPolicy, pb)
from harness import Stack
from user_service import Customer, Registrar


@pytest.fixture(scope="module")
def stack():
    with Stack() as s:
        yield s


def test_registration_creates_account_and_trial_subscription_once(stack):
    customer = Customer("py-e2e-1", "Jane Doe", "jane@example.com", "odoo-py-e2e-1")

    async def register_twice():
        async with AsyncBillingGatewayClient(stack.grpc_target, timeout=20) as client:
            registrar = Registrar(client, step_budget=20)
            return (await registrar.register(customer), await registrar.register(customer))

    first, again = asyncio.run(register_twice())
    assert first.account_created and first.subscription_created
    assert len(first.account_id) == 36 and len(first.subscription_id) == 36
    assert first.phase == "PHASE_TYPE_TRIAL" and first.trial_end_date
    # Run again (a user-service retry): nothing new, the same ids.
    assert not again.account_created and not again.subscription_created
    assert (again.account_id, again.subscription_id) == (first.account_id, first.subscription_id)

    stats = stack.sim_stats()
    assert stats["accounts_created"] == 1, stats
    assert stats["subscriptions_total"] == 1, stats

    # The synchronous client reads it back: AUTO_PAY_OFF account, instance id on the bundle.
    with BillingGatewayClient(stack.grpc_target, timeout=10) as client:
        overview = client.get_billing_overview(
            pb.GetBillingOverviewRequest(account=pb.AccountRef(external_key="py-e2e-1")))
        assert overview.account.account_id == first.account_id
        assert overview.account.email == "jane@example.com"
        assert [s.instance_id for s in overview.subscriptions] == ["odoo-py-e2e-1"]
        assert overview.subscriptions[0].plan_name == "basic-monthly"
        with pytest.raises(NotFound) as raised:
            client.get_account(pb.GetAccountRequest(external_key="py-e2e-nobody"))
        assert raised.value.code == grpc.StatusCode.NOT_FOUND and raised.value.attempts == 1


@pytest.mark.parametrize("request_, field", [
    (pb.CreateAccountRequest(external_key="py-bad-1", email="not-an-email"), "email"),
    (pb.CreateAccountRequest(external_key="py bad 2"), "external_key"),
    (pb.CreateAccountRequest(external_key="py-bad-3", tags=[pb.ACCOUNT_TAG_UNSPECIFIED]),
     "tags[0]"),
])
def test_a_bad_field_raises_invalid_argument_naming_it(stack, request_, field):
    before = stack.sim_stats()["accounts_created"]
    with BillingGatewayClient(stack.grpc_target, timeout=10) as client:
        with pytest.raises(InvalidArgument) as raised:
            client.create_account(request_)
    assert raised.value.field == field, raised.value
    assert raised.value.attempts == 1  # never retried
    assert stack.sim_stats()["accounts_created"] == before


def test_an_unknown_plan_names_plan_name(stack):
    customer = Customer("py-e2e-plan", "Joe", "joe@example.com", "odoo-py-e2e-plan",
                        plan="gold-monthly")

    async def register():
        async with AsyncBillingGatewayClient(stack.grpc_target, timeout=20) as client:
            return await Registrar(client, step_budget=20).register(customer)

    with pytest.raises(InvalidArgument) as raised:
        asyncio.run(register())
    assert raised.value.field == "plan_name", raised.value
    assert raised.value.method == "CreateSubscription"
    assert "gold-monthly" in str(raised.value)


def test_a_kill_bill_outage_is_ridden_out_waiting_exactly_the_pushbacks():
    # Kill Bill answers 503 to everything for 4 s. The gateway's breaker opens (its health
    # monitor sees the healthcheck fail) and refuses calls UNAVAILABLE / breaker_open with a
    # pushback: the time to its next probe. The client retries the bare UNAVAILABLEs after a
    # backoff, waits out every pushback exactly, and the create succeeds once Kill Bill is
    # back, creating one account.
    events = []
    with Stack() as own:
        urllib.request.urlopen(urllib.request.Request(
            f"http://127.0.0.1:{own.sim_port}/sim/faults", method="POST",
            data=json.dumps({"outage": "503", "outage_seconds": 4}).encode(),
            headers={"Content-Type": "application/json"}), timeout=5).close()
        with BillingGatewayClient(own.grpc_target, timeout=40, on_retry=events.append,
                                  policy=RetryPolicy(max_attempts=100)) as client:
            created = client.create_account(
                pb.CreateAccountRequest(external_key="py-e2e-outage"))
        stats = own.sim_stats()
    assert created.created
    assert stats["accounts_created"] == 1, stats
    rejections = [e for e in events if e.failure.pushback is not None]
    assert rejections, [(e.failure.code, e.failure.details) for e in events]
    assert {e.failure.reason for e in rejections} == {"breaker_open"}, rejections
    assert all(e.failure.code == grpc.StatusCode.UNAVAILABLE for e in rejections)
    assert all(e.wait == e.failure.pushback for e in rejections), rejections
