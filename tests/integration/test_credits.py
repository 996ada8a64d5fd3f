"""Workspace credits at the SQL and service level (issue 26, items 4-5): the reservation never admits more than
the balance covers however many replies race, the balance never goes below zero and always equals what the
ledger says (purchases and grants minus settled usage), a purchase is credited once whatever Razorpay sends
and in whatever order, and membership decides who sees what (404 for a stranger, 403 below the role).

Concurrent replies are real transactions on their own connections, released at once by a barrier (as
tests/integration/test_quota_concurrency.py races the personal quota)."""

from __future__ import annotations

import itertools
import threading
import uuid
from collections.abc import Callable, Iterator
from decimal import Decimal
from typing import Any
from uuid import UUID

import psycopg
import pytest
from psycopg.rows import dict_row
from pydantic import SecretStr

from local.fake_razorpay import FakeRazorpay
from oneai.account.provisioning import welcome_new_user
from oneai.admin.workspaces import grant_credits
from oneai.billing.razorpay_client import build_razorpay_client
from oneai.config import get_settings, override_settings
from oneai.credits import service as credits
from oneai.credits.models import GrantRequest, TransactionQuery, UsageQuery
from oneai.db.connection import Database
from oneai.errors import ForbiddenError, InsufficientCreditsError, NotFoundError, OneAIError, ValidationError
from oneai.events import EventPublisher
from oneai.workspaces import service as workspaces
from tests.conftest import AppUser
from tests.integration.test_admin import as_admin
from tests.integration.test_webhooks import Deliver, deliver, sign
from tests.integration.test_workspaces_rls import personal_workspace, team

__all__ = ["deliver"]  # a fixture, used by name

pytestmark = pytest.mark.integration


def admin(database_url: str) -> psycopg.Connection[dict[str, Any]]:
    return psycopg.connect(database_url, autocommit=True, row_factory=dict_row)


def account(database_url: str, workspace_id: UUID) -> dict[str, Any]:
    with admin(database_url) as conn:
        row = conn.execute(
            "select * from public.workspace_credits where workspace_id = %s", (workspace_id,)
        ).fetchone()
    assert row is not None
    return row


def ledger(database_url: str, workspace_id: UUID) -> list[dict[str, Any]]:
    with admin(database_url) as conn:
        return conn.execute(
            "select * from public.credit_transactions where workspace_id = %s order by created_at, id",
            (workspace_id,),
        ).fetchall()


def buy(db: Database, database_url: str, workspace_id: UUID, amount: str) -> None:
    """A paid purchase as the webhook applies it: an order row, then Razorpay's word that it is paid."""
    order_id, paise = f"order_{uuid.uuid4().hex[:14]}", int(Decimal(amount) * 100)
    with admin(database_url) as conn:
        conn.execute(
            "insert into public.credit_orders (razorpay_order_id, workspace_id, amount, amount_paise)"
            " values (%s, %s, %s, %s)",
            (order_id, workspace_id, Decimal(amount), paise),
        )
    with db.service_transaction() as conn:
        answer = conn.execute(
            "select oneai_private.apply_credit_purchase(%s, %s, %s, 'INR') as a",
            (order_id, f"pay_{uuid.uuid4().hex[:14]}", paise),
        ).fetchone()
    assert answer is not None and answer["a"]["outcome"] == "credited"


class Recorder(EventPublisher):
    def __init__(self) -> None:
        self.events: list[tuple[str, str, dict[str, Any]]] = []

    def publish(self, source: str, detail_type: str, detail: dict[str, Any]) -> bool:
        self.events.append((source, detail_type, detail))
        return True


# ---------------------------------------------------------------------------------------------- the account


def test_a_new_workspace_has_a_balance_of_zero_and_its_members_see_it(db: Database, make_user: Any) -> None:
    owner, viewer, stranger = make_user(), make_user(), make_user()
    workspace_id = team(db, owner, {viewer.id: "viewer"})
    for member in (owner, viewer):
        with db.user_transaction(member.principal) as conn:
            got = credits.get_credits(conn, workspace_id)
        assert got.model_dump(mode="json") == {
            "balance": "0.00",
            "currency": "INR",
            "low_balance_threshold": "100.00",
        }
    with db.user_transaction(owner.principal) as conn:
        assert workspaces.get_workspace(conn, get_settings(), workspace_id).stats.credits_balance == "0.00"
    with db.user_transaction(stranger.principal) as conn, pytest.raises(NotFoundError):
        credits.get_credits(conn, workspace_id)


