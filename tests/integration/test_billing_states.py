"""Every state the subscription machine can reach, times every action a customer (or Razorpay) can take
there: the outcome is the one the table in docs/api/billing.md promises, our records agree with Razorpay
after each step, and from wherever the customer ends up they can always cancel and subscribe afresh.

The states are reached the way customers reach them: the billing app's routes (over ASGI, in this
process), the fake Razorpay over a real socket (its Checkout, its refusals) and Razorpay's webhooks,
signed, through the webhooks function's entry point. Each case is one new customer.

Views are written `tier:status` for the subscription in force (`~` when it is cancelled at the end of its
cycle), `+tier:status` for a plan change awaiting activation, `none` without either."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, Final

import anyio
import httpx
import psycopg
import pytest
from billing.app import build_app
from psycopg.rows import dict_row
from pydantic import SecretStr

from local.fake_razorpay import Delay, FakeRazorpay, Status, load_fixture
from oneai.config import override_settings
from tests.conftest import AppUser
from tests.integration.test_webhooks import PLAN_IDS, SECRET, FakeLambdaContext, sign, url_event

pytestmark = pytest.mark.timeout(120)

KEY_ID: Final = "rzp_test_StateMachine0001"
KEY_SECRET: Final = "state-machine-razorpay-secret-never-shown"
REFUSAL: Final = load_fixture("api_responses/api_create_subscription__failure.json")
TIMEOUT_SECONDS: Final = 2.0
# Razorpay statuses in which a subscription may still charge the customer (a halted one when its payment
# method is renewed, a paused one when resumed).
CHARGEABLE: Final = ("created", "authenticated", "active", "pending", "halted", "paused")


@pytest.fixture(scope="module")
def razorpay_fake() -> Iterator[FakeRazorpay]:
    with FakeRazorpay(key_id=KEY_ID, key_secret=KEY_SECRET) as fake:
        yield fake


@dataclass
class Customer:
    """One customer of the billing routes and of Razorpay, with what they see."""

    user: AppUser
    fake: FakeRazorpay
    app: Any
    database_url: str

    # -- the billing routes -----------------------------------------------------------------------

    def call(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        async def send() -> httpx.Response:
            transport = httpx.ASGITransport(app=self.app)
            async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1:3000") as http:
                return await http.request(method, path, headers=self.user.headers, **kwargs)

        return anyio.run(send)

    def create(self, tier: str = "pro") -> httpx.Response:
        return self.call("POST", "/subscription/create", json={"tier": tier})

    def update(self, tier: str, *, refused: bool = False) -> httpx.Response:
        if refused:  # paid by UPI, eMandate or an Indian card: Razorpay refuses the edit
            self.fake.script(Status(400, REFUSAL), method="PATCH")
        return self.call("POST", "/subscription/update", json={"tier": tier})

    def cancel(self, *, at_cycle_end: bool = True) -> httpx.Response:
        return self.call("POST", "/subscription/cancel", json={"at_cycle_end": at_cycle_end})

    def current(self) -> dict[str, Any]:
        answer = self.call("GET", "/subscription")
        assert answer.status_code == 200, answer.text
        return dict(answer.json())

    def view(self) -> str:
        body = self.current()
        subscription, replacement = body["subscription"], body["replacement"]
        if subscription is None:
            assert replacement is None, body  # a plan change always has a subscription in force
            return "none"
        shown = f"{subscription['tier']}:{subscription['status']}" + (
            "~" if subscription["cancel_at_period_end"] else ""
        )
        if replacement is not None:
            shown += f"+{replacement['tier']}:{replacement['status']}"
        return shown

    def ids(self) -> tuple[str | None, str | None]:
        body = self.current()
        return (
            body["subscription"]["razorpay_subscription_id"] if body["subscription"] else None,
            body["replacement"]["razorpay_subscription_id"] if body["replacement"] else None,
        )

    def verify(self, subscription_id: str) -> httpx.Response:
        payment_id = f"pay_{uuid.uuid4().hex[:14]}"
        signature = hmac.new(
            KEY_SECRET.encode(), f"{payment_id}|{subscription_id}".encode(), hashlib.sha256
        ).hexdigest()
        body = {
            "razorpay_payment_id": payment_id,
            "razorpay_subscription_id": subscription_id,
            "razorpay_signature": signature,
        }
        return self.call("POST", "/subscription/verify", json=body)

    # -- Razorpay ---------------------------------------------------------------------------------

    def webhook(self, event: str, subscription_id: str) -> None:
        from webhooks.handler import lambda_handler

        body = self.fake.webhook_body(event, subscription_id)
        request = url_event(body, signature=sign(body), event_id=f"evt_{uuid.uuid4().hex[:14]}")
        answer = lambda_handler(request, FakeLambdaContext())
        assert answer["statusCode"] == 200, answer

    def pays(self, subscription_id: str) -> None:
        """The customer completes Checkout; Razorpay's webhooks follow."""
        paid = self.fake.complete_checkout(subscription_id)
        self.webhook("subscription.authenticated", subscription_id)
        if paid["status"] == "active":
            self.webhook("subscription.activated", subscription_id)
            self.webhook("subscription.charged", subscription_id)

    def razorpay_moves(self, subscription_id: str, status: str) -> None:
        """Razorpay moves a subscription on its own (a failing renewal, a cancel from its emails)."""
        fields: dict[str, Any] = {"status": status}
        if status == "cancelled":
            fields["ended_at"] = int(self.fake.subscription(subscription_id)["created_at"]) + 60
        self.fake.update_subscription(subscription_id, **fields)
        self.webhook(f"subscription.{status}", subscription_id)

    # -- our records against Razorpay's -----------------------------------------------------------

    def records(self) -> list[dict[str, Any]]:
        with psycopg.connect(self.database_url, row_factory=dict_row) as conn:
            return conn.execute(
                "select provider_subscription_id, status, cancel_at_period_end from public.subscriptions"
                " where user_id = %s order by created_at, id",
                (self.user.id,),
            ).fetchall()

    def assert_records_agree_with_razorpay(self) -> None:
        for row in self.records():
            at_razorpay = self.fake.subscription(row["provider_subscription_id"])
            assert row["status"] == at_razorpay["status"], (row, at_razorpay["status"])

    def chargeable_at_razorpay(self) -> list[str]:
        return [
            row["provider_subscription_id"]
            for row in self.records()
            if self.fake.subscription(row["provider_subscription_id"])["status"] in CHARGEABLE
        ]


