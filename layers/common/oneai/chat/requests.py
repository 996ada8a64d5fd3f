"""The body of `POST /chat/stream`: the native form, or the AI SDK transport body, as one typed turn."""

from __future__ import annotations

from typing import Annotated, Any, Literal
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, TypeAdapter, model_validator
from pydantic import ValidationError as PydanticValidationError

from oneai.attachments.images import InlineImage, NotAnImageError, parse_data_url
from oneai.attachments.service import MAX_ATTACHMENTS_PER_MESSAGE, attachment_id_in_url
from oneai.chat.offered_models import OFFERED_MODELS
from oneai.config import get_settings
from oneai.conversations.models import MAX_MESSAGE_CHARS
from oneai.errors import PayloadTooLargeError, ValidationError, field_error
from oneai.ids import canonical_uuid

Action = Literal["send", "edit", "regenerate"]
ModelId = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
# The AI SDK's chat id: a canonical UUID (`oneai.ids`) names our conversation; any other text is the
# client's own id for it.
ChatId = Annotated[str, StringConstraints(min_length=1, max_length=128)]
TOO_LONG_MESSAGE = f"The message is longer than {MAX_MESSAGE_CHARS} characters"


class ChatTurn(BaseModel):
    """What the user asked for, whichever body it came in."""

    conversation_id: UUID | None
    # None: the caller's `preferences.default_model`, else the tier's default (resolved by the route).
    model: str | None
    action: Action
    content: str | None
    message_id: UUID | None
    # The AI SDK names a new chat with its own id before the server has seen it.
    create_missing_conversation: bool = False
    # A chat id that is not a UUID: the caller's conversation with that client id (created on first use).
    client_chat_id: str | None = None
    # Images of the new message: the caller's attachments by id, and `data:` URLs to store as new ones.
    attachment_ids: list[UUID] = Field(default_factory=list)
    inline_images: list[InlineImage] = Field(default_factory=list)
    # A turn with a workspace's chatbot (its model applies: `model` is then None, whatever the body sent).
    chatbot_id: UUID | None = None

    @property
    def has_images(self) -> bool:
        return bool(self.attachment_ids or self.inline_images)

    @property
    def model_id(self) -> str:
        if self.model is None:
            raise ValueError("the model of this turn was not resolved")
        return self.model


class NativeChatRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    conversation_id: UUID | None = None
    model: ModelId
    action: Action = "send"
    content: str | None = Field(default=None, description=f"at most {MAX_MESSAGE_CHARS} characters (413 above)")
    message_id: UUID | None = None
    attachments: list[UUID] = Field(
        default_factory=list,
        max_length=MAX_ATTACHMENTS_PER_MESSAGE,
        description="ids of your uploaded attachments (images), with send or edit; the model must read images",
    )

    @model_validator(mode="after")
    def _fields_of_the_action(self) -> NativeChatRequest:
        if self.attachments and self.action == "regenerate":
            raise _attachments_error("attachments come with send or edit, not regenerate")
        if self.content is not None and len(self.content) > MAX_MESSAGE_CHARS:
            raise PayloadTooLargeError(TOO_LONG_MESSAGE)  # not a ValueError: pydantic lets it through
        if self.action in ("send", "edit") and not (self.content or "").strip():
            raise ValueError(f"content is required to {self.action}")
        # Regenerating without a message id answers the tip of the branch again.
        if self.action == "edit" and self.message_id is None:
            raise ValueError("message_id is required to edit")
        if self.action != "send" and self.conversation_id is None:
            raise ValueError(f"conversation_id is required to {self.action}")
        return self

    def turn(self) -> ChatTurn:
        return ChatTurn(
            conversation_id=self.conversation_id,
            model=self.model,
            action=self.action,
            content=self.content if self.action != "regenerate" else None,
            message_id=self.message_id,
            attachment_ids=list(dict.fromkeys(self.attachments)),
        )


