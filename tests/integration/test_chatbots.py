"""Chatbot management at the service level against the real database (issue 25 items 1-2): every field
checked (the model against the owner's tier, the documents the workspace's own), the plan's limit held under
concurrent creates, members read and editors write (a stranger sees nothing), list filters and stats that
count every member's conversations, PATCH validated as a whole, soft delete then the sweep's purge (its
conversations and documents unless kept, files in S3 included), duplicate, toggle, reset-stats, embed code,
daily stats, and the documents' side of the links."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from typing import Any
from uuid import UUID

import pytest

from oneai.chatbots import service
from oneai.chatbots.models import ChatbotCreate, ChatbotUpdate, StatsQuery
from oneai.chatbots.purge import purge_deleted_chatbots
from oneai.config import override_settings
from oneai.db.connection import Database
from oneai.db.workspaces import get_workspace
from oneai.errors import ForbiddenError, NotFoundError, OneAIError, PlanLimitError, ValidationError
from oneai.knowledge import documents as documents_service
from oneai.knowledge.document_models import DocumentCreate, DocumentUpdate
from oneai.pagination import PageRequest
from tests.conftest import AppUser
from tests.integration.test_knowledge_documents import add_document_file, keys, s3
from tests.integration.test_workspaces_rls import personal_workspace, team

__all__ = ["s3"]  # a fixture, used by name

pytestmark = pytest.mark.integration

MODEL = "openai/gpt-4o-mini"


def on_tier(db: Database, user: AppUser, tier: str) -> None:
    with db.service_transaction() as conn:
        conn.execute("update public.users set subscription_tier = %s where id = %s", (tier, user.id))


def add_document(db: Database, workspace_id: UUID, filename: str = "guide.txt") -> UUID:
    document_id = uuid.uuid4()
    with db.service_transaction() as conn:
        conn.execute(
            "insert into public.documents (id, workspace_id, filename, media_type, size_bytes, storage_key, status)"
            " values (%s, %s, %s, 'text/plain', 5, %s, 'ready')",
            (document_id, workspace_id, filename, f"knowledge/{workspace_id}/{document_id}/{filename}"),
        )
    return document_id


def create(db: Database, user: AppUser, workspace_id: UUID, **fields: Any) -> Any:
    body = ChatbotCreate.model_validate({"name": "Helper", "model": MODEL, **fields})
    with db.user_transaction(user.principal) as conn:
        return service.create_chatbot(conn, db.settings, workspace_id, body)


def as_user(db: Database, user: AppUser, call: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    with db.user_transaction(user.principal) as conn:
        return call(conn, *args, **kwargs)


def add_conversation(
    db: Database, user: AppUser, workspace_id: UUID, chatbot_id: UUID, messages: int, *, at: datetime | None = None
) -> UUID:
    at = at or datetime.now(UTC)
    with db.service_transaction() as conn:
        row = conn.execute(
            "insert into public.conversations (user_id, title, workspace_id, chatbot_id, created_at, updated_at)"
            " values (%s, 'About refunds', %s, %s, %s, %s) returning id",
            (user.id, workspace_id, chatbot_id, at, at),
        ).fetchone()
        assert row is not None
        for n in range(messages):
            conn.execute(
                "insert into public.chat_messages (conversation_id, user_id, role, content, model_id,"
                " sequence_number, created_at) values (%s, %s, %s, 'text', %s, %s, %s)",
                (row["id"], user.id, "user" if n % 2 == 0 else "assistant", MODEL, n + 1, at),
            )
    return UUID(str(row["id"]))


def add_visitor_conversation(
    db: Database, workspace_id: UUID, chatbot_id: UUID, messages: int, *, at: datetime, rating: int | None = None
) -> UUID:
    """A widget visitor's conversation as the public chat leaves it (its message_count kept), rated or not."""
    with db.service_transaction() as conn:
        row = conn.execute(
            "insert into public.visitor_conversations (workspace_id, chatbot_id, visitor_id, started_at,"
            " last_message_at, message_count, rating, rated_at) values (%s, %s, %s, %s, %s, %s, %s, %s) returning id",
            (
                workspace_id,
                chatbot_id,
                "visitor-" + uuid.uuid4().hex,
                at,
                at,
                messages,
                rating,
                at if rating is not None else None,
            ),
        ).fetchone()
        assert row is not None
        for n in range(messages):
            conn.execute(
                "insert into public.visitor_messages (conversation_id, workspace_id, role, content,"
                " sequence_number, created_at) values (%s, %s, %s, 'text', %s, %s)",
                (row["id"], workspace_id, "user" if n % 2 == 0 else "assistant", n + 1, at),
            )
    return UUID(str(row["id"]))