@pytest.fixture
def customer(
    database_url: str, razorpay_fake: FakeRazorpay, make_user: Callable[..., AppUser]
) -> Iterator[Customer]:
    razorpay_fake.reset()
    settings = {
        "database_url": SecretStr(database_url),
        "razorpay_key_id": KEY_ID,
        "razorpay_key_secret": SecretStr(KEY_SECRET),
        "razorpay_plan_ids": PLAN_IDS,
        "razorpay_api_base_url": razorpay_fake.base_url,
        "razorpay_timeout_seconds": TIMEOUT_SECONDS,
        "razorpay_webhook_secret": SecretStr(SECRET),
        "razorpay_webhook_secret_previous": None,
        "event_bus_name": None,
    }
    with override_settings(**settings):
        yield Customer(make_user(), razorpay_fake, build_app(), database_url)
    razorpay_fake.reset()


def wait_until(condition: Callable[[], bool], seconds: float = 10) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def ok(answer: httpx.Response) -> dict[str, Any]:
    assert answer.status_code == 200, answer.text
    return dict(answer.json())


# ---------------------------------------------------------------- the states, reached as customers reach them


def active_pro(c: Customer) -> str:
    subscription_id = ok(c.create("pro"))["subscription_id"]
    c.pays(subscription_id)
    return subscription_id


def reach_nothing(c: Customer) -> None:
    pass


def reach_ended(c: Customer) -> None:
    ok(c.create("pro"))
    ok(c.cancel())


def reach_unpaid(c: Customer) -> None:
    ok(c.create("pro"))


def reach_active(c: Customer) -> None:
    active_pro(c)


def reach_cancelling(c: Customer) -> None:
    active_pro(c)
    ok(c.cancel(at_cycle_end=True))


def reach_pending(c: Customer) -> None:
    c.razorpay_moves(active_pro(c), "pending")


def reach_halted(c: Customer) -> None:
    subscription_id = active_pro(c)
    c.razorpay_moves(subscription_id, "pending")
    c.razorpay_moves(subscription_id, "halted")


def reach_paused(c: Customer) -> None:
    c.razorpay_moves(active_pro(c), "paused")


def reach_unpaid_changing(c: Customer) -> None:
    """The issue's path: a pro subscription never paid, changed to enterprise."""
    ok(c.create("pro"))
    assert ok(c.update("enterprise"))["change"] == "recreated"


