"""The KMS of `make dev` (local/kms.py): the local S3's moto server holds the provider keys' key, the envelope
seals and opens through it over a real socket, and a provider key sealed before a restart opens after it
(its row outlives the restart in `.oneai/pgdata`). Each run is a process of its own, as each `make dev` is:
moto keeps its keys in the memory of the process that serves them."""

from __future__ import annotations

import json
import stat
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.local_support import run_python

PLAINTEXT = "sk-local-dev-provider-key-0123456789"
WORKSPACE = "00000000-0000-4000-8000-0000000000a1"

RUN = """
import json, os, sys
from pathlib import Path
from local.kms import local_kms_environment
from local.s3_server import LocalS3

material, action, workspace, given = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4]
with LocalS3() as s3:
    environment = local_kms_environment(s3, material_file=Path(material) if material else None)
    again = local_kms_environment(s3, material_file=Path(material) if material else None)  # a second start
    os.environ.update(environment)
    from oneai.config import reset_settings
    from oneai.crypto.envelope import Sealed, open_sealed, seal
    reset_settings()
    if action == "seal":
        result = {"blob": seal(given, workspace_id=workspace).to_bytes().hex()}
    else:
        opened = open_sealed(Sealed.from_bytes(bytes.fromhex(given)), workspace_id=workspace)
        result = {"plaintext": opened.get_secret_value()}
    print(json.dumps({**result, "environment": environment, "same_key": again == environment}))
"""


def run_dev_kms(material: Path | None, action: str, given: str) -> dict[str, Any]:
    """One run of the local KMS (one process): start it, seal `given` or open the blob `given`, stop."""
    done = run_python("-c", RUN, str(material or ""), action, WORKSPACE, given)
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_a_key_sealed_before_a_restart_opens_after_it(tmp_path: Path) -> None:
    material = tmp_path / "kms" / "provider-keys.key"
    sealed = run_dev_kms(material, "seal", PLAINTEXT)
    assert sealed["environment"]["ONEAI_PROVIDER_KEYS_KMS_KEY_ID"] == "alias/oneai-local-provider-keys"
    assert sealed["environment"]["ONEAI_KMS_ENDPOINT_URL"].startswith("http://127.0.0.1:")
    assert sealed["same_key"] is True
    assert PLAINTEXT.encode().hex() not in sealed["blob"]
    # the material is made once, 32 bytes, readable by its owner only
    assert len(material.read_bytes()) == 32
    assert stat.S_IMODE(material.stat().st_mode) == 0o600
    assert run_dev_kms(material, "open", sealed["blob"])["plaintext"] == PLAINTEXT


def test_the_dev_key_is_its_material_file(tmp_path: Path) -> None:
    # another file (a deleted .oneai/kms, another clone's) is another key: what it sealed does not open
    material = tmp_path / "provider-keys.key"
    sealed = run_dev_kms(material, "seal", PLAINTEXT)
    material.write_bytes(bytes(32))
    with pytest.raises(subprocess.CalledProcessError) as caught:
        run_dev_kms(material, "open", sealed["blob"])
    assert "SealedOpenError" in caught.value.stderr
    assert PLAINTEXT not in caught.value.stderr and PLAINTEXT not in caught.value.stdout


def test_without_a_material_file_the_key_is_moto_s_own(tmp_path: Path) -> None:
    # the e2e tests' KMS: a fresh key in the session's moto server, nothing written to disk
    sealed = run_dev_kms(None, "seal", PLAINTEXT)
    assert sealed["environment"]["ONEAI_PROVIDER_KEYS_KMS_KEY_ID"] == "alias/oneai-local-provider-keys"
    assert list(tmp_path.iterdir()) == []
