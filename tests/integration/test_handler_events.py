"""The sample events of events/ drive the deployed entry point (`lambda_handler`) directly, as
`sam local invoke -e events/...` would: each one is a valid API Gateway event that answers as docs/api/ says."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg.types.json import Jsonb

from local import DEV_USER_EMAIL, DEV_USER_ID
from tests.lambda_support import FakeLambdaContext, like_a_lambda_process

EVENTS = Path(__file__).resolve().parents[2] / "events" / "conversations"
SAMPLE_CONVERSATION = "11111111-1111-4111-8111-111111111111"
SAMPLE_MESSAGE = "22222222-2222-4222-8222-222222222222"
SAMPLE_SHARE_TOKEN = "c2FtcGxlLXNoYXJlLXRva2Vu"

# In an order that keeps the sample rows alive until the delete at the end.
EXPECTED = [
    ("get-conversations-open-api", 200),
    ("list-conversations", 200),
    ("create-conversation", 201),
    ("get-conversation", 200),
    ("list-messages", 200),
    ("list-message-revisions", 200),
    ("activate-message-revision", 200),
    ("search-chat-history", 200),
    ("update-conversation", 200),
    ("export-conversation", 200),
    ("create-share-link", 200),
    ("get-shared-conversation", 200),
    ("revoke-share-link", 204),
    ("delete-conversation", 204),
]


@pytest.fixture
def sample_rows(database_url: str) -> None:
    """The dev user with the sample conversation, message and share link the events point at."""
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("delete from auth.users where id = %s", (DEV_USER_ID,))
        conn.execute("insert into auth.users (id, email) values (%s, %s)", (DEV_USER_ID, DEV_USER_EMAIL))
        conn.execute(
            "insert into public.conversations (id, user_id, title) values (%s, %s, 'Sample')",
            (SAMPLE_CONVERSATION, DEV_USER_ID),
        )
        conn.execute(
            "insert into public.chat_messages (id, conversation_id, user_id, role, content, model_id,"
            " sequence_number) values (%s, %s, %s, 'user', 'Hello sample', 'openai/gpt-4o-mini', 1)",
            (SAMPLE_MESSAGE, SAMPLE_CONVERSATION, DEV_USER_ID),
        )
        conn.execute(
            "insert into public.share_links (conversation_id, user_id, token, snapshot) values (%s, %s, %s, %s)",
            (SAMPLE_CONVERSATION, DEV_USER_ID, SAMPLE_SHARE_TOKEN, Jsonb({"title": "Sample", "messages": []})),
        )


def test_every_route_has_a_sample_event() -> None:
    assert sorted(p.stem for p in EVENTS.glob("*.json")) == sorted(name for name, _ in EXPECTED)


def test_each_sample_event_answers_through_the_lambda_handler(database_url: str, sample_rows: None) -> None:
    from conversations.handler import lambda_handler

    context = FakeLambdaContext(function_name="ConversationsFunction")
    with like_a_lambda_process(database_url):
        for name, status in EXPECTED:
            event = json.loads((EVENTS / f"{name}.json").read_text())
            response: dict[str, Any] = lambda_handler(event, context)
            assert response["statusCode"] == status, (name, response.get("body"))
            if status != 204 and name != "export-conversation":
                assert json.loads(response["body"]) is not None
    with psycopg.connect(database_url) as conn:
        left = conn.execute("select count(*) from public.conversations where id = %s", (SAMPLE_CONVERSATION,))
        assert left.fetchone() == (0,)
