"""Supabase access-token verification -> a typed `Principal`.

Two kinds of signing keys are accepted, each with its algorithm pinned:
- `HS256` with the project's shared `SUPABASE_JWT_SECRET` (legacy Supabase projects, local dev);
- `ES256` / `RS256` with the public key of the token's `kid` from the project's JWKS endpoint
  (`<SUPABASE_URL>/auth/v1/.well-known/jwks.json`), the key's `kty` (and `alg`, if present) must match.
Everything else is a 401. Error messages are short and generic and never contain the token.
"""

from __future__ import annotations

import json
import logging
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

import httpx
import jwt

from oneai.config import Settings, get_settings
from oneai.errors import UnauthorizedError
from oneai.observability import trace_calls
from oneai.unstorable import has_unstorable

if TYPE_CHECKING:
    from oneai.ratelimit import RateCheck

logger = logging.getLogger(__name__)

LEEWAY_SECONDS = 10
JWKS_REFETCH_INTERVAL_SECONDS = 30.0  # at most one fetch per interval for unknown kids
JWKS_RETRY_AFTER_FAILURE_SECONDS = 5.0  # a failed fetch is retried no sooner than this
JWKS_TIMEOUT_SECONDS = 3.0
MAX_TOKEN_LENGTH = 16 * 1024
# `app_metadata.role` of an operator. Supabase's app_metadata is set only with the service key (Admin API
# or SQL on auth.users.raw_app_meta_data), never by the user, unlike user_metadata.
ADMIN_ROLE = "admin"

MSG_INVALID = "Invalid access token"
MSG_EXPIRED = "Access token expired"
MSG_KEYS_UNAVAILABLE = "Access token could not be verified"

# Asymmetric algorithm -> the only JWK key type that may verify it.
_JWKS_ALGORITHMS: Mapping[str, str] = MappingProxyType({"ES256": "EC", "RS256": "RSA"})
_REQUIRED_CLAIMS = ("exp", "aud", "iss", "sub")


@dataclass(frozen=True, slots=True)
class Principal:
    """The verified caller."""

    user_id: uuid.UUID
    email: str | None
    role: str
    claims: Mapping[str, Any] = field(repr=False, compare=False, hash=False)
    # The verified token's `app_metadata.role` is "admin".
    is_admin: bool = False
    # Set when the caller came with an API key (only /v1 accepts them) rather than a Supabase token.
    api_key_id: uuid.UUID | None = None
    # This request's rate check, done by its first user transaction (oneai.ratelimit).
    rate_check: RateCheck | None = field(default=None, repr=False, compare=False, hash=False)

    def claims_json(self) -> str:
        """Compact JSON of the verified claims (for `request.jwt.claims` in PostgreSQL)."""
        return json.dumps(dict(self.claims), separators=(",", ":"), sort_keys=True)


class JwksCache:
    """The signing keys of the JWKS endpoint, cached per container.

    Keys are kept for `cache_seconds`. An unknown `kid` triggers a re-fetch, at most once per
    `refetch_interval_seconds`, so random kids cannot make us hammer the endpoint. If a refresh fails
    while keys are cached, the cached keys stay in use.
    """

    def __init__(
        self,
        url: str,
        *,
        cache_seconds: float = 600,
        refetch_interval_seconds: float = JWKS_REFETCH_INTERVAL_SECONDS,
        retry_after_failure_seconds: float = JWKS_RETRY_AFTER_FAILURE_SECONDS,
        timeout_seconds: float = JWKS_TIMEOUT_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._url = url
        self._cache_seconds = cache_seconds
        self._refetch_interval = refetch_interval_seconds
        self._retry_after_failure = retry_after_failure_seconds
        self._timeout = httpx.Timeout(timeout_seconds)
        self._clock = clock
        self._lock = threading.Lock()
        self._client: httpx.Client | None = None
        self._keys: dict[str, jwt.PyJWK] | None = None
        self._expires_at = 0.0
        self._next_fetch_at = 0.0

    @classmethod
    def from_settings(cls, settings: Settings) -> JwksCache:
        return cls(settings.jwks_url, cache_seconds=settings.jwks_cache_seconds)

    def get_key(self, kid: str) -> jwt.PyJWK:
        """The key with this `kid`; `UnauthorizedError` if it is unknown or no keys can be loaded."""
        with self._lock:
            now = self._clock()
            keys = self._keys
            stale = keys is None or now >= self._expires_at
            if (stale or kid not in (keys or {})) and now >= self._next_fetch_at:
                keys = self._refresh(now)
            if keys is None:
                raise UnauthorizedError(MSG_KEYS_UNAVAILABLE)
            key = keys.get(kid)
        if key is None:
            raise UnauthorizedError(MSG_INVALID)
        return key

    def _refresh(self, now: float) -> dict[str, jwt.PyJWK] | None:
        try:
            keys = self._fetch()
        except (httpx.HTTPError, ValueError, TypeError) as exc:
            logger.warning("JWKS fetch failed: %s", type(exc).__name__)
            self._next_fetch_at = now + self._retry_after_failure
            return self._keys
        self._keys = keys
        self._expires_at = now + self._cache_seconds
        self._next_fetch_at = now + self._refetch_interval
        return keys

    def _fetch(self) -> dict[str, jwt.PyJWK]:
        if self._client is None:
            trace_calls("httpx")
            self._client = httpx.Client(timeout=self._timeout, follow_redirects=False)
        response = self._client.get(self._url, headers={"accept": "application/json"})
        response.raise_for_status()
        document = response.json()
        if not isinstance(document, dict) or not isinstance(document.get("keys"), list):
            raise ValueError("not a JWKS document")
        keys: dict[str, jwt.PyJWK] = {}
        for entry in document["keys"]:
            if not isinstance(entry, dict) or not isinstance(entry.get("kid"), str):
                continue
            if entry.get("use", "sig") != "sig":
                continue
            try:
                keys[entry["kid"]] = jwt.PyJWK(entry)
            except jwt.PyJWTError:
                logger.warning("JWKS key skipped: unsupported (kid %s)", entry["kid"][:64])
        return keys


class TokenVerifier:
    """Verifies Supabase access tokens against one `Settings`."""

    def __init__(self, settings: Settings, jwks: JwksCache | None = None) -> None:
        self.settings = settings
        self._jwks = jwks
        self._jwks_lock = threading.Lock()

    @property
    def jwks(self) -> JwksCache:
        with self._jwks_lock:
            if self._jwks is None:
                self._jwks = JwksCache.from_settings(self.settings)
            return self._jwks

    def verify(self, token: str) -> Principal:
        if not isinstance(token, str) or not token or len(token) > MAX_TOKEN_LENGTH:
            raise UnauthorizedError(MSG_INVALID)
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            raise UnauthorizedError(MSG_INVALID) from None
        alg = header.get("alg")
        key = self._key_for(alg, header.get("kid"))
        settings = self.settings
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                key,
                algorithms=[str(alg)],
                audience=settings.supabase_jwt_audience,
                issuer=settings.supabase_jwt_issuer,
                leeway=LEEWAY_SECONDS,
                options={"require": list(_REQUIRED_CLAIMS), "strict_aud": False},
            )
        except jwt.ExpiredSignatureError:
            raise UnauthorizedError(MSG_EXPIRED) from None
        except (jwt.PyJWTError, ValueError, TypeError) as exc:
            logger.info("authorization rejected", extra={"error_type": type(exc).__name__})
            raise UnauthorizedError(MSG_INVALID) from None
        return _principal(claims)

    def _key_for(self, alg: object, kid: object) -> str | jwt.PyJWK:
        if alg == "HS256":
            secret = self.settings.supabase_jwt_secret
            if secret is None or not secret.get_secret_value():
                raise UnauthorizedError(MSG_INVALID)
            return secret.get_secret_value()
        if not isinstance(alg, str) or alg not in _JWKS_ALGORITHMS:
            raise UnauthorizedError(MSG_INVALID)
        if not isinstance(kid, str) or not kid:
            raise UnauthorizedError(MSG_INVALID)
        key = self.jwks.get_key(kid)
        if key.key_type != _JWKS_ALGORITHMS[alg] or key.algorithm_name != alg:
            raise UnauthorizedError(MSG_INVALID)
        return key


