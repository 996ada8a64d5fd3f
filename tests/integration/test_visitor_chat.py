"""The widget's public chat in a real PostgreSQL (issue 27 part 2): a visitor's turn through the one entry
point (`start_turn` with `VisitorTurn`) against the fake OpenRouter. What a visitor and the chatbot's owner
would notice: the stream (sources before the text), the rows the inbox reads (the visitor's message and the
reply with its sources, model, tokens, status and timings; the conversation's count and last message time),
the credits (settled, never over-spent, refunded when the model fails before its first token), the
chatbot's daily widget messages at their limit under concurrency, and another visitor's conversation
being not found.

Concurrent turns are real transactions on their own connections, released at once by a barrier."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from decimal import Decimal
from typing import Any

import anyio
import psycopg
import pytest
from psycopg.rows import dict_row
from pydantic import SecretStr

from local.fake_openrouter import EmbeddingsReply, FakeOpenRouter, Infinite, MidStreamError, Reply, Status
from oneai.chat.entry import start_turn
from oneai.chat.turn import PreparedTurn, ReplyOutcome
from oneai.config import Settings, override_settings
from oneai.db.connection import Database
from oneai.errors import InsufficientCreditsError, NotFoundError, OneAIError, RateLimitedError
from oneai.openrouter.client import OpenRouterClient
from oneai.widget import service
from oneai.widget.chat import VisitorTurn, parse_visitor_body
from oneai.widget.models import SessionRequest
from tests.aws_support import captured_events
from tests.integration.test_webhooks import BUS
from tests.widget_support import KNOWLEDGE_MODEL, QUESTION, WidgetChatbot, knowledge_chatbot, new_visitor_id

pytestmark = pytest.mark.integration

SECRET = "integration-widget-secret"
SHOP = "https://shop.example"
USAGE = {"prompt_tokens": 30, "completion_tokens": 5, "total_tokens": 35, "cost": 0.0002}
# No price known (an empty catalog): every reply reserves the minimum, 10.00 INR here.
TERMS: dict[str, Any] = {"prices": {}, "rate": "85", "markup": "1", "min_reserve": "10.00", "passage_tokens": 600}


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeOpenRouter]:
    with FakeOpenRouter(delay=0.0) as server:
        yield server


@pytest.fixture
def visitor_db(settings_with_db: Settings) -> Iterator[Database]:
    database = Database(settings_with_db.model_copy(update={"widget_session_secret": SecretStr(SECRET)}))
    yield database
    database.close()


def admin(database_url: str) -> psycopg.Connection[dict[str, Any]]:
    return psycopg.connect(database_url, autocommit=True, row_factory=dict_row)


def rows(database_url: str, query: str, *args: object) -> list[dict[str, Any]]:
    with admin(database_url) as conn:
        return conn.execute(query, args).fetchall()


def visitor(db: Database, chatbot: WidgetChatbot, visitor_id: str | None = None) -> VisitorTurn:
    """A visitor whose session opened, checked as the public chat checks it (no rate limits here)."""
    settings = db.settings.model_copy(update={"rate_limit_enabled": False})
    visitor_id = visitor_id or new_visitor_id()
    opened = service.open_session(
        db,
        settings,
        service.PublicCall(public_id=chatbot.public_id, origin=SHOP, source_check=None, source_host="203.0.113.9"),
        SessionRequest(visitor_id=visitor_id, page_url=f"{SHOP}/help", locale="en-GB"),
    )
    call = service.PublicCall(public_id=chatbot.public_id, origin=SHOP, source_check=None)
    found, session = service.admit_visitor(db, settings, call, f"Bearer {opened.session_token}")
    return VisitorTurn(call=call, chatbot=found, session=session, received_at=time.monotonic())


def client_of(fake: FakeOpenRouter) -> OpenRouterClient:
    return OpenRouterClient(
        Settings(openrouter_api_key=SecretStr("sk-or-test"), openrouter_base_url=fake.base_url)
    )


def ask(
    db: Database, fake: FakeOpenRouter, turn: VisitorTurn, body: dict[str, Any]
) -> tuple[list[dict[str, Any]], str]:
    """One visitor turn to its end: the stream's parts, and the raw stream."""

    async def run() -> str:
        async with client_of(fake) as client:
            reply = await start_turn(db, client, turn.principal, parse_visitor_body(body), kind=turn)
            chunks = [chunk async for chunk in reply.events()]
            await reply.wait()
        return b"".join(chunks).decode()

    raw = anyio.run(run)
    parts = [json.loads(line[len("data: ") :]) for line in raw.splitlines() if line.startswith("data: {")]
    return parts, raw


