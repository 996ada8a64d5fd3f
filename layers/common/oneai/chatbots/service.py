"""A workspace's chatbots (API.md "Chatbots"): create, list with stats, read, change, delete (soft),
duplicate, toggle, reset the stats, the embed code, the daily stats, the system-prompt templates; and the
links between documents and chatbots the documents' routes write.

Every function runs in the caller's user transaction, under RLS, as the documents do: a chatbot of a
workspace the caller is not a member of is invisible (404, like an unknown or deleted id); members read,
editors (and above) write (403 below that: `require_role`). The writes then run under the same policies,
which refuse on their own what this code would wrongly allow.

The model of a chatbot must be offered and allowed to the workspace owner's tier: the chat route's rule
(`oneai.chat.offered_models.offered_model`), answered here as a 422 on `model` (a configuration is being
validated, not a turn refused). The number of live chatbots is held to the owner's tier's `chatbots` limit
under a transaction-scoped lock of the workspace, so two creates at the last slot take turns.
"""

from __future__ import annotations

import html
import json
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from functools import cache
from pathlib import Path
from typing import Any, Final
from uuid import UUID

import psycopg.errors
from pydantic import ValidationError as PydanticValidationError

from oneai.chat.offered_models import offered_model
from oneai.chatbots.models import (
    COPY_SUFFIX,
    MAX_NAME_CHARS,
    Chatbot,
    ChatbotConfig,
    ChatbotCreate,
    ChatbotDailyStats,
    ChatbotDetail,
    ChatbotListItem,
    ChatbotPage,
    ChatbotStats,
    ChatbotTemplate,
    ChatbotTemplates,
    ChatbotUpdate,
    DayStats,
    EmbedCode,
    LinkedDocument,
    RecentConversation,
    StatsQuery,
    StatsTotals,
)
from oneai.config import Settings
from oneai.db import chatbots as repo
from oneai.db import workspaces as workspaces_repo
from oneai.db.connection import Connection
from oneai.errors import ForbiddenError, NotFoundError, OneAIError, PlanLimitError, ValidationError, field_error
from oneai.pagination import PageRequest, decode_cursor, encode_cursor
from oneai.workspaces.limits import workspace_limits
from oneai.workspaces.models import Role
from oneai.workspaces.service import require_role

NOT_FOUND: Final = "Chatbot not found"
RECENT_CONVERSATIONS: Final = 10
TEMPLATES_PATH: Final = Path(__file__).with_name("templates.json")


# --- validation -----------------------------------------------------------------------------------------


def _invalid(exc: PydanticValidationError, prefix: str = "") -> ValidationError:
    fields = [
        field_error(prefix + ".".join(str(p) for p in e["loc"]), str(e["msg"]), str(e["type"]))
        for e in exc.errors()
    ]
    return ValidationError("The chatbot is not valid", details={"errors": fields})


def _owner_tier(conn: Connection, workspace_id: UUID) -> str:
    plan = workspaces_repo.owner_plan(conn, workspace_id)
    if plan is None:
        raise NotFoundError("Workspace not found")
    return plan.tier


def _check_model(tier: str, model: str) -> None:
    """Offered, and allowed to the owner's tier: the chat route's rule, as a 422 on `model`."""
    try:
        offered_model(model, tier)
    except ForbiddenError:
        raise ValidationError(
            "The workspace's plan does not include this model",
            details={"errors": [field_error("model", f"not in the {tier} plan: {model}", "model_not_in_plan")]},
        ) from None


def _check_documents(conn: Connection, workspace_id: UUID, ids: Sequence[UUID]) -> None:
    """Every id a document of the workspace (another workspace's, or unknown: 422 naming it)."""
    if not ids:
        return
    known = repo.known_documents(conn, workspace_id, ids)
    errors = [
        field_error(
            f"document_ids.{index}", f"not a document of this workspace: {document_id}", "unknown_document"
        )
        for index, document_id in enumerate(ids)
        if document_id not in known
    ]
    if errors:
        raise ValidationError("Some documents are not the workspace's", details={"errors": errors})


def check_chatbots(conn: Connection, workspace_id: UUID, ids: Sequence[UUID], field: str = "chatbot_ids") -> None:
    """Every id a live chatbot of the workspace (another workspace's, deleted or unknown: 422 naming it)."""
    if not ids:
        return
    known = repo.known_chatbots(conn, workspace_id, ids)
    errors = [
        field_error(f"{field}.{index}", f"not a chatbot of this workspace: {chatbot_id}", "unknown_chatbot")
        for index, chatbot_id in enumerate(ids)
        if chatbot_id not in known
    ]
    if errors:
        raise ValidationError("Some chatbots are not the workspace's", details={"errors": errors})