def fields_of(error: OneAIError) -> list[str]:
    return [item["field"] for item in error.details["errors"]]


# --- create: every field --------------------------------------------------------------------------------


def test_a_created_chatbot_answers_its_whole_configuration(
    db: Database, make_user: Callable[..., AppUser]
) -> None:
    owner = make_user()
    workspace = team(db, owner)
    one, two = add_document(db, workspace, "a.txt"), add_document(db, workspace, "b.txt")
    if one < two:  # the links keep the order given, whatever the ids' order
        one, two = two, one
    bot = create(
        db,
        owner,
        workspace,
        name="  Refunds helper  ",
        description="Answers refunds",
        use_case="support",
        temperature=0.25,
        max_tokens=800,
        system_prompt="Be brief.",
        document_ids=[str(one), str(two), str(one)],
        retrieval={"top_k": 8, "min_score": 0.45},
        fallback={"mode": "message", "message": "Ask a human."},
        widget={
            "title": "Refunds",
            "color": "#0A7CFF",
            "position": "bottom-left",
            "avatar_url": "https://cdn.example.com/a.png",
            "suggested_questions": ["How long?"],
            "allowed_origins": [
                "HTTPS://Shop.Example.com:443/",
                "https://shop.example.com",
                "http://localhost:8080",
            ],
        },
        status="active",
    )
    assert bot.name == "Refunds helper"
    assert bot.workspace_id == workspace and bot.public_id.startswith("cb_")
    assert (bot.use_case, bot.model, bot.temperature, bot.max_tokens) == ("support", MODEL, 0.25, 800)
    assert bot.document_ids == [one, two]
    assert (bot.retrieval.top_k, bot.retrieval.min_score) == (8, 0.45)
    assert (bot.fallback.mode, bot.fallback.message) == ("message", "Ask a human.")
    assert bot.widget.color == "#0a7cff"
    assert bot.widget.allowed_origins == ["https://shop.example.com", "http://localhost:8080"]
    assert bot.status == "active" and bot.created_by == owner.id


def test_a_model_above_the_owners_tier_or_not_offered_is_a_422_on_model(
    db: Database, make_user: Callable[..., AppUser]
) -> None:
    owner, editor = make_user(), make_user()
    workspace = team(db, owner, {editor.id: "editor"})
    on_tier(db, editor, "enterprise")  # the editor's own tier does not matter: the owner's does
    with pytest.raises(ValidationError) as refused:
        create(db, editor, workspace, model="anthropic/claude-sonnet-4")
    assert fields_of(refused.value) == ["model"]
    with pytest.raises(ValidationError) as unknown:
        create(db, editor, workspace, model="acme/unknown-model")
    assert fields_of(unknown.value) == ["model"]

    on_tier(db, owner, "pro")
    assert create(db, editor, workspace, model="anthropic/claude-sonnet-4").model == "anthropic/claude-sonnet-4"


def test_documents_of_another_workspace_or_unknown_are_named_in_the_422(
    db: Database, make_user: Callable[..., AppUser]
) -> None:
    owner = make_user()
    on_tier(db, owner, "pro")
    ours, theirs = team(db, owner, name="Ours"), team(db, owner, name="Theirs")
    mine, foreign, unknown = add_document(db, ours), add_document(db, theirs), uuid.uuid4()
    with pytest.raises(ValidationError) as refused:
        create(db, owner, ours, document_ids=[str(mine), str(foreign), str(unknown)])
    assert fields_of(refused.value) == ["document_ids.1", "document_ids.2"]
    assert str(foreign) in refused.value.details["errors"][0]["message"]
    # nothing was created
    page = as_user(db, owner, service.list_chatbots, ours, PageRequest(), q=None, use_case=None, status=None)
    assert page.items == []


