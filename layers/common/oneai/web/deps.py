"""FastAPI dependencies every app shares: the caller and the database, as typed aliases."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Header
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from oneai.auth import Principal, authenticate
from oneai.db.connection import Database, get_database

# Declares the bearer scheme on every authenticated operation of the OpenAPI documents. It never refuses
# on its own (auto_error=False): `authenticate` reads the header and answers 401 in the envelope.
bearer_scheme = HTTPBearer(
    auto_error=False, bearerFormat="JWT", description="A Supabase access token: `Authorization: Bearer <jwt>`"
)


def current_principal(
    authorization: Annotated[str | None, Header(include_in_schema=False)] = None,
    _declared: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer_scheme)] = None,
) -> Principal:
    return authenticate(authorization)


CurrentPrincipal = Annotated[Principal, Depends(current_principal)]
Db = Annotated[Database, Depends(get_database)]