@contextmanager
def _data_rules() -> Iterator[None]:
    """What the database refuses on its own, as the contract's answers."""
    try:
        yield
    except psycopg.errors.InsufficientPrivilege:  # a policy refused the write (the role changed meanwhile)
        raise ForbiddenError("This needs the role editor (or above) in the workspace") from None
    except psycopg.errors.ForeignKeyViolation:  # a document of another workspace, or one deleted meanwhile
        raise ValidationError(
            "A document is not the workspace's",
            details={
                "errors": [field_error("document_ids", "not documents of this workspace", "unknown_document")]
            },
        ) from None


def _columns(config: ChatbotConfig) -> dict[str, Any]:
    return {
        "name": config.name,
        "description": config.description,
        "use_case": config.use_case,
        "model": config.model,
        "temperature": config.temperature,
        "max_tokens": config.max_tokens,
        "system_prompt": config.system_prompt,
        "retrieval_top_k": config.retrieval.top_k,
        "retrieval_min_score": config.retrieval.min_score,
        "fallback_mode": config.fallback.mode,
        "fallback_message": config.fallback.message,
        "widget": config.widget.model_dump(mode="json"),
        "status": config.status,
    }


def _config_input(row: repo.ChatbotRow) -> dict[str, Any]:
    """The stored configuration in the body's shape (what a PATCH applies its changes to)."""
    return {
        "name": row.name,
        "description": row.description,
        "use_case": row.use_case,
        "model": row.model,
        "temperature": row.temperature,
        "max_tokens": row.max_tokens,
        "system_prompt": row.system_prompt,
        "document_ids": list(row.document_ids),
        "retrieval": {"top_k": row.retrieval_top_k, "min_score": row.retrieval_min_score},
        "fallback": {"mode": row.fallback_mode, "message": row.fallback_message},
        "widget": dict(row.widget),
        "status": row.status,
    }


# --- answers --------------------------------------------------------------------------------------------


def _chatbot(row: repo.ChatbotRow) -> Chatbot:
    stored = _config_input(row)
    return Chatbot.model_validate(
        {
            **stored,
            "id": row.id,
            "workspace_id": row.workspace_id,
            "public_id": row.public_id,
            "temperature": round(row.temperature, 2),
            "retrieval": {"top_k": row.retrieval_top_k, "min_score": round(row.retrieval_min_score, 4)},
            "stats_reset_at": row.stats_reset_at,
            "created_by": row.created_by,
            "created_at": row.created_at,
            "updated_at": row.updated_at,
        }
    )


def _stats(found: repo.StatsRow | None) -> ChatbotStats:
    return ChatbotStats(
        conversations=found.conversations if found else 0,
        messages=found.messages if found else 0,
        satisfaction=float(found.satisfaction) if found and found.satisfaction is not None else None,
    )


def _visible(conn: Connection, chatbot_id: UUID, minimum: Role = "viewer") -> repo.ChatbotRow:
    """The live chatbot of a live workspace the caller is a member of (404 otherwise; 403 below `minimum`)."""
    row = repo.get_chatbot(conn, chatbot_id)
    if row is None:
        raise NotFoundError(NOT_FOUND)
    try:
        require_role(conn, row.workspace_id, minimum)
    except NotFoundError:  # the workspace is deleted: so are its chatbots, for every read
        raise NotFoundError(NOT_FOUND) from None
    return row


def _editable(conn: Connection, chatbot_id: UUID) -> repo.ChatbotRow:
    return _visible(conn, chatbot_id, "editor")


# --- the routes -----------------------------------------------------------------------------------------


def _take_slot(conn: Connection, settings: Settings, workspace_id: UUID) -> str:
    """The owner's tier, once a slot under its `chatbots` limit is held (the workspace's lock, until commit)."""
    repo.lock_chatbots(conn, workspace_id)
    tier = _owner_tier(conn, workspace_id)
    limit = workspace_limits(settings, tier).chatbots  # type: ignore[arg-type]
    used = repo.count_live(conn, workspace_id)
    if used >= limit:
        raise PlanLimitError(
            "Your plan's limit of chatbots is reached", details={"limit": limit, "used": used, "tier": tier}
        )
    return tier


