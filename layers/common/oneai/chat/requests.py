"""The body of `POST /chat/stream`: the native form, or the AI SDK transport body, as one typed turn."""

from __future__ import annotations

from typing import Annotated, Any, Literal
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator
from pydantic import ValidationError as PydanticValidationError

from oneai.conversations.models import MAX_MESSAGE_CHARS
from oneai.errors import ValidationError

Action = Literal["send", "edit", "regenerate"]
ModelId = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]


class ChatTurn(BaseModel):
    """What the user asked for, whichever body it came in."""

    conversation_id: UUID | None
    model: str
    action: Action
    content: str | None
    message_id: UUID | None
    # The AI SDK names a new chat with its own id before the server has seen it.
    create_missing_conversation: bool = False


class NativeChatRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    conversation_id: UUID | None = None
    model: ModelId
    action: Action = "send"
    content: str | None = Field(default=None, max_length=MAX_MESSAGE_CHARS)
    message_id: UUID | None = None

    @model_validator(mode="after")
    def _fields_of_the_action(self) -> NativeChatRequest:
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

    id: UUID | None = None
    messages: list[UIMessage] = Field(min_length=1)
    trigger: Literal["submit-message", "regenerate-message"] = "submit-message"
    message_id: UUID | None = Field(default=None, alias="messageId")
    model: ModelId

    def last_user_text(self) -> str:
        for message in reversed(self.messages):
            if message.role == "user":
                return "".join(p.text or "" for p in message.parts if p.type == "text")
        return ""

    def turn(self) -> ChatTurn:
        if self.trigger == "regenerate-message":
            # Without a message id: the latest assistant message of the conversation.
            return ChatTurn(
                conversation_id=self.id,
                model=self.model,
                action="regenerate",
                content=None,
                message_id=self.message_id,
                create_missing_conversation=False,
            )
        text = self.last_user_text()
        if not text.strip():
            raise ValueError("the last user message has no text")
        if len(text) > MAX_MESSAGE_CHARS:
            raise ValueError(f"the message is longer than {MAX_MESSAGE_CHARS} characters")
        action: Action = "edit" if self.message_id is not None else "send"
        return ChatTurn(
            conversation_id=self.id,
            model=self.model,
            action=action,
            content=text,
            message_id=self.message_id,
            create_missing_conversation=True,
        )


def parse_chat_body(body: Any) -> ChatTurn:
    """Either body shape as one turn; a 422 listing the fields when it fits neither."""
    if not isinstance(body, dict):
        raise ValidationError(
            "The body must be a JSON object", details={"errors": [{"field": "", "message": "not an object"}]}
        )
    try:
        if "messages" in body:
            return AISDKChatRequest.model_validate(body).turn()
        return NativeChatRequest.model_validate(body).turn()
    except PydanticValidationError as exc:
        fields = [
            {"field": ".".join(str(p) for p in e["loc"]), "message": e["msg"], "type": e["type"]}
            for e in exc.errors()
        ]
        raise ValidationError("The request is not valid", details={"errors": fields}) from None
    except ValueError as exc:
        raise ValidationError(str(exc), details={"errors": [{"field": "messages", "message": str(exc)}]}) from None
