"""The documents' API models (API.md "Documents (knowledge)")."""

from __future__ import annotations

from typing import Annotated, Any, Final, Literal
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field

from oneai.attachments.models import PresignedPost
from oneai.db.knowledge import MAX_TOP_K
from oneai.quota.tiers import WorkspaceLimits
from oneai.timestamps import UtcTime

DocumentStatus = Literal["uploading", "queued", "processing", "ready", "failed"]
DocumentSort = Literal["created_at", "-created_at", "size", "-size", "status", "-status"]
MAX_TAGS: Final = 50
MAX_BULK: Final = 50
MAX_CHATBOTS: Final = 100
Tag = Annotated[str, Field(min_length=1, max_length=100)]


class DocumentCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    filename: str = Field(min_length=1, max_length=255)
    media_type: str = Field(min_length=1, max_length=255)
    size: int = Field(strict=True, ge=1, description="the file's size in bytes: the upload is held to it")
    chatbot_ids: list[UUID] = Field(
        default_factory=list,
        max_length=MAX_CHATBOTS,
        description="live chatbots of the workspace that answer from this document",
    )
    tags: list[Tag] = Field(default_factory=list, max_length=MAX_TAGS)


class DocumentsCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    documents: list[DocumentCreate] = Field(min_length=1, max_length=MAX_BULK)


class DocumentUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    chatbot_ids: list[UUID] | None = Field(
        default=None,
        max_length=MAX_CHATBOTS,
        description="replaces the document's chatbots (live chatbots of the workspace)",
    )
    filename: str | None = Field(default=None, min_length=1, max_length=255)
    tags: list[Tag] | None = Field(default=None, max_length=MAX_TAGS)
    description: str | None = Field(default=None, max_length=2000)


class DocumentIds(BaseModel):
    model_config = ConfigDict(extra="forbid")

    ids: list[UUID] = Field(min_length=1, max_length=100)


class QueuedDocuments(BaseModel):
    ids: list[UUID] = Field(description="the documents queued again (empty when none had failed)")


class DocumentUpload(BaseModel):
    id: UUID
    upload: PresignedPost


class DocumentUploads(BaseModel):
    items: list[DocumentUpload]


class Progress(BaseModel):
    chunks_done: int
    chunks_total: int | None


class Document(BaseModel):
    id: UUID
    workspace_id: UUID
    filename: str
    media_type: str
    size: int
    status: DocumentStatus
    progress: Progress
    error: str | None
    tags: list[str]
    description: str | None
    created_by: UUID | None
    created_at: UtcTime
    updated_at: UtcTime


class DocumentStats(BaseModel):
    retrievals_30d: int = Field(
        description="replies of the last 30 days (chatbot chats and widget visitors) that used a passage of it"
    )


class DocumentDetail(Document):
    chatbot_ids: list[UUID] = Field(description="the live chatbots that answer from this document")
    pages: int | None
    tokens: int | None
    chunks: int
    metadata: dict[str, Any]
    stats: DocumentStats


class DocumentQuota(BaseModel):
    count: int
    bytes: int
    limits: WorkspaceLimits


class DocumentPage(BaseModel):
    items: list[Document]
    next_cursor: str | None
    quota: DocumentQuota


class Chunk(BaseModel):
    id: UUID
    index: int
    text: str
    page: int | None
    section: str | None
    tokens: int


class KnowledgeSearch(BaseModel):
    model_config = ConfigDict(extra="forbid")

    query: str = Field(min_length=1, max_length=2000)
    top_k: int = Field(default=5, strict=True, ge=1, le=MAX_TOP_K)
    min_score: float = Field(default=0.0, strict=True, ge=-1, le=1)
    document_ids: list[UUID] | None = Field(default=None, max_length=100)


class KnowledgeHitOut(BaseModel):
    chunk_id: UUID
    document_id: UUID
    filename: str
    page: int | None
    index: int
    text: str
    score: float


class KnowledgeResults(BaseModel):
    items: list[KnowledgeHitOut]