def conversation_of(parts: list[dict[str, Any]]) -> str:
    return str(next(p for p in parts if p["type"] == "data-conversation")["data"]["id"])


def test_a_visitor_turn_streams_the_chatbots_answer_with_its_sources_and_keeps_it_for_the_inbox(
    visitor_db: Database, fake: FakeOpenRouter, database_url: str
) -> None:
    # GIVEN a chatbot on a refunds policy, its workspace with credits, and a visitor
    chatbot = knowledge_chatbot(database_url, credits="100.00")
    turn = visitor(visitor_db, chatbot)
    fake.script(Reply(chunks=["Within 14 days", " (refunds.pdf)."], usage=USAGE), model=KNOWLEDGE_MODEL)
    # WHEN the visitor asks
    parts, raw = ask(visitor_db, fake, turn, {"content": QUESTION})
    # THEN the stream is /chat/stream's: the passage as a source-document part before the text, the text,
    # the end
    types = [p["type"] for p in parts]
    assert types[0] == "start" and types[-1] == "finish" and raw.rstrip().endswith("data: [DONE]")
    assert types.index("source-document") < types.index("text-start")
    source = next(p for p in parts if p["type"] == "source-document")
    assert (source["title"], source["filename"]) == ("refunds.pdf p. 2", "refunds.pdf")
    assert "".join(p["delta"] for p in parts if p["type"] == "text-delta") == "Within 14 days (refunds.pdf)."
    # AND the model was asked with the chatbot's prompt, knowledge and parameters
    request = [r for r in fake.chat_requests if r.body.get("model") == KNOWLEDGE_MODEL][-1]
    assert (request.body["temperature"], request.body["max_tokens"]) == (0.2, 300)
    assert [m["role"] for m in request.body["messages"]] == ["system", "system", "user"]
    # AND the inbox's rows: the visitor's message and the reply with its sources, model, tokens, status and
    # timings; the conversation counts both and is the visitor's, as they were on the page
    conversation = conversation_of(parts)
    saved = rows(
        database_url,
        "select role, content, status, model_id, tokens_used, sources, ttft_ms, total_ms, created_at"
        " from public.visitor_messages where conversation_id = %s order by sequence_number",
        conversation,
    )
    assert [(m["role"], m["content"], m["status"]) for m in saved] == [
        ("user", QUESTION, "complete"),
        ("assistant", "Within 14 days (refunds.pdf).", "complete"),
    ]
    reply = saved[1]
    assert (reply["model_id"], reply["tokens_used"]) == (KNOWLEDGE_MODEL, 35)
    assert [s["chunk_id"] for s in reply["sources"]] == [source["sourceId"]]
    assert reply["sources"][0]["filename"] == "refunds.pdf" and reply["sources"][0]["page"] == 2
    assert 0 <= reply["ttft_ms"] <= reply["total_ms"] < 30_000
    assert saved[0]["ttft_ms"] is None and saved[0]["total_ms"] is None
    [row] = rows(
        database_url,
        "select c.message_count, c.last_message_at, c.visitor_id, c.page_url, c.locale, c.chatbot_id"
        " from public.visitor_conversations c where c.id = %s",
        conversation,
    )
    assert (row["message_count"], row["last_message_at"]) == (2, reply["created_at"])
    assert (row["visitor_id"], row["page_url"], row["locale"], row["chatbot_id"]) == (
        turn.session.visitor_id,
        f"{SHOP}/help",
        "en-GB",
        chatbot.id,
    )
    # AND the workspace paid: the hold settled with the real cost, linked to a usage record of the chatbot
    [account] = rows(
        database_url, "select * from public.workspace_credits where workspace_id = %s", chatbot.workspace_id
    )
    [usage] = rows(
        database_url,
        "select u.user_id, u.chatbot_id, u.model_id, u.cost, t.type, t.amount from public.usage_records u"
        " join public.credit_transactions t on t.usage_record_id = u.id where u.workspace_id = %s",
        chatbot.workspace_id,
    )
    assert (usage["user_id"], usage["chatbot_id"], usage["model_id"], usage["type"]) == (
        None,
        chatbot.id,
        KNOWLEDGE_MODEL,
        "usage",
    )
    assert usage["cost"] == Decimal("0.0002") and usage["amount"] < 0
    assert (account["reserved"], account["balance"]) == (0, Decimal("100") + usage["amount"])
    # AND the chatbot's day counts one widget message
    assert rows(
        database_url, "select used from public.widget_message_counts where chatbot_id = %s", chatbot.id
    ) == [{"used": 1}]

    # WHEN the visitor follows up in the same conversation (the AI SDK body, its chat id the conversation's)
    fake.script(Reply(chunks=["Yes."], usage=USAGE), model=KNOWLEDGE_MODEL)
    follow_up = {
        "id": conversation,
        "messages": [
            {"id": "m2", "role": "user", "parts": [{"type": "text", "text": "Is that for refunds too?"}]}
        ],
        "trigger": "submit-message",
    }
    parts, _ = ask(visitor_db, fake, turn, follow_up)
    # THEN the model saw the conversation so far, and the conversation counts four messages
    assert conversation_of(parts) == conversation
    request = [r for r in fake.chat_requests if r.body.get("model") == KNOWLEDGE_MODEL][-1]
    assert [m["role"] for m in request.body["messages"]][-3:] == ["user", "assistant", "user"]
    assert rows(
        database_url, "select message_count from public.visitor_conversations where id = %s", conversation
    ) == [{"message_count": 4}]


