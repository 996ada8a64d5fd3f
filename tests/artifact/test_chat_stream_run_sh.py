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

import boto3
import httpx
import openai
import psycopg
import pytest

from lambda_build.layout import REGION, SSM_PATH
from local.fake_openrouter import FakeOpenRouter, Reply
from oneai import api_keys
from oneai.db.connection import Database
from tests.artifact.conftest import Built, bare_python, built_functions, lambda_environment
from tests.conftest import create_user
from tests.integration.test_account_events import dev_user_with_usage
from tests.sse_support import events_of

__all__ = ["dev_user_with_usage"]

EVENTS = Path(__file__).resolve().parents[2] / "events" / "chat_stream"
STREAMING = next(b for b in built_functions() if b.name == "ChatStreamFunction")


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


def _app_backends(database_url: str) -> set[int]:
    with psycopg.connect(database_url) as conn:
        rows = conn.execute("select pid from pg_stat_activity where application_name = 'oneai'").fetchall()
    return {pid for (pid,) in rows}


def test_after_a_snapstart_restore_the_app_reads_the_secrets_again_and_opens_its_own_connection(
    dev_user_with_usage: None, database_url: str, moto_endpoint: str, started: tuple[str, Built, FakeOpenRouter]
) -> None:
    base, built, fake = started
    event = json.loads((EVENTS / "stream-chat.json").read_text())
    headers = {"authorization": event["headers"]["Authorization"], "content-type": "application/json"}
    body = json.dumps({"conversation_id": None, "model": "openai/gpt-4o-mini", "action": "send", "content": "Hi"})
    ssm = boto3.client(
        "ssm", endpoint_url=moto_endpoint, region_name=REGION, aws_access_key_id="t", aws_secret_access_key="t"
    )
    key_name = f"{SSM_PATH}OPENROUTER_API_KEY"

    def reply() -> str | None:
        fake.script(Reply(chunks=["Hel", "lo!"]))
        answer = httpx.post(f"{base}/chat/stream", content=body, headers=headers, timeout=30)
        assert answer.status_code == 200, answer.text
        return fake.chat_requests[-1].headers.get("authorization")

    others = _app_backends(database_url)
    first = reply()  # the snapshot's app has served a request: a connection and the settings are cached
    app_backends = _app_backends(database_url) - others
    assert app_backends  # the app's own connection to the database
    try:
        ssm.put_parameter(Name=key_name, Value="sk-or-rotated", Type="SecureString", Overwrite=True)
        assert reply() == first  # warm: the settings are kept (for their max age), so is the connection
        # WHEN the restored environment's adapter POSTs its after-restore path (empty), as configured
        hook = built.function.environment["AWS_LWA_SNAPSTART_AFTER_RESTORE_PATH"]
        assert httpx.post(f"{base}{hook}", timeout=10).status_code == 204  # 2xx, else the restore fails
        # THEN the connection from before the snapshot is closed, and the next reply uses the secret as it
        # is now and a connection of its own
        deadline = time.monotonic() + 10
        while _app_backends(database_url) & app_backends:
            assert time.monotonic() < deadline, "the connection from before the snapshot is still open"
            time.sleep(0.1)
        assert reply() == "Bearer sk-or-rotated"
        assert _app_backends(database_url) - others - app_backends
    finally:
        ssm.delete_parameter(Name=key_name)
