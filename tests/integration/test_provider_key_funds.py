"""A workspace key whose account at the provider has no funds or quota left (issue 26): the key is valid, so
it is not marked invalid, but the reply cannot be made with it. A member's chatbot reply answers 424
PROVIDER_KEY_REFUSED naming the key with reason "no_funds" (not a platform failure: no 5xx, no retry), the
turn is given back (the workspace's message unit; nothing reserved), and the next reply tries the key again
and gets the same answer until the account is topped up or the key removed. A widget visitor is told only
that the chatbot is unavailable. The key's test says it too and leaves the key's status as it was. A plain
rate limit stays a rate limit.

The providers are the fake OpenRouter at each provider's endpoint, answering each provider's real error body
(OpenRouter's 402, OpenAI's 429 `insufficient_quota`)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any
from uuid import UUID

import anyio
import pytest
from pydantic import SecretStr

from local.fake_openrouter import FakeOpenRouter, Reply, Status
from oneai.chat.entry import start_turn
from oneai.config import Settings
from oneai.db.connection import Database
from oneai.errors import OneAIError, ProviderKeyRefusedError
from oneai.openrouter.client import OpenRouterClient
from oneai.provider_keys import service as provider_keys
from oneai.provider_keys.models import ProviderKeyCreate
from oneai.widget.chat import public_refusal
from tests.conftest import AppUser
from tests.integration.test_provider_keys import kms
from tests.integration.test_reply_payment import scalar, turn, workspace_with_chatbot

__all__ = ["kms"]  # fixtures, used by name (kms: autouse)

pytestmark = pytest.mark.integration

MODEL = "openai/gpt-4o-mini"  # the chatbot's model (tests.integration.test_reply_payment)
OPENAI_KEY = "sk-proj-funds-test-Q2w9e8r7t6y5"
OPENROUTER_KEY = "sk-or-v1-funds-test-1a2b3c4d5e"
OPENAI_NO_QUOTA = {
    "error": {
        "message": "You exceeded your current quota, please check your plan and billing details. For more "
        "information on this error, read the docs: https://platform.openai.com/docs/guides/error-codes/api-errors.",
        "type": "insufficient_quota",
        "param": None,
        "code": "insufficient_quota",
    }
}
OPENROUTER_NO_CREDITS = "Insufficient credits. Add more using https://openrouter.ai/credits"
USAGE = {"prompt_tokens": 30, "completion_tokens": 4, "total_tokens": 34, "cost": 0.0002}


@pytest.fixture
def fake() -> Iterator[FakeOpenRouter]:
    with FakeOpenRouter(delay=0.0) as server:
        yield server


@pytest.fixture
def keyed_db(settings_with_db: Settings, fake: FakeOpenRouter) -> Iterator[Database]:
    """The database, with OpenAI's and OpenRouter's endpoints at the fake (titles by another model than the
    chatbot's, so that a scripted answer is the reply's)."""
    settings = settings_with_db.model_copy(
        update={
            "openai_base_url": f"{fake.base_url}/openai",
            "openrouter_base_url": fake.base_url,
            "title_model": "anthropic/claude-3.5-haiku",
        }
    )
    database = Database(settings)
    yield database
    database.close()


def add_key(db: Database, owner: AppUser, workspace_id: UUID, *, provider: str, name: str, key: str) -> UUID:
    with db.user_transaction(owner.principal) as conn:
        created = provider_keys.create_key(
            conn,
            db.settings,
            workspace_id,
            ProviderKeyCreate.model_validate({"provider": provider, "name": name, "key": key}),
        )
    return created.id


def reply(db: Database, fake: FakeOpenRouter, owner: AppUser, chatbot_id: UUID) -> str:
    """A member's chatbot reply to its end (its text), or the API error it was refused with."""

    async def run() -> str:
        async with OpenRouterClient(
            Settings(openrouter_api_key=SecretStr("sk-or-platform"), openrouter_base_url=fake.base_url)
        ) as client:
            live = await start_turn(db, client, owner.principal, turn(chatbot_id))
            chunks = [chunk async for chunk in live.events()]
            await live.wait()
        return b"".join(chunks).decode()

    return anyio.run(run)


def refused(db: Database, fake: FakeOpenRouter, owner: AppUser, chatbot_id: UUID) -> OneAIError:
    with pytest.raises(OneAIError) as caught:
        reply(db, fake, owner, chatbot_id)
    return caught.value


def messages_today(database_url: str, workspace_id: UUID) -> int:
    used = scalar(
        database_url,
        "select coalesce(sum(used), 0) from public.workspace_message_counts where workspace_id = %s"
        " and day = (now() at time zone 'utc')::date",
        workspace_id,
    )
    return int(used)


def key_state(database_url: str, key_id: UUID) -> Any:
    return scalar(
        database_url, "select row(status, invalid_reason)::text from public.provider_keys where id = %s", key_id
    )