def test_the_welcome_grant_goes_once_to_a_new_users_personal_workspace(
    db: Database, make_user: Any, database_url: str
) -> None:
    user = make_user()
    with override_settings(database_url=SecretStr(database_url), welcome_credits=Decimal("50")) as settings:
        welcoming = Database(settings)
        try:
            welcome_new_user(welcoming, user.id)
            welcome_new_user(welcoming, user.id)  # a second first request
        finally:
            welcoming.close()
    personal = UUID(str(personal_workspace(db, user.id)["id"]))
    assert account(database_url, personal)["balance"] == Decimal("50")
    assert [(t["type"], t["amount"], t["reason"]) for t in ledger(database_url, personal)] == [
        ("grant", Decimal("50"), "welcome")
    ]


# ---------------------------------------------------------------------------------------------- reservations


@pytest.fixture
def databases(settings_with_db: Any) -> Iterator[Callable[[int], list[Database]]]:
    made: list[Database] = []

    def make(count: int) -> list[Database]:
        batch = [Database(settings_with_db) for _ in range(count)]
        made.extend(batch)
        return batch

    yield make
    for database in made:
        database.close()


def race(databases: list[Database], user: AppUser, work: Callable[[Database], Any]) -> list[Any]:
    barrier = threading.Barrier(len(databases))
    results: list[Any] = [None] * len(databases)

    def run(index: int, database: Database) -> None:
        with database.user_transaction(user.principal):
            pass  # the connection is open before the race starts
        barrier.wait(timeout=30)
        try:
            results[index] = work(database)
        except BaseException as exc:
            results[index] = exc

    threads = [threading.Thread(target=run, args=(i, d)) for i, d in enumerate(databases)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
        assert not thread.is_alive()
    return results


def test_fifty_concurrent_replies_against_a_balance_for_ten_admit_exactly_ten(
    db: Database, databases: Callable[[int], list[Database]], make_user: Any, database_url: str
) -> None:
    owner, viewer = make_user(), make_user()
    workspace_id = team(db, owner, {viewer.id: "viewer"})
    buy(db, database_url, workspace_id, "100.00")  # ten replies of 10.00

    def reply(database: Database) -> credits.Reservation:
        with database.user_transaction(viewer.principal) as conn:
            return credits.reserve(conn, workspace_id, Decimal("10.00"))

    results = race(databases(50), viewer, reply)
    admitted = [r for r in results if isinstance(r, credits.Reservation)]
    refused = [r for r in results if isinstance(r, InsufficientCreditsError)]
    assert (len(admitted), len(refused)) == (10, 40), [
        r for r in results if not isinstance(r, credits.Reservation)
    ][:3]
    assert {e.status for e in refused} == {402}
    assert {(e.details["balance"], e.details["needed"]) for e in refused} == {("0.00", "10.00")}
    assert account(database_url, workspace_id)["reserved"] == Decimal("100")

    # Half settle (real costs under and over the hold), the rest fail upstream and are refunded.
    settings = get_settings()
    costs_usd = [Decimal("0.05"), Decimal("0.1"), Decimal("0.117647"), Decimal("0.2"), Decimal("0")]
    with db.user_transaction(viewer.principal) as conn:
        settled = [
            credits.settle(conn, settings, r.id, cost_usd=c) for r, c in zip(admitted[:5], costs_usd, strict=True)
        ]
        assert all(credits.refund(conn, r.id) for r in admitted[5:])
        assert not credits.refund(conn, admitted[5].id)  # once
        assert credits.settle(conn, settings, admitted[0].id, cost_usd=Decimal("1")) is None  # once
    state = account(database_url, workspace_id)
    rows = ledger(database_url, workspace_id)
    usage = [t for t in rows if t["type"] == "usage"]
    purchases = [t for t in rows if t["type"] == "purchase"]
    assert state["reserved"] == 0 and state["balance"] >= 0
    assert state["balance"] == sum(t["amount"] for t in purchases) + sum(t["amount"] for t in usage)
    assert state["balance"] == Decimal("100") - sum(s.charged for s in settled if s is not None)
    assert rows[-1]["balance_after"] == state["balance"]
    # each settle recorded the conversion it used
    assert {(t["usd_inr_rate"], t["markup"]) for t in usage} == {(settings.usd_inr_rate, settings.credits_markup)}
    assert sorted(t["cost_usd"] for t in usage) == sorted(costs_usd)


def test_a_cost_over_what_remains_takes_the_balance_to_zero_and_records_the_shortfall(
    db: Database, make_user: Any, database_url: str
) -> None:
    owner = make_user()
    workspace_id = team(db, owner)
    buy(db, database_url, workspace_id, "100.00")
    settings = get_settings()
    with db.user_transaction(owner.principal) as conn:
        first = credits.reserve(conn, workspace_id, Decimal("60"))
        second = credits.reserve(conn, workspace_id, Decimal("40"))
        with pytest.raises(InsufficientCreditsError):
            credits.reserve(conn, workspace_id, Decimal("0.01"))
        # USD 2 at 85 x 1 = INR 170: only 60 is left beyond the other reply's hold of 40
        settled = credits.settle(conn, settings, first.id, cost_usd=Decimal("2"))
    assert settled is not None
    assert (settled.cost, settled.charged, settled.shortfall, settled.balance) == (
        Decimal("170"),
        Decimal("60"),
        Decimal("110"),
        Decimal("40"),
    )
    with db.user_transaction(owner.principal) as conn:
        last = credits.settle(conn, settings, second.id, cost_usd=Decimal("1"))
    assert last is not None and (last.charged, last.shortfall, last.balance) == (
        Decimal("40"),
        Decimal("45"),
        Decimal("0"),
    )
    assert account(database_url, workspace_id)["balance"] == 0


def test_only_members_reserve_and_a_router_models_negative_cost_charges_nothing(
    db: Database, make_user: Any, database_url: str
) -> None:
    owner, stranger = make_user(), make_user()
    workspace_id = team(db, owner)
    buy(db, database_url, workspace_id, "100.00")
    with db.user_transaction(stranger.principal) as conn, pytest.raises(NotFoundError):
        credits.reserve(conn, workspace_id, Decimal("1"))
    with db.service_transaction() as conn:  # a widget visitor's reply runs as the service
        held = credits.reserve(conn, workspace_id, Decimal("1"))
    with db.user_transaction(stranger.principal) as conn, pytest.raises(psycopg.errors.InsufficientPrivilege):
        credits.settle(conn, get_settings(), held.id, cost_usd=Decimal("0.01"))
    with db.service_transaction() as conn:
        settled = credits.settle(conn, get_settings(), held.id, cost_usd=Decimal("-1"))
    assert settled is not None and settled.charged == 0
    assert account(database_url, workspace_id)["balance"] == Decimal("100")


def test_one_low_balance_event_per_downward_crossing_rearmed_when_the_balance_is_back_over(
    db: Database, make_user: Any, database_url: str
) -> None:
    owner = make_user()
    workspace_id = team(db, owner)
    buy(db, database_url, workspace_id, "150.00")
    # INR 100 per USD and no markup: the costs below convert exactly
    settings, publisher = get_settings().model_copy(update={"usd_inr_rate": Decimal(100)}), Recorder()

    def spend(inr: str) -> credits.Settlement | None:
        usd = Decimal(inr) / settings.usd_inr_rate / settings.credits_markup
        with db.user_transaction(owner.principal) as conn:
            held = credits.reserve(conn, workspace_id, Decimal(inr))
            settled = credits.settle(conn, settings, held.id, cost_usd=usd)
        credits.announce_low_balance(publisher, None if settled is None else settled.low_balance)
        return settled

    spend("40")  # 110: over the threshold of 100
    spend("20")  # 90: crossed
    spend("10")  # 80: still under, no second email
    buy(db, database_url, workspace_id, "100.00")  # 180: re-armed
    spend("90")  # 90: crossed again
    assert [(s, t, d["crossing"], d["balance"], d["threshold"]) for s, t, d in publisher.events] == [
        ("oneai.credits", "CreditsLow", 1, "90.00", "100.00"),
        ("oneai.credits", "CreditsLow", 2, "90.00", "100.00"),
    ]
    assert {d["user_id"] for _, _, d in publisher.events} == {str(owner.id)}


def test_a_stale_hold_is_given_back_by_the_service(db: Database, make_user: Any, database_url: str) -> None:
    owner = make_user()
    workspace_id = team(db, owner)
    buy(db, database_url, workspace_id, "100.00")
    with db.user_transaction(owner.principal) as conn:
        held = credits.reserve(conn, workspace_id, Decimal("30"))
    with admin(database_url) as conn:
        conn.execute(
            "update public.credit_reservations set created_at = now() - interval '1 hour' where id = %s",
            (held.id,),
        )
    assert credits.release_stale_reservations(db) >= 1
    assert account(database_url, workspace_id)["reserved"] == 0


# ---------------------------------------------------------------------------------------------- routes' rules


def test_the_ledger_and_usage_are_for_admins_and_a_purchase_for_owners(
    db: Database, make_user: Any, database_url: str
) -> None:
    owner, an_admin, viewer = make_user(), make_user(), make_user()
    workspace_id = team(db, owner, {an_admin.id: "admin", viewer.id: "viewer"})
    buy(db, database_url, workspace_id, "250.00")
    with db.user_transaction(an_admin.principal) as conn:
        page = credits.list_transactions(conn, workspace_id, TransactionQuery(type="purchase"))
        assert [(t.type, t.model_dump(mode="json")["amount"]) for t in page.items] == [("purchase", "250.00")]
        assert credits.usage(conn, workspace_id, UsageQuery()).items == []
    with db.user_transaction(viewer.principal) as conn, pytest.raises(ForbiddenError):
        credits.list_transactions(conn, workspace_id, TransactionQuery())
    # what RLS itself shows a viewer of the ledger: nothing
    with db.user_transaction(viewer.principal) as conn:
        assert conn.execute("select count(*) as n from public.credit_transactions").fetchone() == {"n": 0}
    with FakeRazorpay() as fake:
        client = build_razorpay_client(
            get_settings().model_copy(
                update={
                    "razorpay_key_id": fake.key_id,
                    "razorpay_key_secret": SecretStr(fake.key_secret),
                    "razorpay_api_base_url": fake.base_url,
                }
            )
        )
        for member in (an_admin, viewer):
            with pytest.raises(ForbiddenError):
                credits.purchase(db, member.principal, lambda: client, workspace_id, Decimal("500"))
        with pytest.raises(ValidationError) as outside:
            credits.purchase(db, owner.principal, lambda: client, workspace_id, Decimal("99.99"))
        assert outside.value.details["errors"][0]["field"] == "amount"
        assert fake.requests_to("POST", "/orders") == []  # nothing was asked of Razorpay
        checkout = credits.purchase(db, owner.principal, lambda: client, workspace_id, Decimal("500.50"))
    assert (checkout.amount, checkout.currency, checkout.razorpay_key_id) == (50050, "INR", fake.key_id)
    with admin(database_url) as conn:
        order = conn.execute(
            "select * from public.credit_orders where razorpay_order_id = %s", (checkout.order_id,)
        ).fetchone()
    assert order is not None and (order["amount_paise"], order["paid_at"], order["created_by"]) == (
        50050,
        None,
        owner.id,
    )
    assert account(database_url, workspace_id)["balance"] == Decimal("250")  # nothing until Razorpay says paid


def test_an_admin_grant_is_credited_and_audited(db: Database, make_user: Any, database_url: str) -> None:
    owner = make_user()
    staff = make_user()
    workspace_id = team(db, owner)
    staff_principal = as_admin(staff)
    grant = grant_credits(db, staff_principal, workspace_id, GrantRequest(amount="75.25", reason="Launch partner"))
    assert grant.model_dump(mode="json")["balance"] == "75.25"
    with pytest.raises(NotFoundError):
        grant_credits(db, staff_principal, uuid.uuid4(), GrantRequest(amount="1", reason="nobody"))
    [row] = ledger(database_url, workspace_id)
    assert (row["type"], row["amount"], row["actor_id"], row["reason"]) == (
        "grant",
        Decimal("75.25"),
        staff.id,
        "Launch partner",
    )
    with admin(database_url) as conn:
        audit = conn.execute(
            "select action, target_id, before, after, reason from public.audit_log where actor_id = %s",
            (staff.id,),
        ).fetchall()
    assert audit == [
        {
            "action": "workspace.credits_grant",
            "target_id": str(workspace_id),
            "before": {"credits_balance": "0.00"},
            "after": {"credits_balance": "75.25", "granted": "75.25"},
            "reason": "Launch partner",
        }
    ]


# ---------------------------------------------------------------------------------------------- webhooks


Paid = tuple[FakeRazorpay, Any, UUID, str, str]


@pytest.fixture
def paid_order(db: Database, make_user: Any) -> Iterator[Paid]:
    """A workspace, an order of INR 500 made through the purchase route's service, paid at the fake (no
    webhook delivered yet): the fake, the owner, the workspace, the order and payment ids."""
    owner = make_user()
    workspace_id = team(db, owner)
    with FakeRazorpay() as fake:
        client = build_razorpay_client(
            get_settings().model_copy(
                update={
                    "razorpay_key_id": fake.key_id,
                    "razorpay_key_secret": SecretStr(fake.key_secret),
                    "razorpay_api_base_url": fake.base_url,
                }
            )
        )
        checkout = credits.purchase(db, owner.principal, lambda: client, workspace_id, Decimal("500"))
        payment = fake.pay_order(checkout.order_id)
        yield fake, owner, workspace_id, checkout.order_id, payment["id"]


@pytest.mark.parametrize(
    "arrivals",
    [
        ("payment.captured", "order.paid"),
        ("order.paid", "payment.captured"),
        ("payment.captured", "payment.captured", "order.paid", "order.paid"),
    ],
    ids=["captured-then-paid", "paid-then-captured", "duplicates"],
)
def test_a_paid_order_credits_the_balance_exactly_once_whatever_arrives(
    deliver: Deliver, paid_order: Paid, database_url: str, arrivals: tuple[str, ...]
) -> None:
    fake, _, workspace_id, order_id, payment_id = paid_order
    for index, event in enumerate(arrivals):
        body = fake.order_webhook_body(event, order_id, payment_id)
        # a duplicate is a redelivery: the same event id
        answer = deliver(body, event_id=f"evt_{order_id}_{event}")
        assert answer.status == 200, (index, answer.body)
    purchases = [t for t in ledger(database_url, workspace_id) if t["type"] == "purchase"]
    assert [(t["amount"], t["razorpay_order_id"], t["razorpay_payment_id"]) for t in purchases] == [
        (Decimal("500"), order_id, payment_id)
    ]
    assert account(database_url, workspace_id)["balance"] == Decimal("500")


def test_concurrent_deliveries_of_both_events_credit_once(
    deliver: Deliver, paid_order: Paid, database_url: str
) -> None:
    fake, _, workspace_id, order_id, payment_id = paid_order
    bodies = [fake.order_webhook_body(e, order_id, payment_id) for e in ("payment.captured", "order.paid") * 4]
    barrier = threading.Barrier(len(bodies))
    answers: list[int] = []

    def post(body: bytes) -> None:
        barrier.wait(timeout=30)
        answers.append(deliver(body).status)

    threads = [threading.Thread(target=post, args=(b,)) for b in bodies]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert answers == [200] * len(bodies)
    assert [t["type"] for t in ledger(database_url, workspace_id)] == ["purchase"]
    assert account(database_url, workspace_id)["balance"] == Decimal("500")


def test_a_forged_or_short_payment_adds_nothing(deliver: Deliver, paid_order: Paid, database_url: str) -> None:
    fake, _, workspace_id, order_id, payment_id = paid_order
    body = fake.order_webhook_body("order.paid", order_id, payment_id)
    assert deliver(body, signature=sign(body, "not-the-secret")).status == 400
    assert deliver(body, signature=None).status == 400
    # a validly signed payment of less than the order (not what Razorpay sends for it): not credited
    short = fake.pay_order(order_id, amount=100)
    assert deliver(fake.order_webhook_body("payment.captured", order_id, short["id"])).status == 200
    assert ledger(database_url, workspace_id) == []
    assert account(database_url, workspace_id)["balance"] == 0


def test_a_payment_of_an_order_that_is_not_ours_is_only_recorded(deliver: Deliver, database_url: str) -> None:
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
        before = admin(database_url).execute("select count(*) as n from public.credit_transactions").fetchone()
        assert deliver(fake.order_webhook_body("order.paid", order.id, payment["id"])).status == 200
    after = admin(database_url).execute("select count(*) as n from public.credit_transactions").fetchone()
    assert before == after


def test_a_token_for_another_user_sees_no_orders(db: Database, make_user: Any, database_url: str) -> None:
    """Orders are the owner's: an admin of the workspace reads none of them."""
    owner, an_admin = make_user(), make_user()
    workspace_id = team(db, owner, {an_admin.id: "admin"})
    with admin(database_url) as conn:
        conn.execute(
            "insert into public.credit_orders (razorpay_order_id, workspace_id, amount, amount_paise) values (%s, %s, 100, 10000)",
            (f"order_{uuid.uuid4().hex[:14]}", workspace_id),
        )
    with db.user_transaction(an_admin.principal) as conn:
        assert conn.execute("select count(*) as n from public.credit_orders").fetchone() == {"n": 0}
    with db.user_transaction(owner.principal) as conn:
        assert conn.execute("select count(*) as n from public.credit_orders").fetchone() == {"n": 1}


def usage_record(
    database_url: str, user_id: UUID, workspace_id: UUID | None, *, model: str, cost: str, when: str
) -> UUID:
    with admin(database_url) as conn:
        row = conn.execute(
            "insert into public.usage_records (user_id, workspace_id, quota_key, requested_model, model_id,"
            " prompt_tokens, completion_tokens, cost, created_at)"
            " values (%s, %s, 'small_messages', %s, %s, 100, 200, %s, %s) returning id",
            (user_id, workspace_id, model, model, Decimal(cost), when),
        ).fetchone()
    assert row is not None
    return UUID(str(row["id"]))


def test_the_usage_breakdown_is_the_workspaces_replies_with_what_they_took_from_the_balance(
    db: Database, make_user: Any, database_url: str
) -> None:
    owner, an_admin, editor = make_user(), make_user(), make_user()
    workspace_id = team(db, owner, {an_admin.id: "admin", editor.id: "editor"})
    other_workspace = team(db, make_user())
    buy(db, database_url, workspace_id, "100.00")
    settings = get_settings().model_copy(update={"usd_inr_rate": Decimal(100), "credits_markup": Decimal("1.5")})
    # the editor tested a chatbot twice (the workspace paid), and chatted personally once (not the workspace's)
    records = [
        usage_record(
            database_url,
            editor.id,
            workspace_id,
            model="openai/gpt-4o-mini",
            cost="0.01",
            when="2026-11-20T10:00:00Z",
        ),
        usage_record(
            database_url, editor.id, workspace_id, model="openai/gpt-4o", cost="0.02", when="2026-11-21T10:00:00Z"
        ),
    ]
    usage_record(database_url, editor.id, None, model="openai/gpt-4o", cost="0.5", when="2026-11-21T11:00:00Z")
    usage_record(
        database_url, editor.id, other_workspace, model="openai/gpt-4o", cost="0.5", when="2026-11-21T12:00:00Z"
    )
    for record, cost in zip(records, ("0.01", "0.02"), strict=True):
        with db.user_transaction(editor.principal) as conn:
            held = credits.reserve(conn, workspace_id, Decimal("5"))
            credits.settle(conn, settings, held.id, cost_usd=Decimal(cost), usage_record_id=record)
    with db.user_transaction(an_admin.principal) as conn:
        by_model = credits.usage(conn, workspace_id, UsageQuery.model_validate({"group_by": "model"}))
        by_day = credits.usage(conn, workspace_id, UsageQuery.model_validate({"from": "2026-11-21"}))
        by_key = credits.usage(conn, workspace_id, UsageQuery.model_validate({"group_by": "provider_key"}))
        # a person's own usage report is still only their own records
        own = conn.execute("select count(*) as n from public.usage_records where user_id = (select auth.uid())")
        assert own.fetchone() == {"n": 0}
    assert [(r.key, r.messages, r.cost_usd, r.credits) for r in by_model.items] == [
        ("openai/gpt-4o", 1, Decimal("0.02"), Decimal("3")),
        ("openai/gpt-4o-mini", 1, Decimal("0.01"), Decimal("1.5")),
    ]
    assert [(r.key, r.messages, r.prompt_tokens, r.completion_tokens) for r in by_day.items] == [
        ("2026-11-21", 1, 100, 200)
    ]
    assert [(r.key, r.messages) for r in by_key.items] == [("platform", 2)]
    assert by_model.model_dump(mode="json", by_alias=True)["items"][0]["credits"] == "3.00"
    # the ledger's usage rows keep the terms each reply was charged at (cost, rate, markup) with its record
    usage_rows = [t for t in ledger(database_url, workspace_id) if t["type"] == "usage"]
    assert [
        (t["usage_record_id"], t["cost_usd"], t["usd_inr_rate"], t["markup"], t["amount"]) for t in usage_rows
    ] == [
        (records[0], Decimal("0.01"), Decimal(100), Decimal("1.5"), Decimal("-1.5")),
        (records[1], Decimal("0.02"), Decimal(100), Decimal("1.5"), Decimal("-3")),
    ]
    # what RLS shows an editor of the workspace's usage: only their own records
    with db.user_transaction(editor.principal) as conn:
        seen = conn.execute(
            "select count(*) as n from public.usage_records where workspace_id = %s", (workspace_id,)
        )
        assert seen.fetchone() == {"n": 2}
        with pytest.raises(ForbiddenError):
            credits.usage(conn, workspace_id, UsageQuery())
    with db.user_transaction(owner.principal) as conn:
        assert conn.execute("select count(*) as n from public.usage_records").fetchone() == {"n": 2}


def test_under_every_kind_of_concurrent_change_the_ledger_chains_and_sums_to_the_balance(
    db: Database, databases: Callable[[int], list[Database]], make_user: Any, database_url: str
) -> None:
    """48 transactions at once on one account, each on its own connection: replies that reserve then settle
    (some over their hold) or refund, admins' grants and debits, refunds of a purchase, the purchase's own
    two events. The balance never goes below zero; the ledger's rows, in order, chain (each balance_after is
    the one before plus its amount), sum to the balance and end on it; every settled hold has one usage row;
    no hold is left."""
    owner, viewer, staff = make_user(), make_user(), make_user()
    workspace_id = team(db, owner, {viewer.id: "viewer"})
    buy(db, database_url, workspace_id, "100.00")
    order_id, payment_id = f"order_{uuid.uuid4().hex[:14]}", f"pay_{uuid.uuid4().hex[:14]}"
    with admin(database_url) as conn:
        conn.execute(
            "insert into public.credit_orders (razorpay_order_id, workspace_id, amount, amount_paise)"
            " values (%s, %s, 200, 20000)",
            (order_id, workspace_id),
        )
    settings = get_settings()

    def work(index: int) -> Callable[[Database], Any]:
        def reply_settled(database: Database) -> Any:
            with database.user_transaction(viewer.principal) as conn:
                held = credits.reserve(conn, workspace_id, Decimal("5.00"))
            with database.user_transaction(viewer.principal) as conn:  # 0.1 USD x rate: over the hold
                return credits.settle(conn, settings, held.id, cost_usd=Decimal("0.1"))

        def reply_refunded(database: Database) -> Any:
            with database.user_transaction(viewer.principal) as conn:
                held = credits.reserve(conn, workspace_id, Decimal("5.00"))
            with database.user_transaction(viewer.principal) as conn:
                return credits.refund(conn, held.id)

        def granted(database: Database) -> Any:
            with database.service_transaction() as conn:
                return credits.grant(conn, workspace_id, Decimal("3.00"), "race", staff.id)

        def debited(database: Database) -> Any:
            with database.service_transaction() as conn:
                return credits.adjust(conn, workspace_id, Decimal("-2.50"), "race", staff.id)

        def purchased(database: Database) -> Any:  # payment.captured and order.paid, several times each
            with database.service_transaction() as conn:
                return credits.repo.apply_purchase(
                    conn, order_id=order_id, payment_id=payment_id, amount_paise=20000, currency="INR"
                )

        def refunded(database: Database) -> Any:
            # Two refunds of that purchase, each delivered twice; as the webhook does, a refund that may come
            # before the purchase's own events credits the purchase first from its captured payment.
            with database.service_transaction() as conn:
                credits.repo.apply_purchase(
                    conn, order_id=order_id, payment_id=payment_id, amount_paise=20000, currency="INR"
                )
                return credits.apply_refund(
                    conn,
                    refund_id=f"rfnd_{payment_id}_{index // 6 % 2}",
                    payment_id=payment_id,
                    amount_paise=1500,
                    currency="INR",
                )

        kinds = (reply_settled, reply_refunded, granted, debited, purchased, refunded)
        return kinds[index % len(kinds)]

    pool = databases(48)
    jobs = {id(d): work(i) for i, d in enumerate(pool)}
    results = race(pool, viewer, lambda database: jobs[id(database)](database))
    unexpected = [r for r in results if isinstance(r, BaseException) and not isinstance(r, OneAIError)]
    assert not unexpected, unexpected[:3]

    state = account(database_url, workspace_id)
    rows = ledger(database_url, workspace_id)
    assert state["reserved"] == 0 and state["balance"] >= 0
    assert sum(t["amount"] for t in rows) == state["balance"]
    assert rows[-1]["balance_after"] == state["balance"]
    for before, after in itertools.pairwise(rows):
        assert after["balance_after"] == before["balance_after"] + after["amount"], (before, after)
    assert [t["type"] for t in rows].count("purchase") == 2  # the first buy and this order, once
    assert len({t["razorpay_refund_id"] for t in rows if t["type"] == "refund"}) == 2
    assert len([t for t in rows if t["type"] == "refund"]) == 2
    with admin(database_url) as conn:
        holds = conn.execute(
            "select r.status, count(t.id) as usage_rows from public.credit_reservations r"
            " left join public.credit_transactions t on t.reservation_id = r.id and t.type = 'usage'"
            " where r.workspace_id = %s group by r.id, r.status",
            (workspace_id,),
        ).fetchall()
    assert {h["status"] for h in holds} <= {"settled", "refunded"}
    assert all(h["usage_rows"] == (1 if h["status"] == "settled" else 0) for h in holds)


def test_a_balance_of_a_fraction_of_a_paisa_is_shown_exact_never_negative_and_reserved_exactly(
    db: Database, make_user: Any, database_url: str
) -> None:
    """0.004 INR left (the ledger keeps six decimals): shown as the decimal string it is (at least cents,
    docs/api/credits.md), never negative nor rounded up to a paisa that is not there; the reservation
    compares the exact value (0.005 is refused, 0.004 admitted, and nothing is left to hold after)."""
    owner, staff = make_user(), make_user()
    workspace_id = team(db, owner)
    buy(db, database_url, workspace_id, "1.00")
    with db.service_transaction() as conn:
        credits.adjust(conn, workspace_id, Decimal("-0.996"), "leave a fraction", staff.id)
    with db.user_transaction(owner.principal) as conn:
        shown = credits.get_credits(conn, workspace_id).model_dump(mode="json")["balance"]
    assert shown == "0.004"
    with db.user_transaction(owner.principal) as conn, pytest.raises(InsufficientCreditsError) as refused:
        credits.reserve(conn, workspace_id, Decimal("0.005"))
    assert refused.value.details == {"balance": "0.004", "needed": "0.005"}
    with db.user_transaction(owner.principal) as conn:
        held = credits.reserve(conn, workspace_id, Decimal("0.004"))
    assert held.available == 0
    with db.user_transaction(owner.principal) as conn, pytest.raises(InsufficientCreditsError) as none_left:
        credits.reserve(conn, workspace_id, Decimal("0.000001"))
    assert none_left.value.details["balance"] == "0.00"


def test_the_usage_breakdown_sums_to_the_ledgers_usage_even_for_a_reply_without_a_usage_record(
    db: Database, make_user: Any, database_url: str
) -> None:
    """A reply settled on its own after its save was refused (oneai.chat.turn.finish_turn) has a usage
    transaction but no usage record: the breakdown still adds up to what the ledger's usage took, that reply
    under the chatbot `none`, the model `unknown`, its ledger day, the `platform` account (before, it was
    left out). A member's erasure keeps their replies in it (their usage records stay, without the user)."""
    owner, an_admin, editor = make_user(), make_user(), make_user()
    workspace_id = team(db, owner, {an_admin.id: "admin", editor.id: "editor"})
    buy(db, database_url, workspace_id, "100.00")
    settings = get_settings().model_copy(update={"usd_inr_rate": Decimal(100), "credits_markup": Decimal(1)})
    record = usage_record(
        database_url, editor.id, workspace_id, model="openai/gpt-4o", cost="0.02", when="2026-11-21T10:00:00Z"
    )
    kept = usage_record(
        database_url, owner.id, workspace_id, model="openai/gpt-4o", cost="0.03", when="2026-11-21T11:00:00Z"
    )
    for usage_record_id, cost in ((record, "0.02"), (kept, "0.03"), (None, "0.04")):
        with db.user_transaction(owner.principal) as conn:
            held = credits.reserve(conn, workspace_id, Decimal("5"))
            credits.settle(conn, settings, held.id, cost_usd=Decimal(cost), usage_record_id=usage_record_id)
    with admin(database_url) as conn:  # the editor's account erased
        conn.execute("delete from auth.users where id = %s", (editor.id,))
        conn.execute("delete from public.users where id = %s", (editor.id,))
    taken = -sum(t["amount"] for t in ledger(database_url, workspace_id) if t["type"] == "usage")
    assert taken == Decimal("9")
    with db.user_transaction(an_admin.principal) as conn:
        reports = {
            group: credits.usage(conn, workspace_id, UsageQuery.model_validate({"group_by": group}))
            for group in ("chatbot", "model", "day", "provider_key")
        }
    for group, report in reports.items():
        assert sum(r.credits for r in report.items) == taken, group
        assert sum(r.messages for r in report.items) == 3, group
    assert [(r.key, r.messages, r.credits) for r in reports["model"].items] == [
        ("openai/gpt-4o", 2, Decimal("5")),
        ("unknown", 1, Decimal("4")),
    ]
    assert [r.key for r in reports["provider_key"].items] == ["platform"]
