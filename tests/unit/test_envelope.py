"""Provider keys at rest (oneai.crypto.envelope), against moto's KMS: a key sealed for a workspace opens for
that workspace only, in no form shows its plaintext (stored blob, repr, errors, logs), fails closed when
altered, and is readable with nothing but KMS and the documented format."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from pydantic import SecretStr

from oneai.config import override_settings
from oneai.crypto.envelope import (
    CONTEXT_KEY,
    FORMAT_VERSION,
    KeyServiceUnavailableError,
    Sealed,
    SealedOpenError,
    get_envelope,
    mask_key,
    open_sealed,
    seal,
)
from tests.aws_support import moto_kms_key

PLAINTEXT = "sk-proj-Q7f2Zx9LmN4pR8tV1wY6bC3dE5gH0jK2"
WORKSPACE = uuid.UUID("7b0e2f4a-5c1d-4e8f-9a3b-6c7d8e9f0a1b")
OTHER_WORKSPACE = uuid.UUID("1f2e3d4c-5b6a-4978-8695-a4b3c2d1e0f9")
ALIAS = "alias/oneai-test-provider-keys"


@pytest.fixture
def kms(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """moto's KMS with a key under ALIAS, the settings pointing at it; the KMS client yielded."""
    with moto_kms_key(monkeypatch, ALIAS) as client:
        yield client


def test_a_sealed_key_opens_for_its_workspace(kms: Any) -> None:
    sealed = seal(PLAINTEXT, workspace_id=WORKSPACE)
    opened = open_sealed(sealed, workspace_id=str(WORKSPACE))
    assert opened.get_secret_value() == PLAINTEXT
    # the key id stored is the KMS key's ARN (the alias may later point elsewhere)
    key_arn = kms.describe_key(KeyId=ALIAS)["KeyMetadata"]["Arn"]
    assert (sealed.version, sealed.key_id, len(sealed.nonce)) == (FORMAT_VERSION, key_arn, 12)
    assert len(sealed.ciphertext) == len(PLAINTEXT.encode()) + 16


def test_a_sealed_key_survives_its_stored_form(kms: Any) -> None:
    blob = seal(PLAINTEXT, workspace_id=WORKSPACE).to_bytes()
    assert open_sealed(Sealed.from_bytes(blob), workspace_id=WORKSPACE).get_secret_value() == PLAINTEXT


def test_another_workspace_cannot_open_it(kms: Any) -> None:
    sealed = seal(PLAINTEXT, workspace_id=WORKSPACE)
    with pytest.raises(SealedOpenError) as caught:
        open_sealed(sealed, workspace_id=OTHER_WORKSPACE)
    assert PLAINTEXT not in str(caught.value) and PLAINTEXT not in repr(caught.value)


def test_the_data_key_of_one_workspace_does_not_open_another_workspaces_ciphertext(kms: Any) -> None:
    # a row's encrypted data key swapped into another workspace's row: neither KMS nor GCM lets it through
    mine, theirs = (
        seal(PLAINTEXT, workspace_id=WORKSPACE),
        seal("sk-theirs-0000000000", workspace_id=OTHER_WORKSPACE),
    )
    mixed = Sealed(mine.version, mine.key_id, theirs.encrypted_data_key, mine.nonce, mine.ciphertext)
    for workspace in (WORKSPACE, OTHER_WORKSPACE):
        with pytest.raises(SealedOpenError):
            open_sealed(mixed, workspace_id=workspace)


