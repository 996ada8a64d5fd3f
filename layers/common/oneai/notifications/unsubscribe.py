"""One-click unsubscribe links (RFC 8058): a token signed with HMAC-SHA256 that names a user and one
preference switch, so the link works without a login and cannot be forged or pointed at someone else.

    token = sign_token(secret, user_id, "quota_warnings")   # "<user id hex>.<switch>.<signature>"
    user_id, switch = verify_token(secret, token)           # or InvalidUnsubscribeTokenError

The token does not expire: an unsubscribe link must keep working as long as the email is read. Rotating
`UNSUBSCRIBE_SECRET` invalidates every link sent before.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from typing import Final
from urllib.parse import urlencode
from uuid import UUID

from oneai.config import Settings
from oneai.db import notifications as repo
from oneai.db.connection import Database
from oneai.errors import BadRequestError, NotFoundError, UnavailableError
from oneai.logging import logger
from oneai.notifications.kinds import PREFERENCE_KEYS, PreferenceKey

UNSUBSCRIBE_PATH: Final = "/notifications/unsubscribe"
MAX_TOKEN_CHARS: Final = 200


class InvalidUnsubscribeTokenError(BadRequestError):
    default_message = "This unsubscribe link is not valid"


class UnsubscribeNotConfiguredError(UnavailableError):
    default_message = "Unsubscribe links are not configured"


def unsubscribe_secret(settings: Settings) -> bytes:
    secret = settings.unsubscribe_secret
    if secret is None or not secret.get_secret_value():
        raise UnsubscribeNotConfiguredError()
    return secret.get_secret_value().encode()


def _signature(secret: bytes, user_id: UUID, switch: str) -> str:
    digest = hmac.new(secret, f"unsubscribe:{user_id}:{switch}".encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def sign_token(secret: bytes, user_id: UUID, switch: PreferenceKey) -> str:
    return f"{user_id.hex}.{switch}.{_signature(secret, user_id, switch)}"


def verify_token(secret: bytes, token: str | None) -> tuple[UUID, PreferenceKey]:
    if not token or len(token) > MAX_TOKEN_CHARS:
        raise InvalidUnsubscribeTokenError()
    parts = token.split(".")
    if len(parts) != 3:
        raise InvalidUnsubscribeTokenError()
    user_hex, switch_text, signature = parts
    switch = next((key for key in PREFERENCE_KEYS if key == switch_text), None)
    try:
        user_id = UUID(hex=user_hex)
    except ValueError:
        raise InvalidUnsubscribeTokenError() from None
    if switch is None or not hmac.compare_digest(_signature(secret, user_id, switch), signature):
        raise InvalidUnsubscribeTokenError()
    return user_id, switch


def unsubscribe_url(settings: Settings, user_id: UUID, switch: PreferenceKey) -> str:
    token = sign_token(unsubscribe_secret(settings), user_id, switch)
    return f"{settings.public_api_url.rstrip('/')}{UNSUBSCRIBE_PATH}?{urlencode({'token': token})}"


def switch_of(settings: Settings, token: str | None) -> PreferenceKey:
    """The switch a valid link turns off (GET: the confirmation page changes nothing)."""
    return verify_token(unsubscribe_secret(settings), token)[1]


def unsubscribe(db: Database, token: str | None) -> PreferenceKey:
    """Turn the link's switch off for the link's user (RFC 8058 one-click POST); idempotent."""
    user_id, switch = verify_token(unsubscribe_secret(db.settings), token)
    with db.service_transaction() as conn:
        if not repo.merge_notification_preferences(conn, user_id, {switch: False}):
            raise NotFoundError("This account does not exist any more")
    logger.info("unsubscribed", extra={"user_id": str(user_id), "switch": switch})
    return switch
