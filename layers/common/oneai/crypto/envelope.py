"""Envelope encryption of a workspace's secrets at rest (provider keys; issue 26).

`seal(plaintext, workspace_id=...)` asks AWS KMS for a fresh data key (`GenerateDataKey`, AES_256) under
the configured KMS key (`ONEAI_PROVIDER_KEYS_KMS_KEY_ID`, read on first use, never at import), encrypts
the plaintext with it using AES-256-GCM (`cryptography`) under a random 96-bit nonce, and keeps only the
KMS-encrypted data key: a `Sealed` holds the format version, the id (ARN) of the KMS key, the encrypted data
key, the nonce and the ciphertext with its 16-byte tag. `open_sealed(sealed, workspace_id=...)` has KMS
decrypt the data key (`Decrypt`) and opens the ciphertext.

The workspace is bound twice: the GCM associated data is `oneai-sealed:v1:workspace:<workspace uuid>`,
and the KMS encryption context is `{"oneai:workspace_id": "<workspace uuid>"}` (so KMS itself refuses to
decrypt the data key for another workspace, and CloudTrail names the workspace of every use). A sealed
value opened with another workspace id, or altered in any byte, does not open (`SealedOpenError`).

Decrypted data keys are not cached: every `open_sealed` is one KMS `Decrypt` (a few milliseconds in the
region, next to a model reply of seconds), so no key material outlives the call, revoking the functions'
access to the KMS key takes effect at once, and each use of a customer's key is in CloudTrail.

The plaintext is never logged and never in an exception or a repr: `open_sealed` returns it as a pydantic
`SecretStr` (shown as `**********`; `.get_secret_value()` where it is used), errors name no value, and
KMS failures are logged by their error code only. boto3 is imported on first use.
"""

from __future__ import annotations

import os
import struct
import threading
import uuid
from dataclasses import dataclass
from typing import Any, Final

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from pydantic import SecretStr

from oneai.config import Settings, get_settings
from oneai.errors import UnavailableError
from oneai.logging import logger
from oneai.observability import trace_calls

__all__ = [
    "FORMAT_VERSION",
    "Envelope",
    "Sealed",
    "SealedOpenError",
    "get_envelope",
    "mask_key",
    "open_sealed",
    "seal",
]

FORMAT_VERSION: Final = 1
NONCE_BYTES: Final = 12  # 96 bits, GCM's recommended nonce; random per seal, each with its own data key
TAG_BYTES: Final = 16
DATA_KEY_SPEC: Final = "AES_256"
CONTEXT_KEY: Final = "oneai:workspace_id"
AWS_TIMEOUT_SECONDS: Final = 3
# Shorter than this, showing the last four characters would show too much of the key.
MASK_MIN_LENGTH: Final = 12
_FAILED_TO_OPEN: Final = (
    "The stored secret cannot be opened (another workspace, altered, or sealed under another key)"
)
_BLOB_HEADER: Final = struct.Struct(">BHH")  # version, length of the key id, length of the encrypted data key


class SealedOpenError(Exception):
    """A sealed secret that does not open: another workspace's, altered, or unknown to the KMS key."""

    def __init__(self, message: str = _FAILED_TO_OPEN) -> None:
        super().__init__(message)


class KeyServiceUnavailableError(UnavailableError):
    """KMS could not be used (not configured, unreachable, access denied): 503, nothing was stored."""

    default_message = "Stored provider keys are unavailable right now; try again"


@dataclass(frozen=True, slots=True, repr=False)
class Sealed:
    """A sealed secret, as stored: every field is safe at rest (nothing here opens without KMS)."""

    version: int
    key_id: str  # the ARN of the KMS key that encrypted the data key
    encrypted_data_key: bytes
    nonce: bytes
    ciphertext: bytes  # AES-256-GCM, its 16-byte tag at the end

    def __repr__(self) -> str:
        return f"Sealed(version={self.version}, key_id={self.key_id!r}, ciphertext=<{len(self.ciphertext)} bytes>)"

    def to_bytes(self) -> bytes:
        """One blob for one `bytea` column: version, the lengths of the key id and of the encrypted data
        key (big endian), the key id (UTF-8), the encrypted data key, the nonce, the ciphertext."""
        key_id = self.key_id.encode()
        header = _BLOB_HEADER.pack(self.version, len(key_id), len(self.encrypted_data_key))
        return header + key_id + self.encrypted_data_key + self.nonce + self.ciphertext

    @classmethod
    def from_bytes(cls, blob: bytes) -> Sealed:
        try:
            version, key_id_length, data_key_length = _BLOB_HEADER.unpack_from(blob)
        except struct.error:
            raise SealedOpenError() from None
        if version != FORMAT_VERSION:
            raise SealedOpenError(f"Unknown sealed format version {version}")
        offset = _BLOB_HEADER.size
        key_id = blob[offset : offset + key_id_length]
        offset += key_id_length
        encrypted_data_key = blob[offset : offset + data_key_length]
        offset += data_key_length
        nonce, ciphertext = blob[offset : offset + NONCE_BYTES], blob[offset + NONCE_BYTES :]
        if len(key_id) != key_id_length or len(nonce) != NONCE_BYTES or len(ciphertext) < TAG_BYTES:
            raise SealedOpenError()
        try:
            return cls(version, key_id.decode(), bytes(encrypted_data_key), bytes(nonce), bytes(ciphertext))
        except UnicodeDecodeError:
            raise SealedOpenError() from None