def test_two_creates_at_the_last_slot_one_is_created_one_is_a_plan_limit(
    db: Database, make_user: Callable[..., AppUser]
) -> None:
    """Free: one chatbot. The second create waits for the first one's transaction (the workspace's lock),
    then counts it: without the lock both would count 0 and both would pass."""
    owner = make_user()
    workspace = team(db, owner)
    first_inserted, second_done = threading.Event(), threading.Event()
    outcome: dict[str, object] = {}
    body = ChatbotCreate(name="Second", model=MODEL)

    def second() -> None:
        first_inserted.wait(10)
        try:
            with db.user_transaction(owner.principal) as conn:
                service.create_chatbot(conn, db.settings, workspace, body)
            outcome["second"] = "created"
        except PlanLimitError as error:
            outcome["second"] = error.details
        second_done.set()

    thread = threading.Thread(target=second)
    thread.start()
    with db.user_transaction(owner.principal) as conn:
        service.create_chatbot(conn, db.settings, workspace, ChatbotCreate(name="First", model=MODEL))
        first_inserted.set()
        assert not second_done.wait(1)  # the second waits for this transaction
    thread.join(10)
    assert outcome["second"] == {"limit": 1, "used": 1, "tier": "free"}


# --- roles -----------------------------------------------------------------------------------------------


def test_viewers_read_editors_write_strangers_get_404(db: Database, make_user: Callable[..., AppUser]) -> None:
    owner, editor, viewer, stranger = make_user(), make_user(), make_user(), make_user()
    on_tier(db, owner, "pro")
    workspace = team(db, owner, {editor.id: "editor", viewer.id: "viewer"})
    bot = create(db, editor, workspace)

    assert as_user(db, viewer, service.get_chatbot, bot.id).id == bot.id
    assert as_user(db, viewer, service.embed_code, db.settings, bot.id).public_id == bot.public_id
    writes: list[tuple[Callable[..., Any], tuple[Any, ...], dict[str, Any]]] = [
        (service.update_chatbot, (bot.id, ChatbotUpdate(name="Mine")), {}),
        (service.delete_chatbot, (bot.id,), {"keep_conversations": True, "keep_documents": True}),
        (service.duplicate_chatbot, (db.settings, bot.id), {}),
        (service.toggle_chatbot, (bot.id,), {}),
        (service.reset_stats, (bot.id,), {}),
    ]
    with pytest.raises(ForbiddenError):
        create(db, viewer, workspace)
    for call, args, kwargs in writes:
        with pytest.raises(ForbiddenError):
            as_user(db, viewer, call, *args, **kwargs)
    reads: list[tuple[Callable[..., Any], tuple[Any, ...], dict[str, Any]]] = [
        (service.get_chatbot, (bot.id,), {}),
        (service.embed_code, (db.settings, bot.id), {}),
        (service.daily_stats, (bot.id, StatsQuery()), {}),
    ]
    for call, args, kwargs in [*writes, *reads]:
        with pytest.raises(NotFoundError):
            as_user(db, stranger, call, *args, **kwargs)
    with pytest.raises(NotFoundError):
        create(db, stranger, workspace)
    with pytest.raises(NotFoundError):
        as_user(db, stranger, service.list_chatbots, workspace, PageRequest(), q=None, use_case=None, status=None)
    assert as_user(db, editor, service.get_chatbot, bot.id).name == "Helper"  # nothing changed


def test_the_chatbots_of_a_deleted_workspace_are_gone_with_it(
    db: Database, make_user: Callable[..., AppUser]
) -> None:
    owner = make_user()
    workspace = team(db, owner)
    bot = create(db, owner, workspace)
    with db.service_transaction() as conn:
        conn.execute("update public.workspaces set deleted_at = now() where id = %s", (workspace,))
    for call, args in [
        (service.get_chatbot, (bot.id,)),
        (service.embed_code, (db.settings, bot.id)),
        (service.daily_stats, (bot.id, StatsQuery())),
        (service.toggle_chatbot, (bot.id,)),
    ]:
        with pytest.raises(NotFoundError):
            as_user(db, owner, call, *args)


# --- list, stats, detail ---------------------------------------------------------------------------------


