"""The streaming function from its artifact, started through its `run.sh` as the Lambda Web Adapter
starts it (the template's environment, PORT, the layer on PYTHONPATH): the readiness path answers, then
one chat reply streams from the fake OpenRouter over a real socket; the OpenAI-compatible `/v1` answers
the official `openai` SDK with an API key."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import openai
import psycopg
import pytest

from local.fake_openrouter import FakeOpenRouter, Reply
from oneai import api_keys
from oneai.db.connection import Database
from tests.artifact.conftest import Built, bare_python, built_functions, lambda_environment
from tests.conftest import create_user
from tests.integration.test_account_events import dev_user_with_usage
from tests.sse_support import events_of

__all__ = ["dev_user_with_usage"]

EVENTS = Path(__file__).resolve().parents[2] / "events" / "chat_stream"
STREAMING = next(b for b in built_functions() if b.function.handler.endswith(".sh"))


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture
def started(
    build_dir: Path, moto_endpoint: str, runtime_lib: Path, tmp_path: Path
) -> Iterator[tuple[str, Built, FakeOpenRouter]]:
    """run.sh under `sh`, with `python3` the bare runtime interpreter, as in the python3.12 runtime."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "python3").symlink_to(bare_python())
    port = free_port()
    env = lambda_environment(STREAMING, moto_endpoint, runtime_lib)
    readiness = env["AWS_LWA_READINESS_CHECK_PATH"]
    with FakeOpenRouter(delay=0.0) as fake:
        env.update(
            {
                "PATH": f"{bin_dir}{os.pathsep}{env['PATH']}",
                "PORT": str(port),
                "PYTHONPATH": str(STREAMING.layer_dir),  # /opt/python in Lambda; run.sh adds it first there
                "OPENROUTER_BASE_URL": fake.base_url,
                "PYTHONNOUSERSITE": "1",
            }
        )
        process = subprocess.Popen(
            ["sh", str(STREAMING.code_dir / "run.sh")],
            cwd=STREAMING.code_dir,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        base = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + 60
            while True:  # the adapter polls the readiness path until it answers
                assert process.poll() is None, process.stdout.read().decode() if process.stdout else ""
                try:
                    if httpx.get(f"{base}{readiness}", timeout=2).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                assert time.monotonic() < deadline, "run.sh never became ready"
                time.sleep(0.2)
            yield base, STREAMING, fake
        finally:
            process.terminate()
            process.wait(timeout=20)


def test_run_sh_serves_the_readiness_path_and_streams_a_reply(
    dev_user_with_usage: None, started: tuple[str, Built, FakeOpenRouter]
) -> None:
    base, _, _ = started
    event = json.loads((EVENTS / "stream-chat.json").read_text())
    headers = {"authorization": event["headers"]["Authorization"], "content-type": "application/json"}
    with httpx.stream("POST", f"{base}/chat/stream", content=event["body"], headers=headers, timeout=30) as reply:
        assert reply.status_code == 200, reply.read()
        assert reply.headers["x-vercel-ai-ui-message-stream"] == "v1"
        chunks = list(reply.iter_bytes())
    *events, done = events_of(b"".join(chunks))
    assert done == "[DONE]"
    text = "".join(e["delta"] for e in events if e["type"] == "text-delta")
    assert text  # the fake's reply, streamed through the artifact's app
    assert events[-1]["type"] == "finish"
    assert len(chunks) > 1  # streamed in pieces, not buffered


def test_run_sh_serves_the_openai_compatible_api_to_the_sdk_with_an_api_key(
    db: Database, database_url: str, started: tuple[str, Built, FakeOpenRouter]
) -> None:
    base, _, fake = started
    # GIVEN a user's API key, made as POST /user/api-keys makes it (under the user's RLS)
    user = create_user(database_url)
    with db.user_transaction(user.principal) as conn:
        created = api_keys.create_key(conn, api_keys.ApiKeyCreate(name="artifact"))
    fake.script(Reply(chunks=["Hel", "lo!"], usage={"prompt_tokens": 9, "completion_tokens": 2, "cost": 0.0001}))
    # WHEN the official SDK completes through the artifact's /v1
    sdk = openai.OpenAI(api_key=created.key, base_url=f"{base}/v1", max_retries=0, timeout=30)
    completion = sdk.chat.completions.create(
        model="openai/gpt-4o-mini", messages=[{"role": "user", "content": "Say hello"}]
    )
    # THEN the fake's reply comes back, and the usage is recorded under the key
    assert completion.choices[0].message.content == "Hello!"
    assert completion.usage is not None and completion.usage.prompt_tokens == 9
    with psycopg.connect(database_url) as conn:
        rows = conn.execute(
            "select api_key_id, prompt_tokens from public.usage_records where user_id = %s", (user.id,)
        ).fetchall()
    assert rows == [(created.id, 9)]
    # and a key that is not one is refused
    with pytest.raises(openai.AuthenticationError):
        openai.OpenAI(api_key="oneai_sk_" + "x" * 54, base_url=f"{base}/v1", max_retries=0).models.list()
