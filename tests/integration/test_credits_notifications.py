"""The low-balance email (issue 26): a settle that takes a workspace's balance under its threshold publishes
one `oneai.credits` / `CreditsLow` event; the template's notification rule takes it to the notifications
function, which emails the workspace's owner once per crossing, however often the record is delivered; the
next crossing (after the balance was back over the threshold) is another email."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from oneai.config import get_settings
from oneai.credits import service as credits
from oneai.db.connection import Database
from oneai.events import EventPublisher
from tests.integration.test_credits import buy
from tests.integration.test_notifications import BUS, Aws, aws, claims, invoke, text_of
from tests.integration.test_workspaces_rls import team

__all__ = ["aws"]  # a fixture, used by name

pytestmark = pytest.mark.integration


def spend(db: Database, user: Any, workspace_id: Any, inr: str) -> credits.Settlement | None:
    settings = get_settings().model_copy(update={"usd_inr_rate": Decimal(100), "credits_markup": Decimal(1)})
    with db.user_transaction(user.principal) as conn:
        held = credits.reserve(conn, workspace_id, Decimal(inr))
        settled = credits.settle(conn, settings, held.id, cost_usd=Decimal(inr) / 100)
    credits.announce_low_balance(EventPublisher(BUS), None if settled is None else settled.low_balance)
    return settled


def test_one_email_to_the_owner_per_crossing_of_the_threshold(
    aws: Aws, db: Database, make_user: Any, database_url: str
) -> None:
    owner, editor = make_user(), make_user()
    workspace_id = team(db, owner, {editor.id: "editor"})
    buy(db, database_url, workspace_id, "120.00")
    spend(db, editor, workspace_id, "35.50")  # 84.50: under 100, by a member's reply
    [record] = aws.receive()
    assert [invoke([record]) for _ in range(3)] == [{"batchItemFailures": []}] * 3
    [email] = aws.sent(to=owner.principal.email)
    assert email["Subject"] == "Your workspace's credits are running low (INR 84.50)"
    assert "low-balance threshold of INR 100.00" in text_of(email)
    assert str(workspace_id) in text_of(email)
    assert aws.sent(to=editor.principal.email) == []
    spend(db, owner, workspace_id, "10")  # still under: no event
    assert aws.receive() == []
    buy(db, database_url, workspace_id, "100.00")  # 174.50: over again
    spend(db, owner, workspace_id, "80")  # 94.50: the second crossing
    [second] = aws.receive()
    invoke([second])
    assert len(aws.sent(to=owner.principal.email)) == 2
    assert [(kind, occasion) for kind, occasion, _ in claims(database_url, owner.id)] == [
        ("credits_low", f"{workspace_id}:1"),
        ("credits_low", f"{workspace_id}:2"),
    ]