def reach_active_changing(c: Customer) -> None:
    active_pro(c)
    assert ok(c.update("enterprise", refused=True))["change"] == "recreated"


def reach_pending_changing(c: Customer) -> None:
    c.razorpay_moves(active_pro(c), "pending")
    assert ok(c.update("enterprise"))["change"] == "recreated"


def reach_downgrade_set_up(c: Customer) -> None:
    """Enterprise, downgraded to pro by replacement, its Checkout done: the old one ends with its cycle."""
    old = ok(c.create("enterprise"))["subscription_id"]
    c.pays(old)
    new = ok(c.update("pro", refused=True))["subscription_id"]
    c.pays(new)  # authenticated only: it charges from the old cycle's end


def reach_change_outlived(c: Customer) -> None:
    """A plan change awaiting Checkout whose old subscription Razorpay then ended."""
    old = active_pro(c)
    ok(c.update("enterprise", refused=True))
    c.razorpay_moves(old, "cancelled")


STATES: Final[dict[str, tuple[Callable[[Customer], None], str]]] = {
    "nothing": (reach_nothing, "none"),
    "ended": (reach_ended, "none"),
    "unpaid": (reach_unpaid, "pro:created"),
    "active": (reach_active, "pro:active"),
    "cancelling": (reach_cancelling, "pro:active~"),
    "pending": (reach_pending, "pro:pending"),
    "halted": (reach_halted, "none"),
    "paused": (reach_paused, "none"),
    "unpaid_changing": (reach_unpaid_changing, "pro:created+enterprise:created"),
    "active_changing": (reach_active_changing, "pro:active+enterprise:created"),
    "pending_changing": (reach_pending_changing, "pro:pending+enterprise:created"),
    "downgrade_set_up": (reach_downgrade_set_up, "enterprise:active~+pro:authenticated"),
    "change_outlived": (reach_change_outlived, "enterprise:created"),
}


# ---------------------------------------------------------------- the actions


def in_force_tier(c: Customer) -> str | None:
    subscription = c.current()["subscription"]
    return None if subscription is None else str(subscription["tier"])


def do_create(c: Customer) -> int:
    return c.create("pro").status_code


def do_cancel(c: Customer) -> int:
    return c.cancel(at_cycle_end=True).status_code


def do_cancel_now(c: Customer) -> int:
    return c.cancel(at_cycle_end=False).status_code


def do_update_other(c: Customer) -> int:
    """Change to the paid tier not in force (enterprise without one)."""
    return c.update("pro" if in_force_tier(c) == "enterprise" else "enterprise").status_code


def do_update_same(c: Customer) -> int:
    """Ask for the tier in force (pro without one): keep the plan, drop a pending change."""
    return c.update(in_force_tier(c) or "pro").status_code


def do_verify(c: Customer) -> int:
    """Checkout hands back the signature of the subscription the customer would pay: the plan change's,
    else the one in force, else the newest they ever had."""
    in_force, replacement = c.ids()
    records = c.records()
    target = (
        replacement or in_force or (records[-1]["provider_subscription_id"] if records else "sub_None0000000000")
    )
    return c.verify(target).status_code


def do_razorpay_ends_it(c: Customer) -> int:
    """Razorpay cancels the subscription in force on its own (the customer cancels from Razorpay's email,
    or a halted one is ended) and its webhook arrives. Without one: nothing happens."""
    in_force, _ = c.ids()
    records = [r["provider_subscription_id"] for r in c.records() if r["status"] in ("halted", "paused")]
    target = in_force or (records[-1] if records else None)
    if target is not None:
        c.razorpay_moves(target, "cancelled")
    return 200


def do_checkout_completed(c: Customer) -> int:
    """The customer pays the subscription awaiting Checkout (`created`) after all, from its link; Razorpay's
    webhooks follow (a replacement's activation has the old one cancelled). Without one: nothing happens."""
    in_force, replacement = c.ids()
    for target in (replacement, in_force):
        if target is not None and c.fake.subscription(target)["status"] == "created":
            c.pays(target)
            break
    return 200


ACTIONS: Final[dict[str, Callable[[Customer], int]]] = {
    "create": do_create,
    "cancel": do_cancel,
    "cancel_now": do_cancel_now,
    "update_other": do_update_other,
    "update_same": do_update_same,
    "verify": do_verify,
    "razorpay_ends_it": do_razorpay_ends_it,
    "checkout_completed": do_checkout_completed,
}

