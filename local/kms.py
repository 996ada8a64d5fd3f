"""The KMS of `make dev` and the e2e tests: moto's, served by the local S3's moto server (local/s3_server.py
answers every AWS API moto has, by the service its requests are signed for), with the key that provider keys
are sealed under (oneai.crypto.envelope) and its alias.

moto makes a key's material up when the key is created and keeps it in memory, so a key created at each
start would leave every provider key sealed in an earlier run (its row still in `.oneai/pgdata`) unopenable.
With `material_file`, the key gets a fixed id and the 32 bytes of that file as its material (the file is
made once, random, readable by its owner only), so what was sealed before a restart opens after it, as the
local S3's files outlive one. moto has no ImportKeyMaterial, so the key is set in moto's backend of this
process: the server must run in it (LocalS3 does).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Final

from local.s3_server import LOCAL_ACCESS_KEY_ID, LOCAL_REGION, LOCAL_SECRET_ACCESS_KEY, LocalS3

DEV_KEY_ALIAS: Final = "alias/oneai-local-provider-keys"
# The fixed id of the dev key (moto writes the key id into each ciphertext and finds the key by it).
DEV_KEY_ID: Final = "0e1a1de5-0000-4000-8000-00000000c0de"
MATERIAL_BYTES: Final = 32


def read_or_create_material(path: Path) -> bytes:
    """The dev key's material: the file's 32 bytes, made (random, mode 0600) the first time."""
    if path.exists():
        material = path.read_bytes()
        if len(material) == MATERIAL_BYTES:
            return material
        raise ValueError(f"{path} must hold exactly {MATERIAL_BYTES} bytes; delete it to make a new dev key")
    path.parent.mkdir(parents=True, exist_ok=True)
    material = os.urandom(MATERIAL_BYTES)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "wb") as file:
        file.write(material)
    return material


def create_provider_keys_key(
    kms: Any, *, alias: str = DEV_KEY_ALIAS, material_file: Path | None = None
) -> dict[str, str]:
    """Create the provider keys' KMS key (with `alias`) through `kms`, a boto3 KMS client of the local moto
    server; with `material_file`, the key id and material that survive restarts. The settings that point
    oneai.crypto.envelope at it (with the endpoint: `environment`)."""
    existing = {entry["AliasName"]: entry.get("TargetKeyId") for entry in kms.list_aliases()["Aliases"]}
    if alias in existing:
        return {"ONEAI_PROVIDER_KEYS_KMS_KEY_ID": alias}
    created = kms.create_key(Description="OneAI provider keys (local)", KeySpec="SYMMETRIC_DEFAULT")["KeyMetadata"]
    key_id = created["KeyId"]
    if material_file is not None:
        key_id = _fix_key(created["Arn"], DEV_KEY_ID, read_or_create_material(material_file))
    kms.create_alias(AliasName=alias, TargetKeyId=key_id)
    return {"ONEAI_PROVIDER_KEYS_KMS_KEY_ID": alias}


def local_kms_environment(local_s3: LocalS3, *, material_file: Path | None = None) -> dict[str, str]:
    """The provider keys' key in `local_s3`'s moto server (created unless there), and what a process needs
    to seal with it: the endpoint, the key's alias, the local credentials and region."""
    import boto3

    kms = boto3.session.Session().client(
        "kms",
        endpoint_url=local_s3.endpoint_url,
        region_name=LOCAL_REGION,
        aws_access_key_id=LOCAL_ACCESS_KEY_ID,
        aws_secret_access_key=LOCAL_SECRET_ACCESS_KEY,
    )
    settings = create_provider_keys_key(kms, material_file=material_file)
    return {
        "ONEAI_KMS_ENDPOINT_URL": local_s3.endpoint_url,
        "AWS_ACCESS_KEY_ID": LOCAL_ACCESS_KEY_ID,
        "AWS_SECRET_ACCESS_KEY": LOCAL_SECRET_ACCESS_KEY,
        "AWS_DEFAULT_REGION": LOCAL_REGION,
        **settings,
    }


def _fix_key(arn: str, key_id: str, material: bytes) -> str:
    """Give the key moto just created (`arn`) the id `key_id` and the material `material`."""
    from moto.kms.models import kms_backends

    _, _, _, region, account, resource = arn.split(":", 5)
    backend = kms_backends[account][region]
    key = backend.keys.pop(resource.removeprefix("key/"))
    key.id, key.arn, key.key_material = key_id, f"arn:aws:kms:{region}:{account}:key/{key_id}", material
    backend.keys[key_id] = key
    return key_id
