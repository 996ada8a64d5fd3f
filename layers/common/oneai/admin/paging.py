"""Keyset paging of the admin lists: newest first by (a time, id), the cursor holding the last row's keys.
Each list reads `limit + 1` rows: the extra one says whether there is a next page."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import TypeVar
from uuid import UUID

from oneai.pagination import decode_cursor, encode_cursor

Row = TypeVar("Row")
Keys = tuple[datetime, UUID]


def after(cursor: str | None, key: str) -> Keys | None:
    """The (time, id) a page starts after; a cursor that was not ours is a 422."""
    if cursor is None:
        return None
    decoded = decode_cursor(cursor, {key: datetime.fromisoformat, "id": UUID})
    return decoded[key], decoded["id"]


def one_page(
    rows: list[Row], limit: int, key: str, keys_of: Callable[[Row], Keys]
) -> tuple[list[Row], str | None]:
    """The page's rows (at most `limit` of the `limit + 1` read) and the cursor of the next page, if any."""
    page = rows[:limit]
    if len(rows) <= limit or not page:
        return page, None
    moment, row_id = keys_of(page[-1])
    return page, encode_cursor({key: moment.isoformat(), "id": str(row_id)})