def test_the_list_filters_pages_and_counts_every_members_conversations(
    db: Database, make_user: Callable[..., AppUser]
) -> None:
    owner, member = make_user(), make_user()
    on_tier(db, owner, "pro")
    workspace = team(db, owner, {member.id: "viewer"})
    refunds = create(db, owner, workspace, name="Refunds", use_case="support", status="active")
    create(db, owner, workspace, name="Sales desk", description="about refunds too", use_case="sales")
    create(db, owner, workspace, name="FAQ", use_case="faq")
    add_conversation(db, owner, workspace, refunds.id, 4)
    mine = add_conversation(db, member, workspace, refunds.id, 2)

    def page(**filters: Any) -> Any:
        params = {"q": None, "use_case": None, "status": None, **filters}
        request = PageRequest(limit=filters.pop("limit", 20), cursor=params.pop("cursor", None))
        params.pop("limit", None)
        return as_user(db, member, service.list_chatbots, workspace, request, **params)

    assert [b.name for b in page().items] == ["FAQ", "Sales desk", "Refunds"]
    assert [b.name for b in page(q="REFUND").items] == ["Sales desk", "Refunds"]
    assert [b.name for b in page(use_case="sales").items] == ["Sales desk"]
    assert [b.name for b in page(status="active").items] == ["Refunds"]
    first = page(limit=2)
    assert [b.name for b in first.items] == ["FAQ", "Sales desk"] and first.next_cursor
    rest = page(limit=2, cursor=first.next_cursor)
    assert [b.name for b in rest.items] == ["Refunds"] and rest.next_cursor is None

    stats = {b.name: b.stats.model_dump() for b in page().items}
    assert stats["Refunds"] == {"conversations": 2, "messages": 6, "satisfaction": None}
    assert stats["FAQ"] == {"conversations": 0, "messages": 0, "satisfaction": None}

    detail = as_user(db, member, service.get_chatbot, refunds.id)
    assert detail.stats.conversations == 2
    assert [c.id for c in detail.recent_conversations] == [mine]  # the member's own only


def test_the_detail_lists_the_linked_documents(db: Database, make_user: Callable[..., AppUser]) -> None:
    owner = make_user()
    workspace = team(db, owner)
    document = add_document(db, workspace, "refunds.txt")
    bot = create(db, owner, workspace, document_ids=[str(document)])
    detail = as_user(db, owner, service.get_chatbot, bot.id)
    assert [(d.id, d.filename, d.status) for d in detail.documents] == [(document, "refunds.txt", "ready")]
    assert detail.recent_conversations == []


# --- patch -----------------------------------------------------------------------------------------------


def test_a_patch_changes_what_it_names_and_is_validated_as_a_whole(
    db: Database, make_user: Callable[..., AppUser]
) -> None:
    owner = make_user()
    workspace = team(db, owner)
    one, two = add_document(db, workspace), add_document(db, workspace)
    bot = create(db, owner, workspace, document_ids=[str(one)], widget={"title": "Hi", "color": "#000000"})

    def patch(**changes: Any) -> Any:
        return as_user(db, owner, service.update_chatbot, bot.id, ChatbotUpdate.model_validate(changes))

    changed = patch(retrieval={"top_k": 9}, widget={"color": "#ffffff"}, document_ids=[str(two)])
    assert (changed.retrieval.top_k, changed.retrieval.min_score) == (9, 0.3)
    assert (changed.widget.title, changed.widget.color) == ("Hi", "#ffffff")
    assert changed.document_ids == [two] and changed.name == "Helper"

    with pytest.raises(ValidationError) as no_message:
        patch(fallback={"mode": "message"})
    assert fields_of(no_message.value) == ["fallback"]
    assert patch(fallback={"mode": "message", "message": "Ask us."}).fallback.mode == "message"
    with pytest.raises(ValidationError) as null_name:
        patch(name=None)
    assert fields_of(null_name.value) == ["name"]
    with pytest.raises(ValidationError) as out_of_range:
        patch(temperature=2.5, max_tokens=20000)  # gpt-4o-mini writes at most 16384 tokens
    assert fields_of(out_of_range.value) == ["temperature", "max_tokens"]
    with pytest.raises(ValidationError) as above_tier:
        patch(model="anthropic/claude-opus-4")
    assert fields_of(above_tier.value) == ["model"]
    assert patch(description=None, status="disabled").status == "disabled"
    assert as_user(db, owner, service.get_chatbot, bot.id).document_ids == [two]


