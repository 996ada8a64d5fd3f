"""The built artifacts (`make build-native`: the same sources as the deployed arm64 build, for this
machine's architecture) run as Lambda runs them: for each function of template.yaml, a fresh bare
python3.12 with only the function's build dir and the layer's `python/` on sys.path, the template's
environment, LAMBDA_TASK_ROOT set, its secrets read from SSM (moto in server mode) at first use.
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto.server import ThreadedMotoServer

from lambda_build.layout import ATTACHMENTS_BUCKET, REGION, SSM_PATH, functions, lambda_process_environment
from local.events import (
    DEV_INVITATION_SECRET,
    DEV_RAZORPAY_WEBHOOK_SECRET,
    DEV_UNSUBSCRIBE_SECRET,
    DEV_WIDGET_SESSION_SECRET,
)
from local.template_routes import Function
from oneai.config import DEV_JWT_SECRET

REPO_ROOT = Path(__file__).resolve().parents[2]
NATIVE_ARCH = "arm64" if platform.machine() == "aarch64" else platform.machine()
BUILD_DIR = REPO_ROOT / ".oneai" / f"build-{NATIVE_ARCH}" / "build"
DRIVER = Path(__file__).resolve().parent / "driver.py"


def bare_python() -> str:
    """The interpreter the venv was made from (python3.12): no site-packages of the project."""
    base = Path(sys._base_executable)  # type: ignore[attr-defined]  # CPython: the venv's base interpreter
    assert sys.version_info[:2] == (3, 12), "the artifact tests run on the runtime's minor version"
    return str(base)


@dataclass(frozen=True)
class Built:
    function: Function
    code_dir: Path
    layer_dir: Path

    @property
    def name(self) -> str:
        return self.function.logical_id


def built_functions() -> list[Built]:
    return [Built(f, BUILD_DIR / f.logical_id, BUILD_DIR / "CommonLayer" / "python") for f in functions()]


@pytest.fixture(scope="session")
def build_dir() -> Path:
    assert (BUILD_DIR / "CommonLayer" / "python").is_dir(), f"no build at {BUILD_DIR}: run `make build-native`"
    return BUILD_DIR


@pytest.fixture(scope="session")
def moto_endpoint(database_url: str) -> Iterator[str]:
    """moto in server mode with the stage's SecureStrings under /oneai/default/ (the events in events/
    are signed with the dev secrets), the default event bus and the attachments bucket."""
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    ssm = boto3.client(
        "ssm",
        endpoint_url=endpoint,
        region_name=REGION,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )
    for name, value in {
        "DATABASE_URL": database_url,
        "SUPABASE_JWT_SECRET": DEV_JWT_SECRET,
        "RAZORPAY_WEBHOOK_SECRET": DEV_RAZORPAY_WEBHOOK_SECRET,
        "UNSUBSCRIBE_SECRET": DEV_UNSUBSCRIBE_SECRET,  # the account samples' unsubscribe link is signed with it
        "INVITATION_SECRET": DEV_INVITATION_SECRET,  # the workspaces samples' invitation
        "WIDGET_SESSION_SECRET": DEV_WIDGET_SESSION_SECRET,  # the widget's visitor sessions
    }.items():
        ssm.put_parameter(Name=f"{SSM_PATH}{name}", Value=value, Type="SecureString", Overwrite=True)
    # The stack's attachments bucket (account erasure deletes the user's objects there).
    s3 = boto3.client(
        "s3",
        endpoint_url=endpoint,
        region_name=REGION,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )
    s3.create_bucket(Bucket=ATTACHMENTS_BUCKET, CreateBucketConfiguration={"LocationConstraint": REGION})
    yield endpoint
    server.stop()


@pytest.fixture(scope="session")
def runtime_lib(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """What the managed runtime adds to the path that a function may import: the SnapStart hooks library."""
    import snapshot_restore_py

    lib = tmp_path_factory.mktemp("runtime-lib")
    source = Path(snapshot_restore_py.__file__)
    target = lib / ("snapshot_restore_py" if source.name == "__init__.py" else "")
    if source.name == "__init__.py":
        shutil.copytree(source.parent, target)
    else:
        shutil.copy(source, lib)
    return lib


def lambda_environment(built: Built, endpoint: str, runtime_lib: Path) -> dict[str, str]:
    return {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        **lambda_process_environment(built.function, built.code_dir),
        "LAMBDA_RUNTIME_DIR": str(runtime_lib),
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_SESSION_TOKEN": "testing",
        "AWS_ENDPOINT_URL": endpoint,
        "AWS_XRAY_CONTEXT_MISSING": "IGNORE_ERROR",
    }


@dataclass
class Run:
    imported: dict[str, Any]
    answers: list[dict[str, Any]]
    backend_pids: list[int | None]
    restored: int | None
    stderr: str


def invoke_artifact(
    built: Built,
    events: list[dict[str, Any]],
    *,
    endpoint: str,
    runtime_lib: Path,
    tmp_path: Path,
    restore_after: int | None = None,
    environment: dict[str, str] | None = None,
) -> Run:
    job = tmp_path / f"{built.name}-job.json"
    job.write_text(
        json.dumps(
            {
                "path": [str(built.code_dir), str(built.layer_dir), str(runtime_lib)],
                "handler": built.function.handler,
                "function_name": built.name,
                "events": events,
                "restore_after": restore_after,
            }
        )
    )
    done = subprocess.run(
        [bare_python(), "-I", "-S", str(DRIVER), str(job)],
        env={**lambda_environment(built, endpoint, runtime_lib), **(environment or {})},
        cwd=built.code_dir,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, f"{built.name} failed:\n{done.stderr[-4000:]}"
    lines = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    ours = [line for line in lines if {"import_ms", "answer", "restored"} & line.keys()]
    return Run(
        imported=ours[0],
        answers=[line["answer"] for line in ours if "answer" in line],
        backend_pids=[line["backend_pid"] for line in ours if "answer" in line],
        restored=next((line["restored"] for line in ours if "restored" in line), None),
        stderr=done.stderr,
    )
