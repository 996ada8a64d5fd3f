"""The chatbots' API models (API.md "Chatbots" and "Third round: shared rules"): the configuration a
member writes (every field validated; extra fields refused), what the routes answer, the templates.

What a model can check alone is checked here (lengths, ranges, the widget's settings, a fallback message
when the mode needs one). What needs the database is the service's (`oneai.chatbots.service`): the model
offered and allowed to the workspace owner's tier, the documents the workspace's own.
"""

from __future__ import annotations

from datetime import date
from typing import Annotated, Final, Literal
from urllib.parse import urlsplit
from uuid import UUID

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationInfo,
    field_validator,
    model_validator,
)

from oneai.day_range import DayRangeQuery
from oneai.timestamps import UtcTime

UseCase = Literal["support", "sales", "faq", "onboarding", "internal", "other"]
USE_CASES: Final[tuple[str, ...]] = ("support", "sales", "faq", "onboarding", "internal", "other")
ChatbotStatus = Literal["draft", "active", "disabled"]
FallbackMode = Literal["answer", "message"]
WidgetPosition = Literal["bottom-right", "bottom-left"]

MAX_NAME_CHARS: Final = 100
MAX_DESCRIPTION_CHARS: Final = 1000
MAX_SYSTEM_PROMPT_CHARS: Final = 20000
MAX_TOKENS_CAP: Final = 32000
MAX_DOCUMENTS: Final = 500
MAX_SUGGESTED_QUESTIONS: Final = 6
MAX_ALLOWED_ORIGINS: Final = 50
COPY_SUFFIX: Final = " (copy)"

# The most a reply of each offered model may be (the providers' published output limits); a model not
# listed is held to MAX_TOKENS_CAP only. The offered catalogue (oneai/chat/offered_models.py) does not
# carry this, and the chatbots function does not call OpenRouter to save a configuration.
MODEL_OUTPUT_LIMITS: Final[dict[str, int]] = {
    "openai/gpt-4o-mini": 16384,
    "openai/gpt-4o": 16384,
    "anthropic/claude-3.5-haiku": 8192,
    "google/gemini-2.5-flash-image-preview": 8192,
}


def max_tokens_limit(model: str) -> int:
    """The largest `max_tokens` a chatbot of this model may ask for."""
    return min(MAX_TOKENS_CAP, MODEL_OUTPUT_LIMITS.get(model, MAX_TOKENS_CAP))


Name = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=MAX_NAME_CHARS)]
Description = Annotated[str, Field(max_length=MAX_DESCRIPTION_CHARS)]
ModelId = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
SystemPrompt = Annotated[str, Field(max_length=MAX_SYSTEM_PROMPT_CHARS)]
Temperature = Annotated[float, Field(ge=0, le=2, allow_inf_nan=False)]
MaxTokens = Annotated[int, Field(strict=True, ge=1, le=MAX_TOKENS_CAP)]
Question = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
Color = Annotated[str, StringConstraints(pattern=r"^#[0-9a-fA-F]{6}$")]


def normalized_origin(value: str) -> str:
    """`HTTPS://Shop.Example.com:443/` -> `https://shop.example.com`: scheme and host lowercased, the
    scheme's default port dropped; a path other than `/`, a query, a fragment or credentials are refused."""
    text = value.strip()
    try:
        parts = urlsplit(text)
        port = parts.port
    except ValueError:
        raise ValueError(f"not an origin: {value!r}") from None
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"an origin is http(s)://host[:port], not {value!r}")
    if parts.username or parts.password or parts.path not in ("", "/") or parts.query or parts.fragment:
        raise ValueError(f"an origin has no path, query, fragment or credentials: {value!r}")
    if "?" in text or "#" in text:
        raise ValueError(f"an origin has no path, query, fragment or credentials: {value!r}")
    try:
        host = parts.hostname.encode("idna").decode("ascii").lower()
    except UnicodeError:
        raise ValueError(f"not a host name: {parts.hostname!r}") from None
    if ":" in host:
        host = f"[{host}]"  # an IPv6 address
    default = {"http": 80, "https": 443}[scheme]
    return f"{scheme}://{host}" + ("" if port is None or port == default else f":{port}")


