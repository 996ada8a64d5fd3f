"""The local server (`python -m local`, what `make dev` runs) as a subprocess, shared by the e2e tests.

It runs against the run's fresh, migrated database and signs with the suite's JWT secret, so tokens
from `tests.conftest.token_for` work against it; `local_server.token` is the dev user's token it printed.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

import httpx
import pytest

from local.fake_openrouter import FakeOpenRouter
from local.fake_razorpay import FakeRazorpay
from tests.conftest import REPO_ROOT, TEST_JWT_SECRET, TEST_SUPABASE_URL

STARTUP_TIMEOUT_SECONDS = 60
LOG_PATH = REPO_ROOT / ".oneai" / "e2e-local-server.log"  # the server's output, kept for debugging
TOKEN_LINE = re.compile(r"^export ONEAI_TOKEN=(\S+)$")
# Variables of the developer's shell that would point the server somewhere other than the test setup.
_SCRUBBED_ENV = ("ONEAI_SSM_PATH", "ONEAI_SECRET_ID", "OPENROUTER_API_KEY", "SUPABASE_JWT_ISSUER")


@dataclass
class LocalServer:
    base_url: str
    token: str
    process: subprocess.Popen[str]
    output: list[str] = field(default_factory=list)

    @property
    def log(self) -> str:
        return "".join(self.output)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _collect(process: subprocess.Popen[str], output: list[str]) -> None:
    # Drain the pipe continuously so the server never blocks on a full pipe buffer.
    assert process.stdout is not None
    for line in process.stdout:
        output.append(line)


def _kill_group(process: subprocess.Popen[str]) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    process.wait(timeout=10)


def _wait_until_ready(server: LocalServer) -> None:
    deadline = time.monotonic() + STARTUP_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise RuntimeError(f"the local server exited with {server.process.returncode}")
        if not server.token:
            server.token = next((m.group(1) for m in map(TOKEN_LINE.match, server.output) if m), "")
        if server.token:
            try:
                httpx.get(f"{server.base_url}/conversations", timeout=2)  # any HTTP answer means up
                return
            except httpx.TransportError:
                pass
        time.sleep(0.2)
    raise TimeoutError(f"the local server did not answer within {STARTUP_TIMEOUT_SECONDS} s")


# The chat model the e2e tests script, and the (different) model that writes titles, so that the title
# request never takes a scenario meant for the reply.
CHAT_MODEL = "anthropic/claude-3.5-haiku"
TITLE_MODEL = "openai/gpt-4o-mini"
UPSTREAM_TIMEOUT_SECONDS = "1.5"
# The billing function's Razorpay: the session's fake, this key pair, a short timeout (test_billing_http.py).
E2E_RAZORPAY_KEY_ID = "rzp_test_E2EKey0000001"
E2E_RAZORPAY_KEY_SECRET = "e2e-razorpay-key-secret-never-shown"
RAZORPAY_TIMEOUT_SECONDS = "1.0"
E2E_WEBHOOK_SECRET = "e2e-razorpay-webhook-secret-for-the-local-server"
E2E_PLAN_IDS = "pro=plan_E2EProMonthly,enterprise=plan_E2EEnterprise"


@pytest.fixture(scope="session")
def fake_openrouter_server() -> Iterator[FakeOpenRouter]:
    with FakeOpenRouter(delay=0.0) as fake:
        yield fake


@pytest.fixture
def openrouter(fake_openrouter_server: FakeOpenRouter) -> FakeOpenRouter:
    """The fake OpenRouter behind the local server, with no scripts or records left from other tests."""
    fake_openrouter_server.reset()
    return fake_openrouter_server


@pytest.fixture(scope="session")
def fake_razorpay_server() -> Iterator[FakeRazorpay]:
    with FakeRazorpay(key_id=E2E_RAZORPAY_KEY_ID, key_secret=E2E_RAZORPAY_KEY_SECRET) as fake:
        yield fake


@pytest.fixture
def razorpay(fake_razorpay_server: FakeRazorpay) -> FakeRazorpay:
    """The fake Razorpay behind the local server, with no scripts, records or subscriptions left."""
    fake_razorpay_server.reset()
    return fake_razorpay_server


@pytest.fixture(scope="session")
def local_server(
    database_url: str, fake_openrouter_server: FakeOpenRouter, fake_razorpay_server: FakeRazorpay
) -> Iterator[LocalServer]:
    port = _free_port()
    env = {key: value for key, value in os.environ.items() if key not in _SCRUBBED_ENV}
    env.update(
        DATABASE_URL=database_url,
        PORT=str(port),
        PYTHONPATH=os.pathsep.join(["layers/common", "."]),
        SUPABASE_URL=TEST_SUPABASE_URL,
        SUPABASE_JWT_SECRET=TEST_JWT_SECRET,
        PYTHONUNBUFFERED="1",
        OPENROUTER_API_KEY="sk-or-v1-test-key",
        OPENROUTER_BASE_URL=fake_openrouter_server.base_url,
        ONEAI_TITLE_MODEL=TITLE_MODEL,
        OPENROUTER_FIRST_TOKEN_TIMEOUT=UPSTREAM_TIMEOUT_SECONDS,
        OPENROUTER_IDLE_TIMEOUT=UPSTREAM_TIMEOUT_SECONDS,
    )
    # Razorpay webhooks (test_webhooks_http.py): the secret they are signed with, the plans they name.
    env.update(RAZORPAY_WEBHOOK_SECRET=E2E_WEBHOOK_SECRET, RAZORPAY_PLAN_IDS=E2E_PLAN_IDS)
    # Razorpay API calls of the billing function go to the session's fake.
    env.update(
        RAZORPAY_KEY_ID=E2E_RAZORPAY_KEY_ID,
        RAZORPAY_KEY_SECRET=E2E_RAZORPAY_KEY_SECRET,
        RAZORPAY_API_BASE_URL=fake_razorpay_server.base_url,
        RAZORPAY_TIMEOUT_SECONDS=RAZORPAY_TIMEOUT_SECONDS,
    )
    process = subprocess.Popen(
        [sys.executable, "-m", "local"],
        cwd=REPO_ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,  # its own process group, so a kill reaches everything it started
    )
    server = LocalServer(base_url=f"http://127.0.0.1:{port}", token="", process=process)
    threading.Thread(target=_collect, args=(process, server.output), daemon=True).start()
    try:
        _wait_until_ready(server)
    except (RuntimeError, TimeoutError) as exc:
        _kill_group(process)
        pytest.fail(f"{exc}\n--- server output ---\n{server.log}")
    try:
        yield server
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            _kill_group(process)
        LOG_PATH.parent.mkdir(parents=True, exist_ok=True)
        LOG_PATH.write_text(server.log, encoding="utf-8")
