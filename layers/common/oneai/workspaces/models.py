"""The workspace routes' bodies and answers (API.md "Workspaces and teams"). Imports nothing of the data
layer, so `oneai.db.workspaces` may build its rows from these."""

from __future__ import annotations

import json
import re
from typing import Annotated, Any, Final, Literal
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError, field_validator

from oneai.quota.tiers import TierName, WorkspaceLimits
from oneai.timestamps import UtcTime

Role = Literal["owner", "admin", "editor", "viewer"]
InvitableRole = Literal["admin", "editor", "viewer"]
ROLE_RANK: Final[dict[str, int]] = {"viewer": 1, "editor": 2, "admin": 3, "owner": 4}

MAX_NAME_CHARS: Final = 100
MAX_SETTINGS_BYTES: Final = 16 * 1024
# Enough of RFC 5321 to refuse what is certainly not an address; the accept compares it to the token's.
EMAIL_PATTERN: Final = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")

WorkspaceName = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=MAX_NAME_CHARS)]
Industry = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=100)]


def at_least(role: str, minimum: Role) -> bool:
    return ROLE_RANK[role] >= ROLE_RANK[minimum]


class WorkspaceCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: WorkspaceName
    industry: Industry | None = None


class WorkspaceUpdate(BaseModel):
    """Only the fields sent change; `industry: null` clears it, `settings` replaces the stored object."""

    model_config = ConfigDict(extra="forbid")

    name: WorkspaceName | None = None
    industry: Industry | None = None
    settings: dict[str, Any] | None = None

    @field_validator("settings")
    @classmethod
    def _small_settings(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        if value is not None and len(json.dumps(value)) > MAX_SETTINGS_BYTES:
            raise ValueError(f"settings must be at most {MAX_SETTINGS_BYTES} bytes as JSON")
        if value is not None and "chunking" in value:
            _check_chunking(value["chunking"])
        return value


def _check_chunking(chunking: Any) -> None:
    """`settings.chunking` is what the ingest chunks the workspace's documents with: refused here when the
    ingest could not use it (it would fall back to the defaults without telling anyone)."""
    # Imported here: the chunker (and its tokenizer's module) is not on every cold start of the function.
    from oneai.knowledge.chunking import ChunkingSettings

    try:
        ChunkingSettings.model_validate(chunking)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'chunking'}: {e['msg']}" for e in exc.errors())
        raise ValueError(f"settings.chunking is not usable ({problems})") from None


class WorkspaceStats(BaseModel):
    """Counts of what a workspace holds (`chatbots`: its live ones; `messages_30d`: its chatbots' messages in
    the last 30 UTC days, from the analytics rollups) (`oneai.db.workspaces.STATS`)."""

    chatbots: int
    documents: int
    storage_bytes: int
    messages_30d: int
    credits_balance: str = Field(examples=["0.00"], description="INR, as a decimal string")
    members: int


class Workspace(BaseModel):
    id: UUID
    name: str
    slug: str
    industry: str | None
    personal: bool
    role: Role = Field(description="the caller's role in this workspace")
    settings: dict[str, Any]
    created_at: UtcTime
    updated_at: UtcTime
    stats: WorkspaceStats


class WorkspaceUsage(WorkspaceLimits):
    """How much of each limit is used (the keys of `limits`)."""


class WorkspaceDetail(Workspace):
    tier: TierName = Field(description="the owner's tier, whose limits apply")
    limits: WorkspaceLimits
    usage: WorkspaceUsage


class Member(BaseModel):
    user_id: UUID
    email: str | None
    name: str | None
    role: Role
    joined_at: UtcTime


class MemberUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    role: Role


class InvitationCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    email: Annotated[str, StringConstraints(strip_whitespace=True, to_lower=True, min_length=3, max_length=320)]
    role: InvitableRole = "viewer"

    @field_validator("email")
    @classmethod
    def _an_address(cls, value: str) -> str:
        if not EMAIL_PATTERN.match(value):
            raise ValueError("not an email address")
        return value


class Invitation(BaseModel):
    id: UUID
    workspace_id: UUID
    email: str
    role: InvitableRole
    invited_by: UUID
    created_at: UtcTime
    expires_at: UtcTime


class AcceptedInvitation(BaseModel):
    workspace: Workspace


class MembershipRow(BaseModel):
    """A workspace as its member sees it, with the member's role (what every check starts from)."""

    id: UUID
    personal: bool
    role: Role
    owner_id: UUID
    deleted_at: UtcTime | None


class OwnerPlan(BaseModel):
    tier: TierName
    workspaces_owned: int
