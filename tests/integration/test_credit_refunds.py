"""The credits ledger's refund and adjustment rows (issue 26, item 4): Razorpay's `refund.processed` of a
payment that bought credits debits the refunded amount once per refund id, in any order with the purchase's
events, never below zero; an admin's adjustment is signed, limited to the available balance, and audited."""

from __future__ import annotations

import uuid
from decimal import Decimal
from typing import Any
from uuid import UUID

import pytest
from pydantic import SecretStr

from local.fake_razorpay import FakeRazorpay
from oneai.admin.workspaces import adjust_credits
from oneai.billing.razorpay_client import build_razorpay_client
from oneai.config import get_settings, override_settings
from oneai.credits import service as credits
from oneai.credits.models import AdjustRequest, TransactionQuery
from oneai.db.connection import Database
from oneai.errors import NotFoundError, ValidationError
from tests.aws_support import captured_events
from tests.integration.test_admin import as_admin
from tests.integration.test_credits import Paid, account, admin, ledger, paid_order
from tests.integration.test_webhooks import BUS, Deliver, deliver, sign
from tests.integration.test_workspaces_rls import team

__all__ = ["deliver", "paid_order"]  # fixtures, used by name

pytestmark = pytest.mark.integration


def credit(deliver: Deliver, fake: FakeRazorpay, order_id: str, payment_id: str) -> None:
    body = fake.order_webhook_body("order.paid", order_id, payment_id)
    assert deliver(body, event_id=f"evt_paid_{order_id}").status == 200


def refunds(database_url: str, workspace_id: UUID) -> list[tuple[Decimal, Decimal, str]]:
    return [
        (t["amount"], t["shortfall"], t["razorpay_refund_id"])
        for t in ledger(database_url, workspace_id)
        if t["type"] == "refund"
    ]


def test_a_processed_refund_debits_once_per_refund_id_however_often_delivered(
    deliver: Deliver, paid_order: Paid, database_url: str, db: Database
) -> None:
    fake, owner, workspace_id, order_id, payment_id = paid_order
    credit(deliver, fake, order_id, payment_id)
    refund = fake.refund_payment(payment_id, amount=12_550)
    body = fake.refund_webhook_body(refund["id"])
    assert deliver(body, event_id="evt_r1").status == 200
    assert deliver(body, event_id="evt_r1").status == 200  # a redelivery
    assert deliver(body, event_id="evt_r1_other").status == 200  # the same refund under another event id
    assert refunds(database_url, workspace_id) == [(Decimal("-125.5"), Decimal(0), refund["id"])]
    assert account(database_url, workspace_id)["balance"] == Decimal("374.50")
    # the owner's ledger lists it under type=refund, with its payment and refund ids
    with db.user_transaction(owner.principal) as conn:
        page = credits.list_transactions(conn, workspace_id, TransactionQuery(type="refund"))
    [item] = [t.model_dump(mode="json") for t in page.items]
    assert (item["type"], item["amount"], item["balance_after"]) == ("refund", "-125.50", "374.50")
    assert (item["razorpay_payment_id"], item["razorpay_refund_id"], item["razorpay_order_id"]) == (
        payment_id,
        refund["id"],
        order_id,
    )


def test_partial_refunds_sum_and_never_debit_more_than_the_purchase(
    deliver: Deliver, paid_order: Paid, database_url: str
) -> None:
    fake, _, workspace_id, order_id, payment_id = paid_order
    credit(deliver, fake, order_id, payment_id)
    first = fake.refund_payment(payment_id, amount=10_000)
    second = fake.refund_payment(payment_id, amount=15_000)
    for refund in (second, first):  # any order
        assert deliver(fake.refund_webhook_body(refund["id"])).status == 200
    assert sorted(r[0] for r in refunds(database_url, workspace_id)) == [Decimal("-150"), Decimal("-100")]
    assert account(database_url, workspace_id)["balance"] == Decimal("250")
    # a refund that asks for more than the purchase has left (not what Razorpay sends) takes only what is left
    third = fake.refund_payment(payment_id, amount=40_000)
    assert deliver(fake.refund_webhook_body(third["id"])).status == 200
    assert account(database_url, workspace_id)["balance"] == 0
    assert sum(r[0] for r in refunds(database_url, workspace_id)) == Decimal("-500")


