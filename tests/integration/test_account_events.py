"""The sample events of events/account/ drive the deployed entry point (`account.handler.lambda_handler`)
directly, as `sam local invoke -e events/account/...` would: each is a valid API Gateway event that answers
as docs/api/account.md says."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import psycopg
import pytest
from pydantic import SecretStr

from local import DEV_USER_EMAIL, DEV_USER_ID
from local.events import DEV_UNSUBSCRIBE_SECRET
from oneai.config import override_settings
from tests.lambda_support import FakeLambdaContext, like_a_lambda_process

EVENTS = Path(__file__).resolve().parents[2] / "events" / "account"

# The POST and PATCH routes need a body; until local/events.py has samples for them, their files are bare
# requests, and this is the body a developer would add for `sam local invoke` (an event that already has
# one is sent as it is).
BODIES: dict[str, dict[str, Any]] = {
    "check-quota": {"quota_key": "small_messages", "units": 1},
    "create-api-key": {"name": "sam local invoke"},
    "update-profile": {
        "name": "Dev User",
        "preferences": {"theme": "dark", "default_model": "openai/gpt-4o-mini"},
    },
}
EXPECTED = [
    ("get-account-open-api", 200),
    ("get-quota", 200),
    ("check-quota", 200),
    ("get-usage", 200),
    ("get-profile", 200),
    ("update-profile", 200),
    # The dev user's quota-warning unsubscribe link: the page (HTML, changes nothing), then the one-click POST.
    ("show-unsubscribe", 200),
    ("unsubscribe", 200),
    ("create-api-key", 201),
    ("list-api-keys", 200),
    ("revoke-api-key", 404),  # the sample id names no key of the dev user
    ("export-account", 200),
    # last: it erases the dev user
    ("delete-account", 204),
]


@pytest.fixture
def dev_user_with_usage(database_url: str) -> None:
    """The dev user the events' token names, with a usage record from a minute ago."""
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("delete from auth.users where id = %s", (DEV_USER_ID,))
        conn.execute("insert into auth.users (id, email) values (%s, %s)", (DEV_USER_ID, DEV_USER_EMAIL))
        conn.execute(
            "insert into public.usage_records (user_id, quota_key, requested_model, model_id, prompt_tokens,"
            " completion_tokens, cost, created_at)"
            " values (%s, 'small_messages', 'openai/gpt-4o-mini', 'openai/gpt-4o-mini', 12, 34, %s,"
            " now() - interval '1 minute')",
            (DEV_USER_ID, Decimal("0.000123")),
        )


def with_body(name: str, event: dict[str, Any]) -> dict[str, Any]:
    if event.get("body") or name not in BODIES:
        return event
    headers = {**(event.get("headers") or {}), "Content-Type": "application/json"}
    multi = {**(event.get("multiValueHeaders") or {}), "Content-Type": ["application/json"]}
    return {**event, "headers": headers, "multiValueHeaders": multi, "body": json.dumps(BODIES[name])}


def test_every_route_has_a_sample_event() -> None:
    assert sorted(p.stem for p in EVENTS.glob("*.json")) == sorted(name for name, _ in EXPECTED)


def test_each_sample_event_answers_through_the_lambda_handler(
    database_url: str, dev_user_with_usage: None
) -> None:
    from account.handler import lambda_handler

    answers: dict[str, Any] = {}
    events: dict[str, dict[str, Any]] = {}
    context = FakeLambdaContext(function_name="AccountFunction")
    pages: dict[str, str] = {}
    with (
        like_a_lambda_process(database_url),
        override_settings(unsubscribe_secret=SecretStr(DEV_UNSUBSCRIBE_SECRET)),
    ):
        for name, status in EXPECTED:
            event = events[name] = with_body(name, json.loads((EVENTS / f"{name}.json").read_text()))
            response: dict[str, Any] = lambda_handler(event, context)
            assert response["statusCode"] == status, (name, response.get("body"))
            if response.get("headers", {}).get("content-type", "").startswith("text/html"):
                pages[name] = response["body"]
            else:
                answers[name] = json.loads(response["body"]) if response["body"] else None
            if name == "unsubscribe":  # read before the erasure at the end removes the user
                with psycopg.connect(database_url) as conn:
                    stored = conn.execute(
                        "select preferences from public.users where id = %s", (DEV_USER_ID,)
                    ).fetchone()

    assert set(answers["get-account-open-api"]["paths"]) == {
        "/user/quota",
        "/user/quota/check",
        "/user/usage",
        "/user/profile",
        "/user/export",
        "/user",
        "/user/api-keys",
        "/user/api-keys/{id}",
        "/notifications/unsubscribe",
    }
    assert answers["create-api-key"]["key"].startswith("oneai_sk_")
    assert [k["name"] for k in answers["list-api-keys"]["items"]] == ["sam local invoke"]
    assert answers["revoke-api-key"]["error"]["code"] == "NOT_FOUND"
    assert answers["export-account"]["profile"]["id"] == DEV_USER_ID
    assert answers["delete-account"] is None
    with psycopg.connect(database_url) as conn:
        assert conn.execute("select count(*) from auth.users where id = %s", (DEV_USER_ID,)).fetchone() == (0,)
    assert answers["get-quota"]["subscription"] == {"tier": "free", "status": "active"}
    assert answers["check-quota"]["allowed"] is True
    usage = answers["get-usage"]
    assert set(usage) == {"from", "to", "group_by", "items", "totals"}
    if not events["get-usage"]["queryStringParameters"]:  # the last 30 days, per model
        assert usage["items"] == [
            {
                "group": "openai/gpt-4o-mini",
                "messages": 1,
                "prompt_tokens": 12,
                "completion_tokens": 34,
                "total_tokens": 46,
                "cost": "0.000123",
            }
        ]
    assert answers["get-profile"]["id"] == DEV_USER_ID
    patch = json.loads(events["update-profile"]["body"])
    updated = answers["update-profile"]
    assert {key: updated[key] for key in patch if key != "preferences"} == {
        key: value for key, value in patch.items() if key != "preferences"
    }
    expected_preferences = {k: v for k, v in patch.get("preferences", {}).items() if v is not None}
    assert updated["preferences"] == expected_preferences
    # the page asks; the POST turned quota warnings off for the link's user (the dev user)
    assert "Unsubscribe" in pages["show-unsubscribe"] and "quota warning" in pages["show-unsubscribe"]
    assert "no more quota warning emails" in pages["unsubscribe"]
    assert stored is not None and stored[0]["notifications"] == {"quota_warnings": False}