def _workspace_uuid(workspace_id: uuid.UUID | str) -> str:
    return str(workspace_id if isinstance(workspace_id, uuid.UUID) else uuid.UUID(str(workspace_id)))


def _associated_data(version: int, workspace: str) -> bytes:
    return f"oneai-sealed:v{version}:workspace:{workspace}".encode()


class Envelope:
    """Seals and opens with one KMS key. One per container (`get_envelope`); the KMS client is made on
    first use, with a boto3 session of its own (the default session keeps the first credentials it saw)."""

    def __init__(self, settings: Settings, *, kms_client: Any = None) -> None:
        self.key_id = settings.provider_keys_kms_key_id
        self.endpoint_url = settings.kms_endpoint_url
        self._client = kms_client
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"Envelope(key_id={self.key_id!r})"

    def _kms(self) -> Any:
        with self._lock:
            if self._client is None:
                trace_calls("botocore")
                import boto3
                from botocore.config import Config

                config = Config(
                    connect_timeout=AWS_TIMEOUT_SECONDS,
                    read_timeout=AWS_TIMEOUT_SECONDS,
                    retries={"max_attempts": 3, "mode": "standard"},
                )
                self._client = boto3.session.Session().client("kms", endpoint_url=self.endpoint_url, config=config)
            return self._client

    def _call(self, operation: str, **kwargs: Any) -> Any:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            return getattr(self._kms(), operation)(**kwargs)
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "")
            if operation == "decrypt" and code in {"InvalidCiphertextException", "IncorrectKeyException"}:
                raise SealedOpenError() from None
            logger.warning("kms call failed", extra={"operation": operation, "error_code": code})
            raise KeyServiceUnavailableError() from None
        except BotoCoreError as exc:
            logger.warning("kms call failed", extra={"operation": operation, "error_type": type(exc).__name__})
            raise KeyServiceUnavailableError() from None

    def seal(self, plaintext: str | SecretStr, *, workspace_id: uuid.UUID | str) -> Sealed:
        """`plaintext` encrypted under a fresh data key for `workspace_id` (503 when KMS cannot be used)."""
        if not self.key_id:
            logger.warning("ONEAI_PROVIDER_KEYS_KMS_KEY_ID is not configured")
            raise KeyServiceUnavailableError()
        workspace = _workspace_uuid(workspace_id)
        value = plaintext.get_secret_value() if isinstance(plaintext, SecretStr) else plaintext
        answer = self._call(
            "generate_data_key",
            KeyId=self.key_id,
            KeySpec=DATA_KEY_SPEC,
            EncryptionContext={CONTEXT_KEY: workspace},
        )
        nonce = os.urandom(NONCE_BYTES)
        ciphertext = AESGCM(answer["Plaintext"]).encrypt(
            nonce, value.encode(), _associated_data(FORMAT_VERSION, workspace)
        )
        return Sealed(FORMAT_VERSION, str(answer["KeyId"]), bytes(answer["CiphertextBlob"]), nonce, ciphertext)

    def open(self, sealed: Sealed, *, workspace_id: uuid.UUID | str) -> SecretStr:
        """The plaintext of `sealed`, sealed for `workspace_id` (`SealedOpenError` otherwise)."""
        if sealed.version != FORMAT_VERSION:
            raise SealedOpenError(f"Unknown sealed format version {sealed.version}")
        workspace = _workspace_uuid(workspace_id)
        answer = self._call(
            "decrypt",
            CiphertextBlob=sealed.encrypted_data_key,
            EncryptionContext={CONTEXT_KEY: workspace},
            KeyId=sealed.key_id,
        )
        try:
            opened = AESGCM(answer["Plaintext"]).decrypt(
                sealed.nonce, sealed.ciphertext, _associated_data(sealed.version, workspace)
            )
        except (InvalidTag, ValueError):
            raise SealedOpenError() from None
        return SecretStr(opened.decode())


_envelope: Envelope | None = None
_envelope_lock = threading.Lock()


def get_envelope() -> Envelope:
    """This container's envelope, made on first use (again when the configured key or endpoint changed)."""
    global _envelope
    with _envelope_lock:
        settings = get_settings()
        if (
            _envelope is None
            or _envelope.key_id != settings.provider_keys_kms_key_id
            or _envelope.endpoint_url != settings.kms_endpoint_url
        ):
            _envelope = Envelope(settings)
        return _envelope


def seal(plaintext: str | SecretStr, *, workspace_id: uuid.UUID | str) -> Sealed:
    """`Envelope.seal` with this container's envelope."""
    return get_envelope().seal(plaintext, workspace_id=workspace_id)


def open_sealed(sealed: Sealed, *, workspace_id: uuid.UUID | str) -> SecretStr:
    """`Envelope.open` with this container's envelope."""
    return get_envelope().open(sealed, workspace_id=workspace_id)


def mask_key(key: str | SecretStr) -> str:
    """What a key is shown as: `…` and its last four characters (`…` alone for a key under 12 characters)."""
    value = (key.get_secret_value() if isinstance(key, SecretStr) else key).strip()
    return f"…{value[-4:]}" if len(value) >= MASK_MIN_LENGTH else "…"
