"""FastAPI dependencies every app shares: the caller and the database, as typed aliases."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Header

from oneai.auth import Principal, authenticate
from oneai.db.connection import Database, get_database


def current_principal(authorization: Annotated[str | None, Header(include_in_schema=False)] = None) -> Principal:
    return authenticate(authorization)


CurrentPrincipal = Annotated[Principal, Depends(current_principal)]
Db = Annotated[Database, Depends(get_database)]


def optional_principal(
    authorization: Annotated[str | None, Header(include_in_schema=False)] = None,
) -> Principal | None:
    """For routes open to everyone: no header is anonymous (None); a header must hold a valid token (401)."""
    return None if authorization is None else authenticate(authorization)


OptionalPrincipal = Annotated[Principal | None, Depends(optional_principal)]
