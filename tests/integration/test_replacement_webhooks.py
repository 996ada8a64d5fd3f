"""A plan change by replacement through the webhooks function (called as AWS calls it) and the fake
Razorpay over a real socket: every order of the webhooks involved, each delivered twice, ends in one state.

The events of an upgrade from pro to enterprise by replacement: the new subscription's `authenticated`,
`activated` and `charged`, and the old one's `cancelled`. Razorpay sends the old one's `cancelled` after
we cancel it, but it may be delivered before the new one's events, and a customer may have cancelled the
old one on their own first: the 24 orders cover both. The new subscription is stored by adoption, from
the notes Razorpay echoes (user id, tier, and which subscription it replaces)."""

from __future__ import annotations

import itertools
import json
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import psycopg
import pytest
from psycopg.rows import dict_row
from pydantic import SecretStr

from local.fake_razorpay import Delay, FakeRazorpay
from oneai.billing.razorpay_client import RazorpayClient
from oneai.billing.replacement import sweep_replacements
from oneai.config import override_settings
from tests.integration.test_webhooks import SECRET, FakeLambdaContext, sign, url_event

PRO_PLAN = "plan_ReplPro"
ENTERPRISE_PLAN = "plan_ReplEnterprise"
EVENTS = ("new.authenticated", "new.activated", "new.charged", "old.cancelled")

Deliver = Callable[[bytes, str], int]


@pytest.fixture(scope="module")
def fake_razorpay() -> Iterator[FakeRazorpay]:
    with FakeRazorpay() as fake:
        yield fake


@pytest.fixture
def razorpay(fake_razorpay: FakeRazorpay) -> RazorpayClient:
    fake_razorpay.reset()
    return RazorpayClient(
        key_id=fake_razorpay.key_id,
        key_secret=fake_razorpay.key_secret,
        base_url=fake_razorpay.base_url,
        timeout_seconds=2,
    )


@pytest.fixture
def deliver(database_url: str, fake_razorpay: FakeRazorpay) -> Iterator[Deliver]:
    """POST a signed body with an event id to the deployed entry point; the function's Razorpay is the fake."""
    from webhooks.handler import lambda_handler

    with override_settings(
        database_url=SecretStr(database_url),
        razorpay_webhook_secret=SecretStr(SECRET),
        razorpay_webhook_secret_previous=None,
        razorpay_plan_ids=f"pro={PRO_PLAN},enterprise={ENTERPRISE_PLAN}",
        razorpay_key_id=fake_razorpay.key_id,
        razorpay_key_secret=SecretStr(fake_razorpay.key_secret),
        razorpay_api_base_url=fake_razorpay.base_url,
        razorpay_timeout_seconds=2.0,
        event_bus_name=None,
    ):

        def post(body: bytes, event_id: str) -> int:
            result = lambda_handler(url_event(body, signature=sign(body), event_id=event_id), FakeLambdaContext())
            return int(result["statusCode"])

        yield post


def new_user(database_url: str) -> uuid.UUID:
    user_id = uuid.uuid4()
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("insert into auth.users (id, email) values (%s, %s)", (user_id, f"{user_id.hex[:10]}@r.test"))
    return user_id


def rows(database_url: str, user_id: uuid.UUID) -> tuple[dict[str, Any], list[dict[str, Any]], list[str]]:
    with psycopg.connect(database_url, row_factory=dict_row) as conn:
        user = conn.execute(
            "select subscription_tier, subscription_status from public.users where id = %s", (user_id,)
        ).fetchone()
        subscriptions = conn.execute(
            "select provider_subscription_id, status, tier, replaces_subscription_id is not null as replaces,"
            " replaced_cancel, cancel_at_period_end from public.subscriptions where user_id = %s"
            " order by created_at, id",
            (user_id,),
        ).fetchall()
        reasons = conn.execute(
            "select change_reason from public.subscription_history where user_id = %s order by changed_at, id",
            (user_id,),
        ).fetchall()
    assert user is not None
    return user, subscriptions, [r["change_reason"] for r in reasons]