class Widget(BaseModel):
    """The widget's settings (the widget issue draws it): all optional; `allowed_origins` empty = any."""

    model_config = ConfigDict(extra="forbid")

    title: Annotated[str, StringConstraints(strip_whitespace=True, max_length=100)] | None = None
    greeting: Annotated[str, StringConstraints(strip_whitespace=True, max_length=500)] | None = None
    color: Color | None = Field(default=None, description="#rrggbb")
    position: WidgetPosition = "bottom-right"
    avatar_url: Annotated[str, StringConstraints(strip_whitespace=True, max_length=2000)] | None = Field(
        default=None, description="an https URL"
    )
    suggested_questions: list[Question] = Field(default_factory=list, max_length=MAX_SUGGESTED_QUESTIONS)
    allowed_origins: list[str] = Field(
        default_factory=list,
        max_length=MAX_ALLOWED_ORIGINS,
        description="origins (scheme://host[:port]) the widget may be embedded on; empty: any",
    )

    @field_validator("color")
    @classmethod
    def _lower_color(cls, value: str | None) -> str | None:
        return None if value is None else value.lower()

    @field_validator("avatar_url")
    @classmethod
    def _https(cls, value: str | None) -> str | None:
        if value is None or value == "":
            return None
        try:
            parts = urlsplit(value)
        except ValueError:
            raise ValueError("must be an https URL") from None
        if parts.scheme.lower() != "https" or not parts.hostname or any(c.isspace() for c in value):
            raise ValueError("must be an https URL")
        return value

    @field_validator("allowed_origins")
    @classmethod
    def _origins(cls, values: list[str]) -> list[str]:
        normalized: list[str] = []
        for value in values:
            origin = normalized_origin(value)
            if origin not in normalized:
                normalized.append(origin)
        return normalized


class Retrieval(BaseModel):
    model_config = ConfigDict(extra="forbid")

    top_k: int = Field(default=5, strict=True, ge=1, le=20, description="passages given to the model")
    min_score: float = Field(default=0.3, ge=0, le=1, allow_inf_nan=False, description="cosine similarity")


class Fallback(BaseModel):
    """What the chatbot does when no passage reaches `min_score`: answer without sources, or say `message`
    without calling the model."""

    model_config = ConfigDict(extra="forbid")

    mode: FallbackMode = "answer"
    message: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=2000)] | None = None

    @model_validator(mode="after")
    def _message_for_message(self) -> Fallback:
        if self.mode == "message" and self.message is None:
            raise ValueError("the mode `message` needs a message")
        return self


class ChatbotConfig(BaseModel):
    """A chatbot's whole configuration as written: the body of a create, and what a PATCH must leave
    (the stored configuration with the changes applied is validated as one)."""

    model_config = ConfigDict(extra="forbid")

    name: Name
    description: Description | None = None
    use_case: UseCase = "other"
    model: ModelId
    temperature: Temperature = 0.3
    max_tokens: MaxTokens = 1024
    system_prompt: SystemPrompt = ""
    document_ids: list[UUID] = Field(default_factory=list, max_length=MAX_DOCUMENTS)
    retrieval: Retrieval = Field(default_factory=Retrieval)
    fallback: Fallback = Field(default_factory=Fallback)
    widget: Widget = Field(default_factory=Widget)
    status: ChatbotStatus = "draft"

    @field_validator("description")
    @classmethod
    def _blank_description(cls, value: str | None) -> str | None:
        return None if value is None or not value.strip() else value

    @field_validator("document_ids")
    @classmethod
    def _distinct(cls, values: list[UUID]) -> list[UUID]:
        return list(dict.fromkeys(values))

    @field_validator("max_tokens")
    @classmethod
    def _within_model(cls, value: int, info: ValidationInfo) -> int:
        model = info.data.get("model")
        if isinstance(model, str) and value > (limit := max_tokens_limit(model)):
            raise ValueError(f"must be at most {limit} for {model}")
        return value


