#!/usr/bin/env python3
"""How user-service registers a customer through billing-gateway (asyncio, grpc.aio).

SaaSOdoo's registration, as its user-service and billing-service do it against Kill Bill:
  1. the customer's Kill Bill account, keyed by the platform's customer id, tagged
     AUTO_PAY_OFF (CreateAccount: idempotent on external_key);
  2. the subscription of the customer's first Odoo instance: a plan (basic-monthly starts
     with SaaSOdoo's 14-day trial), keyed by the instance id, which Kill Bill stores as the
     bundle's external key and as the subscription's custom field `instance_id`
     (CreateSubscription: idempotent on instance_id).
Both steps are idempotent, so a registration that ended in Rejected (the gateway was full)
can simply be run again later: it finishes what is missing and creates nothing twice.

Each step has its own budget (`step_budget`, seconds): within it the client waits out the
gateway's pushbacks; when a pushback does not fit, the step raises Rejected at once, carrying
the gateway's reason, and user-service can tell its caller "try again in a minute" instead of
hanging. Each call carries `x-request-id` (the registration's id) for the gateway's logs.

Run against a gateway:
    PYTHONPATH=build/clients/python/gen:clients/python \\
      python3 clients/python/examples/user_service.py --target 127.0.0.1:50051 \\
      cust-1 "Jane Doe" jane@example.com odoo-42
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import sys
from typing import Optional

from billing_gateway_client import AsyncBillingGatewayClient, BillingGatewayError, pb


@dataclasses.dataclass(frozen=True)
class Customer:
    """What the platform knows when a customer signs up."""
    customer_id: str
    name: str
    email: str
    instance_id: str
    plan: str = "basic-monthly"
    company: str = ""


@dataclasses.dataclass(frozen=True)
class Registration:
    """Where the customer stands in Kill Bill after register()."""
    account_id: str
    account_created: bool
    subscription_id: str
    subscription_created: bool
    phase: str
    trial_end_date: str


class Registrar:
    """Registers customers; shares one AsyncBillingGatewayClient between tasks."""

    def __init__(self, client: AsyncBillingGatewayClient, *, step_budget: float = 30.0) -> None:
        self._client = client
        self._step_budget = step_budget

    async def register(self, customer: Customer,
                       request_id: Optional[str] = None) -> Registration:
        """Creates (or finds) the account, then the instance's subscription. Raises a
        billing_gateway_client error (Rejected, InvalidArgument naming the field, ...)."""
        metadata = (("x-request-id", request_id or f"register-{customer.customer_id}"),)
        account = await self._client.create_account(
            pb.CreateAccountRequest(external_key=customer.customer_id, name=customer.name,
                                    email=customer.email, company=customer.company,
                                    tags=[pb.ACCOUNT_TAG_AUTO_PAY_OFF]),
            timeout=self._step_budget, metadata=metadata)
        created = await self._client.create_subscription(
            pb.CreateSubscriptionRequest(
                account=pb.AccountRef(account_id=account.account_id),
                plan_name=customer.plan, instance_id=customer.instance_id,
                metadata={"customer_id": customer.customer_id}),
            timeout=self._step_budget, metadata=metadata)
        sub = created.subscription
        return Registration(account_id=account.account_id, account_created=account.created,
                            subscription_id=sub.subscription_id,
                            subscription_created=created.created,
                            phase=pb.PhaseType.Name(sub.phase),
                            trial_end_date=sub.trial_end_date)


async def _main(args: argparse.Namespace) -> int:
    async with AsyncBillingGatewayClient(args.target) as client:
        registrar = Registrar(client, step_budget=args.budget)
        try:
            r = await registrar.register(Customer(args.customer_id, args.name, args.email,
                                                  args.instance_id, plan=args.plan))
        except BillingGatewayError as e:
            print(f"registration failed: {e}", file=sys.stderr)
            return 1
    print(f"account {r.account_id} (created={r.account_created}), subscription "
          f"{r.subscription_id} (created={r.subscription_created}), phase {r.phase}, "
          f"trial ends {r.trial_end_date or '-'}")
    return 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--target", default="127.0.0.1:50051", help="gateway host:port")
    parser.add_argument("--plan", default="basic-monthly", help="catalog plan")
    parser.add_argument("--budget", type=float, default=30.0, help="seconds per step")
    parser.add_argument("customer_id")
    parser.add_argument("name")
    parser.add_argument("email")
    parser.add_argument("instance_id")
    sys.exit(asyncio.run(_main(parser.parse_args())))
