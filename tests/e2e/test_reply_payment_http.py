"""Who pays for a chatbot's reply, over HTTP (issue 26 items 3 and 5, "Done when"): a workspace's `openai` key
sends the reply to the stand-in at that key's endpoint (the fake OpenRouter under `/openai`, as
ONEAI_OPENAI_BASE_URL says) carrying that key, and charges no credits; the key is nowhere in the server's
log, the answers or the exports; a key the provider refuses is marked invalid and named in a 424; without a
key the credits pay (reserved, then settled at the real cost), a refusal is a 402 that writes nothing, and a
failure before the first token gives the hold back."""

from __future__ import annotations

from decimal import Decimal
from typing import Any
from uuid import UUID

import httpx
import pytest

from local.fake_openrouter import FakeOpenRouter, Reply, Status
from tests.conftest import AppUser
from tests.e2e.conftest import LocalServer
from tests.e2e.test_chatbot_chat_http import (
    chat,
    chatbot,
    client,
    owner,
    personal_workspace,
    sql_value,
    workspace_messages_today,
)

__all__ = ["client", "owner"]  # fixtures, used by name

pytestmark = pytest.mark.e2e

MODEL = "openai/gpt-4o-mini"
UPSTREAM_MODEL = "gpt-4o-mini"  # OpenAI's own endpoint names the model without its provider
SECRET = "sk-e2e-openai-Zq81xVv0KeyNeverShown4242"
QUESTION = "What are your opening hours?"
USAGE = {"prompt_tokens": 40, "completion_tokens": 6, "total_tokens": 46, "cost": 0.0004}


def add_key(client: httpx.Client, user: AppUser, workspace_id: UUID, **fields: Any) -> dict[str, Any]:
    body = {"provider": "openai", "name": "Production", "key": SECRET} | fields
    response = client.post(f"/workspaces/{workspace_id}/provider-keys", json=body, headers=user.headers)
    assert response.status_code == 201, response.text
    added: dict[str, Any] = response.json()
    return added


def credits_state(database_url: str, workspace_id: UUID) -> tuple[Decimal, Decimal]:
    balance = sql_value(
        database_url, "select balance from public.workspace_credits where workspace_id = %s", workspace_id
    )
    reserved = sql_value(
        database_url, "select reserved from public.workspace_credits where workspace_id = %s", workspace_id
    )
    return Decimal(balance), Decimal(reserved)


def usage_transactions(database_url: str, workspace_id: UUID) -> int:
    return int(
        sql_value(
            database_url,
            "select count(*) from public.credit_transactions where workspace_id = %s and type = 'usage'",
            workspace_id,
        )
    )


def test_a_reply_with_the_workspaces_openai_key_goes_to_its_endpoint_with_the_key_and_charges_no_credits(
    client: httpx.Client, owner: AppUser, openrouter: FakeOpenRouter, database_url: str, local_server: LocalServer
) -> None:
    # GIVEN a chatbot on an OpenAI model, a workspace without credits, and its own openai key
    workspace = personal_workspace(database_url, owner)
    bot = chatbot(database_url, workspace, [], credits=None, model=MODEL)
    key = add_key(client, owner, workspace)
    openrouter.script(Reply(chunks=["We are open", " 9 to 5."], usage=USAGE), model=UPSTREAM_MODEL)
    # WHEN a member asks
    response = chat(client, owner, chatbot_id=str(bot), content=QUESTION)
    # THEN the reply comes from OpenAI's endpoint (the stand-in's /openai), asked with the workspace's key
    assert response.status_code == 200, response.text
    assert "We are open" in response.text and "9 to 5." in response.text
    [request] = [r for r in openrouter.chat_requests if r.body.get("stream")]
    assert request.path.endswith("/openai/chat/completions")
    assert request.headers["authorization"] == f"Bearer {SECRET}"
    assert request.body["model"] == UPSTREAM_MODEL and "models" not in request.body
    # AND no credits were reserved or taken; the usage record names the key, with its estimated cost
    assert credits_state(database_url, workspace) == (Decimal(0), Decimal(0))
    assert usage_transactions(database_url, workspace) == 0
    recorded = sql_value(
        database_url,
        "select row(provider_key_id, cost > 0, model_id)::text from public.usage_records where workspace_id = %s",
        workspace,
    )
    assert recorded == f"({key['id']},t,{MODEL})"
    # AND the key's spend this month shows it
    listed = client.get(f"/workspaces/{workspace}/provider-keys", headers=owner.headers)
    items = listed.json()["items"] if isinstance(listed.json(), dict) else listed.json()
    assert Decimal(items[0]["spent_this_month"]) > 0
    # AND the key is nowhere: not in the answers, the exports or the server's log
    conversation_id = sql_value(database_url, "select id from public.conversations where chatbot_id = %s", bot)
    shown = [
        response.text,
        listed.text,
        client.get(f"/conversations/{conversation_id}/export?format=json", headers=owner.headers).text,
        client.get("/user/export", headers=owner.headers).text,
        client.get(f"/workspaces/{workspace}/credits/usage?group_by=provider_key", headers=owner.headers).text,
        local_server.log,  # what the running server printed so far (LOG_PATH is written when it stops)
    ]
    assert not [i for i, text in enumerate(shown) if SECRET in text or SECRET[-12:] in text]