# --- delete, purge ---------------------------------------------------------------------------------------


def test_a_deleted_chatbot_is_gone_at_once_and_the_workspace_counts_live_ones(
    db: Database, make_user: Callable[..., AppUser]
) -> None:
    owner = make_user()
    on_tier(db, owner, "pro")
    workspace = team(db, owner)
    kept, gone = create(db, owner, workspace, name="Kept"), create(db, owner, workspace, name="Gone")
    assert as_user(db, owner, get_workspace, workspace).stats.chatbots == 2
    as_user(db, owner, service.delete_chatbot, gone.id, keep_conversations=True, keep_documents=True)

    for call, args in [(service.get_chatbot, (gone.id,)), (service.toggle_chatbot, (gone.id,))]:
        with pytest.raises(NotFoundError):
            as_user(db, owner, call, *args)
    with pytest.raises(NotFoundError):
        as_user(db, owner, service.delete_chatbot, gone.id, keep_conversations=True, keep_documents=True)
    page = as_user(db, owner, service.list_chatbots, workspace, PageRequest(), q=None, use_case=None, status=None)
    assert [b.id for b in page.items] == [kept.id]
    assert as_user(db, owner, get_workspace, workspace).stats.chatbots == 1


def test_the_sweep_purges_deleted_chatbots_with_what_they_did_not_keep(
    db: Database, make_user: Callable[..., AppUser], s3: Any
) -> None:
    purge_deleted_chatbots(db)  # nothing due from other tests
    owner = make_user()
    on_tier(db, owner, "pro")
    workspace = team(db, owner)
    only_key, shared_key, kept_key = (add_document_file(db, s3, workspace) for _ in range(3))
    only, shared, kept_doc = (UUID(key.split("/")[2]) for key in (only_key, shared_key, kept_key))
    purged = create(db, owner, workspace, name="Purged", document_ids=[str(only), str(shared)])
    live = create(db, owner, workspace, name="Live", document_ids=[str(shared)])
    keeper = create(db, owner, workspace, name="Keeper", document_ids=[str(kept_doc)])
    purged_talk = add_conversation(db, owner, workspace, purged.id, 2)
    kept_talk = add_conversation(db, owner, workspace, keeper.id, 2)
    as_user(db, owner, service.delete_chatbot, purged.id, keep_conversations=False, keep_documents=False)
    as_user(db, owner, service.delete_chatbot, keeper.id, keep_conversations=True, keep_documents=True)

    assert purge_deleted_chatbots(db) == 2
    with db.service_transaction() as conn:
        bots = {
            r["id"] for r in conn.execute("select id from public.chatbots where workspace_id = %s", (workspace,))
        }
        documents = {
            r["id"] for r in conn.execute("select id from public.documents where workspace_id = %s", (workspace,))
        }
        talks = {
            r["id"]: r["chatbot_id"]
            for r in conn.execute(
                "select id, chatbot_id from public.conversations where workspace_id = %s", (workspace,)
            )
        }
    assert bots == {live.id}
    assert documents == {shared, kept_doc}  # `shared` is still the live chatbot's
    assert talks == {kept_talk: None}  # kept, filed under the workspace with no chatbot
    assert purged_talk not in talks
    assert sorted(keys(s3, f"knowledge/{workspace}/")) == sorted([shared_key, kept_key])
    assert purge_deleted_chatbots(db) == 0


# --- duplicate, toggle, reset, embed code, daily stats -------------------------------------------------------


def test_duplicate_makes_a_draft_copy_that_counts_toward_the_plan(
    db: Database, make_user: Callable[..., AppUser]
) -> None:
    owner = make_user()
    on_tier(db, owner, "pro")
    workspace = team(db, owner)
    document = add_document(db, workspace)
    original = create(
        db, owner, workspace, name="x" * 100, document_ids=[str(document)], status="active", temperature=1.5
    )
    copy = as_user(db, owner, service.duplicate_chatbot, db.settings, original.id)
    assert copy.name == "x" * 93 + " (copy)" and len(copy.name) == 100
    assert copy.status == "draft" and copy.public_id != original.public_id and copy.id != original.id
    assert (copy.document_ids, copy.temperature, copy.model) == ([document], 1.5, MODEL)

    on_tier(db, owner, "free")
    with pytest.raises(PlanLimitError) as limit:
        as_user(db, owner, service.duplicate_chatbot, db.settings, original.id)
    assert limit.value.details == {"limit": 1, "used": 2, "tier": "free"}


