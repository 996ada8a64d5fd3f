"""The admin function's sample events (events/admin/) drive its deployed entry point, as
`sam local invoke AdminFunction -e events/admin/...` would: they carry the dev user's token with the admin
claim, and answer as API.md says (the sample ids name nobody, so the writes are 404 and write nothing)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import psycopg
import pytest

from local import DEV_USER_EMAIL, DEV_USER_ID
from tests.lambda_support import FakeLambdaContext, like_a_lambda_process

EVENTS = Path(__file__).resolve().parents[2] / "events" / "admin"
EXPECTED = {
    "get-admin-open-api": 200,
    "list-users": 200,
    "get-user": 404,
    "erase-user": 404,
    "suspend-user": 404,
    "unsuspend-user": 404,
    "set-quota-override": 404,
    "remove-quota-override": 404,
    "list-subscriptions": 200,
    "sync-subscription": 404,
    "list-all-workspaces": 200,
    "suspend-workspace": 404,
    "unsuspend-workspace": 404,
    "grant-workspace-credits": 404,  # issue 26: the sample workspace names nobody here
    "adjust-workspace-credits": 404,  # likewise
    "get-analytics": 200,
    "list-audit-log": 200,
    "get-guide-feedback-summary": 200,
}


@pytest.fixture
def dev_user(database_url: str) -> None:
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(
            "insert into auth.users (id, email) values (%s, %s) on conflict (id) do nothing",
            (DEV_USER_ID, DEV_USER_EMAIL),
        )
        conn.execute("update public.users set suspended_at = null where id = %s", (DEV_USER_ID,))


def test_every_admin_route_has_a_sample_event() -> None:
    assert sorted(p.stem for p in EVENTS.glob("*.json")) == sorted(EXPECTED)


def test_each_admin_sample_event_answers_through_the_lambda_handler(database_url: str, dev_user: None) -> None:
    from admin.handler import lambda_handler

    context = FakeLambdaContext(function_name="AdminFunction")
    with like_a_lambda_process(database_url):
        for name, status in EXPECTED.items():
            event = json.loads((EVENTS / f"{name}.json").read_text())
            response: dict[str, Any] = lambda_handler(event, context)
            assert response["statusCode"] == status, (name, response.get("body"))
            assert json.loads(response["body"]) is not None
    with psycopg.connect(database_url) as conn:
        row = conn.execute("select count(*) from public.audit_log where actor_id = %s", (DEV_USER_ID,)).fetchone()
    assert row == (0,)