def test_a_refused_key_is_marked_invalid_and_named_and_the_unit_comes_back(
    client: httpx.Client, owner: AppUser, openrouter: FakeOpenRouter, database_url: str
) -> None:
    workspace = personal_workspace(database_url, owner)
    bot = chatbot(database_url, workspace, [], credits=None, model=MODEL)
    key = add_key(client, owner, workspace, name="Old key")
    openrouter.script(Status(401, "Incorrect API key provided"), model=UPSTREAM_MODEL)
    # WHEN the provider refuses the key
    response = chat(client, owner, chatbot_id=str(bot), content=QUESTION)
    # THEN the caller is told which key (a 424: the workspace's key, not a platform failure)
    assert response.status_code == 424, response.text
    error = response.json()["error"]
    assert error["code"] == "PROVIDER_KEY_REFUSED"
    assert "'Old key'" in error["message"] and error["details"]["provider_key_id"] == key["id"]
    assert SECRET not in response.text
    # AND the key is invalid now, and the workspace's message unit came back
    shown = client.get(f"/provider-keys/{key['id']}", headers=owner.headers).json()
    assert shown["status"] == "invalid" and "Old key" in shown["invalid_reason"]
    assert workspace_messages_today(database_url, workspace) == 0
    # WHEN asked again: no usable key, no credits: 402, and nothing is written
    messages_before = sql_value(
        database_url, "select count(*) from public.chat_messages where user_id = %s", owner.id
    )
    again = chat(client, owner, chatbot_id=str(bot), content=QUESTION)
    assert again.status_code == 402, again.text
    assert again.json()["error"]["code"] == "INSUFFICIENT_CREDITS"
    assert again.json()["error"]["details"] == {"balance": "0.00", "needed": "1.00"}
    assert sql_value(database_url, "select count(*) from public.chat_messages where user_id = %s", owner.id) == (
        messages_before
    )
    assert workspace_messages_today(database_url, workspace) == 0
    assert credits_state(database_url, workspace) == (Decimal(0), Decimal(0))


def test_without_a_key_credits_pay_the_real_cost_and_an_early_failure_gives_the_hold_back(
    client: httpx.Client, owner: AppUser, openrouter: FakeOpenRouter, database_url: str
) -> None:
    workspace = personal_workspace(database_url, owner)
    bot = chatbot(database_url, workspace, [], credits="50.00", model=MODEL)
    # WHEN the platform's OpenRouter answers (cost 0.0004 USD)
    openrouter.script(Reply(chunks=["Open 9 to 5."], usage=USAGE), model=MODEL)
    response = chat(client, owner, chatbot_id=str(bot), content=QUESTION)
    assert response.status_code == 200, response.text
    [request] = [r for r in openrouter.chat_requests if r.body.get("stream")]
    assert "/openai/" not in request.path and request.headers["authorization"] == "Bearer sk-or-v1-test-key"
    # THEN the real cost was taken (USD x rate 85 x markup 1, rounded up to the millionth), the hold released
    balance, reserved = credits_state(database_url, workspace)
    assert (balance, reserved) == (Decimal("50") - Decimal("0.034"), Decimal(0))
    assert usage_transactions(database_url, workspace) == 1
    # WHEN the model fails before its first token
    openrouter.script(Status(400, "Provider returned error"), model=MODEL)
    failed = chat(client, owner, chatbot_id=str(bot), content=QUESTION)
    assert failed.status_code >= 400
    # THEN the hold came back and nothing more was taken
    assert credits_state(database_url, workspace) == (balance, Decimal(0))
    assert usage_transactions(database_url, workspace) == 1


def test_a_custom_key_serves_its_custom_model_through_the_guard_at_its_base_url(
    client: httpx.Client, owner: AppUser, openrouter: FakeOpenRouter, database_url: str
) -> None:
    # GIVEN a chatbot on `custom/house-model` and the workspace's custom key named `house-model`
    workspace = personal_workspace(database_url, owner)
    bot = chatbot(database_url, workspace, [], credits=None, model="custom/house-model")
    base_url = f"{openrouter.base_url}/custom-endpoint"
    add_key(client, owner, workspace, provider="custom", name="house-model", base_url=base_url)
    openrouter.script(Reply(chunks=["From the house model."], usage=USAGE), model="house-model")
    response = chat(client, owner, chatbot_id=str(bot), content=QUESTION)
    # THEN the reply came from the key's base_url, with the key and the model's own name, no credits taken
    assert response.status_code == 200, response.text
    assert "From the house model." in response.text
    [request] = [r for r in openrouter.chat_requests if r.body.get("stream")]
    assert request.path.endswith("/custom-endpoint/chat/completions")
    assert request.headers["authorization"] == f"Bearer {SECRET}"
    assert request.body["model"] == "house-model"
    assert credits_state(database_url, workspace) == (Decimal(0), Decimal(0))