def create_chatbot(conn: Connection, settings: Settings, workspace_id: UUID, body: ChatbotCreate) -> Chatbot:
    require_role(conn, workspace_id, "editor")
    tier = _owner_tier(conn, workspace_id)
    _check_model(tier, body.model)
    _check_documents(conn, workspace_id, body.document_ids)
    _take_slot(conn, settings, workspace_id)
    with _data_rules():
        chatbot_id = repo.insert_chatbot(conn, workspace_id, _columns(body))
        repo.set_documents(conn, workspace_id, chatbot_id, body.document_ids)
    return _chatbot(_visible(conn, chatbot_id))


def _like_pattern(q: str) -> str:
    escaped = q.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def list_chatbots(
    conn: Connection,
    workspace_id: UUID,
    page: PageRequest,
    *,
    q: str | None,
    use_case: str | None,
    status: str | None,
) -> ChatbotPage:
    require_role(conn, workspace_id, "viewer")
    after = None
    if page.cursor:
        keys = decode_cursor(page.cursor, {"created_at": datetime.fromisoformat, "id": UUID})
        after = (keys["created_at"], keys["id"])
    rows = repo.list_chatbots(
        conn,
        workspace_id,
        use_case=use_case,
        status=status,
        pattern=_like_pattern(q) if q else None,
        after=after,
        limit=page.limit + 1,
    )
    next_cursor = None
    if len(rows) > page.limit:
        rows = rows[: page.limit]
        next_cursor = encode_cursor({"created_at": rows[-1].created_at.isoformat(), "id": str(rows[-1].id)})
    stats = repo.stats(conn, [row.id for row in rows])
    items = [ChatbotListItem(**_chatbot(row).model_dump(), stats=_stats(stats.get(row.id))) for row in rows]
    return ChatbotPage(items=items, next_cursor=next_cursor)


def get_chatbot(conn: Connection, chatbot_id: UUID) -> ChatbotDetail:
    row = _visible(conn, chatbot_id)
    stats = repo.stats(conn, [row.id])
    return ChatbotDetail(
        **_chatbot(row).model_dump(),
        stats=_stats(stats.get(row.id)),
        documents=[
            LinkedDocument(id=d.id, filename=d.filename, status=d.status)
            for d in repo.linked_documents(conn, chatbot_id)
        ],
        recent_conversations=[
            RecentConversation(id=c.id, title=c.title, updated_at=c.updated_at)
            for c in repo.recent_conversations(conn, chatbot_id, RECENT_CONVERSATIONS)
        ],
    )


def _merged(row: repo.ChatbotRow, body: ChatbotUpdate) -> ChatbotConfig:
    """The stored configuration with the body's changes, validated as one."""
    merged = _config_input(row)
    changes = body.model_dump(exclude_unset=True)
    for name in ("retrieval", "fallback", "widget"):
        if name in changes and changes[name] is not None:
            merged[name] = {**merged[name], **changes.pop(name)}
    merged.update(changes)
    try:
        return ChatbotConfig.model_validate(merged)
    except PydanticValidationError as exc:
        raise _invalid(exc) from None


def update_chatbot(conn: Connection, chatbot_id: UUID, body: ChatbotUpdate) -> ChatbotDetail:
    row = _editable(conn, chatbot_id)
    config = _merged(row, body)
    _check_model(_owner_tier(conn, row.workspace_id), config.model)
    documents_changed = "document_ids" in body.model_fields_set
    if documents_changed:
        _check_documents(conn, row.workspace_id, config.document_ids)
    with _data_rules():
        if not repo.update_chatbot(conn, chatbot_id, _columns(config)):
            raise NotFoundError(NOT_FOUND)  # deleted by a concurrent request
        if documents_changed:
            repo.set_documents(conn, row.workspace_id, chatbot_id, config.document_ids)
    return get_chatbot(conn, chatbot_id)


def delete_chatbot(conn: Connection, chatbot_id: UUID, *, keep_conversations: bool, keep_documents: bool) -> None:
    """Soft: gone from every read at once; the sweep purges it (and, unless kept, its conversations and the
    documents no other chatbot keeps) at its next run (`oneai.chatbots.purge`)."""
    _editable(conn, chatbot_id)
    with _data_rules():
        deleted = repo.soft_delete(
            conn, chatbot_id, purge_conversations=not keep_conversations, purge_documents=not keep_documents
        )
    if not deleted:
        raise NotFoundError(NOT_FOUND)


def copy_name(name: str) -> str:
    """`Support` -> `Support (copy)`, the name cut so that the whole stays within 100 characters."""
    return name[: MAX_NAME_CHARS - len(COPY_SUFFIX)].rstrip() + COPY_SUFFIX