def test_an_openai_key_without_quota_is_a_424_naming_it_and_stays_active_until_topped_up(
    keyed_db: Database, fake: FakeOpenRouter, make_user: Any, database_url: str
) -> None:
    # GIVEN a chatbot on an OpenAI model whose workspace has no credits but its own openai key
    owner = make_user()
    workspace_id, bot = workspace_with_chatbot(keyed_db, owner, {})
    key_id = add_key(keyed_db, owner, workspace_id, provider="openai", name="Production", key=OPENAI_KEY)
    # WHEN OpenAI answers the reply that the key's account has no quota left (a 429 with insufficient_quota)
    fake.script(Status(429, body=OPENAI_NO_QUOTA), model="gpt-4o-mini")
    error = refused(keyed_db, fake, owner, bot)
    # THEN the member is told which key and why: a 424, the customer's key, not the platform's failure
    assert isinstance(error, ProviderKeyRefusedError) and (error.status, error.code) == (
        424,
        "PROVIDER_KEY_REFUSED",
    )
    assert error.details == {
        "provider_key_id": str(key_id),
        "provider": "openai",
        "name": "Production",
        "reason": "no_funds",
    }
    assert "'Production'" in error.message and "no funds or quota left" in error.message
    assert OPENAI_KEY not in error.message and "exceeded your current quota" not in error.message
    # AND it was asked once (not retried as a rate limit is), with the key
    [asked] = [r for r in fake.chat_requests if r.path.endswith("/openai/chat/completions")]
    assert asked.headers["authorization"] == f"Bearer {OPENAI_KEY}"
    # AND the key is still active (it is valid), and the workspace's message unit came back
    assert key_state(database_url, key_id) == "(active,)"
    assert messages_today(database_url, workspace_id) == 0
    assert (
        scalar(
            database_url, "select count(*) from public.credit_reservations where workspace_id = %s", workspace_id
        )
        == 0
    )
    # WHEN asked again before the account is topped up: the same answer (the key is tried again)
    fake.script(Status(429, body=OPENAI_NO_QUOTA), model="gpt-4o-mini")
    again = refused(keyed_db, fake, owner, bot)
    assert isinstance(again, ProviderKeyRefusedError) and again.details["reason"] == "no_funds"
    # WHEN the account has quota again: the key serves the reply
    fake.script(Reply(chunks=["Within 14 days."], usage=USAGE), model="gpt-4o-mini")
    assert "Within 14 days." in reply(keyed_db, fake, owner, bot)
    assert messages_today(database_url, workspace_id) == 1


def test_an_openrouter_key_without_credits_is_a_424_and_a_visitor_is_told_only_unavailable(
    keyed_db: Database, fake: FakeOpenRouter, make_user: Any, database_url: str
) -> None:
    owner = make_user()
    workspace_id, bot = workspace_with_chatbot(keyed_db, owner, {})
    key_id = add_key(keyed_db, owner, workspace_id, provider="openrouter", name="Team router", key=OPENROUTER_KEY)
    # WHEN OpenRouter answers 402: the key's account has no credits
    fake.script(Status(402, OPENROUTER_NO_CREDITS), model=MODEL)
    error = refused(keyed_db, fake, owner, bot)
    assert isinstance(error, ProviderKeyRefusedError) and error.status == 424
    assert error.details == {
        "provider_key_id": str(key_id),
        "provider": "openrouter",
        "name": "Team router",
        "reason": "no_funds",
    }
    [asked] = [r for r in fake.chat_requests if r.body.get("model") == MODEL]
    assert asked.headers["authorization"] == f"Bearer {OPENROUTER_KEY}"
    assert key_state(database_url, key_id) == "(active,)"
    assert messages_today(database_url, workspace_id) == 0
    # AND a widget visitor would see neither the key nor the reason (the widget says "unavailable")
    public = public_refusal(error)
    assert (public.status, public.code, public.details) == (424, "PROVIDER_KEY_REFUSED", {})
    assert "Team router" not in public.message and "funds" not in public.message


def test_a_plain_rate_limit_on_a_key_stays_a_rate_limit(
    keyed_db: Database, fake: FakeOpenRouter, make_user: Any, database_url: str
) -> None:
    owner = make_user()
    workspace_id, bot = workspace_with_chatbot(keyed_db, owner, {})
    key_id = add_key(keyed_db, owner, workspace_id, provider="openai", name="Production", key=OPENAI_KEY)
    limited = {
        "error": {
            "message": "Rate limit reached",
            "type": "requests",
            "param": None,
            "code": "rate_limit_exceeded",
        }
    }
    fake.script(*[Status(429, body=limited, retry_after=0)] * 5, model="gpt-4o-mini")
    error = refused(keyed_db, fake, owner, bot)
    assert not isinstance(error, ProviderKeyRefusedError) and error.code.startswith("UPSTREAM"), error
    assert key_state(database_url, key_id) == "(active,)"


def test_the_key_test_says_an_account_has_no_funds_and_leaves_the_key_as_it_was(
    keyed_db: Database, fake: FakeOpenRouter, make_user: Any, database_url: str
) -> None:
    owner = make_user()
    workspace_id, _ = workspace_with_chatbot(keyed_db, owner, {})
    openai_key = add_key(keyed_db, owner, workspace_id, provider="openai", name="Production", key=OPENAI_KEY)
    router_key = add_key(
        keyed_db, owner, workspace_id, provider="openrouter", name="Team router", key=OPENROUTER_KEY
    )
    fake.script_models(Status(429, body=OPENAI_NO_QUOTA), Status(402, OPENROUTER_NO_CREDITS), Status(401))
    tested = provider_keys.run_key_test(keyed_db, owner.principal, keyed_db.settings, openai_key)
    assert tested.model_dump() == {
        "ok": False,
        "models": None,
        "error": "the account of the key 'Production' at openai has no funds or quota left",
        "reason": "no_funds",
    }
    tested = provider_keys.run_key_test(keyed_db, owner.principal, keyed_db.settings, router_key)
    assert (tested.ok, tested.reason) == (False, "no_funds")
    assert tested.error == "the account of the key 'Team router' at openrouter has no funds or quota left"
    assert key_state(database_url, openai_key) == key_state(database_url, router_key) == "(active,)"
    # a refusal says so and marks the key invalid, as before
    tested = provider_keys.run_key_test(keyed_db, owner.principal, keyed_db.settings, openai_key)
    assert (tested.ok, tested.reason, tested.error) == (
        False,
        "refused",
        "the key 'Production' was refused by openai",
    )
    assert key_state(database_url, openai_key) == "(invalid,\"the key 'Production' was refused by openai\")"
