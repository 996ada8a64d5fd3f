"""Times as the API reads and writes them: ISO 8601 strings only.

Pydantic's lax datetime also takes numbers, and numeric strings, as Unix times (`to=0.5` is 1970), which
no client means. A time the API reads must be an ISO 8601 date (`2026-03-01`, midnight UTC) or date-time
(`2026-03-01T12:00:00Z`; without an offset it is UTC).
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime
from typing import Annotated, Any

from pydantic import AfterValidator, BeforeValidator, PlainSerializer, WithJsonSchema
from pydantic_core import PydanticCustomError

ISO_8601 = re.compile(r"^\d{4}-\d{2}-\d{2}([Tt ]\d{2}:\d{2}(:\d{2}(\.\d{1,6})?)?([Zz]|[+-]\d{2}:?\d{2})?)?$")


def require_iso_8601(value: Any) -> Any:
    if isinstance(value, datetime):
        return value
    if not isinstance(value, str) or not ISO_8601.match(value.strip()):
        raise ValueError("must be an ISO 8601 date or date-time, e.g. 2026-03-01 or 2026-03-01T12:00:00Z")
    return value.strip()


def as_utc(moment: datetime) -> datetime:
    """Aware datetimes in UTC; a naive one (`from=2026-03-01`) is taken to be UTC already."""
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def iso_z(moment: datetime) -> str:
    """ISO 8601 in UTC with a `Z`, the one form the API writes times in (`2026-12-01T00:00:00Z`)."""
    return as_utc(moment).isoformat().replace("+00:00", "Z")


# The type of every time in an answer: whatever offset the database session handed back, JSON gets `iso_z`
# (a bare `datetime` writes `+05:30` under a non-UTC session, and a time carried as a string is not
# formatted at all). tests/unit/test_response_times.py holds every response model to it.
UtcTime = Annotated[
    datetime,
    AfterValidator(as_utc),  # in UTC in Python too (`.date()` is the UTC day)
    PlainSerializer(iso_z, return_type=str, when_used="json"),
    WithJsonSchema({"type": "string", "format": "date-time"}),
]

ISO_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")


def require_iso_date(value: Any) -> Any:
    if isinstance(value, date) and not isinstance(value, datetime):
        return value
    if not isinstance(value, str) or not ISO_DATE.match(value.strip()):
        raise ValueError("must be an ISO 8601 date, e.g. 2026-03-01")
    return value.strip()


# A day the API reads (`2026-03-01`); pydantic's lax date would also read `0` as 1970-01-01.
IsoDate = Annotated[date, BeforeValidator(require_iso_date), WithJsonSchema({"type": "string", "format": "date"})]

IsoDateTime = Annotated[
    datetime,
    BeforeValidator(require_iso_8601),
    AfterValidator(as_utc),
    WithJsonSchema({"anyOf": [{"type": "string", "format": "date-time"}, {"type": "string", "format": "date"}]}),
]


# Every range a query names (`from`, `to`) follows one rule: a range that holds no time is 422 on `to`.
RANGE_ERROR_TYPE = "date_range"


def require_ordered(
    start: datetime | date | None, end: datetime | date | None, *, end_included: bool = False
) -> None:
    """Refuse `end` before `start`, or equal to it when `end` is excluded ([from, to) holds nothing then);
    raised in a `to` validator it is the 422 item `{"field": "to", "type": "date_range"}`."""
    if start is None or end is None:
        return
    if end < start or (end == start and not end_included):
        message = "must not be before from" if end_included else "must be later than from"
        raise PydanticCustomError(RANGE_ERROR_TYPE, message)
