"""What a chat turn with a chatbot carries beside a plain turn (issue 25 items 3, 4, 6): the chatbot's
configuration as the prepare call read it (under the caller's RLS), the unit of the workspace's daily
messages it took instead of the member's quota, and the passages retrieval found for it.

The prepare call (`oneai_private.chat_prepare_steps`, supabase/migrations/20261125010000_chatbot_turns.sql)
decides whether a turn is a chatbot's: the body names `chatbot_id`, or the conversation is filed under a
chatbot (a follow-up, an edit or a regeneration in it). Its refusals are mapped here.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Any, Literal
from uuid import UUID

from pydantic import BaseModel

from oneai.auth import Principal
from oneai.db import chatbot_turns
from oneai.db.connection import Database
from oneai.errors import (
    ChatbotDisabledError,
    NotFoundError,
    OneAIError,
    PlanLimitError,
    ValidationError,
    WorkspaceSuspendedError,
    field_error,
)


class ChatbotConfig(BaseModel):
    """The chatbot's settings that shape a reply (the client cannot override them)."""

    id: UUID
    workspace_id: UUID
    name: str
    model: str
    temperature: float
    max_tokens: int
    system_prompt: str
    top_k: int
    min_score: float
    fallback_mode: Literal["answer", "message"]
    fallback_message: str | None


class WorkspaceAdmission(BaseModel):
    """One unit of the workspace's messages of `day` (UTC), under the owner's tier's daily limit."""

    workspace_id: UUID
    day: date
    used: int
    limit: int
    tier: str


@dataclass(frozen=True, slots=True)
class Passage:
    """A chunk retrieval found for the turn, as the prompt and the sources name it."""

    chunk_id: UUID
    document_id: UUID
    filename: str
    media_type: str
    page: int | None
    index: int
    text: str
    score: float

    def source(self) -> dict[str, Any]:
        """Its item of the saved message's `sources` (API.md "shared rules")."""
        return {
            "chunk_id": str(self.chunk_id),
            "document_id": str(self.document_id),
            "filename": self.filename,
            "page": self.page,
            "chunk_index": self.index,
            "score": self.score,
        }


def refusal(error: dict[str, Any]) -> OneAIError | None:
    """The API error of a chatbot refusal of the prepare call (None: not a chatbot refusal)."""
    code = error.get("code")
    if code == "plan_limit":
        admission = error["admission"]
        return PlanLimitError(
            "The workspace's plan allows no more chatbot messages today",
            details={"limit": admission["limit"], "used": admission["used"], "tier": admission["tier"]},
        )
    refusals: dict[str, OneAIError] = {
        "chatbot_not_found": NotFoundError("Chatbot not found"),
        "chatbot_disabled": ChatbotDisabledError(),
        "workspace_suspended": WorkspaceSuspendedError(),
        "chatbot_mismatch": ValidationError(
            "This conversation is not with this chatbot",
            details={
                "errors": [
                    field_error(
                        "chatbot_id", "the conversation answers with its own chatbot (or none)", "chatbot_mismatch"
                    )
                ]
            },
        ),
    }
    return refusals.get(str(code))


def admission_of(chatbot: ChatbotConfig, value: dict[str, Any]) -> WorkspaceAdmission:
    return WorkspaceAdmission(
        workspace_id=chatbot.workspace_id, **{k: value[k] for k in ("day", "used", "limit", "tier")}
    )


def refund_admission(db: Database, principal: Principal, admission: WorkspaceAdmission) -> None:
    """The workspace's unit back: the model failed before its first token, or the chatbot answered with
    its fixed message (nothing was asked of a model)."""
    with db.user_transaction(principal) as conn:
        chatbot_turns.refund_workspace_message(conn, admission.workspace_id, admission.day)