class ChatbotCreate(ChatbotConfig):
    """`POST /workspaces/{id}/chatbots`: a new chatbot is `draft` or `active` (never `disabled`)."""

    status: Literal["draft", "active"] = "draft"


class RetrievalChange(BaseModel):
    model_config = ConfigDict(extra="forbid")

    top_k: int | None = None
    min_score: float | None = None


class FallbackChange(BaseModel):
    model_config = ConfigDict(extra="forbid")

    mode: FallbackMode | None = None
    message: str | None = None


class ChatbotUpdate(BaseModel):
    """`PATCH /chatbots/{id}`: any subset. `retrieval`, `fallback` and `widget` change the keys they name;
    `document_ids` replaces the set; `description: null` clears it. The result is validated as a whole
    (`ChatbotConfig`)."""

    model_config = ConfigDict(extra="forbid")

    name: str | None = None
    description: str | None = None
    use_case: UseCase | None = None
    model: str | None = None
    temperature: float | None = None
    max_tokens: int | None = None
    system_prompt: str | None = None
    document_ids: list[UUID] | None = Field(default=None, max_length=MAX_DOCUMENTS)
    retrieval: RetrievalChange | None = None
    fallback: FallbackChange | None = None
    widget: dict[str, object] | None = None
    status: ChatbotStatus | None = None


# ---------------------------------------------------------------------------------------------- answers


class ChatbotStats(BaseModel):
    conversations: int = Field(
        description="conversations with the chatbot since stats_reset_at: members' and visitors' (the widget)"
    )
    messages: int = Field(description="their messages")
    satisfaction: float | None = Field(
        description="the average of the visitors' 1-5 ratings of those conversations (two decimals); null while none is rated"
    )


class Chatbot(BaseModel):
    """The full configuration."""

    id: UUID
    workspace_id: UUID
    public_id: str = Field(description="what the widget's script tag names")
    name: str
    description: str | None
    use_case: UseCase
    model: str
    temperature: float
    max_tokens: int
    system_prompt: str
    document_ids: list[UUID]
    retrieval: Retrieval
    fallback: Fallback
    widget: Widget
    status: ChatbotStatus
    stats_reset_at: UtcTime | None
    created_by: UUID | None
    created_at: UtcTime
    updated_at: UtcTime


class ChatbotListItem(Chatbot):
    stats: ChatbotStats


class ChatbotPage(BaseModel):
    items: list[ChatbotListItem]
    next_cursor: str | None


class LinkedDocument(BaseModel):
    id: UUID
    filename: str
    status: str


class RecentConversation(BaseModel):
    id: UUID
    title: str | None
    updated_at: UtcTime


class ChatbotDetail(ChatbotListItem):
    documents: list[LinkedDocument]
    recent_conversations: list[RecentConversation] = Field(
        description="your own conversations with this chatbot (at most 10, latest first); each member sees theirs"
    )


class EmbedCode(BaseModel):
    html: str
    script_url: str
    public_id: str


class StatsQuery(DayRangeQuery):
    """`?from&to` of a chatbot's stats (the inbox's too)."""


class DayStats(BaseModel):
    date: date
    conversations: int
    messages: int


class StatsTotals(BaseModel):
    conversations: int
    messages: int


class ChatbotDailyStats(BaseModel):
    from_: date = Field(serialization_alias="from")
    to: date
    days: list[DayStats]
    totals: StatsTotals

    model_config = ConfigDict(populate_by_name=True)


class ChatbotTemplate(BaseModel):
    """One system-prompt template (layers/common/oneai/chatbots/templates.json)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: Annotated[str, StringConstraints(pattern=r"^[a-z0-9-]{1,60}$")]
    name: Annotated[str, StringConstraints(min_length=1, max_length=MAX_NAME_CHARS)]
    use_case: UseCase
    description: Annotated[str, StringConstraints(min_length=1, max_length=MAX_DESCRIPTION_CHARS)]
    system_prompt: Annotated[str, StringConstraints(min_length=1, max_length=MAX_SYSTEM_PROMPT_CHARS)]
    temperature: Temperature


class ChatbotTemplates(BaseModel):
    items: list[ChatbotTemplate]
    next_cursor: None = None
