"""A widget visitor's reply paid by the workspace's own provider key (issue 26's routing, for the public
chat): the model is called at the key's endpoint with the key, nothing is reserved from the credits, the
usage record names the key; a key the provider refuses is 424 PROVIDER_KEY_REFUSED (the widget says
"unavailable"), the key is marked invalid, and the visitor's turn is given back (its unit of the day), with
the visitor's message kept and no reply written. KMS is moto's, as in test_provider_keys.py."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from pydantic import SecretStr

from local.fake_openrouter import FakeOpenRouter, Reply, Status
from oneai.auth import authenticate
from oneai.config import Settings
from oneai.db.connection import Database
from oneai.errors import ProviderKeyRefusedError
from oneai.provider_keys import service as provider_keys
from oneai.provider_keys.models import ProviderKeyCreate
from tests.integration.test_provider_keys import kms
from tests.integration.test_visitor_chat import SECRET, USAGE, ask, fake, rows, visitor
from tests.widget_support import KNOWLEDGE_MODEL, QUESTION, knowledge_chatbot, owner_headers

__all__ = ["fake", "kms"]  # fixtures, used by name (kms: autouse)

pytestmark = pytest.mark.integration

CUSTOMER_KEY = "sk-or-v1-customer-own-key-7f3a"


@pytest.fixture
def keyed_db(settings_with_db: Settings, fake: FakeOpenRouter) -> Iterator[Database]:
    """The service's database, with the workspace's `openrouter` key answering at the fake."""
    settings = settings_with_db.model_copy(
        update={"widget_session_secret": SecretStr(SECRET), "openrouter_base_url": fake.base_url}
    )
    database = Database(settings)
    yield database
    database.close()


def test_the_workspaces_key_pays_a_visitors_reply_and_a_refused_key_gives_the_turn_back(
    keyed_db: Database, fake: FakeOpenRouter, database_url: str
) -> None:
    # GIVEN a chatbot whose workspace has no credits but its own OpenRouter key
    chatbot = knowledge_chatbot(database_url, credits=None)
    owner = authenticate(owner_headers(database_url, chatbot)["authorization"])
    with keyed_db.user_transaction(owner) as conn:
        key = provider_keys.create_key(
            conn,
            keyed_db.settings,
            chatbot.workspace_id,
            ProviderKeyCreate.model_validate({"provider": "openrouter", "name": "Ours", "key": CUSTOMER_KEY}),
        )
    turn = visitor(keyed_db, chatbot)
    fake.script(Reply(chunks=["Paid by your key."], usage=USAGE), model=KNOWLEDGE_MODEL)
    # WHEN a visitor asks
    parts, _ = ask(keyed_db, fake, turn, {"content": QUESTION})
    # THEN the model was called with the workspace's key, and the reply came
    assert "".join(str(p["delta"]) for p in parts if p["type"] == "text-delta") == "Paid by your key."
    request = [r for r in fake.chat_requests if r.body.get("model") == KNOWLEDGE_MODEL][-1]
    assert request.headers["authorization"] == f"Bearer {CUSTOMER_KEY}"
    # AND nothing was reserved from the credits; the usage record names the key
    assert rows(
        database_url,
        "select count(*) as n from public.credit_reservations where workspace_id = %s",
        chatbot.workspace_id,
    ) == [{"n": 0}]
    assert rows(
        database_url, "select provider_key_id from public.usage_records where chatbot_id = %s", chatbot.id
    ) == [{"provider_key_id": key.id}]

    # WHEN the provider refuses the key on the next question
    fake.script(Status(401, "invalid key"), model=KNOWLEDGE_MODEL)
    with pytest.raises(ProviderKeyRefusedError) as refused:
        ask(keyed_db, fake, turn, {"content": "And to a gift card?"})
    # THEN 424 naming the key, the key marked invalid, the day's unit back, the question kept, no reply
    assert refused.value.status == 424 and refused.value.details["provider_key_id"] == str(key.id)
    assert rows(database_url, "select status from public.provider_keys where id = %s", key.id) == [
        {"status": "invalid"}
    ]
    assert rows(
        database_url, "select used from public.widget_message_counts where chatbot_id = %s", chatbot.id
    ) == [{"used": 1}]
    saved = rows(
        database_url,
        "select m.role, m.content from public.visitor_messages m join public.visitor_conversations c"
        " on c.id = m.conversation_id where c.chatbot_id = %s order by m.created_at, m.sequence_number",
        chatbot.id,
    )
    assert [(m["role"], m["content"]) for m in saved][-2:] == [
        ("assistant", "Paid by your key."),
        ("user", "And to a gift card?"),
    ]


def test_googles_400_for_a_bad_key_marks_the_key_invalid_and_is_a_424_not_a_platform_failure(
    settings_with_db: Settings, fake: FakeOpenRouter, database_url: str
) -> None:
    # GIVEN a chatbot on a Google model whose workspace has no credits but its own Google key, at the fake
    settings = settings_with_db.model_copy(
        update={"widget_session_secret": SecretStr(SECRET), "google_base_url": fake.base_url}
    )
    database = Database(settings)
    try:
        chatbot = knowledge_chatbot(database_url, credits=None, model="google/gemini-2.5-flash")
        owner = authenticate(owner_headers(database_url, chatbot)["authorization"])
        with database.user_transaction(owner) as conn:
            key = provider_keys.create_key(
                conn,
                settings,
                chatbot.workspace_id,
                ProviderKeyCreate.model_validate(
                    {"provider": "google", "name": "Gemini", "key": "AIzaSyBadKey0123"}
                ),
            )
        # WHEN Google answers the reply as it answers a key it does not accept: 400 API_KEY_INVALID
        fake.script(
            Status(400, "API key not valid. Please pass a valid API key.", metadata={"reason": "API_KEY_INVALID"}),
            model="gemini-2.5-flash",
        )
        with pytest.raises(ProviderKeyRefusedError) as refused:
            ask(database, fake, visitor(database, chatbot), {"content": QUESTION})
        # THEN the key is refused by name (a 424, the customer's key), and marked invalid for the next reply
        assert refused.value.status == 424 and refused.value.details["name"] == "Gemini"
        assert rows(
            database_url, "select status, invalid_reason from public.provider_keys where id = %s", key.id
        ) == [{"status": "invalid", "invalid_reason": "the key 'Gemini' was refused by google"}]
    finally:
        database.close()
