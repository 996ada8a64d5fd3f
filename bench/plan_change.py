"""What a plan change by replacement adds to the webhook that activates the new subscription, measured
against a plain activation in the same run.

The handler is the deployed entry point (`webhooks.handler.lambda_handler`), warm, against a throwaway
database; Razorpay is the fake Razorpay (`local.fake_razorpay`) on a loopback socket, serving the bodies of
the webhooks too. Cases, each a fresh user per call:
- baseline, plain activation: `subscription.activated` of a first subscription (adoption, tier change);
- replacement activation: `subscription.activated` of an enterprise subscription that replaces the user's
  active pro one: the same work, plus the owed cancel written on the row, plus, after the commit, the
  cancel of the pro one at Razorpay (one HTTP round trip) and its record (one more transaction);
- baseline, one Razorpay cancel: the SDK's cancel call alone, over the same socket.
Setup (users, subscriptions at the fake, the pro activations) happens before the clock starts. Goal: the
replacement activation's p95 stays under 1.5 s over the plain one with a local Razorpay, far inside
Razorpay's 5 s (in AWS, add the real Razorpay's round trip, capped at 1.5 s per call by the handler).
"""

from __future__ import annotations

import hashlib
import hmac
import sys
import time
import uuid
from collections.abc import Callable
from typing import Any, Final

from pydantic import SecretStr

from bench._db import throwaway_database
from bench._report import ms, table
from bench.webhooks import WEBHOOKS_CODE, Context, figures, make_users, quiet_output, timed
from local.apigw import HttpRequest, build_function_url_event
from oneai.config import override_settings

CALLS: Final = 100
QUICK_CALLS: Final = 20
SECRET: Final = "bench-plan-change-webhook-secret"  # noqa: S105 - a throwaway key
PRO_PLAN: Final = "plan_BenchPro"
ENTERPRISE_PLAN: Final = "plan_BenchEnterprise"


def signed_event(body: bytes) -> dict[str, Any]:
    signature = hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
    headers = [
        ("Content-Type", "application/json"),
        ("X-Razorpay-Signature", signature),
        ("X-Razorpay-Event-Id", f"evt_{uuid.uuid4().hex[:14]}"),
    ]
    return build_function_url_event(HttpRequest("POST", "/", headers=headers, body=body))


def run(*, quick: bool = False) -> None:
    from local.fake_razorpay import FakeRazorpay, fixtures_dir
    from oneai.billing.razorpay_client import RazorpayClient

    calls = QUICK_CALLS if quick else CALLS
    print(f"== plan_change: the webhook that activates a replacement, {calls} calls per case ==")
    if not fixtures_dir().is_dir():
        print(f"not run: the Razorpay fixtures are not at {fixtures_dir()} (set ONEAI_RAZORPAY_FIXTURES)")
        return
    if str(WEBHOOKS_CODE) not in sys.path:
        sys.path.insert(0, str(WEBHOOKS_CODE))
    started = time.perf_counter()
    with throwaway_database() as url, FakeRazorpay() as fake:
        client = RazorpayClient(
            key_id=fake.key_id, key_secret=fake.key_secret, base_url=fake.base_url, timeout_seconds=5
        )
        with override_settings(
            database_url=SecretStr(url),
            razorpay_webhook_secret=SecretStr(SECRET),
            razorpay_webhook_secret_previous=None,
            razorpay_plan_ids=f"pro={PRO_PLAN},enterprise={ENTERPRISE_PLAN}",
            razorpay_key_id=fake.key_id,
            razorpay_key_secret=SecretStr(fake.key_secret),
            razorpay_api_base_url=fake.base_url,
            event_bus_name=None,
            dev_mode=False,
        ):
            from webhooks.handler import lambda_handler

            context = Context()
            statuses: list[int] = []

            def invoke(event: dict[str, Any]) -> Callable[[], None]:
                return lambda: statuses.append(lambda_handler(event, context)["statusCode"])

            def subscription(user: uuid.UUID, plan: str, tier: str, **notes: str) -> str:
                created = client.create_subscription(
                    plan, total_count=12, notes={"user_id": str(user), "tier": tier, **notes}
                )
                fake.complete_checkout(created.id)
                return created.id

            with quiet_output():
                plain = [
                    signed_event(
                        fake.webhook_body("subscription.activated", subscription(u, ENTERPRISE_PLAN, "enterprise"))
                    )
                    for u in make_users(url, calls + 1)
                ]
                replacing = []
                for user in make_users(url, calls):
                    old = subscription(user, PRO_PLAN, "pro")
                    assert (
                        lambda_handler(signed_event(fake.webhook_body("subscription.activated", old)), context)[
                            "statusCode"
                        ]
                        == 200
                    )
                    new = subscription(user, ENTERPRISE_PLAN, "enterprise", replaces=old)
                    replacing.append(signed_event(fake.webhook_body("subscription.activated", new)))
                cancellable = [subscription(uuid.uuid4(), PRO_PLAN, "pro") for _ in range(calls)]
                invoke(plain[0])()  # warm
                statuses.clear()
                results = {
                    "baseline: plain activation (tier change)": timed([invoke(e) for e in plain[1:]]),
                    "replacement activation (+ cancel of the old one)": timed([invoke(e) for e in replacing]),
                    "baseline: one Razorpay cancel call": timed(
                        [lambda s=s: client.cancel_subscription(s, at_cycle_end=False) for s in cancellable]
                    ),
                }
            cancelled_old = sum(1 for r in fake.requests_to("POST", "/cancel") if r.status == 200) - calls
    rows = []
    for label, samples in results.items():
        p50, p95, worst = figures(samples)
        rows.append([label, str(len(samples)), ms(p50), ms(p95), ms(worst)])
    print(
        f"fake Razorpay on loopback; one process, calls one at a time; whole run {time.perf_counter() - started:.1f} s"
    )
    print(table(("case", "calls", "p50 ms", "p95 ms", "max ms"), rows))
    print(
        f"checks: {statuses.count(200)}/{2 * calls} webhooks answered 200;"
        f" {cancelled_old}/{calls} replaced subscriptions cancelled at Razorpay by their replacement's webhook"
    )
    added = (
        figures(results["replacement activation (+ cancel of the old one)"])[1]
        - figures(results["baseline: plain activation (tier change)"])[1]
    )
    print(f"added by the replacement at p95: {ms(added)} ms (goal < 1500 ms)  {'PASS' if added < 1.5 else 'MISS'}")


if __name__ == "__main__":
    run()