# (state, action) -> (status, what the customer sees after). The table of docs/api/billing.md.
# fmt: off
# Halted or paused: nothing in force, but Razorpay could revive it; create and cancel end it first.
DORMANT: Final = {
    "create": (200, "pro:created"), "cancel": (200, "none"), "cancel_now": (200, "none"),
    "update_other": (404, "none"), "update_same": (404, "none"), "verify": (400, "none"),
    "razorpay_ends_it": (200, "none"), "checkout_completed": (200, "none"),
}
OUTCOMES: Final[dict[str, dict[str, tuple[int, str]]]] = {
    "nothing": {
        "create": (200, "pro:created"), "cancel": (404, "none"), "cancel_now": (404, "none"),
        "update_other": (404, "none"), "update_same": (404, "none"), "verify": (400, "none"),
        "razorpay_ends_it": (200, "none"), "checkout_completed": (200, "none"),
    },
    "ended": {
        "create": (200, "pro:created"), "cancel": (404, "none"), "cancel_now": (404, "none"),
        "update_other": (404, "none"), "update_same": (404, "none"), "verify": (400, "none"),
        "razorpay_ends_it": (200, "none"), "checkout_completed": (200, "none"),
    },
    "unpaid": {
        "create": (409, "pro:created"), "cancel": (200, "none"), "cancel_now": (200, "none"),
        "update_other": (200, "pro:created+enterprise:created"), "update_same": (409, "pro:created"),
        "verify": (200, "pro:created"), "razorpay_ends_it": (200, "none"),
        "checkout_completed": (200, "pro:active"),
    },
    "active": {
        "create": (409, "pro:active"), "cancel": (200, "pro:active~"), "cancel_now": (200, "none"),
        "update_other": (200, "enterprise:active"), "update_same": (409, "pro:active"),
        "verify": (200, "pro:active"), "razorpay_ends_it": (200, "none"),
        "checkout_completed": (200, "pro:active"),
    },
    "cancelling": {
        "create": (409, "pro:active~"), "cancel": (200, "pro:active~"), "cancel_now": (200, "none"),
        "update_other": (200, "enterprise:active~"), "update_same": (409, "pro:active~"),
        "verify": (200, "pro:active~"), "razorpay_ends_it": (200, "none"),
        "checkout_completed": (200, "pro:active~"),
    },
    "pending": {
        "create": (409, "pro:pending"), "cancel": (200, "pro:pending~"), "cancel_now": (200, "none"),
        "update_other": (200, "pro:pending+enterprise:created"), "update_same": (409, "pro:pending"),
        "verify": (200, "pro:pending"), "razorpay_ends_it": (200, "none"),
        "checkout_completed": (200, "pro:pending"),
    },
    "halted": DORMANT,
    "paused": DORMANT,
    "unpaid_changing": {
        "create": (409, "pro:created+enterprise:created"), "cancel": (200, "none"), "cancel_now": (200, "none"),
        "update_other": (200, "pro:created+enterprise:created"), "update_same": (200, "pro:created"),
        "verify": (200, "pro:created+enterprise:created"), "razorpay_ends_it": (200, "enterprise:created"),
        "checkout_completed": (200, "enterprise:active"),
    },
    "active_changing": {
        "create": (409, "pro:active+enterprise:created"), "cancel": (200, "pro:active~"),
        "cancel_now": (200, "none"), "update_other": (200, "pro:active+enterprise:created"),
        "update_same": (200, "pro:active"), "verify": (200, "pro:active+enterprise:created"),
        "razorpay_ends_it": (200, "enterprise:created"), "checkout_completed": (200, "enterprise:active"),
    },
    "pending_changing": {
        "create": (409, "pro:pending+enterprise:created"), "cancel": (200, "pro:pending~"),
        "cancel_now": (200, "none"), "update_other": (200, "pro:pending+enterprise:created"),
        "update_same": (200, "pro:pending"), "verify": (200, "pro:pending+enterprise:created"),
        "razorpay_ends_it": (200, "enterprise:created"), "checkout_completed": (200, "enterprise:active"),
    },
    "downgrade_set_up": {
        "create": (409, "enterprise:active~+pro:authenticated"), "cancel": (200, "enterprise:active~"),
        "cancel_now": (200, "none"), "update_other": (200, "enterprise:active~+pro:authenticated"),
        "update_same": (409, "enterprise:active~+pro:authenticated"),
        "verify": (200, "enterprise:active~+pro:authenticated"), "razorpay_ends_it": (200, "pro:authenticated"),
        "checkout_completed": (200, "enterprise:active~+pro:authenticated"),
    },
    "change_outlived": {
        "create": (409, "enterprise:created"), "cancel": (200, "none"), "cancel_now": (200, "none"),
        "update_other": (200, "enterprise:created+pro:created"), "update_same": (409, "enterprise:created"),
        "verify": (200, "enterprise:created"), "razorpay_ends_it": (200, "none"),
        "checkout_completed": (200, "enterprise:active"),
    },
}
# fmt: on
PAIRS: Final = [(state, action) for state in STATES for action in ACTIONS]


