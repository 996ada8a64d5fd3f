"""Ids as the API reads them: a UUID in its one canonical text form, `8-4-4-4-12` lowercase hex digits.

Python's `UUID()` (and pydantic's) also takes uppercase, no dashes, braces and a `urn:uuid:` prefix, so one
conversation would answer at five addresses; an id that is not written exactly as the API writes it names
nothing (a path id is `404`).
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Final
from uuid import UUID

from pydantic import BeforeValidator, WithJsonSchema

CANONICAL_UUID: Final = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")


def canonical_uuid(text: str) -> UUID | None:
    """The UUID `text` writes in the canonical form, or None for any other text (another form included)."""
    return UUID(text) if CANONICAL_UUID.fullmatch(text) else None


def require_canonical_uuid(value: Any) -> Any:
    if isinstance(value, UUID):
        return value
    if not isinstance(value, str) or canonical_uuid(value) is None:
        raise ValueError("must be a UUID in lowercase 8-4-4-4-12 form")
    return value


CanonicalUuid = Annotated[
    UUID,
    BeforeValidator(require_canonical_uuid),
    WithJsonSchema({"type": "string", "format": "uuid", "pattern": CANONICAL_UUID.pattern}),
]
