"""Cursor pagination: `limit` (1..100, default 20) and an opaque cursor holding the last row's keys."""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Callable
from typing import Any, Generic, TypeVar

from pydantic import BaseModel, Field

from oneai.errors import ValidationError, field_error

DEFAULT_LIMIT = 20
MAX_LIMIT = 100
T = TypeVar("T")


class PageRequest(BaseModel):
    limit: int = Field(default=DEFAULT_LIMIT, ge=1, le=MAX_LIMIT)
    cursor: str | None = None


class Page(BaseModel, Generic[T]):
    items: list[T]
    next_cursor: str | None


def encode_cursor(keys: dict[str, Any]) -> str:
    raw = json.dumps(keys, separators=(",", ":"), default=str).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str, parsers: dict[str, Callable[[Any], Any]]) -> dict[str, Any]:
    """The typed keys of `cursor`; a cursor that was not ours is a 422 on the `cursor` field."""
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        keys = json.loads(base64.urlsafe_b64decode(padded.encode()))
        if not isinstance(keys, dict) or set(keys) != set(parsers):
            raise ValueError("unexpected keys")
        return {name: parse(keys[name]) for name, parse in parsers.items()}
    except (binascii.Error, ValueError, TypeError, UnicodeDecodeError, RecursionError) as exc:
        raise ValidationError(
            "The cursor is not valid",
            details={"errors": [field_error("cursor", "not a cursor returned by this list", "cursor_invalid")]},
        ) from exc


def page_of(rows: list[T], limit: int, keys_of: Callable[[T], dict[str, Any]]) -> Page[T]:
    """Rows were fetched with limit + 1: the extra row only says that another page exists."""
    if len(rows) > limit:
        rows = rows[:limit]
        return Page(items=rows, next_cursor=encode_cursor(keys_of(rows[-1])))
    return Page(items=rows, next_cursor=None)