def test_a_refund_before_the_purchases_events_credits_the_purchase_once_then_debits(
    deliver: Deliver, paid_order: Paid, database_url: str
) -> None:
    fake, _, workspace_id, order_id, payment_id = paid_order
    refund = fake.refund_payment(payment_id, amount=20_000)
    assert deliver(fake.refund_webhook_body(refund["id"])).status == 200
    assert account(database_url, workspace_id)["balance"] == Decimal("300")
    for event in ("payment.captured", "order.paid"):  # the purchase's own events arrive late
        assert deliver(fake.order_webhook_body(event, order_id, payment_id)).status == 200
    assert [t["type"] for t in ledger(database_url, workspace_id)] == ["purchase", "refund"]
    assert account(database_url, workspace_id)["balance"] == Decimal("300")


def test_a_refund_the_balance_cannot_cover_takes_what_is_left_and_records_the_shortfall(
    deliver: Deliver, paid_order: Paid, database_url: str, db: Database, caplog: pytest.LogCaptureFixture
) -> None:
    fake, owner, workspace_id, order_id, payment_id = paid_order
    credit(deliver, fake, order_id, payment_id)
    # a running reply holds 100 and 350 were spent: 150 left, 50 of it available
    with db.user_transaction(owner.principal) as conn:
        spent = credits.reserve(conn, workspace_id, Decimal("350"))
        credits.settle(conn, db.settings, spent.id, cost_usd=Decimal(0))
    with admin(database_url) as conn:
        conn.execute("update public.workspace_credits set balance = 150 where workspace_id = %s", (workspace_id,))
    with db.user_transaction(owner.principal) as conn:
        credits.reserve(conn, workspace_id, Decimal("100"))
    refund = fake.refund_payment(payment_id)  # the whole 500
    with caplog.at_level("WARNING"):
        assert deliver(fake.refund_webhook_body(refund["id"])).status == 200
    assert refunds(database_url, workspace_id) == [(Decimal("-50"), Decimal("450"), refund["id"])]
    row = account(database_url, workspace_id)
    assert (row["balance"], row["reserved"]) == (Decimal("100"), Decimal("100"))
    assert any("refund took more than the balance" in r.getMessage() for r in caplog.records)


def test_a_forged_refund_changes_nothing(deliver: Deliver, paid_order: Paid, database_url: str) -> None:
    fake, _, workspace_id, order_id, payment_id = paid_order
    credit(deliver, fake, order_id, payment_id)
    refund = fake.refund_payment(payment_id)
    body = fake.refund_webhook_body(refund["id"])
    assert deliver(body, signature=sign(body, "not-the-secret")).status == 400
    assert deliver(body, signature=None).status == 400
    assert refunds(database_url, workspace_id) == []
    assert account(database_url, workspace_id)["balance"] == Decimal("500")


def test_a_refund_of_a_payment_that_bought_no_credits_is_only_recorded(
    deliver: Deliver, database_url: str
) -> None:
    with FakeRazorpay() as fake:
        with override_settings(
            razorpay_key_id=fake.key_id,
            razorpay_key_secret=SecretStr(fake.key_secret),
            razorpay_api_base_url=fake.base_url,
        ):
            order = build_razorpay_client(get_settings()).create_order(
                amount_paise=10000, currency="INR", receipt="elsewhere", notes={}
            )
        payment = fake.pay_order(order.id)
        refund = fake.refund_payment(payment["id"])
        with admin(database_url) as conn:
            before = conn.execute("select count(*) as n from public.credit_transactions").fetchone()
        event_id = f"evt_{uuid.uuid4().hex[:12]}"
        assert deliver(fake.refund_webhook_body(refund["id"]), event_id=event_id).status == 200
    with admin(database_url) as conn:
        after = conn.execute("select count(*) as n from public.credit_transactions").fetchone()
        recorded = conn.execute(
            "select event_type from public.processed_webhook_events where event_id = %s", (event_id,)
        ).fetchone()
    assert before == after
    assert recorded == {"event_type": "refund.processed"}


