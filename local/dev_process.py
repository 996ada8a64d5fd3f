"""`python -m local` (what `make dev` runs) as a subprocess, for the e2e tests and the benchmarks.

It gets its own process group (so stopping it reaches everything it started), its output is drained
continuously (a full pipe would block it), and it counts as ready once it printed its token and answers.
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
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import httpx

REPO_ROOT = Path(__file__).resolve().parent.parent
STARTUP_TIMEOUT_SECONDS = 60
TOKEN_LINE = re.compile(r"^export ONEAI_TOKEN=(\S+)$")
# The banner's token lines (the dev user's, the admin's), as `log` shows them: a failure's message and the
# log files keep no token (`output` keeps the lines as printed, for whoever reads the tokens from it).
_ANY_TOKEN_LINE = re.compile(r"^(export ONEAI_(?:ADMIN_)?TOKEN=)\S+", re.MULTILINE)
# Variables of the caller's shell that would point the server somewhere other than the caller's setup.
SCRUBBED_ENV = ("ONEAI_SSM_PATH", "ONEAI_SECRET_ID", "OPENROUTER_API_KEY", "SUPABASE_JWT_ISSUER")


@dataclass
class LocalServerProcess:
    base_url: str
    process: subprocess.Popen[str]
    token: str = ""  # the dev user's token the server printed
    output: list[str] = field(default_factory=list)

    @property
    def log(self) -> str:
        """What the server printed, its tokens redacted."""
        return _ANY_TOKEN_LINE.sub(r"\1<redacted>", "".join(self.output))


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _drain(process: subprocess.Popen[str], output: list[str]) -> None:
    assert process.stdout is not None
    for line in process.stdout:
        output.append(line)


def _wait_until_ready(server: LocalServerProcess, timeout: float) -> None:
    deadline = time.monotonic() + timeout
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
        time.sleep(0.1)
    raise TimeoutError(f"the local server did not answer within {timeout:g} s")


def _stop(process: subprocess.Popen[str]) -> None:
    process.terminate()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=10)


@contextlib.contextmanager
def run_local_server(
    env: Mapping[str, str],
    *,
    timeout: float = STARTUP_TIMEOUT_SECONDS,
    log_path: Path | None = None,
    repo_root: Path = REPO_ROOT,
    scrub: Iterable[str] = (),
) -> Iterator[LocalServerProcess]:
    """Start the server of the repository at `repo_root` with `env` over this process's environment (less
    `scrub`; a free PORT unless given); raise RuntimeError/TimeoutError with its output if it does not come
    up; stop it afterwards."""
    port = int(env.get("PORT") or free_port())
    scrubbed = {*SCRUBBED_ENV, *scrub}
    full_env = {key: value for key, value in os.environ.items() if key not in scrubbed}
    full_env.update(
        PORT=str(port), PYTHONPATH=os.pathsep.join(["layers/common", "."]), PYTHONUNBUFFERED="1", **env
    )
    process = subprocess.Popen(
        [sys.executable, "-m", "local"],
        cwd=repo_root,
        env=full_env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    server = LocalServerProcess(base_url=f"http://127.0.0.1:{port}", process=process)
    threading.Thread(target=_drain, args=(process, server.output), daemon=True).start()
    try:
        try:
            _wait_until_ready(server, timeout)
        except (RuntimeError, TimeoutError) as exc:
            raise type(exc)(f"{exc}\n--- server output ---\n{server.log}") from None
        yield server
    finally:
        _stop(process)
        if log_path is not None:
            log_path.parent.mkdir(parents=True, exist_ok=True)
            log_path.write_text(server.log, encoding="utf-8")
