"""The messages of an OpenAI chat completion request, checked as OpenAI checks them, before anything is
reserved: a message the model provider would refuse (or, worse, accept as something else) is the caller's
400 naming the field, not a reply that spends a unit of the quota.

The rules are those of OpenAI's Chat Completions API: `role` is one of its roles; `content` is a string or
an array of content parts of the types that role may send (null only where OpenAI allows it: an assistant
message with tool calls, a function result); a tool result names its `tool_call_id`. Each problem is an
item of a ValidationError whose `type` is OpenAI's code (`invalid_value`, `invalid_type`,
`missing_required_parameter`) and whose `field` is OpenAI's parameter (`messages[0].role`).
"""

from __future__ import annotations

from typing import Any

from oneai.errors import ValidationError

# The content part types each role may send, as OpenAI lists them.
PART_TYPES: dict[str, tuple[str, ...]] = {
    "system": ("text",),
    "developer": ("text",),
    "user": ("text", "image_url", "input_audio", "file"),
    "assistant": ("text", "refusal"),
    "tool": ("text",),
    "function": ("text",),
}
ROLES = tuple(PART_TYPES)
# The member each part type carries, and the JSON type it must have.
PART_MEMBERS: dict[str, tuple[str, type]] = {
    "text": ("text", str),
    "refusal": ("refusal", str),
    "image_url": ("image_url", dict),
    "input_audio": ("input_audio", dict),
    "file": ("file", dict),
}
_JSON_TYPE_NAMES: dict[type, str] = {
    str: "a string",
    bool: "a boolean",
    int: "an integer",
    float: "a number",
    list: "an array",
    dict: "an object",
    type(None): "null",
}


class _Problem(Exception):
    def __init__(self, field: str, code: str, message: str) -> None:
        super().__init__(message)
        self.item = {"field": field, "message": message, "type": code}


def _listed(values: tuple[str, ...]) -> str:
    return ", ".join(f"'{v}'" for v in values)


def _json_type(value: Any) -> str:
    return _JSON_TYPE_NAMES.get(type(value), "a value")


def _invalid_type(field: str, expected: str, value: Any) -> _Problem:
    return _Problem(field, "invalid_type", f"expected {expected}, but got {_json_type(value)} instead.")


def _missing(field: str) -> _Problem:
    return _Problem(field, "missing_required_parameter", "this parameter is required.")


def _check_part(role: str, part: Any, field: str) -> None:
    if not isinstance(part, dict):
        raise _invalid_type(field, "an object", part)
    if "type" not in part:
        raise _missing(f"{field}.type")
    kind = part["type"]
    if not isinstance(kind, str):
        raise _invalid_type(f"{field}.type", "a string", kind)
    if kind not in PART_TYPES[role]:
        raise _Problem(
            f"{field}.type",
            "invalid_value",
            f"'{kind}' is not a content part type a {role} message may send; supported values are: "
            f"{_listed(PART_TYPES[role])}.",
        )
    member, json_type = PART_MEMBERS[kind]
    if member not in part:
        raise _missing(f"{field}.{member}")
    if not isinstance(part[member], json_type):
        raise _invalid_type(f"{field}.{member}", _JSON_TYPE_NAMES[json_type], part[member])
    if kind == "image_url" and not isinstance(part["image_url"].get("url"), str):
        if "url" not in part["image_url"]:
            raise _missing(f"{field}.image_url.url")
        raise _invalid_type(f"{field}.image_url.url", "a string", part["image_url"]["url"])


def _may_be_null(role: str, message: dict[str, Any]) -> bool:
    return role == "function" or (
        role == "assistant" and bool(message.get("tool_calls") or message.get("function_call"))
    )


def _check_message(message: dict[str, Any], field: str) -> None:
    if "role" not in message:
        raise _missing(f"{field}.role")
    role = message["role"]
    if not isinstance(role, str):
        raise _invalid_type(f"{field}.role", "a string", role)
    if role not in ROLES:
        raise _Problem(
            f"{field}.role", "invalid_value", f"'{role}' is not a role; supported values are: {_listed(ROLES)}."
        )
    content = message.get("content")
    if content is None:
        if "content" not in message and not _may_be_null(role, message):
            raise _missing(f"{field}.content")
        if "content" in message and not _may_be_null(role, message):
            raise _invalid_type(f"{field}.content", "one of a string or array of objects", content)
    elif isinstance(content, list):
        for index, part in enumerate(content):
            _check_part(role, part, f"{field}.content[{index}]")
    elif not isinstance(content, str):
        raise _invalid_type(f"{field}.content", "one of a string or array of objects", content)
    if role == "tool":
        if "tool_call_id" not in message:
            raise _missing(f"{field}.tool_call_id")
        if not isinstance(message["tool_call_id"], str):
            raise _invalid_type(f"{field}.tool_call_id", "a string", message["tool_call_id"])


def check_messages(messages: list[dict[str, Any]]) -> None:
    """Raises a ValidationError naming the first message field OpenAI would refuse."""
    try:
        for index, message in enumerate(messages):
            _check_message(message, f"messages[{index}]")
    except _Problem as problem:
        raise ValidationError("The request is not valid", details={"errors": [problem.item]}) from None
