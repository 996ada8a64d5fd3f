"""FastAPI dependencies every app shares: the caller and the database, as typed aliases."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Header

from oneai.auth import Principal, authenticate
from oneai.db.connection import Database, get_database
from oneai.errors import ForbiddenError


def current_principal(authorization: Annotated[str | None, Header(include_in_schema=False)] = None) -> Principal:
    return authenticate(authorization)


def current_admin(principal: Annotated[Principal, Depends(current_principal)]) -> Principal:
    """The caller, if their verified token says they are an admin (`app_metadata.role`); 403 otherwise."""
    if not principal.is_admin:
        raise ForbiddenError("Admins only")
    return principal


CurrentPrincipal = Annotated[Principal, Depends(current_principal)]
AdminPrincipal = Annotated[Principal, Depends(current_admin)]
Db = Annotated[Database, Depends(get_database)]
