"""The chatbots function's sample events (events/chatbots/) drive its deployed entry point, as
`sam local invoke ChatbotsFunction -e events/chatbots/...` would, for the dev user (on pro, owner of the
sample workspace with the sample document and the sample chatbot): every route answers as API.md says, in an
order where each write finds what it needs (the sample chatbot is deleted last)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from pydantic import SecretStr

from local.events import SAMPLE_PATH_PARAMETERS
from local.fake_openrouter import FakeOpenRouter
from oneai.config import override_settings
from tests.integration.test_workspaces_events import seat_dev_user_in_the_sample_workspace, unseat_dev_user
from tests.lambda_support import FakeLambdaContext, like_a_lambda_process

pytestmark = pytest.mark.integration

EVENTS = Path(__file__).resolve().parents[2] / "events" / "chatbots"
SAMPLE_WORKSPACE_ID = SAMPLE_PATH_PARAMETERS["workspace_id"]
SAMPLE_DOCUMENT_ID = SAMPLE_PATH_PARAMETERS["document_id"]
SAMPLE_CHATBOT_ID = SAMPLE_PATH_PARAMETERS["chatbot_id"]
SAMPLE_CONVERSATION_ID = SAMPLE_PATH_PARAMETERS["conversation_id"]
EXPECTED = {
    "get-chatbots-open-api": 200,
    "list-chatbot-templates": 200,
    "create-chatbot": 201,
    "list-chatbots": 200,
    "get-chatbot": 200,
    "update-chatbot": 200,
    "get-chatbot-embed-code": 200,
    "get-chatbot-stats": 200,
    # issue 28: the inbox, on the sample visitor conversation
    "list-chatbot-conversations": 200,
    "get-chatbot-conversation": 200,
    "update-chatbot-conversation": 200,
    "get-chatbot-conversation-stats": 200,
    "export-chatbot-conversations": 200,
    "delete-chatbot-conversation": 204,
    "bulk-delete-chatbot-conversations": 200,
    "toggle-chatbot": 200,
    "reset-chatbot-stats": 200,
    "duplicate-chatbot": 201,
    "retrieve-chatbot-chunks": 200,
    "delete-chatbot": 204,
}
# The sample that embeds its query (OpenRouter: the fake, here) answers in the source-tree test only.
OPENROUTER_EVENTS = frozenset({"retrieve-chatbot-chunks"})


@pytest.fixture
def dev_user_with_a_chatbot(database_url: str) -> Iterator[None]:
    """The dev user on pro, owning the sample workspace, its sample document and sample chatbot."""
    with psycopg.connect(database_url, autocommit=True) as conn:
        seat_dev_user_in_the_sample_workspace(conn)
        conn.execute(
            "insert into public.documents (id, workspace_id, filename, media_type, size_bytes, storage_key, status)"
            " values (%s, %s, 'refund-policy.txt', 'text/plain', 5, %s, 'ready')",
            (
                SAMPLE_DOCUMENT_ID,
                SAMPLE_WORKSPACE_ID,
                f"knowledge/{SAMPLE_WORKSPACE_ID}/{SAMPLE_DOCUMENT_ID}/r.txt",
            ),
        )
        conn.execute(
            "insert into public.chatbots (id, workspace_id, name, use_case, model, status)"
            " values (%s, %s, 'Refunds', 'support', 'openai/gpt-4o-mini', 'active')",
            (SAMPLE_CHATBOT_ID, SAMPLE_WORKSPACE_ID),
        )
        conn.execute(
            "insert into public.visitor_conversations (id, workspace_id, chatbot_id, visitor_id, page_url)"
            " values (%s, %s, %s, '3f9c2a7e-8b1d-4c5e-9f60-1a2b3c4d5e6f', 'https://shop.example/help')",
            (SAMPLE_CONVERSATION_ID, SAMPLE_WORKSPACE_ID, SAMPLE_CHATBOT_ID),
        )
        conn.execute(
            "insert into public.visitor_messages (conversation_id, workspace_id, role, content, sequence_number)"
            " values (%s, %s, 'user', 'Can I get a refund?', 1)",
            (SAMPLE_CONVERSATION_ID, SAMPLE_WORKSPACE_ID),
        )
    yield
    unseat_dev_user(database_url)


def test_every_chatbots_route_has_a_sample_event() -> None:
    assert sorted(p.stem for p in EVENTS.glob("*.json")) == sorted(EXPECTED)


def check_answers(answers: dict[str, Any]) -> None:
    assert answers["get-chatbots-open-api"]["info"]["title"] == "OneAI chatbots"
    assert {t["use_case"] for t in answers["list-chatbot-templates"]["items"]} == {"support"}
    assert answers["create-chatbot"]["document_ids"] == [SAMPLE_DOCUMENT_ID]
    assert answers["create-chatbot"]["widget"]["allowed_origins"] == ["https://shop.example.com"]
    assert [b["name"] for b in answers["list-chatbots"]["items"]] == ["Refunds helper", "Refunds"]
    assert answers["update-chatbot"]["retrieval"]["top_k"] == 8
    assert answers["get-chatbot-embed-code"]["html"].endswith("async></script>")
    assert len(answers["get-chatbot-stats"]["days"]) == 31
    assert answers["toggle-chatbot"]["status"] == "disabled"
    assert answers["duplicate-chatbot"]["status"] == "draft"
    if "retrieve-chatbot-chunks" in answers:
        assert answers["retrieve-chatbot-chunks"] == {"items": []}  # the sample chatbot has no documents
    assert [c["visitor"]["page_url"] for c in answers["list-chatbot-conversations"]["items"]] == [
        "https://shop.example/help"
    ]
    assert answers["update-chatbot-conversation"]["tags"] == ["billing"]
    assert [m["content"] for m in answers["export-chatbot-conversations"]["items"][0]["messages"]] == [
        "Can I get a refund?"
    ]
    assert answers["get-chatbot-conversation-stats"]["total"] == 0  # the sample range is in 2025
    assert answers["bulk-delete-chatbot-conversations"] == {"deleted": 0}  # deleted just before


def test_each_chatbots_sample_event_answers_through_the_lambda_handler(
    database_url: str, dev_user_with_a_chatbot: None
) -> None:
    from chatbots.handler import lambda_handler

    context = FakeLambdaContext(function_name="ChatbotsFunction")
    answers: dict[str, Any] = {}
    with (
        like_a_lambda_process(database_url),
        FakeOpenRouter(delay=0.0) as openrouter,
        override_settings(
            openrouter_api_key=SecretStr("sk-or-v1-test-key"), openrouter_base_url=openrouter.base_url
        ),
    ):
        for name, status in EXPECTED.items():
            event = json.loads((EVENTS / f"{name}.json").read_text())
            response: dict[str, Any] = lambda_handler(event, context)
            assert response["statusCode"] == status, (name, response.get("body"))
            answers[name] = json.loads(response["body"]) if response.get("body") else None
    check_answers(answers)
