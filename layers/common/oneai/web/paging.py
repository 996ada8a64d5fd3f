"""The query parameters of every list route (docs/api/index.md, "Pagination"), as typed aliases."""

from __future__ import annotations

from typing import Annotated

from fastapi import Query

from oneai.pagination import MAX_LIMIT

Limit = Annotated[int, Query(ge=1, le=MAX_LIMIT, description="page size")]
Cursor = Annotated[str | None, Query(max_length=512, description="next_cursor of the previous page")]