def test_toggle_reset_stats_and_the_embed_code(db: Database, make_user: Callable[..., AppUser]) -> None:
    owner = make_user()
    workspace = UUID(str(personal_workspace(db, owner.id)["id"]))
    bot = create(db, owner, workspace)
    assert [as_user(db, owner, service.toggle_chatbot, bot.id).status for _ in range(3)] == [
        "active",
        "disabled",
        "active",
    ]
    add_conversation(db, owner, workspace, bot.id, 3, at=datetime.now(UTC) - timedelta(minutes=1))
    assert as_user(db, owner, service.get_chatbot, bot.id).stats.messages == 3
    reset = as_user(db, owner, service.reset_stats, bot.id)
    assert (reset.stats.conversations, reset.stats.messages) == (0, 0) and reset.stats_reset_at is not None

    with override_settings(public_api_url="https://api.example.com/prod/") as settings:
        code = as_user(db, owner, service.embed_code, settings, bot.id)
    assert code.script_url == "https://api.example.com/prod/widget.js"
    assert code.html == (
        f'<script src="https://api.example.com/prod/widget.js" data-chatbot="{bot.public_id}" async></script>'
    )
    with override_settings(public_api_url='https://api.example.com/a"b&c') as settings:
        escaped = as_user(db, owner, service.embed_code, settings, bot.id)
    assert 'src="https://api.example.com/a&quot;b&amp;c/widget.js"' in escaped.html


def test_daily_stats_count_per_utc_day_with_totals(db: Database, make_user: Callable[..., AppUser]) -> None:
    owner = make_user()
    workspace = team(db, owner)
    bot = create(db, owner, workspace)
    today = datetime.now(UTC).replace(hour=12, minute=0, second=0, microsecond=0)
    add_conversation(db, owner, workspace, bot.id, 2, at=today - timedelta(days=2))
    add_conversation(db, owner, workspace, bot.id, 4, at=today - timedelta(days=2))
    add_conversation(db, owner, workspace, bot.id, 1, at=today - timedelta(days=40))  # outside the default range

    stats = as_user(db, owner, service.daily_stats, bot.id, StatsQuery())
    assert len(stats.days) == 30 and stats.to == today.date()
    assert stats.totals.model_dump() == {"conversations": 2, "messages": 6}
    by_day = {d.date: (d.conversations, d.messages) for d in stats.days}
    assert by_day[(today - timedelta(days=2)).date()] == (2, 6)
    assert by_day[today.date()] == (0, 0)

    first = (today - timedelta(days=40)).date()
    ranged = as_user(
        db, owner, service.daily_stats, bot.id, StatsQuery.model_validate({"from": first, "to": first})
    )
    assert [(d.date, d.conversations, d.messages) for d in ranged.days] == [(first, 1, 1)]