def test_the_table_covers_every_state_and_action() -> None:
    assert {state: set(outcomes) for state, outcomes in OUTCOMES.items()} == {
        state: set(ACTIONS) for state in STATES
    }


@pytest.mark.parametrize(("state", "action"), PAIRS)
def test_every_state_and_action_has_its_outcome_and_a_way_forward(
    customer: Customer, state: str, action: str
) -> None:
    reach, seen = STATES[state]
    reach(customer)
    assert customer.view() == seen
    customer.assert_records_agree_with_razorpay()

    # WHEN the customer (or Razorpay) takes the action
    status, after = OUTCOMES[state][action]
    assert ACTIONS[action](customer) == status
    # THEN they see what the table says, and our records agree with Razorpay's
    assert customer.view() == after
    customer.assert_records_agree_with_razorpay()

    # AND from there they can always end everything (404: there was nothing left) and subscribe afresh
    ended = customer.cancel(at_cycle_end=False)
    assert ended.status_code in (200, 404) and (ended.status_code == 200 or after == "none"), ended.text
    assert customer.view() == "none"
    assert customer.chargeable_at_razorpay() == []
    fresh = ok(customer.create("enterprise"))
    assert customer.view() == "enterprise:created"
    assert customer.ids() == (fresh["subscription_id"], None)
    customer.assert_records_agree_with_razorpay()


# ---------------------------------------------------------------- the issue, and Razorpay failing part-way


def test_a_cancelled_subscription_with_a_plan_change_awaiting_checkout_is_no_dead_end(customer: Customer) -> None:
    # GIVEN a pro subscription changed to enterprise (recreated) and then cancelled
    ok(customer.create("pro"))
    change = ok(customer.update("enterprise"))
    assert change["change"] == "recreated"
    cancelled = ok(customer.cancel())
    # THEN the cancel ended both: the pro one and the enterprise one awaiting Checkout, at Razorpay too
    assert cancelled["subscription"]["status"] == "cancelled"
    assert cancelled["replacement"]["razorpay_subscription_id"] == change["subscription_id"]
    assert cancelled["replacement"]["status"] == "cancelled"
    assert customer.fake.subscription(change["subscription_id"])["status"] == "cancelled"
    assert customer.current()["subscription"] is None and customer.current()["replacement"] is None
    # AND a new subscription can be created
    assert customer.create("pro").status_code == 200


def test_when_razorpay_fails_the_second_cancel_the_plan_change_is_gone_and_the_subscription_as_it_was(
    customer: Customer,
) -> None:
    reach_active_changing(customer)
    old, new = customer.ids()
    assert old is not None and new is not None
    # WHEN Razorpay cancels the plan change's subscription, then fails on the one in force
    customer.fake.script(Delay(0), Status(500), method="POST")
    failed = customer.cancel()
    assert failed.status_code == 502 and failed.json()["error"]["code"] == "UPSTREAM_ERROR"
    # THEN what was done is recorded and the rest is as it was, here and at Razorpay
    assert customer.view() == "pro:active"
    assert customer.fake.subscription(new)["status"] == "cancelled"
    assert customer.fake.subscription(old)["status"] == "active"
    customer.assert_records_agree_with_razorpay()
    # AND asking again finishes it
    assert ok(customer.cancel())["replacement"] is None
    assert customer.view() == "pro:active~"