@pytest.mark.parametrize("part", ["ciphertext", "nonce", "encrypted_data_key"])
def test_an_altered_byte_fails_closed(kms: Any, part: str) -> None:
    sealed = seal(PLAINTEXT, workspace_id=WORKSPACE)
    value = bytearray(getattr(sealed, part))
    value[len(value) // 2] ^= 0x01
    altered = Sealed(**{**{f: getattr(sealed, f) for f in Sealed.__slots__}, part: bytes(value)})
    with pytest.raises(SealedOpenError):
        open_sealed(altered, workspace_id=WORKSPACE)


def test_a_truncated_or_unknown_blob_does_not_open(kms: Any) -> None:
    blob = seal(PLAINTEXT, workspace_id=WORKSPACE).to_bytes()
    for broken in (b"", blob[:3], blob[:40], bytes([9]) + blob[1:]):
        with pytest.raises(SealedOpenError):
            open_sealed(Sealed.from_bytes(broken), workspace_id=WORKSPACE)


def test_each_seal_has_its_own_data_key_and_nonce(kms: Any) -> None:
    first, second = seal(PLAINTEXT, workspace_id=WORKSPACE), seal(PLAINTEXT, workspace_id=WORKSPACE)
    assert first.nonce != second.nonce
    assert first.encrypted_data_key != second.encrypted_data_key
    assert first.ciphertext != second.ciphertext


def test_the_plaintext_shows_nowhere(
    kms: Any, capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    sealed = seal(SecretStr(PLAINTEXT), workspace_id=WORKSPACE)
    opened = open_sealed(sealed, workspace_id=WORKSPACE)
    shown = [repr(sealed), str(sealed), repr(opened), str(opened), f"{opened}", repr(get_envelope())]
    assert all(PLAINTEXT not in text and PLAINTEXT[-8:] not in text for text in shown)
    assert PLAINTEXT.encode() not in sealed.to_bytes()
    assert PLAINTEXT not in json.dumps({"key": str(opened)})
    assert PLAINTEXT not in capsys.readouterr().out
    assert all(PLAINTEXT not in str(vars(record)) for record in caplog.records)


def test_the_stored_form_opens_with_kms_and_the_documented_format_alone(kms: Any) -> None:
    # What a migration or another runtime would do: KMS Decrypt with the workspace as encryption context,
    # then AES-256-GCM with the documented associated data.
    sealed = seal(PLAINTEXT, workspace_id=WORKSPACE)
    with pytest.raises(kms.exceptions.InvalidCiphertextException):
        kms.decrypt(CiphertextBlob=sealed.encrypted_data_key)  # without the workspace: refused by KMS
    data_key = kms.decrypt(
        CiphertextBlob=sealed.encrypted_data_key, EncryptionContext={CONTEXT_KEY: str(WORKSPACE)}
    )["Plaintext"]
    assert len(data_key) == 32  # AES-256
    aad = f"oneai-sealed:v1:workspace:{WORKSPACE}".encode()
    assert AESGCM(data_key).decrypt(sealed.nonce, sealed.ciphertext, aad).decode() == PLAINTEXT


def test_without_a_configured_key_sealing_is_a_503_and_logs_no_plaintext(
    kms: Any, caplog: pytest.LogCaptureFixture
) -> None:
    with override_settings(provider_keys_kms_key_id=None), pytest.raises(KeyServiceUnavailableError) as caught:
        seal(PLAINTEXT, workspace_id=WORKSPACE)
    assert (caught.value.status, caught.value.code) == (503, "UNAVAILABLE")
    assert "ONEAI_PROVIDER_KEYS_KMS_KEY_ID is not configured" in caplog.text
    assert all(PLAINTEXT not in str(vars(record)) for record in caplog.records)


def test_an_unknown_kms_key_or_an_unreachable_kms_is_a_503_naming_only_the_error(
    kms: Any, caplog: pytest.LogCaptureFixture
) -> None:
    sealed = seal(PLAINTEXT, workspace_id=WORKSPACE)
    with (
        override_settings(provider_keys_kms_key_id="alias/oneai-no-such-key"),
        pytest.raises(KeyServiceUnavailableError),
    ):
        seal(PLAINTEXT, workspace_id=WORKSPACE)
    with override_settings(kms_endpoint_url="http://127.0.0.1:9"), pytest.raises(KeyServiceUnavailableError):
        open_sealed(sealed, workspace_id=WORKSPACE)
    failures = [record for record in caplog.records if record.getMessage() == "kms call failed"]
    assert (getattr(failures[0], "operation", None), getattr(failures[0], "error_code", None)) == (
        "generate_data_key",
        "NotFoundException",
    )
    assert (getattr(failures[-1], "operation", None), getattr(failures[-1], "error_type", None)) == (
        "decrypt",
        "EndpointConnectionError",
    )
    assert all(PLAINTEXT not in str(vars(record)) for record in caplog.records)


def test_a_workspace_id_that_is_not_a_uuid_is_refused(kms: Any) -> None:
    with pytest.raises(ValueError):
        seal(PLAINTEXT, workspace_id="workspace-1")


def test_nothing_is_read_or_connected_before_first_use() -> None:
    with override_settings(provider_keys_kms_key_id=ALIAS, kms_endpoint_url="http://127.0.0.1:9"):
        envelope = get_envelope()
    assert envelope._client is None  # no boto3 client until a seal or an open needs one


@pytest.mark.parametrize(
    ("key", "shown"),
    [
        ("sk-or-v1-0123456789abcdef", "…cdef"),
        (SecretStr("sk-ant-api03-xyzw9876"), "…9876"),
        ("  sk-proj-0000000000abcd \n", "…abcd"),
        ("short-key", "…"),
        ("", "…"),
    ],
)
def test_a_key_is_shown_as_its_last_four_characters(key: str | SecretStr, shown: str) -> None:
    assert mask_key(key) == shown