def test_the_stats_count_visitors_conversations_and_their_satisfaction(
    db: Database, make_user: Callable[..., AppUser]
) -> None:
    owner, stranger = make_user(), make_user()
    workspace = team(db, owner)
    bot = create(db, owner, workspace)
    # a time of today that has passed, at any hour the test runs (noon is still to come in the morning, and
    # a conversation "started" later than the reset below would count after it)
    now = datetime.now(UTC)
    midnight = now.replace(hour=0, minute=0, second=0, microsecond=0)
    today = midnight + (now - midnight) / 2
    add_conversation(db, owner, workspace, bot.id, 2, at=today - timedelta(days=1))
    add_visitor_conversation(db, workspace, bot.id, 4, at=today - timedelta(days=1), rating=5)
    add_visitor_conversation(db, workspace, bot.id, 2, at=today - timedelta(days=1), rating=2)
    add_visitor_conversation(db, workspace, bot.id, 2, at=today)  # not rated: not in the average

    detail = as_user(db, owner, service.get_chatbot, bot.id)
    assert detail.stats.model_dump() == {"conversations": 4, "messages": 10, "satisfaction": 3.5}
    days = as_user(db, owner, service.daily_stats, bot.id, StatsQuery())
    by_day = {d.date: (d.conversations, d.messages) for d in days.days}
    assert by_day[(today - timedelta(days=1)).date()] == (3, 8)
    assert by_day[today.date()] == (1, 2)
    assert days.totals.model_dump() == {"conversations": 4, "messages": 10}
    # a stranger learns nothing of them
    with pytest.raises(NotFoundError):
        as_user(db, stranger, service.daily_stats, bot.id, StatsQuery())

    # after a reset, only what starts later counts, rated or not
    as_user(db, owner, service.reset_stats, bot.id)
    later = datetime.now(UTC) + timedelta(seconds=1)
    assert as_user(db, owner, service.get_chatbot, bot.id).stats.model_dump() == {
        "conversations": 0,
        "messages": 0,
        "satisfaction": None,
    }
    add_visitor_conversation(db, workspace, bot.id, 3, at=later, rating=4)
    assert as_user(db, owner, service.get_chatbot, bot.id).stats.model_dump() == {
        "conversations": 1,
        "messages": 3,
        "satisfaction": 4.0,
    }


def test_the_stats_range_is_checked() -> None:
    from pydantic import ValidationError as PydanticValidationError

    with pytest.raises(PydanticValidationError):
        StatsQuery.model_validate({"from": "2026-02-01", "to": "2026-01-01"})
    with pytest.raises(PydanticValidationError):
        StatsQuery.model_validate({"from": "2025-01-01", "to": "2026-01-02"})  # 367 days
    assert StatsQuery.model_validate({"from": "2025-01-02", "to": "2026-01-02"}).first_day == date(2025, 1, 2)


# --- documents' chatbots ---------------------------------------------------------------------------------


def test_documents_link_to_their_workspaces_live_chatbots(
    db: Database, make_user: Callable[..., AppUser], s3: Any
) -> None:
    from oneai.attachments.storage import ObjectStore
    from oneai.config import get_settings

    owner = make_user()
    on_tier(db, owner, "pro")
    ours, theirs = team(db, owner, name="Ours"), team(db, owner, name="Theirs")
    bot, other = create(db, owner, ours, name="One"), create(db, owner, ours, name="Two")
    foreign = create(db, owner, theirs)
    store = ObjectStore(get_settings())

    def upload(workspace: UUID, chatbot_ids: list[UUID]) -> UUID:
        body = DocumentCreate(filename="a.txt", media_type="text/plain", size=5, chatbot_ids=chatbot_ids)
        with db.user_transaction(owner.principal) as conn:
            return documents_service.create_documents(conn, db.settings, store, workspace, [body])[0].id

    document = upload(ours, [bot.id])
    unlinked = upload(ours, [])
    assert as_user(db, owner, documents_service.get_document, unlinked).chatbot_ids == []
    assert as_user(db, owner, documents_service.get_document, document).chatbot_ids == [bot.id]
    assert as_user(db, owner, service.get_chatbot, bot.id).document_ids == [document]
    with pytest.raises(ValidationError) as refused:
        upload(ours, [foreign.id])
    assert fields_of(refused.value) == ["chatbot_ids.0"]

    changed = as_user(
        db, owner, documents_service.update_document, document, DocumentUpdate(chatbot_ids=[other.id])
    )
    assert changed.chatbot_ids == [other.id]
    with pytest.raises(ValidationError):
        as_user(db, owner, documents_service.update_document, document, DocumentUpdate(chatbot_ids=[uuid.uuid4()]))

    def listed(chatbot_id: UUID) -> list[UUID]:
        page = as_user(
            db,
            owner,
            documents_service.list_documents,
            db.settings,
            ours,
            PageRequest(),
            status=None,
            q=None,
            sort="-created_at",
            chatbot_id=chatbot_id,
        )
        return [d.id for d in page.items]

    assert listed(other.id) == [document]
    assert listed(bot.id) == []
    as_user(db, owner, service.delete_chatbot, other.id, keep_conversations=True, keep_documents=True)
    assert listed(other.id) == []  # a deleted chatbot has no documents to list
    assert as_user(db, owner, documents_service.get_document, document).chatbot_ids == []