class NativeChatbotRequest(NativeChatRequest):
    """The native body with `chatbot_id`: the chatbot's model applies, so `model` may be left out (and is
    ignored when sent)."""

    chatbot_id: UUID = Field(
        description="a chatbot of a workspace you are a member of: its model, prompt and knowledge apply"
    )
    model: ModelId | None = Field(default=None, description="ignored: the chatbot's model applies")  # type: ignore[assignment]

    def turn(self) -> ChatTurn:
        if self.attachments:
            raise _attachments_error("attachments are not accepted in a chatbot's conversation")
        return super().turn().model_copy(update={"model": None, "chatbot_id": self.chatbot_id})


def _attachments_error(message: str) -> ValidationError:
    # A OneAIError, not a ValueError: it passes through pydantic's validation as it is.
    return ValidationError(
        message, details={"errors": [field_error("attachments", message, "attachments_invalid")]}
    )


class UIMessagePart(BaseModel):
    model_config = ConfigDict(extra="allow")

    type: str
    text: str | None = None


class UIMessage(BaseModel):
    model_config = ConfigDict(extra="allow")

    id: str = ""
    role: Literal["user", "assistant", "system"]
    parts: list[UIMessagePart] = Field(default_factory=list)


class AISDKChatRequest(BaseModel):
    """`DefaultChatTransport`'s body. The server keeps its own history as the truth: only the last user
    message's text (and, for an edit or a regeneration, the message id) is taken from it."""

    model_config = ConfigDict(extra="allow")

    id: ChatId | None = None
    messages: list[UIMessage] = Field(min_length=1)
    trigger: Literal["submit-message", "regenerate-message"] = "submit-message"
    message_id: UUID | None = Field(default=None, alias="messageId")
    model: ModelId | None = Field(
        default=None, description="default: your preferences.default_model, else your plan's"
    )
    chatbot_id: UUID | None = Field(
        default=None, description="a chatbot of a workspace you are a member of: its model (`model` is ignored)"
    )

    def _conversation(self) -> tuple[UUID | None, str | None]:
        if self.id is None:
            return None, None
        conversation_id = canonical_uuid(self.id)
        return (conversation_id, None) if conversation_id is not None else (None, self.id)

    def last_user_text(self) -> str:
        for message in reversed(self.messages):
            if message.role == "user":
                return "".join(p.text or "" for p in message.parts if p.type == "text")
        return ""

    def last_user_files(self) -> tuple[list[UUID], list[InlineImage]]:
        """The `file` parts of the last user message: attachment urls of the caller (by id; whose they
        are is checked with the turn) and `data:` URLs of accepted images; anything else is a 422."""
        last = next((m for m in reversed(self.messages) if m.role == "user"), None)
        files = [p for p in (last.parts if last else []) if p.type == "file"]
        if len(files) > MAX_ATTACHMENTS_PER_MESSAGE:
            raise _attachments_error(f"at most {MAX_ATTACHMENTS_PER_MESSAGE} files per message")
        ids: list[UUID] = []
        inline: list[InlineImage] = []
        for part in files:
            url = str(getattr(part, "url", "") or "")
            if url.startswith("data:"):
                try:
                    inline.append(parse_data_url(url, max_bytes=get_settings().max_attachment_bytes))
                except NotAnImageError as exc:
                    raise _attachments_error(f"a data: URL {exc}") from None
                continue
            attachment_id = attachment_id_in_url(url)
            if attachment_id is None:
                raise _attachments_error(
                    "a file must be the url of one of your attachments or a data: URL of an image"
                )
            ids.append(attachment_id)
        return list(dict.fromkeys(ids)), inline

    def turn(self) -> ChatTurn:
        turn = self._turn()
        if self.chatbot_id is None:
            return turn
        if turn.has_images:
            raise _attachments_error("attachments are not accepted in a chatbot's conversation")
        return turn.model_copy(update={"model": None, "chatbot_id": self.chatbot_id})

    def _turn(self) -> ChatTurn:
        conversation_id, client_chat_id = self._conversation()
        if self.trigger == "regenerate-message":
            # Without a message id: the latest assistant message of the conversation.
            return ChatTurn(
                conversation_id=conversation_id,
                model=self.model,
                action="regenerate",
                content=None,
                message_id=self.message_id,
                create_missing_conversation=False,
                client_chat_id=client_chat_id,
            )
        text = self.last_user_text()
        if not text.strip():
            raise ValueError("the last user message has no text")
        if len(text) > MAX_MESSAGE_CHARS:
            raise PayloadTooLargeError(TOO_LONG_MESSAGE)
        action: Action = "edit" if self.message_id is not None else "send"
        attachment_ids, inline_images = self.last_user_files()
        return ChatTurn(
            conversation_id=conversation_id,
            model=self.model,
            action=action,
            content=text,
            message_id=self.message_id,
            create_missing_conversation=True,
            client_chat_id=client_chat_id,
            attachment_ids=attachment_ids,
            inline_images=inline_images,
        )