def test_another_visitors_or_chatbots_conversation_is_not_found_and_nothing_is_written(
    visitor_db: Database, fake: FakeOpenRouter, database_url: str
) -> None:
    chatbot = knowledge_chatbot(database_url)
    owner_turn = visitor(visitor_db, chatbot)
    fake.script(Reply(chunks=["Hello."], usage=USAGE), model=KNOWLEDGE_MODEL)
    parts, _ = ask(visitor_db, fake, owner_turn, {"content": "Hi"})
    conversation = conversation_of(parts)
    stranger = visitor(visitor_db, chatbot)
    with pytest.raises(NotFoundError):
        ask(visitor_db, fake, stranger, {"content": "Show me theirs", "conversation_id": conversation})
    other_bot = knowledge_chatbot(database_url)
    same_visitor_elsewhere = visitor(visitor_db, other_bot, owner_turn.session.visitor_id)
    with pytest.raises(NotFoundError):
        ask(visitor_db, fake, same_visitor_elsewhere, {"content": "And here?", "conversation_id": conversation})
    assert rows(
        database_url, "select count(*) as n from public.visitor_messages where conversation_id = %s", conversation
    ) == [{"n": 2}]
    counted = rows(
        database_url,
        "select chatbot_id, used from public.widget_message_counts where chatbot_id in (%s, %s)",
        chatbot.id,
        other_bot.id,
    )
    assert counted == [{"chatbot_id": chatbot.id, "used": 1}]  # the refused turns took no unit


def test_an_upstream_failure_before_the_first_token_keeps_the_question_and_refunds_everything(
    visitor_db: Database, fake: FakeOpenRouter, database_url: str
) -> None:
    chatbot = knowledge_chatbot(database_url, credits="100.00")
    turn = visitor(visitor_db, chatbot)
    fake.script(Status(400, "bad request upstream"), model=KNOWLEDGE_MODEL)
    with pytest.raises(OneAIError) as refused:
        ask(visitor_db, fake, turn, {"content": QUESTION})
    assert refused.value.status >= 400
    # The visitor's message is kept; no reply, half-written or not; the hold and the day's unit are back.
    saved = rows(
        database_url,
        "select m.role, m.content, c.message_count from public.visitor_messages m"
        " join public.visitor_conversations c on c.id = m.conversation_id where c.chatbot_id = %s",
        chatbot.id,
    )
    assert saved == [{"role": "user", "content": QUESTION, "message_count": 1}]
    [account] = rows(
        database_url, "select * from public.workspace_credits where workspace_id = %s", chatbot.workspace_id
    )
    assert (account["reserved"], account["balance"]) == (0, Decimal("100"))
    assert rows(
        database_url, "select status from public.credit_reservations where workspace_id = %s", chatbot.workspace_id
    ) == [{"status": "refunded"}]
    assert rows(
        database_url, "select used from public.widget_message_counts where chatbot_id = %s", chatbot.id
    ) == [{"used": 0}]