def test_every_order_of_the_replacements_webhooks_twice_ends_in_one_state(
    deliver: Deliver, razorpay: RazorpayClient, fake_razorpay: FakeRazorpay, database_url: str
) -> None:
    finals = []
    for order in itertools.permutations(EVENTS):
        user_id = new_user(database_url)
        # GIVEN a paying pro customer (the old subscription, adopted from its activation)
        old = razorpay.create_subscription(
            PRO_PLAN, total_count=12, notes={"user_id": str(user_id), "tier": "pro"}
        )
        fake_razorpay.complete_checkout(old.id)
        base = int(time.time()) - 600
        assert (
            deliver(fake_razorpay.webhook_body("subscription.activated", old.id, created_at=base), "a" + old.id)
            == 200
        )
        # AND an enterprise replacement that the customer has paid for at Razorpay
        notes = {"user_id": str(user_id), "tier": "enterprise", "replaces": old.id}
        new = razorpay.create_subscription(ENTERPRISE_PLAN, total_count=12, notes=notes)
        fake_razorpay.complete_checkout(new.id)
        times = {name: base + 60 + 10 * i for i, name in enumerate(EVENTS)}
        # WHEN the four webhooks arrive in this order, and then each again (Razorpay's redelivery)
        for name in order + order:
            which, event = name.split(".")
            subscription_id = new.id if which == "new" else old.id
            if name == "old.cancelled" and fake_razorpay.subscription(old.id)["status"] != "cancelled":
                # delivered before we cancelled it: the customer cancelled it at Razorpay themselves
                fake_razorpay.update_subscription(old.id, status="cancelled", ended_at=times[name])
            body = fake_razorpay.webhook_body(f"subscription.{event}", subscription_id, created_at=times[name])
            if event == "cancelled":  # the entity as Razorpay sent it then
                document = json.loads(body)
                document["payload"]["subscription"]["entity"]["status"] = "cancelled"
                body = json.dumps(document).encode()
            assert deliver(body, f"evt_{name}_{subscription_id}") == 200, (order, name)
        user, subscriptions, reasons = rows(database_url, user_id)
        at_razorpay = (fake_razorpay.subscription(old.id)["status"], fake_razorpay.subscription(new.id)["status"])
        cancels = len(fake_razorpay.requests_to("POST", f"/{old.id}/cancel"))
        finals.append(
            (
                order,
                user,
                [{k: v for k, v in s.items() if k != "provider_subscription_id"} for s in subscriptions],
                at_razorpay,
                reasons,
                cancels,
            )
        )

    expected_user = {"subscription_tier": "enterprise", "subscription_status": "active"}
    expected_rows = [
        {
            "status": "cancelled",
            "tier": "pro",
            "replaces": False,
            "replaced_cancel": None,
            "cancel_at_period_end": False,
        },
        {
            "status": "active",
            "tier": "enterprise",
            "replaces": True,
            "replaced_cancel": "done",
            "cancel_at_period_end": False,
        },
    ]
    for order, user, subscriptions, at_razorpay, reasons, cancels in finals:
        # THEN one state, whatever the order: enterprise; the old one cancelled here and at Razorpay
        assert user == expected_user, order
        assert subscriptions == expected_rows, order
        assert at_razorpay == ("cancelled", "active"), order
        paid_first = order.index("old.cancelled") > min(order.index("new.activated"), order.index("new.charged"))
        if paid_first:
            # the tier changed once, and we asked Razorpay to cancel the old one once
            assert reasons == ["new_subscription", "upgrade"], order
            assert cancels == 1, order
        else:
            # the customer had cancelled pro before paying for enterprise: free in between, no cancel asked
            assert reasons == ["new_subscription", "cancellation", "new_subscription"], order
            assert cancels == 0, order


def test_a_slow_razorpay_never_delays_the_webhook_past_its_budget_and_the_sweep_settles_the_cancel(
    deliver: Deliver, razorpay: RazorpayClient, fake_razorpay: FakeRazorpay, database_url: str, db: Any
) -> None:
    user_id = new_user(database_url)
    old = razorpay.create_subscription(PRO_PLAN, total_count=12, notes={"user_id": str(user_id), "tier": "pro"})
    fake_razorpay.complete_checkout(old.id)
    assert deliver(fake_razorpay.webhook_body("subscription.activated", old.id), f"evt_a_{old.id}") == 200
    notes = {"user_id": str(user_id), "tier": "enterprise", "replaces": old.id}
    new = razorpay.create_subscription(ENTERPRISE_PLAN, total_count=12, notes=notes)
    fake_razorpay.complete_checkout(new.id)
    # GIVEN Razorpay takes 3 s to answer the cancel (it does cancel, after the webhook gave up waiting)
    fake_razorpay.script(Delay(3.0), method="POST")
    # WHEN the replacement's activation arrives
    started = time.monotonic()
    status = deliver(fake_razorpay.webhook_body("subscription.activated", new.id), f"evt_b_{new.id}")
    elapsed = time.monotonic() - started
    # THEN it is answered well inside Razorpay's 5 s, with the tier changed and the cancel still owed
    assert status == 200 and elapsed < 2.5, elapsed
    user, subscriptions, reasons = rows(database_url, user_id)
    assert user["subscription_tier"] == "enterprise" and reasons == ["new_subscription", "upgrade"]
    assert [s["replaced_cancel"] for s in subscriptions] == [None, "now"]
    deadline = time.monotonic() + 5
    while fake_razorpay.subscription(old.id)["status"] != "cancelled" and time.monotonic() < deadline:
        time.sleep(0.05)
    # WHEN the quota-reset sweep runs: Razorpay refuses to cancel what it has cancelled meanwhile, which
    # counts as done, and the cancel is recorded
    with override_settings(
        razorpay_key_id=fake_razorpay.key_id,
        razorpay_key_secret=SecretStr(fake_razorpay.key_secret),
        razorpay_api_base_url=fake_razorpay.base_url,
    ):
        report = sweep_replacements(db, razorpay=razorpay)
    assert report.replaced_cancels_settled == 1
    _, subscriptions, reasons = rows(database_url, user_id)
    assert [(s["status"], s["replaced_cancel"]) for s in subscriptions] == [
        ("cancelled", None),
        ("active", "done"),
    ]
    assert reasons == ["new_subscription", "upgrade"]
    assert sweep_replacements(db, razorpay=razorpay).replaced_cancels_settled == 0
