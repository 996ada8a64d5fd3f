"""The credits function's sample events (events/credits/) drive its deployed entry point, as
`sam local invoke CreditsFunction -e events/credits/...` would, for the dev user (owner of the sample
workspace): every route answers as API.md says; the purchase makes an Order at the fake Razorpay."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from pydantic import SecretStr

from local import DEV_USER_EMAIL, DEV_USER_ID
from local.events import SAMPLE_PATH_PARAMETERS
from local.fake_razorpay import FakeRazorpay
from oneai.config import override_settings
from tests.integration.test_provider_keys import kms  # noqa: F401  (a fixture, autouse here too)
from tests.lambda_support import FakeLambdaContext, like_a_lambda_process

pytestmark = pytest.mark.integration

EVENTS = Path(__file__).resolve().parents[2] / "events" / "credits"
SAMPLE_WORKSPACE_ID = SAMPLE_PATH_PARAMETERS["workspace_id"]
EXPECTED = {
    "get-credits-open-api": 200,
    "get-workspace-credits": 200,
    "purchase-workspace-credits": 200,
    "list-credit-transactions": 200,
    "get-credit-usage": 200,
    # the provider keys (served by the same function): one added, listed; the sample id names no key
    "create-provider-key": 201,
    "list-provider-keys": 200,
    "get-provider-key": 404,
    "update-provider-key": 404,
    "test-provider-key": 404,
    "delete-provider-key": 404,
}


@pytest.fixture
def dev_user_with_a_workspace(database_url: str) -> Iterator[None]:
    """The dev user, owning the sample workspace."""
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(
            "insert into auth.users (id, email) values (%s, %s) on conflict (id) do nothing",
            (DEV_USER_ID, DEV_USER_EMAIL),
        )
        conn.execute("update public.users set suspended_at = null where id = %s", (DEV_USER_ID,))
        conn.execute("delete from public.workspaces where id = %s", (SAMPLE_WORKSPACE_ID,))
        conn.execute(
            "insert into public.workspaces (id, name, slug, owner_id) values (%s, 'Sample credits', %s, %s)",
            (SAMPLE_WORKSPACE_ID, f"sample-credits-{DEV_USER_ID[:8]}", DEV_USER_ID),
        )
        conn.execute(
            "insert into public.workspace_members (workspace_id, user_id, role) values (%s, %s, 'owner')",
            (SAMPLE_WORKSPACE_ID, DEV_USER_ID),
        )
    yield
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("delete from public.workspaces where id = %s", (SAMPLE_WORKSPACE_ID,))


def test_every_credits_route_has_a_sample_event() -> None:
    assert sorted(p.stem for p in EVENTS.glob("*.json")) == sorted(EXPECTED)


@pytest.mark.usefixtures("kms")  # moto's KMS: the provider key is sealed
def test_each_credits_sample_event_answers_through_the_lambda_handler(
    database_url: str, dev_user_with_a_workspace: None
) -> None:
    from credits.handler import lambda_handler

    context = FakeLambdaContext(function_name="CreditsFunction")
    answers: dict[str, Any] = {}
    with (
        like_a_lambda_process(database_url),
        FakeRazorpay() as razorpay,
        override_settings(
            razorpay_key_id=razorpay.key_id,
            razorpay_key_secret=SecretStr(razorpay.key_secret),
            razorpay_api_base_url=razorpay.base_url,
        ),
    ):
        for name, status in EXPECTED.items():
            event = json.loads((EVENTS / f"{name}.json").read_text())
            response: dict[str, Any] = lambda_handler(event, context)
            assert response["statusCode"] == status, (name, response.get("body"))
            answers[name] = json.loads(response["body"])
        order = razorpay.order(answers["purchase-workspace-credits"]["order_id"])
    assert answers["get-credits-open-api"]["info"]["title"] == "OneAI credits and provider keys"
    assert answers["get-workspace-credits"] == {
        "balance": "0.00",
        "currency": "INR",
        "low_balance_threshold": "100.00",
    }
    assert (order["amount"], order["notes"]["workspace_id"]) == (50000, SAMPLE_WORKSPACE_ID)
    assert answers["list-credit-transactions"] == {"items": [], "next_cursor": None}
    assert answers["get-credit-usage"]["group_by"] == "model"
    added = answers["create-provider-key"]
    assert (added["provider"], added["key"]) == ("openai", "…-key")
    assert [k["id"] for k in answers["list-provider-keys"]] == [added["id"]]
    assert "sk-proj-sample-not-a-real-key" not in json.dumps(answers)