def duplicate_chatbot(conn: Connection, settings: Settings, chatbot_id: UUID) -> Chatbot:
    """A `draft` copy with the same settings and documents and a new public id; it takes a slot of the plan."""
    row = _editable(conn, chatbot_id)
    _take_slot(conn, settings, row.workspace_id)
    config = ChatbotConfig.model_validate({**_config_input(row), "name": copy_name(row.name), "status": "draft"})
    with _data_rules():
        copy_id = repo.insert_chatbot(conn, row.workspace_id, _columns(config))
        repo.set_documents(conn, row.workspace_id, copy_id, row.document_ids)
    return _chatbot(_visible(conn, copy_id))


TOGGLED: Final = {"active": "disabled", "disabled": "active", "draft": "active"}


def toggle_chatbot(conn: Connection, chatbot_id: UUID) -> ChatbotDetail:
    """active -> disabled, disabled -> active; a draft becomes active."""
    row = _editable(conn, chatbot_id)
    with _data_rules():
        if not repo.set_status(conn, chatbot_id, TOGGLED[row.status]):
            raise NotFoundError(NOT_FOUND)
    return get_chatbot(conn, chatbot_id)


def reset_stats(conn: Connection, chatbot_id: UUID) -> ChatbotDetail:
    _editable(conn, chatbot_id)
    with _data_rules():
        if not repo.reset_stats(conn, chatbot_id):
            raise NotFoundError(NOT_FOUND)
    return get_chatbot(conn, chatbot_id)


def embed_code(conn: Connection, settings: Settings, chatbot_id: UUID) -> EmbedCode:
    """The widget's script tag (the widget issue serves `/widget.js`), under the API's public URL."""
    row = _visible(conn, chatbot_id)
    script_url = f"{settings.public_api_url.rstrip('/')}/widget.js"
    snippet = (
        f'<script src="{html.escape(script_url, quote=True)}" '
        f'data-chatbot="{html.escape(row.public_id, quote=True)}" async></script>'
    )
    return EmbedCode(html=snippet, script_url=script_url, public_id=row.public_id)


def daily_stats(conn: Connection, chatbot_id: UUID, query: StatsQuery) -> ChatbotDailyStats:
    _visible(conn, chatbot_id)
    days = [
        DayStats(date=d.day, conversations=d.conversations, messages=d.messages)
        for d in repo.daily_stats(conn, chatbot_id, query.first_day, query.last_day)
    ]
    totals = StatsTotals(conversations=sum(d.conversations for d in days), messages=sum(d.messages for d in days))
    return ChatbotDailyStats(from_=query.first_day, to=query.last_day, days=days, totals=totals)


# --- a document's chatbots (the documents' routes) --------------------------------------------------------


def link_document(conn: Connection, workspace_id: UUID, document_id: UUID, chatbot_ids: Sequence[UUID]) -> None:
    """The document's chatbots become `chatbot_ids` (live chatbots of its workspace; else 422)."""
    ids = list(dict.fromkeys(chatbot_ids))
    check_chatbots(conn, workspace_id, ids)
    try:
        repo.set_document_chatbots(conn, workspace_id, document_id, ids)
    except psycopg.errors.ForeignKeyViolation:  # a chatbot purged meanwhile
        raise ValidationError(
            "A chatbot is not the workspace's",
            details={"errors": [field_error("chatbot_ids", "not chatbots of this workspace", "unknown_chatbot")]},
        ) from None


def document_chatbots(conn: Connection, document_id: UUID) -> list[UUID]:
    return repo.document_chatbots(conn, document_id)


# --- templates ------------------------------------------------------------------------------------------


class TemplatesFileError(OneAIError):
    """The shipped templates file is not valid (a packaging error, caught by the unit test)."""


@cache
def load_templates(path: Path = TEMPLATES_PATH) -> tuple[ChatbotTemplate, ...]:
    """The system-prompt templates, validated once per process: every field, distinct ids, and at least
    one template for every use case."""
    from oneai.chatbots.models import USE_CASES

    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
        templates = tuple(ChatbotTemplate.model_validate(item) for item in raw["templates"])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise TemplatesFileError(f"{path.name} is not a valid templates file: {exc}") from None
    if len({t.id for t in templates}) != len(templates):
        raise TemplatesFileError(f"{path.name}: template ids must be distinct")
    missing = set(USE_CASES) - {t.use_case for t in templates}
    if missing:
        raise TemplatesFileError(f"{path.name}: no template for {sorted(missing)}")
    return templates


def templates(use_case: str | None = None) -> ChatbotTemplates:
    return ChatbotTemplates(items=[t for t in load_templates() if use_case is None or t.use_case == use_case])
