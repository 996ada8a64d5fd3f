"""The one type of every id in a path: a canonical UUID (`oneai.ids`); any other text is `404`."""

from __future__ import annotations

from typing import Annotated

from fastapi import Path

from oneai.ids import CanonicalUuid

PathId = Annotated[CanonicalUuid, Path(description="a UUID, lowercase 8-4-4-4-12 (any other form is 404)")]