@pytest.mark.parametrize("state", ["unpaid", "active", "active_changing"])
def test_a_cancel_whose_answer_razorpay_lost_is_finished_by_asking_again(customer: Customer, state: str) -> None:
    STATES[state][0](customer)
    # WHEN Razorpay cancels but its answer comes too late (our client gives up): 502, nothing recorded
    customer.fake.script(Delay(TIMEOUT_SECONDS + 1), method="POST")
    assert customer.cancel(at_cycle_end=False).status_code == 502
    lost = customer.fake.requests_to("POST", "/cancel")[0].path.split("/")[3]
    wait_until(lambda: customer.fake.subscription(lost)["status"] == "cancelled")  # Razorpay did it
    assert {r["provider_subscription_id"]: r["status"] for r in customer.records()}[lost] != "cancelled"
    # THEN asking again: Razorpay refuses to cancel what has ended, which counts as done, and the rest follows
    assert ok(customer.cancel(at_cycle_end=False))["subscription"]["status"] == "cancelled"
    assert customer.view() == "none"
    customer.assert_records_agree_with_razorpay()
    assert customer.chargeable_at_razorpay() == []
    assert customer.create("pro").status_code == 200


def test_dropping_a_plan_change_razorpay_will_not_cancel_changes_nothing(customer: Customer) -> None:
    reach_active_changing(customer)
    customer.fake.script(Status(500), method="POST")
    assert customer.update("pro").status_code == 502
    assert customer.view() == "pro:active+enterprise:created"
    customer.assert_records_agree_with_razorpay()
    # AND asking again drops it
    reverted = ok(customer.update("pro"))
    assert (reverted["change"], reverted["checkout_required"], reverted["tier"]) == ("reverted", False, "pro")
    assert customer.view() == "pro:active"


def test_a_plan_change_paid_for_before_its_webhooks_arrive_is_not_dropped(customer: Customer) -> None:
    reach_active_changing(customer)
    old, new = customer.ids()
    assert old is not None and new is not None
    customer.fake.complete_checkout(new)  # paid at Razorpay; the webhooks are on their way
    refused = customer.update("pro")
    assert refused.status_code == 409, refused.text
    assert refused.json()["error"]["details"] == {"tier": "enterprise", "subscription_id": new}
    assert customer.fake.requests_to("POST", "/cancel") == []
    assert customer.fake.subscription(new)["status"] == "active"
    # AND when they arrive, the change is done as paid for
    for event in ("subscription.authenticated", "subscription.activated", "subscription.charged"):
        customer.webhook(event, new)
    assert customer.view() == "enterprise:active"


def test_a_plan_change_set_up_for_the_cycles_end_is_kept_and_the_409_says_why(customer: Customer) -> None:
    reach_downgrade_set_up(customer)
    refused = customer.update("enterprise")
    assert refused.status_code == 409
    error = refused.json()["error"]
    assert error["details"]["tier"] == "pro"
    assert "end of the current cycle" in error["message"]


@pytest.mark.parametrize("state", ["halted", "paused"])
def test_a_new_subscription_ends_one_razorpay_could_revive_first(customer: Customer, state: str) -> None:
    STATES[state][0](customer)
    (dormant,) = customer.records()
    # WHEN Razorpay fails to cancel it: nothing new is created
    customer.fake.script(Status(500), method="POST")
    assert customer.create("enterprise").status_code == 502
    assert [r["status"] for r in customer.records()] == [state]
    # WHEN it works: the old one is cancelled at Razorpay first, then the new one is created
    fresh = ok(customer.create("enterprise"))["subscription_id"]
    cancel, create = [r for r in customer.fake.requests if r.method == "POST"][-2:]
    assert cancel.path == f"/v1/subscriptions/{dormant['provider_subscription_id']}/cancel"
    assert create.path == "/v1/subscriptions"
    assert customer.chargeable_at_razorpay() == [fresh]
    customer.assert_records_agree_with_razorpay()


def test_create_beside_a_plan_change_whose_subscription_ended_names_the_way_forward(customer: Customer) -> None:
    reach_change_outlived(customer)
    in_force, _ = customer.ids()
    refused = customer.create("pro")
    assert refused.status_code == 409
    error = refused.json()["error"]
    assert "/subscription/update" in error["message"] and "cancel" in error["message"]
    assert error["details"] == {"subscription_id": in_force, "status": "created", "tier": "enterprise"}
    assert json.dumps(error).count(KEY_SECRET) == 0


def test_create_beside_a_subscription_ending_with_its_cycle_says_to_cancel_it_now(customer: Customer) -> None:
    reach_cancelling(customer)
    refused = customer.create("enterprise")
    assert refused.status_code == 409
    assert "cancel it now" in refused.json()["error"]["message"]
    # AND doing so works
    assert ok(customer.cancel(at_cycle_end=False))["subscription"]["status"] == "cancelled"
    assert customer.create("enterprise").status_code == 200
