"""API keys (API.md "API keys and the OpenAI-compatible API"): create, list, revoke, and authenticate a
request made with one.

A key is `oneai_sk_` + 54 URL-safe characters (320 random bits). Its first 12 characters after
`oneai_sk_` are the stored `prefix` that finds the row; only the key's SHA-256 is stored, compared in
constant time. A key is checked on every request (no cache), so a revocation or a suspension takes
effect at once. Keys are accepted only by the OpenAI-compatible API (`/v1`): the web routes verify
Supabase access tokens, which a key never is.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import uuid
from datetime import UTC, datetime
from typing import Annotated, Final

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator

from oneai.auth import Principal, bearer_token
from oneai.db import api_keys as repo
from oneai.db.connection import Connection, Database
from oneai.errors import ConflictError, NotFoundError, UnauthorizedError
from oneai.timestamps import UtcTime, as_utc

KEY_SCHEME: Final = "oneai_sk_"
KEY_BODY_CHARS: Final = 54  # secrets.token_urlsafe(40)
PREFIX_CHARS: Final = 12
MAX_LIVE_KEYS: Final = 25
MAX_LISTED_KEYS: Final = 200
MSG_INVALID_KEY: Final = "Invalid API key"
_URLSAFE: Final = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")
# Compared against when no key has the prefix, so that a miss costs what a hit costs.
_NO_KEY_HASH: Final = hashlib.sha256(b"no such key").digest()

KeyName = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=100)]


class ApiKeyCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: KeyName
    expires_at: UtcTime | None = Field(default=None, description="optional; must be in the future")

    @field_validator("expires_at")
    @classmethod
    def _in_the_future(cls, value: datetime | None) -> datetime | None:
        if value is not None and as_utc(value) <= datetime.now(UTC):
            raise ValueError("must be in the future")
        return value


class ApiKey(BaseModel):
    """A key as listed: never the key itself."""

    id: uuid.UUID
    name: str
    prefix: str
    created_at: UtcTime
    last_used_at: UtcTime | None
    expires_at: UtcTime | None
    revoked_at: UtcTime | None


class ApiKeyCreated(BaseModel):
    """The answer of `POST /user/api-keys`: the only time `key` is shown."""

    id: uuid.UUID
    name: str
    key: str
    prefix: str
    created_at: UtcTime
    expires_at: UtcTime | None


class ApiKeyList(BaseModel):
    items: list[ApiKey]


def hash_key(key: str) -> bytes:
    return hashlib.sha256(key.encode("ascii")).digest()


def new_key() -> tuple[str, str]:
    """(the key, its prefix)."""
    key = KEY_SCHEME + secrets.token_urlsafe(40)
    return key, key[: len(KEY_SCHEME) + PREFIX_CHARS]


def create_key(conn: Connection, request: ApiKeyCreate) -> ApiKeyCreated:
    if repo.count_live_keys(conn) >= MAX_LIVE_KEYS:
        raise ConflictError(
            f"You have {MAX_LIVE_KEYS} keys that work; revoke one first", details={"limit": MAX_LIVE_KEYS}
        )
    key, prefix = new_key()
    row = repo.insert_key(
        conn, name=request.name, prefix=prefix, secret_hash=hash_key(key), expires_at=request.expires_at
    )
    return ApiKeyCreated(
        id=row.id, name=row.name, key=key, prefix=row.prefix, created_at=row.created_at, expires_at=row.expires_at
    )


def list_keys(conn: Connection) -> ApiKeyList:
    """The caller's keys, newest first, revoked ones included (at most the last 200)."""
    return ApiKeyList(
        items=[ApiKey.model_validate(r, from_attributes=True) for r in repo.list_keys(conn, MAX_LISTED_KEYS)]
    )


def revoke_key(conn: Connection, key_id: uuid.UUID) -> None:
    """The key stops working at once; someone else's key (hidden by RLS) is 404."""
    if repo.revoke_key(conn, key_id) is None:
        raise NotFoundError("API key not found")


def _well_formed(key: str) -> bool:
    body = key[len(KEY_SCHEME) :]
    return key.startswith(KEY_SCHEME) and len(body) == KEY_BODY_CHARS and set(body) <= _URLSAFE


def authenticate_api_key(db: Database, authorization: str | None) -> Principal:
    """The principal of an `Authorization: Bearer oneai_sk_...` header: the key's user, as whom the
    request then runs under RLS. Unknown, malformed, revoked and expired keys are all 401, alike."""
    key = bearer_token(authorization)
    if not _well_formed(key):
        raise UnauthorizedError(MSG_INVALID_KEY)
    # Service work on purpose: finding whose key this is, before there is a caller to scope the query to.
    with db.service_transaction() as conn:
        found = repo.key_by_prefix(conn, key[: len(KEY_SCHEME) + PREFIX_CHARS])
    matches = hmac.compare_digest(hash_key(key), found.secret_hash if found is not None else _NO_KEY_HASH)
    if found is None or not matches:
        raise UnauthorizedError(MSG_INVALID_KEY)
    now = datetime.now(UTC)
    if found.revoked_at is not None or (found.expires_at is not None and found.expires_at <= now):
        raise UnauthorizedError(MSG_INVALID_KEY)
    user_id = found.user_id
    claims = {"sub": str(user_id), "role": "authenticated", "aud": "authenticated", "api_key_id": str(found.id)}
    return Principal(user_id=user_id, email=None, role="authenticated", claims=claims, api_key_id=found.id)
