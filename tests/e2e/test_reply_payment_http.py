"""Who pays for a chatbot's reply, over HTTP (issue 26 items 3 and 5, "Done when"): a workspace's `openai` key
sends the reply to the stand-in at that key's endpoint (the fake OpenRouter under `/openai`, as
ONEAI_OPENAI_BASE_URL says) carrying that key, and charges no credits (the usage breakdown by key, JSON and
CSV, shows the reply under the key with 0.00 credits); an `anthropic` key is tested and used at `/anthropic`
in Anthropic's headers, for the model by Anthropic's id; the key is nowhere in the server's log, the answers
or the exports; a key the provider refuses is marked invalid and named in a 424; without a
key the credits pay (reserved, then settled at the real cost), a refusal is a 402 that writes nothing, and a
failure before the first token gives the hold back."""

from __future__ import annotations

import csv
import io
from decimal import Decimal
from typing import Any
from uuid import UUID

import httpx
import psycopg
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
    # AND the usage breakdown by key shows the reply under the key's id, having taken no credits; so does its CSV
    by_key = f"/workspaces/{workspace}/credits/usage?group_by=provider_key"
    report = client.get(by_key, headers=owner.headers)
    assert report.status_code == 200, report.text
    assert report.json()["items"] == [
        {
            "key": key["id"],
            "messages": 1,
            "prompt_tokens": USAGE["prompt_tokens"],
            "completion_tokens": USAGE["completion_tokens"],
            "cost_usd": "0.0004",
            "credits": "0.00",
        }
    ]
    report_csv = client.get(by_key, headers=owner.headers | {"accept": "text/csv"})
    assert report_csv.status_code == 200 and report_csv.headers["content-type"].startswith("text/csv")
    assert list(csv.reader(io.StringIO(report_csv.text))) == [
        ["provider_key", "messages", "prompt_tokens", "completion_tokens", "cost_usd", "credits_inr"],
        [key["id"], "1", "40", "6", "0.0004", "0.00"],
    ]
    # AND the key is nowhere: not in the answers, the exports or the server's log
    conversation_id = sql_value(database_url, "select id from public.conversations where chatbot_id = %s", bot)
    shown = [
        response.text,
        listed.text,
        client.get(f"/conversations/{conversation_id}/export?format=json", headers=owner.headers).text,
        client.get("/user/export", headers=owner.headers).text,
        report.text,
        report_csv.text,
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


ANTHROPIC_MODEL = "anthropic/claude-3.5-haiku"
# Anthropic's API names the model otherwise than OpenRouter's catalog: its own id, dashes for the dot
ANTHROPIC_UPSTREAM_MODEL = "claude-3-5-haiku-20241022"
ANTHROPIC_SECRET = "sk-ant-api03-e2e-Wc3nR8tYq1KeyNeverShown7"


def test_an_anthropic_key_is_tested_and_serves_its_models_at_anthropics_endpoint_in_anthropics_headers(
    client: httpx.Client, owner: AppUser, openrouter: FakeOpenRouter, database_url: str
) -> None:
    # GIVEN a chatbot on an Anthropic model, a workspace without credits, and its own anthropic key
    workspace = personal_workspace(database_url, owner)
    bot = chatbot(database_url, workspace, [], credits=None, model=ANTHROPIC_MODEL)
    key = add_key(client, owner, workspace, provider="anthropic", name="Claude", key=ANTHROPIC_SECRET)
    assert (key["provider"], key["key"], key["base_url"]) == ("anthropic", f"…{ANTHROPIC_SECRET[-4:]}", None)
    # WHEN the key is tested
    tested = client.post(f"/provider-keys/{key['id']}/test", headers=owner.headers)
    # THEN Anthropic's endpoint (the stand-in's /anthropic) was asked for its models with the key as Anthropic
    # takes it (x-api-key, with the API version), and the test passed
    assert tested.status_code == 200, tested.text
    assert (tested.json()["ok"], tested.json()["error"], tested.json()["reason"]) == (True, None, None)
    assert tested.json()["models"]
    [listing] = [r for r in openrouter.models_requests if "/anthropic/" in r.path]
    assert listing.path.endswith("/anthropic/models")
    assert (
        listing.headers["x-api-key"],
        listing.headers["anthropic-version"],
        listing.headers["authorization"],
    ) == (
        ANTHROPIC_SECRET,
        "2023-06-01",
        f"Bearer {ANTHROPIC_SECRET}",
    )
    # WHEN a member asks the chatbot
    openrouter.script(Reply(chunks=["Open", " 9 to 5."], usage=USAGE), model=ANTHROPIC_UPSTREAM_MODEL)
    response = chat(client, owner, chatbot_id=str(bot), content=QUESTION)
    # THEN the reply comes from Anthropic's endpoint, asked with the key in the same headers, for the model by
    # Anthropic's id, without OpenRouter's own fields
    assert response.status_code == 200, response.text
    assert "Open" in response.text and "9 to 5." in response.text
    [request] = [r for r in openrouter.chat_requests if r.body.get("stream")]
    assert request.path.endswith("/anthropic/chat/completions")
    assert (
        request.headers["x-api-key"],
        request.headers["anthropic-version"],
        request.headers["authorization"],
    ) == (
        ANTHROPIC_SECRET,
        "2023-06-01",
        f"Bearer {ANTHROPIC_SECRET}",
    )
    assert request.body["model"] == ANTHROPIC_UPSTREAM_MODEL
    assert "models" not in request.body and request.body["stream_options"] == {"include_usage": True}
    # AND no credits were reserved or taken; the usage record names the key; the key is in no answer
    assert credits_state(database_url, workspace) == (Decimal(0), Decimal(0))
    assert usage_transactions(database_url, workspace) == 0
    recorded = sql_value(
        database_url,
        "select row(provider_key_id, model_id)::text from public.usage_records where workspace_id = %s",
        workspace,
    )
    assert recorded == f"({key['id']},{ANTHROPIC_MODEL})"
    assert ANTHROPIC_SECRET not in tested.text + response.text


def test_a_provider_error_that_quotes_the_key_carries_it_nowhere(
    client: httpx.Client, owner: AppUser, openrouter: FakeOpenRouter, database_url: str, local_server: LocalServer
) -> None:
    """Providers echo the key they were given in their errors (OpenAI: "Incorrect API key provided: sk-…");
    a custom or proxying endpoint may quote it whole. Neither the caller's answer, nor the server's log,
    nor any row the reply wrote may carry it."""
    workspace = personal_workspace(database_url, owner)
    bot = chatbot(database_url, workspace, [], credits=None, model=MODEL)
    add_key(client, owner, workspace)
    # WHEN the provider fails the reply with a 400 quoting the key (not a refusal: the key stays active)
    openrouter.script(Status(400, f"Unsupported parameter for key {SECRET}"), model=UPSTREAM_MODEL)
    failed = chat(client, owner, chatbot_id=str(bot), content=QUESTION)
    assert failed.status_code == 502, failed.text
    # AND then refuses it with a 401 quoting it
    openrouter.script(Status(401, f"Incorrect API key provided: {SECRET}"), model=UPSTREAM_MODEL)
    refused = chat(client, owner, chatbot_id=str(bot), content=QUESTION)
    assert refused.status_code == 424, refused.text
    # THEN the key is in no answer, no log line, and no row of the database
    assert SECRET not in failed.text and SECRET not in refused.text
    assert SECRET not in local_server.log
    with psycopg.connect(database_url, autocommit=True) as conn:
        tables = conn.execute(
            "select table_schema, table_name from information_schema.tables"
            " where table_schema in ('public', 'oneai_private') and table_type = 'BASE TABLE'"
        ).fetchall()
        for schema, name in tables:
            found = conn.execute(
                f'select count(*) from "{schema}"."{name}" t where t::text like %s',  # noqa: S608 - catalog names
                (f"%{SECRET}%",),
            ).fetchone()
            assert found is not None and found[0] == 0, (schema, name)


OPENAI_NO_QUOTA = {
    "error": {
        "message": "You exceeded your current quota, please check your plan and billing details. For more "
        "information on this error, read the docs: https://platform.openai.com/docs/guides/error-codes/api-errors.",
        "type": "insufficient_quota",
        "param": None,
        "code": "insufficient_quota",
    }
}


def test_a_key_whose_account_has_no_funds_is_named_in_a_424_stays_active_and_its_test_says_so(
    client: httpx.Client, owner: AppUser, openrouter: FakeOpenRouter, database_url: str, local_server: LocalServer
) -> None:
    """OpenAI's 429 `insufficient_quota` and OpenRouter's 402 with a workspace's key: the account behind the
    key cannot pay. Not a platform failure (no 5xx, no UpstreamFailures metric): a 424 naming the key with
    reason "no_funds"; the key stays active (it is valid) and the next reply gets the same 424 until the
    account is topped up or the key removed; the key's test says it too."""
    workspace = personal_workspace(database_url, owner)
    bot = chatbot(database_url, workspace, [], credits=None, model=MODEL)
    key = add_key(client, owner, workspace, name="Production")
    # (a provider failure with the key is the platform's 502, counted as an upstream failure)
    openrouter.script(Status(500, "Internal error"), Status(500), Status(500), Status(500), model=UPSTREAM_MODEL)
    logged = len(local_server.log)
    assert chat(client, owner, chatbot_id=str(bot), content=QUESTION).status_code == 502
    assert "UpstreamFailures" in local_server.log[logged:]
    # WHEN OpenAI answers that the key's account has no quota left
    openrouter.reset()
    openrouter.script(Status(429, body=OPENAI_NO_QUOTA), model=UPSTREAM_MODEL)
    logged = len(local_server.log)
    response = chat(client, owner, chatbot_id=str(bot), content=QUESTION)
    # THEN a 424 names the key and says why, asked once (not retried as a rate limit), counted as no failure
    assert response.status_code == 424, response.text
    error = response.json()["error"]
    assert error["code"] == "PROVIDER_KEY_REFUSED"
    assert error["details"] == {
        "provider_key_id": key["id"],
        "provider": "openai",
        "name": "Production",
        "reason": "no_funds",
    }
    assert "'Production'" in error["message"] and "no funds or quota left" in error["message"]
    assert len([r for r in openrouter.chat_requests if r.body.get("stream")]) == 1
    assert "UpstreamFailures" not in local_server.log[logged:]
    # AND the key is still active, the workspace's message unit came back, nothing was charged
    shown = client.get(f"/provider-keys/{key['id']}", headers=owner.headers).json()
    assert (shown["status"], shown["invalid_reason"]) == ("active", None)
    assert workspace_messages_today(database_url, workspace) == 0
    assert credits_state(database_url, workspace) == (Decimal(0), Decimal(0))
    # AND the next reply tries the key again: the same 424 (not the credits' 402) until the account is topped up
    openrouter.script(Status(429, body=OPENAI_NO_QUOTA), model=UPSTREAM_MODEL)
    again = chat(client, owner, chatbot_id=str(bot), content=QUESTION)
    assert again.status_code == 424 and again.json()["error"]["details"]["reason"] == "no_funds"
    # AND the key's test says it, and changes nothing
    openrouter.script_models(Status(429, body=OPENAI_NO_QUOTA))
    tested = client.post(f"/provider-keys/{key['id']}/test", headers=owner.headers)
    assert tested.status_code == 200
    assert tested.json() == {
        "ok": False,
        "models": None,
        "error": "the account of the key 'Production' at openai has no funds or quota left",
        "reason": "no_funds",
    }
    assert client.get(f"/provider-keys/{key['id']}", headers=owner.headers).json()["status"] == "active"
    assert SECRET not in response.text + again.text + tested.text


def test_an_openrouter_key_without_credits_is_a_424_naming_it_and_its_test_says_so(
    client: httpx.Client, owner: AppUser, openrouter: FakeOpenRouter, database_url: str
) -> None:
    workspace = personal_workspace(database_url, owner)
    bot = chatbot(database_url, workspace, [], credits=None, model=MODEL)
    router_key = "sk-or-v1-e2e-customer-router-key-9911"
    key = add_key(client, owner, workspace, provider="openrouter", name="Router", key=router_key)
    # WHEN OpenRouter answers the reply with its 402: the key's account has no credits
    # (twice: the conversation's title, asked of the same model on the platform's account, takes one)
    no_credits = Status(402, "Insufficient credits. Add more using https://openrouter.ai/credits")
    openrouter.script(no_credits, no_credits, model=MODEL)
    response = chat(client, owner, chatbot_id=str(bot), content=QUESTION)
    # THEN a 424 names the key (not the platform's 502 "not available")
    assert response.status_code == 424, response.text
    assert response.json()["error"]["details"] == {
        "provider_key_id": key["id"],
        "provider": "openrouter",
        "name": "Router",
        "reason": "no_funds",
    }
    [request] = [r for r in openrouter.chat_requests if r.body.get("stream")]
    assert request.headers["authorization"] == f"Bearer {router_key}"
    assert workspace_messages_today(database_url, workspace) == 0
    assert client.get(f"/provider-keys/{key['id']}", headers=owner.headers).json()["status"] == "active"
    # AND the key's test says it
    openrouter.script_models(Status(402, "Insufficient credits"))
    tested = client.post(f"/provider-keys/{key['id']}/test", headers=owner.headers).json()
    assert (tested["ok"], tested["reason"]) == (False, "no_funds")
    assert tested["error"] == "the account of the key 'Router' at openrouter has no funds or quota left"