def parse_chat_body(body: Any) -> ChatTurn:
    """Either body shape as one turn; a 422 listing the fields when it fits neither."""
    if not isinstance(body, dict):
        raise ValidationError(
            "The body must be a JSON object", details={"errors": [field_error("", "not an object", "model_type")]}
        )
    try:
        if "messages" in body:
            return AISDKChatRequest.model_validate(body).turn()
        if body.get("chatbot_id") is not None:
            return NativeChatbotRequest.model_validate(body).turn()
        if "chatbot_id" in body:  # `null`: no chatbot
            body = {key: value for key, value in body.items() if key != "chatbot_id"}
        return NativeChatRequest.model_validate(body).turn()
    except PydanticValidationError as exc:
        fields = [
            {"field": ".".join(str(p) for p in e["loc"]), "message": e["msg"], "type": e["type"]}
            for e in exc.errors()
        ]
        raise ValidationError("The request is not valid", details={"errors": fields}) from None
    except ValueError as exc:
        raise ValidationError(
            str(exc), details={"errors": [field_error("messages", str(exc), "value_error")]}
        ) from None


def inlined_schema(schema: Any, definitions: dict[str, Any]) -> Any:
    """`schema` with every `#/$defs/...` reference replaced by its definition (none of them is recursive)."""
    if isinstance(schema, dict):
        reference = schema.get("$ref")
        if isinstance(reference, str) and reference.startswith("#/$defs/"):
            return inlined_schema(definitions[reference.removeprefix("#/$defs/")], definitions)
        return {key: inlined_schema(value, definitions) for key, value in schema.items() if key != "$defs"}
    if isinstance(schema, list):
        return [inlined_schema(item, definitions) for item in schema]
    return schema


def _chat_body_schema() -> dict[str, Any]:
    schema = TypeAdapter(NativeChatRequest | NativeChatbotRequest | AISDKChatRequest).json_schema(by_alias=True)
    inlined: dict[str, Any] = inlined_schema(schema, schema.get("$defs", {}))
    # The document names the offered models (any other is a 422 `model`; one outside the plan, a 403).
    offered = [m.model_id for m in OFFERED_MODELS]
    native, _chatbot, ai_sdk = inlined["anyOf"]
    native["properties"]["model"] |= {"enum": offered}
    ai_sdk["properties"]["model"]["anyOf"][0] |= {"enum": offered}
    return inlined


# The request body of `POST /chat/stream` in its OpenAPI document: either form, fully described. The route
# reads the body itself (`parse_chat_body`), so that a long message is a 413 and not a 422.
CHAT_BODY_OPENAPI: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "description": "The native form, or the AI SDK transport body (`DefaultChatTransport`'s defaults).",
        "content": {
            "application/json": {
                "schema": _chat_body_schema(),
                "examples": {
                    "native": {
                        "value": {"conversation_id": None, "model": "openai/gpt-4o-mini", "content": "Hello"}
                    },
                    "ai_sdk": {
                        "summary": "DefaultChatTransport at its defaults: its own chat id, no model",
                        "value": {
                            "id": "Xk3vQ9mZp2LwT7rB",
                            "messages": [
                                {"id": "m1", "role": "user", "parts": [{"type": "text", "text": "Hello"}]}
                            ],
                            "trigger": "submit-message",
                            "messageId": None,
                        },
                    },
                },
            }
        },
    }
}
