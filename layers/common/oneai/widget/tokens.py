"""Visitor session tokens: short-lived, HMAC-SHA256-signed with `WIDGET_SESSION_SECRET`, bound to the
chatbot, the page's origin and the visitor id.

A token is `wst1.<payload>.<signature>` (base64url without padding): the payload is compact JSON
`{"c": chatbot id, "v": visitor id, "o": origin ("" when the request had none), "r": the visitor's row id,
"e": expiry (Unix seconds), "n": a random nonce}`, the signature the HMAC of `widget-session:` and the payload's text. Nothing is
stored: the database need not be read to refuse a forged, expired or other-origin token (all 401).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import secrets
import time
from dataclasses import dataclass
from typing import Final
from uuid import UUID

from oneai.config import Settings
from oneai.errors import UnauthorizedError, UnavailableError

PREFIX: Final = "wst1"
MAX_TOKEN_CHARS: Final = 1024


class WidgetNotConfiguredError(UnavailableError):
    default_message = "The widget is not configured"


@dataclass(frozen=True, slots=True)
class VisitorSession:
    chatbot_id: UUID
    visitor_id: str
    origin: str
    visitor_ref: UUID
    expires_at: int


def _key(settings: Settings) -> bytes:
    secret = settings.widget_session_secret
    if secret is None or not secret.get_secret_value():
        raise WidgetNotConfiguredError()
    return secret.get_secret_value().encode()


def require_configured(settings: Settings) -> None:
    """503 UNAVAILABLE when no session key is configured (checked before anything is written)."""
    _key(settings)


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _signature(key: bytes, payload: str) -> str:
    return _b64(hmac.new(key, f"widget-session:{payload}".encode(), hashlib.sha256).digest())


def issue(settings: Settings, session: VisitorSession) -> str:
    body = {
        "c": str(session.chatbot_id),
        "v": session.visitor_id,
        "o": session.origin,
        "r": str(session.visitor_ref),
        "e": session.expires_at,
        "n": _b64(secrets.token_bytes(9)),  # each session its own token, even within the same second
    }
    payload = _b64(json.dumps(body, separators=(",", ":"), sort_keys=True).encode())
    return f"{PREFIX}.{payload}.{_signature(_key(settings), payload)}"


def verify(
    settings: Settings, authorization: str | None, *, chatbot_id: UUID, origin: str, now: float | None = None
) -> VisitorSession:
    """The session of `Authorization: Bearer <token>`, if the token is ours, unexpired, of this chatbot and
    presented from the origin it was issued to; 401 otherwise (one message: which check failed is not told)."""
    refused = UnauthorizedError("The visitor session is missing, invalid or expired; open a new one")
    if not authorization:
        raise refused
    scheme, _, token = authorization.partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token or len(token) > MAX_TOKEN_CHARS:
        raise refused
    parts = token.split(".")
    if len(parts) != 3 or parts[0] != PREFIX:
        raise refused
    _, payload, signature = parts
    if not hmac.compare_digest(_signature(_key(settings), payload), signature):
        raise refused
    try:
        body = json.loads(_unb64(payload))
        session = VisitorSession(
            chatbot_id=UUID(body["c"]),
            visitor_id=str(body["v"]),
            origin=str(body["o"]),
            visitor_ref=UUID(body["r"]),
            expires_at=int(body["e"]),
        )
    except (ValueError, KeyError, TypeError, binascii.Error):  # signed by us, so never in practice
        raise refused from None
    if session.expires_at <= (time.time() if now is None else now):
        raise refused
    if session.chatbot_id != chatbot_id or not hmac.compare_digest(session.origin, origin):
        raise refused
    return session