def test_a_refund_or_an_admins_debit_under_the_threshold_warns_the_owner_once_per_crossing(
    deliver: Deliver, paid_order: Paid, db: Database, make_user: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Before, only a reply's settle counted a crossing: a refund that took the balance from 500 to 50 left
    it unwarned, and the settles after it started under the threshold (100), so no email ever came."""
    fake, owner, workspace_id, order_id, payment_id = paid_order
    credit(deliver, fake, order_id, payment_id)  # 500
    staff = as_admin(make_user())
    # INR 100 per USD and no markup: the reply's cost below converts exactly
    settings = get_settings().model_copy(update={"usd_inr_rate": Decimal(100), "credits_markup": Decimal(1)})
    with (
        captured_events(monkeypatch, bus=BUS, source="oneai.credits") as received,
        override_settings(event_bus_name=BUS),
    ):
        refund = fake.refund_payment(payment_id, amount=45_000)
        body = fake.refund_webhook_body(refund["id"])
        assert deliver(body, event_id="evt_refund_low").status == 200  # 50: crossed
        assert deliver(body, event_id="evt_refund_low").status == 200  # a redelivery announces nothing more
        with db.user_transaction(owner.principal) as conn:
            held = credits.reserve(conn, workspace_id, Decimal("10"))
            settled = credits.settle(conn, settings, held.id, cost_usd=Decimal("0.10"))
        assert settled is not None and settled.low_balance is None  # 40: still under, no second email
        adjust_credits(db, staff, workspace_id, AdjustRequest(amount="200", reason="Goodwill"))  # 240: re-armed
        adjust_credits(db, staff, workspace_id, AdjustRequest(amount="-160", reason="Double grant"))  # 80: crossed
        adjust_credits(db, staff, workspace_id, AdjustRequest(amount="-5", reason="Fee"))  # 75: still under
        events = received()
    assert sorted((e["detail-type"], e["detail"]["crossing"], e["detail"]["balance"]) for e in events) == [
        ("CreditsLow", 1, "50.00"),
        ("CreditsLow", 2, "80.00"),
    ]
    assert {(e["detail"]["user_id"], e["detail"]["workspace_id"]) for e in events} == {
        (str(owner.id), str(workspace_id))
    }


# ---------------------------------------------------------------------------------------------- adjustments


def test_an_admin_adjustment_is_signed_limited_to_the_available_balance_and_audited(
    db: Database, make_user: Any, database_url: str
) -> None:
    owner, staff = make_user(), make_user()
    workspace_id = team(db, owner)
    staff_principal = as_admin(staff)
    up = adjust_credits(db, staff_principal, workspace_id, AdjustRequest(amount="40.25", reason="Goodwill"))
    assert up.model_dump(mode="json")["balance"] == "40.25"
    # a reply holds 10: at most 30.25 may be taken
    with db.user_transaction(owner.principal) as conn:
        credits.reserve(conn, workspace_id, Decimal("10"))
    with pytest.raises(ValidationError) as refused:
        adjust_credits(db, staff_principal, workspace_id, AdjustRequest(amount="-30.26", reason="Too much"))
    assert refused.value.details["available"] == "30.25"
    down = adjust_credits(db, staff_principal, workspace_id, AdjustRequest(amount="-30.25", reason="Double grant"))
    assert down.model_dump(mode="json")["amount"] == "-30.25"
    assert account(database_url, workspace_id)["balance"] == Decimal("10")
    with pytest.raises(NotFoundError):
        adjust_credits(db, staff_principal, uuid.uuid4(), AdjustRequest(amount="1", reason="nobody"))
    for bad in ("0", "-0.00", "1.234", "--1", 1.5):
        with pytest.raises(ValueError):
            AdjustRequest(amount=bad, reason="x")  # type: ignore[arg-type]
    assert [(t["type"], t["amount"], t["actor_id"], t["reason"]) for t in ledger(database_url, workspace_id)] == [
        ("adjustment", Decimal("40.25"), staff.id, "Goodwill"),
        ("adjustment", Decimal("-30.25"), staff.id, "Double grant"),
    ]
    with db.user_transaction(owner.principal) as conn:
        page = credits.list_transactions(conn, workspace_id, TransactionQuery(type="adjustment"))
    assert [t.model_dump(mode="json")["amount"] for t in page.items] == ["-30.25", "40.25"]
    with admin(database_url) as conn:
        audit = conn.execute(
            "select action, target_id, before, after, reason from public.audit_log where actor_id = %s"
            " order by at",
            (staff.id,),
        ).fetchall()
    assert audit == [
        {
            "action": "workspace.credits_adjust",
            "target_id": str(workspace_id),
            "before": {"credits_balance": "0.00"},
            "after": {"credits_balance": "40.25", "adjusted": "40.25"},
            "reason": "Goodwill",
        },
        {
            "action": "workspace.credits_adjust",
            "target_id": str(workspace_id),
            "before": {"credits_balance": "40.25"},
            "after": {"credits_balance": "10.00", "adjusted": "-30.25"},
            "reason": "Double grant",
        },
    ]
    # the admin's account may be erased: the ledger keeps the adjustments, without their author
    with admin(database_url) as conn:
        conn.execute("delete from public.users where id = %s", (staff.id,))
    assert [(t["type"], t["actor_id"]) for t in ledger(database_url, workspace_id)] == [
        ("adjustment", None),
        ("adjustment", None),
    ]
