"""The Standard Webhooks signature (https://www.standardwebhooks.com, "Signature scheme").

The secret is `whsec_` followed by the base64 of 32 random bytes; the key of the HMAC is those bytes.
Each request carries `webhook-id` (the message id, stable across the retries of a delivery),
`webhook-timestamp` (unix seconds of this attempt) and `webhook-signature` `v1,<base64 HMAC-SHA256(key,
f"{id}.{timestamp}.{body}")>`."""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
from typing import Final
from uuid import UUID

SECRET_PREFIX: Final = "whsec_"  # noqa: S105 - the prefix of the format, not a secret
SECRET_BYTES: Final = 32


def new_secret() -> str:
    return SECRET_PREFIX + base64.b64encode(os.urandom(SECRET_BYTES)).decode()


def secret_key(secret: str) -> bytes:
    """The HMAC key of a `whsec_...` secret (its base64 part, decoded)."""
    return base64.b64decode(secret.removeprefix(SECRET_PREFIX))


def message_id(delivery_id: UUID) -> str:
    """A delivery's `webhook-id`: the same at every attempt, so a receiver can drop a repeat."""
    return f"msg_{delivery_id.hex}"


def signature(secret: str, msg_id: str, timestamp: int, body: str) -> str:
    signed = f"{msg_id}.{timestamp}.{body}".encode()
    digest = hmac.new(secret_key(secret), signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def headers(secret: str, msg_id: str, timestamp: int, body: str) -> dict[str, str]:
    return {
        "content-type": "application/json",
        "webhook-id": msg_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": signature(secret, msg_id, timestamp, body),
    }