def _principal(claims: dict[str, Any]) -> Principal:
    sub = claims.get("sub")
    role = claims.get("role")
    if not isinstance(sub, str) or not isinstance(role, str) or not role:
        raise UnauthorizedError(MSG_INVALID)
    # Every claim goes to PostgreSQL (`request.jwt.claims` as jsonb; email and metadata of a user created
    # under dev mode): text or numbers it cannot store make the token unusable, not the request a 500.
    if has_unstorable(claims):
        raise UnauthorizedError(MSG_INVALID)
    try:
        user_id = uuid.UUID(sub)
    except ValueError:
        raise UnauthorizedError(MSG_INVALID) from None
    if str(user_id) != sub.lower():  # only the canonical 8-4-4-4-12 form
        raise UnauthorizedError(MSG_INVALID)
    email = claims.get("email")
    app_metadata = claims.get("app_metadata")
    return Principal(
        user_id=user_id,
        email=email if isinstance(email, str) and email else None,
        role=role,
        claims=MappingProxyType(claims),
        is_admin=isinstance(app_metadata, dict) and app_metadata.get("role") == ADMIN_ROLE,
    )


def bearer_token(authorization: str | None) -> str:
    """The token of an `Authorization: Bearer <token>` header."""
    if not authorization:
        raise UnauthorizedError()
    scheme, _, token = authorization.strip().partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token or any(c.isspace() for c in token):
        raise UnauthorizedError()
    return token


class _VerifierSlot:
    """One verifier per container, rebuilt when the settings object changes."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.settings: Settings | None = None
        self.verifier: TokenVerifier | None = None


_slot = _VerifierSlot()


def get_verifier() -> TokenVerifier:
    settings = get_settings()
    with _slot.lock:
        if _slot.verifier is None or _slot.settings is not settings:
            _slot.verifier = TokenVerifier(settings)
            _slot.settings = settings
        return _slot.verifier


def authenticate(authorization: str | None) -> Principal:
    """The principal of an `Authorization` header; `UnauthorizedError` otherwise."""
    return get_verifier().verify(bearer_token(authorization))


def mint_dev_token(
    sub: uuid.UUID | str,
    *,
    secret: str,
    issuer: str,
    email: str | None = None,
    audience: str = "authenticated",
    expires_in_seconds: int = 7 * 24 * 3600,
    extra_claims: Mapping[str, Any] | None = None,
) -> str:
    """An HS256 token shaped like a Supabase access token (local dev and tests only)."""
    now = int(time.time())
    payload: dict[str, Any] = {
        "iss": issuer,
        "sub": str(sub),
        "aud": audience,
        "exp": now + expires_in_seconds,
        "iat": now,
        "email": email or "",
        "phone": "",
        "app_metadata": {"provider": "email", "providers": ["email"]},
        "user_metadata": {},
        "role": "authenticated",
        "aal": "aal1",
        "amr": [{"method": "password", "timestamp": now}],
        "session_id": str(uuid.uuid4()),
        "is_anonymous": False,
    }
    payload.update(extra_claims or {})
    return jwt.encode(payload, secret, algorithm="HS256", headers={"typ": "JWT"})