def race(databases: list[Database], work: Callable[[Database], Any]) -> list[Any]:
    barrier = threading.Barrier(len(databases))
    results: list[Any] = [None] * len(databases)

    def run(index: int, database: Database) -> None:
        with database.service_transaction():
            pass  # the connection is open before the race starts
        barrier.wait(timeout=30)
        try:
            results[index] = work(database)
        except BaseException as exc:
            results[index] = exc

    threads = [threading.Thread(target=run, args=(i, d)) for i, d in enumerate(databases)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    return results


def prepare(turn: VisitorTurn, content: str = QUESTION) -> Callable[[Database], PreparedTurn]:
    def work(database: Database) -> PreparedTurn:
        return turn.prepare(
            database,
            turn.principal,
            parse_visitor_body({"content": content}),
            too_long_for=frozenset(),
            inline=(),
            credits=TERMS,
        )

    return work


@pytest.fixture
def databases(settings_with_db: Settings) -> Iterator[Callable[[Settings, int], list[Database]]]:
    made: list[Database] = []

    def make(settings: Settings, count: int) -> list[Database]:
        batch = [Database(settings) for _ in range(count)]
        made.extend(batch)
        return batch

    yield make
    for database in made:
        database.close()


def test_twenty_parallel_visitors_under_a_daily_limit_of_five_get_exactly_five_answers(
    visitor_db: Database, settings_with_db: Settings, databases: Any, database_url: str
) -> None:
    chatbot = knowledge_chatbot(database_url, credits="1000.00")
    limited = settings_with_db.model_copy(update={"workspace_limits": '{"free": {"widget_messages_per_day": 5}}'})
    turns = [visitor(visitor_db, chatbot) for _ in range(20)]
    pool = databases(limited, 20)
    results = race(pool, lambda d: prepare(turns[pool.index(d)])(d))
    admitted = [r for r in results if isinstance(r, PreparedTurn)]
    refused = [r for r in results if isinstance(r, RateLimitedError)]
    assert (len(admitted), len(refused)) == (5, 15), [
        r for r in results if not isinstance(r, PreparedTurn | RateLimitedError)
    ][:3]
    assert {(e.details["bucket"], e.details["limit"], e.details["used"]) for e in refused} == {
        ("widget_chatbot_day", 5, 5)
    }
    assert all(1 <= e.details["retry_after"] <= 86_400 for e in refused)
    # Exactly five conversations, five messages, five holds: the refused turns wrote nothing
    assert rows(
        database_url, "select used from public.widget_message_counts where chatbot_id = %s", chatbot.id
    ) == [{"used": 5}]
    assert rows(
        database_url, "select count(*) as n from public.visitor_conversations where chatbot_id = %s", chatbot.id
    ) == [{"n": 5}]
    [account] = rows(
        database_url, "select * from public.workspace_credits where workspace_id = %s", chatbot.workspace_id
    )
    assert account["reserved"] == Decimal("50")
    for prepared in admitted:  # the model fails for all: everything goes back
        assert prepared.ledger is not None
        prepared.ledger.refund(visitor_db, prepared)
    assert rows(
        database_url, "select used from public.widget_message_counts where chatbot_id = %s", chatbot.id
    ) == [{"used": 0}]


def test_twelve_parallel_visitors_against_credits_for_four_hold_four_and_never_overspend(
    visitor_db: Database, settings_with_db: Settings, databases: Any, database_url: str
) -> None:
    chatbot = knowledge_chatbot(database_url, credits="40.00")  # four holds of 10.00
    turns = [visitor(visitor_db, chatbot) for _ in range(12)]
    pool = databases(settings_with_db, 12)
    results = race(pool, lambda d: prepare(turns[pool.index(d)])(d))
    admitted = [r for r in results if isinstance(r, PreparedTurn)]
    refused = [r for r in results if isinstance(r, InsufficientCreditsError)]
    assert (len(admitted), len(refused)) == (4, 8), [r for r in results if not isinstance(r, PreparedTurn)][:3]
    assert {(e.status, e.details["needed"]) for e in refused} == {(402, "10.00")}
    [account] = rows(
        database_url, "select * from public.workspace_credits where workspace_id = %s", chatbot.workspace_id
    )
    assert (account["balance"], account["reserved"]) == (Decimal("40"), Decimal("40"))
    # A refused turn leaves nothing: no conversation, no message, no unit of the day
    assert rows(
        database_url, "select count(*) as n from public.visitor_conversations where chatbot_id = %s", chatbot.id
    ) == [{"n": 4}]
    assert rows(
        database_url, "select used from public.widget_message_counts where chatbot_id = %s", chatbot.id
    ) == [{"used": 4}]


def ai_sdk(chat_id: str, text: str) -> dict[str, Any]:
    return {
        "id": chat_id,
        "messages": [{"id": "m", "role": "user", "parts": [{"type": "text", "text": text}]}],
        "trigger": "submit-message",
    }


def test_the_ai_sdk_chat_id_names_the_visitors_conversation_as_on_chat_stream(
    visitor_db: Database, fake: FakeOpenRouter, database_url: str
) -> None:
    chatbot = knowledge_chatbot(database_url)
    turn = visitor(visitor_db, chatbot)
    # A chat id of the client's own: the first message creates the conversation, the next finds it
    fake.script(Reply(chunks=["One."], usage=USAGE), Reply(chunks=["Two."], usage=USAGE), model=KNOWLEDGE_MODEL)
    first, _ = ask(visitor_db, fake, turn, ai_sdk("Xk3vQ9mZp2LwT7rB", "Hello"))
    second, _ = ask(visitor_db, fake, turn, ai_sdk("Xk3vQ9mZp2LwT7rB", "Again"))
    assert conversation_of(first) == conversation_of(second)
    # The same client id from another visitor is another conversation
    other = visitor(visitor_db, chatbot)
    fake.script(Reply(chunks=["Three."], usage=USAGE), model=KNOWLEDGE_MODEL)
    theirs, _ = ask(visitor_db, fake, other, ai_sdk("Xk3vQ9mZp2LwT7rB", "Hi"))
    assert conversation_of(theirs) != conversation_of(first)
    # A UUID chat id: created under that id; another visitor naming it is not found
    chat_id = "6f1c2a7e-8b1d-4c5e-9f60-1a2b3c4d5e6f"
    fake.script(Reply(chunks=["Four."], usage=USAGE), model=KNOWLEDGE_MODEL)
    named, _ = ask(visitor_db, fake, turn, ai_sdk(chat_id, "New chat"))
    assert conversation_of(named) == chat_id
    with pytest.raises(NotFoundError):
        ask(visitor_db, fake, other, ai_sdk(chat_id, "Let me in"))
    counts = rows(
        database_url,
        "select id::text, message_count from public.visitor_conversations where chatbot_id = %s order by started_at",
        chatbot.id,
    )
    assert [c["message_count"] for c in counts] == [4, 2, 2]


def test_the_chatbots_fallback_message_answers_without_a_model_and_costs_no_credits(
    visitor_db: Database, fake: FakeOpenRouter, database_url: str
) -> None:
    # GIVEN a chatbot whose passages never reach its min_score, with a fixed fallback message
    chatbot = knowledge_chatbot(
        database_url,
        credits="100.00",
        retrieval_min_score=0.99,
        fallback_mode="message",
        fallback_message="Please email help@acme.example.",
    )
    turn = visitor(visitor_db, chatbot)
    asked_before = len([r for r in fake.chat_requests if r.body.get("model") == KNOWLEDGE_MODEL])
    # WHEN a visitor asks something the documents do not cover
    parts, _ = ask(visitor_db, fake, turn, {"content": "Do you sell bicycles?"})
    # THEN the fixed message is the reply, no model was asked, no source is shown
    assert (
        "".join(str(p["delta"]) for p in parts if p["type"] == "text-delta") == "Please email help@acme.example."
    )
    assert not [p for p in parts if p["type"] == "source-document"]
    assert len([r for r in fake.chat_requests if r.body.get("model") == KNOWLEDGE_MODEL]) == asked_before
    # AND it is saved with its timings; the credits hold went back whole; it counts as a message of the day
    [reply] = rows(
        database_url,
        "select m.content, m.ttft_ms, m.total_ms from public.visitor_messages m join public.visitor_conversations c"
        " on c.id = m.conversation_id where c.chatbot_id = %s and m.role = 'assistant'",
        chatbot.id,
    )
    assert reply["content"] == "Please email help@acme.example." and 0 <= reply["ttft_ms"] <= reply["total_ms"]
    [account] = rows(
        database_url, "select * from public.workspace_credits where workspace_id = %s", chatbot.workspace_id
    )
    assert (account["reserved"], account["balance"]) == (0, Decimal("100"))
    assert rows(
        database_url, "select count(*) as n from public.usage_records where chatbot_id = %s", chatbot.id
    ) == [{"n": 0}]
    assert rows(
        database_url, "select used from public.widget_message_counts where chatbot_id = %s", chatbot.id
    ) == [{"used": 1}]


def test_a_reply_broken_mid_stream_is_kept_as_incomplete_and_paid_for_what_came(
    visitor_db: Database, fake: FakeOpenRouter, database_url: str
) -> None:
    chatbot = knowledge_chatbot(database_url, credits="100.00")
    turn = visitor(visitor_db, chatbot)
    fake.script(MidStreamError(after_chunks=["Refunds are ", "paid within"]), model=KNOWLEDGE_MODEL)
    parts, _ = ask(visitor_db, fake, turn, {"content": QUESTION})
    # The visitor saw the text so far and an error part; the reply is saved incomplete with that text
    assert "".join(str(p["delta"]) for p in parts if p["type"] == "text-delta") == "Refunds are paid within"
    assert [p for p in parts if p["type"] == "error"]
    [reply] = rows(
        database_url,
        "select m.content, m.status, m.ttft_ms, m.total_ms, c.message_count from public.visitor_messages m"
        " join public.visitor_conversations c on c.id = m.conversation_id"
        " where c.chatbot_id = %s and m.role = 'assistant'",
        chatbot.id,
    )
    assert (reply["content"], reply["status"], reply["message_count"]) == (
        "Refunds are paid within",
        "incomplete",
        2,
    )
    assert 0 <= reply["ttft_ms"] <= reply["total_ms"]
    # The hold is settled (released), never left held
    [account] = rows(
        database_url, "select * from public.workspace_credits where workspace_id = %s", chatbot.workspace_id
    )
    assert account["reserved"] == 0
    assert rows(
        database_url, "select status from public.credit_reservations where workspace_id = %s", chatbot.workspace_id
    ) == [{"status": "settled"}]


def usage_charged(database_url: str, workspace_id: object) -> tuple[Decimal, Decimal, int]:
    """The workspace's balance, what its `usage` rows took, and the completion tokens its replies recorded."""
    [account] = rows(database_url, "select * from public.workspace_credits where workspace_id = %s", workspace_id)
    [taken] = rows(
        database_url,
        "select coalesce(sum(-amount), 0) as taken from public.credit_transactions"
        " where workspace_id = %s and type = 'usage'",
        workspace_id,
    )
    [tokens] = rows(
        database_url,
        "select coalesce(sum(completion_tokens), 0) as n from public.usage_records where workspace_id = %s",
        workspace_id,
    )
    assert account["reserved"] == 0
    return Decimal(account["balance"]), Decimal(taken["taken"]), int(tokens["n"])


def test_a_reply_broken_mid_stream_before_its_usage_came_is_charged_its_estimated_cost_not_nothing(
    visitor_db: Database, fake: FakeOpenRouter, database_url: str
) -> None:
    # GIVEN a chatbot on a priced model (the catalog's) with credits, and a visitor
    chatbot = knowledge_chatbot(database_url, credits="100.00")
    turn = visitor(visitor_db, chatbot)
    # WHEN the model fails after a long partial reply, before OpenRouter sent the usage (as it does then)
    fake.script(MidStreamError(after_chunks=["Refunds are paid " * 200, "within"]), model=KNOWLEDGE_MODEL)
    ask(visitor_db, fake, turn, {"content": QUESTION})
    # THEN the reply is paid for what it cost (its tokens at the catalog's prices), not free
    balance, taken, completion_tokens = usage_charged(database_url, chatbot.workspace_id)
    assert completion_tokens > 0
    assert taken > 0 and balance == Decimal("100") - taken


def test_a_reply_whose_usage_never_came_is_charged_its_estimated_cost_not_nothing(
    visitor_db: Database, fake: FakeOpenRouter, database_url: str
) -> None:
    chatbot = knowledge_chatbot(database_url, credits="100.00")
    turn = visitor(visitor_db, chatbot)
    # WHEN the reply completes but no usage chunk comes with it
    fake.script(Reply(chunks=["Within 14 days " * 100], include_usage=False), model=KNOWLEDGE_MODEL)
    ask(visitor_db, fake, turn, {"content": QUESTION})
    balance, taken, completion_tokens = usage_charged(database_url, chatbot.workspace_id)
    assert completion_tokens > 0
    assert taken > 0 and balance == Decimal("100") - taken


def test_a_reply_cut_at_the_time_limit_is_charged_its_estimated_cost_not_nothing(
    settings_with_db: Settings, fake: FakeOpenRouter, database_url: str
) -> None:
    # GIVEN replies limited to half a second (the Lambda's time limit, shortened)
    database = Database(
        settings_with_db.model_copy(
            update={"widget_session_secret": SecretStr(SECRET), "reply_time_limit_seconds": 0.5}
        )
    )
    try:
        chatbot = knowledge_chatbot(database_url, credits="100.00")
        turn = visitor(database, chatbot)
        # WHEN the model keeps writing past the limit (no usage comes: the stream is cut)
        fake.script(Infinite(chunk="and more words ", interval=0.01), model=KNOWLEDGE_MODEL)
        ask(database, fake, turn, {"content": QUESTION})
    finally:
        database.close()
    # THEN the cut reply is paid for what came
    balance, taken, completion_tokens = usage_charged(database_url, chatbot.workspace_id)
    assert completion_tokens > 0
    assert taken > 0 and balance == Decimal("100") - taken


def test_a_reply_whose_conversation_was_deleted_meanwhile_is_charged_and_its_low_balance_crossing_announced(
    visitor_db: Database, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The inbox deleted the visitor's conversation while the reply streamed: the reply was made, so its
    cost is settled on its own; that settle crossed the threshold (100.00), so its one email goes out
    (before, the crossing was counted and marked warned but never announced)."""
    chatbot = knowledge_chatbot(database_url, credits="100.00")
    turn = visitor(visitor_db, chatbot)
    prepared = turn.prepare(
        visitor_db,
        turn.principal,
        parse_visitor_body({"content": QUESTION}),
        too_long_for=frozenset(),
        inline=(),
        credits=TERMS,
    )
    assert prepared.credits is not None and prepared.ledger is not None
    with admin(database_url) as conn:
        conn.execute("delete from public.visitor_conversations where id = %s", (prepared.conversation.id,))
    outcome = ReplyOutcome(
        text="Within 14 days.",
        status="complete",
        served_model=KNOWLEDGE_MODEL,
        generation_id="gen-deleted",
        prompt_tokens=30,
        completion_tokens=5,
        cost=Decimal("0.01"),
    )
    with (
        captured_events(monkeypatch, bus=BUS, source="oneai.credits") as received,
        override_settings(event_bus_name=BUS),
    ):
        with pytest.raises(NotFoundError):
            prepared.ledger.finish(visitor_db, prepared, outcome)
        events = received()
    [account] = rows(
        database_url, "select * from public.workspace_credits where workspace_id = %s", chatbot.workspace_id
    )
    assert (account["balance"], account["reserved"]) == (Decimal("99.15"), 0)  # 0.01 USD x 85
    assert [(e["detail-type"], e["detail"]["crossing"]) for e in events] == [("CreditsLow", 1)]


def test_a_turn_abandoned_while_its_knowledge_is_searched_gives_its_hold_and_unit_back_at_once(
    visitor_db: Database, fake: FakeOpenRouter, database_url: str
) -> None:
    """The visitor goes away (the request is cancelled) while the question is embedded, before the model is
    asked: the credits hold and the message unit go back now, not an hour later by the stale-hold sweep
    (before, only an API error there refunded; a cancellation left 10.00 of a 100.00 balance held)."""
    chatbot = knowledge_chatbot(database_url, credits="100.00")
    turn = visitor(visitor_db, chatbot)
    fake.script_embeddings(EmbeddingsReply(delay=5.0))

    async def run() -> None:
        async with client_of(fake) as client:
            with anyio.move_on_after(1.0):
                await start_turn(
                    visitor_db, client, turn.principal, parse_visitor_body({"content": QUESTION}), kind=turn
                )
                raise AssertionError("the turn should still be searching")

    anyio.run(run)
    [account] = rows(
        database_url, "select * from public.workspace_credits where workspace_id = %s", chatbot.workspace_id
    )
    assert (account["balance"], account["reserved"]) == (Decimal("100"), 0)
    assert rows(
        database_url, "select status from public.credit_reservations where workspace_id = %s", chatbot.workspace_id
    ) == [{"status": "refunded"}]
    assert rows(
        database_url, "select used from public.widget_message_counts where chatbot_id = %s", chatbot.id
    ) == [{"used": 0}]
