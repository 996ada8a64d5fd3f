"""Invitation tokens. The token in an accept link is derived from the invitation's id with a server key
(HMAC-SHA256, `INVITATION_SECRET`), and only its SHA-256 is stored: the database alone cannot accept an
invitation, and the notifications function rebuilds the link from the id it is sent, so the token never
travels in an event or a queue. Withdrawing the invitation (its row) voids the token."""

from __future__ import annotations

import base64
import hashlib
import hmac
from typing import Final
from uuid import UUID

from oneai.config import Settings
from oneai.errors import UnavailableError

MAX_TOKEN_CHARS: Final = 100


class InvitationsNotConfiguredError(UnavailableError):
    default_message = "Invitations are not configured"


def _key(settings: Settings) -> bytes:
    secret = settings.invitation_secret
    if secret is None or not secret.get_secret_value():
        raise InvitationsNotConfiguredError()
    return secret.get_secret_value().encode()


def invitation_token(settings: Settings, invitation_id: UUID) -> str:
    digest = hmac.new(_key(settings), f"workspace-invitation:{invitation_id}".encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def token_hash(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


def accept_url(settings: Settings, invitation_id: UUID) -> str:
    return f"{settings.invitation_url_base.rstrip('/')}/{invitation_token(settings, invitation_id)}"
