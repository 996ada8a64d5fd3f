"""FastAPI dependencies every app shares: the caller and the database, as typed aliases.

The caller's principal carries the request's rate check (`oneai.ratelimit`): `CurrentPrincipal` and
`ApiKeyPrincipal` count in the `all` bucket, `ChatPrincipal` and `ApiKeyChatPrincipal` (requests that
start a model reply) in the `chat` bucket; a signed-in `OptionalPrincipal` in `all` too. An anonymous
write takes `source_rate_check` (its source address's bucket) into its anonymous transaction. The check is
kept in the request's scope so that `RateLimitHeaders` can write its headers on the response.
"""

from __future__ import annotations

import dataclasses
from typing import Annotated

from fastapi import Depends, Header, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from oneai.api_keys import authenticate_api_key
from oneai.auth import Principal, authenticate
from oneai.config import get_settings
from oneai.database import get_database
from oneai.db.connection import Database
from oneai.errors import ForbiddenError
from oneai.ratelimit import Bucket, RateCheck, SourceBucket, new_check, new_source_check

RATE_CHECK_SCOPE_KEY = "oneai.rate_check"

# Declares the bearer scheme on every authenticated operation of the OpenAPI documents. It never refuses
# on its own (auto_error=False): `authenticate` reads the header and answers 401 in the envelope.
bearer_scheme = HTTPBearer(
    auto_error=False, bearerFormat="JWT", description="A Supabase access token: `Authorization: Bearer <jwt>`"
)


def with_rate_check(request: Request, principal: Principal, bucket: Bucket) -> Principal:
    """The principal with this request's rate check (one per request, kept in the request's scope)."""
    check: RateCheck | None = request.scope.get(RATE_CHECK_SCOPE_KEY)
    if check is None:
        check = new_check(get_settings(), bucket)
        if check is None:
            return principal
        request.scope[RATE_CHECK_SCOPE_KEY] = check
    return dataclasses.replace(principal, rate_check=check)


def current_principal(
    request: Request,
    authorization: Annotated[str | None, Header(include_in_schema=False)] = None,
    _declared: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer_scheme)] = None,
) -> Principal:
    return with_rate_check(request, authenticate(authorization), "all")


def chat_principal(
    request: Request,
    authorization: Annotated[str | None, Header(include_in_schema=False)] = None,
    _declared: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer_scheme)] = None,
) -> Principal:
    return with_rate_check(request, authenticate(authorization), "chat")


def api_key_principal(
    request: Request, authorization: Annotated[str | None, Header(include_in_schema=False)] = None
) -> Principal:
    """The caller of the OpenAI-compatible API: an API key (never a Supabase token)."""
    return with_rate_check(request, authenticate_api_key(get_database(), authorization), "all")


def api_key_chat_principal(
    request: Request, authorization: Annotated[str | None, Header(include_in_schema=False)] = None
) -> Principal:
    return with_rate_check(request, authenticate_api_key(get_database(), authorization), "chat")


def current_admin(principal: Annotated[Principal, Depends(current_principal)]) -> Principal:
    """The caller, if their verified token says they are an admin (`app_metadata.role`); 403 otherwise."""
    if not principal.is_admin:
        raise ForbiddenError("Admins only")
    return principal


CurrentPrincipal = Annotated[Principal, Depends(current_principal)]
AdminPrincipal = Annotated[Principal, Depends(current_admin)]
ChatPrincipal = Annotated[Principal, Depends(chat_principal)]
ApiKeyPrincipal = Annotated[Principal, Depends(api_key_principal)]
ApiKeyChatPrincipal = Annotated[Principal, Depends(api_key_chat_principal)]
Db = Annotated[Database, Depends(get_database)]


def optional_principal(
    request: Request,
    authorization: Annotated[str | None, Header(include_in_schema=False)] = None,
) -> Principal | None:
    """For routes open to everyone: no header is anonymous (None); a header must hold a valid token (401).
    A signed-in caller counts in their own `all` bucket, as on every authenticated route."""
    return None if authorization is None else with_rate_check(request, authenticate(authorization), "all")


def source_rate_check(request: Request, bucket: SourceBucket) -> RateCheck | None:
    """The rate check of an anonymous request, keyed by the address it came from (API Gateway's
    `requestContext.identity.sourceIp` under Mangum; never X-Forwarded-For, which the caller writes).
    Pass it to `anon_transaction`; kept in the request's scope for the RateLimit headers."""
    check: RateCheck | None = request.scope.get(RATE_CHECK_SCOPE_KEY)
    if check is None:
        check = new_source_check(get_settings(), bucket, request.client.host if request.client else None)
        if check is not None:
            request.scope[RATE_CHECK_SCOPE_KEY] = check
    return check


OptionalPrincipal = Annotated[Principal | None, Depends(optional_principal)]
