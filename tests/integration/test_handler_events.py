"""The sample events of events/ drive the deployed entry point (`lambda_handler`) directly, as
`sam local invoke -e events/...` would: each one is a valid API Gateway event that answers as docs/api/ says."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import boto3
import psycopg
import pytest
from moto import mock_aws
from psycopg.types.json import Jsonb

from local import DEV_USER_EMAIL, DEV_USER_ID
from oneai.config import override_settings
from tests.lambda_support import FakeLambdaContext, like_a_lambda_process

EVENTS = Path(__file__).resolve().parents[2] / "events" / "conversations"
SAMPLE_CONVERSATION = "11111111-1111-4111-8111-111111111111"
SAMPLE_MESSAGE = "22222222-2222-4222-8222-222222222222"
SAMPLE_SHARE_TOKEN = "c2FtcGxlLXNoYXJlLXRva2Vu"
SAMPLE_ATTACHMENT = "11111111-1111-4111-8111-111111111111"  # the {id} of the sample events
SAMPLE_KEY = f"users/{DEV_USER_ID}/{SAMPLE_ATTACHMENT}"
SAMPLE_BUCKET = "oneai-attachments-sample"

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
    # issue 12: the sample attachment (the sample message's picture, in the mocked bucket)
    ("create-attachment", 201),
    ("get-attachment", 200),
    ("get-attachment-content", 302),
    ("get-shared-attachment", 302),
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
            "insert into public.attachments (id, user_id, conversation_id, message_id, filename, media_type, size,"
            " s3_key, status) values (%s, %s, %s, %s, 'sample.png', 'image/png', 8, %s, 'uploaded')",
            (SAMPLE_ATTACHMENT, DEV_USER_ID, SAMPLE_CONVERSATION, SAMPLE_MESSAGE, SAMPLE_KEY),
        )
        shared_message = {
            "role": "user", "content": "Hello sample", "model_id": "openai/gpt-4o-mini", "sequence_number": 1,
            "created_at": "2026-11-22T12:00:00Z",
            "attachments": [{"id": SAMPLE_ATTACHMENT, "media_type": "image/png", "size": 8}],
        }  # fmt: skip
        shared = {"title": "Sample", "messages": [shared_message]}
        conn.execute(
            "insert into public.share_links (conversation_id, user_id, token, snapshot) values (%s, %s, %s, %s)",
            (SAMPLE_CONVERSATION, DEV_USER_ID, SAMPLE_SHARE_TOKEN, Jsonb(shared)),
        )


def test_every_route_has_a_sample_event() -> None:
    assert sorted(p.stem for p in EVENTS.glob("*.json")) == sorted(name for name, _ in EXPECTED)


def test_each_sample_event_answers_through_the_lambda_handler(database_url: str, sample_rows: None) -> None:
    from conversations.handler import lambda_handler

    context = FakeLambdaContext(function_name="ConversationsFunction")
    with mock_aws(), like_a_lambda_process(database_url), override_settings(attachments_bucket=SAMPLE_BUCKET):
        s3 = boto3.client("s3", region_name="us-east-1")
        s3.create_bucket(Bucket=SAMPLE_BUCKET)
        s3.put_object(Bucket=SAMPLE_BUCKET, Key=SAMPLE_KEY, Body=b"\x89PNG\r\n\x1a\n", ContentType="image/png")
        for name, status in EXPECTED:
            event = json.loads((EVENTS / f"{name}.json").read_text())
            response: dict[str, Any] = lambda_handler(event, context)
            assert response["statusCode"] == status, (name, response.get("body"))
            if status not in (204, 302) and name != "export-conversation":
                assert json.loads(response["body"]) is not None
            if status == 302:  # a presigned GET of the sample object
                assert SAMPLE_KEY in response["headers"]["location"]
    with psycopg.connect(database_url) as conn:
        left = conn.execute("select count(*) from public.conversations where id = %s", (SAMPLE_CONVERSATION,))
        assert left.fetchone() == (0,)
