"""Times as the API reads them: ISO 8601 strings only.

Pydantic's lax datetime also takes numbers, and numeric strings, as Unix times (`to=0.5` is 1970), which
no client means. A time the API reads must be an ISO 8601 date (`2026-03-01`, midnight UTC) or date-time
(`2026-03-01T12:00:00Z`; without an offset it is UTC).
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Annotated, Any

from pydantic import AfterValidator, BeforeValidator, WithJsonSchema

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


IsoDateTime = Annotated[
    datetime,
    BeforeValidator(require_iso_8601),
    AfterValidator(as_utc),
    WithJsonSchema({"anyOf": [{"type": "string", "format": "date-time"}, {"type": "string", "format": "date"}]}),
]
