"""The widget function from its artifact, started through its `run.sh` as the Lambda Web Adapter starts
it (the template's environment, PORT, the layer on PYTHONPATH, secrets from SSM): the readiness path
answers, `GET /widget.js` serves the script the artifact ships, a chatbot's settings and a visitor session
answer (the session key read from SSM), the public chat reaches its prepare (a workspace without credits: 402),
and the adapter's SnapStart after-restore POST answers 204."""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.artifact.conftest import Built, bare_python, built_functions, lambda_environment
from tests.artifact.test_chat_stream_run_sh import free_port
from tests.widget_support import create_chatbot, new_visitor_id

WIDGET = next(b for b in built_functions() if b.name == "WidgetFunction")
SOURCE_SCRIPT = Path(__file__).resolve().parents[2] / "functions" / "widget" / "widget.js"


@pytest.fixture
def started(build_dir: Path, moto_endpoint: str, runtime_lib: Path, tmp_path: Path) -> Iterator[tuple[str, Built]]:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "python3").symlink_to(bare_python())
    port = free_port()
    env = lambda_environment(WIDGET, moto_endpoint, runtime_lib)
    env.update(
        {
            "PATH": f"{bin_dir}{os.pathsep}{env['PATH']}",
            "PORT": str(port),
            "PYTHONPATH": str(WIDGET.layer_dir),
            "PYTHONNOUSERSITE": "1",
        }
    )
    process = subprocess.Popen(
        ["sh", str(WIDGET.code_dir / "run.sh")],
        cwd=WIDGET.code_dir,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            assert process.poll() is None, process.stdout.read().decode() if process.stdout else ""
            try:
                if httpx.get(f"{base}{env['AWS_LWA_READINESS_CHECK_PATH']}", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "run.sh never became ready"
            time.sleep(0.2)
        yield base, WIDGET
    finally:
        process.terminate()
        process.wait(timeout=20)


def test_run_sh_serves_the_script_the_settings_a_session_the_chat_and_the_restore_hook(
    database_url: str, started: tuple[str, Built]
) -> None:
    base, built = started
    script = httpx.get(f"{base}/widget.js")
    assert script.status_code == 200 and script.content == SOURCE_SCRIPT.read_bytes()
    assert (built.code_dir / "widget.js").is_file()

    chatbot = create_chatbot(database_url, widget={"title": "Built", "allowed_origins": ["https://shop.example"]})
    origin = {"origin": "https://shop.example"}
    settings = httpx.get(f"{base}/public/chatbots/{chatbot.public_id}", headers=origin)
    assert settings.status_code == 200 and settings.json()["title"] == "Built"
    assert settings.headers["access-control-allow-origin"] == "https://shop.example"
    session = httpx.post(
        f"{base}/public/chatbots/{chatbot.public_id}/sessions",
        json={"visitor_id": new_visitor_id(), "page_url": "https://shop.example/"},
        headers=origin,
    )
    assert session.status_code == 200, session.text
    assert session.json()["session_token"].startswith("wst1.")
    # The public chat's whole turn path is in the artifact: a workspace without credits is refused at the
    # prepare (402, nothing asked of a model), with the page's CORS header.
    chat = httpx.post(
        f"{base}/public/chatbots/{chatbot.public_id}/chat",
        json={"content": "Hello"},
        headers={**origin, "authorization": f"Bearer {session.json()['session_token']}"},
        timeout=30,
    )
    assert chat.status_code == 402 and chat.json()["error"]["code"] == "INSUFFICIENT_CREDITS", chat.text
    assert chat.headers["access-control-allow-origin"] == "https://shop.example"

    hook = built.function.environment["AWS_LWA_SNAPSTART_AFTER_RESTORE_PATH"]
    assert httpx.post(f"{base}{hook}", timeout=10).status_code == 204
    assert httpx.get(f"{base}/public/chatbots/{chatbot.public_id}", headers=origin).status_code == 200
