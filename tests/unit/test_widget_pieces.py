"""The widget's pieces without a server: session tokens, the origin rule, the script's cache rules, its
size budget, and its stream reader (run by node against a recorded reply)."""

from __future__ import annotations

import dataclasses
import gzip
import shutil
import subprocess
import time
import uuid
from pathlib import Path

import pytest
from starlette.requests import Request
from widget.routes import source_address

from oneai.config import Settings
from oneai.errors import UnauthorizedError, UnavailableError
from oneai.widget import origins, tokens
from oneai.widget.models import WidgetSettings
from oneai.widget.script import IMMUTABLE_CACHE, SHORT_CACHE, Script

REPO_ROOT = Path(__file__).resolve().parents[2]
WIDGET_JS = REPO_ROOT / "functions" / "widget" / "widget.js"
BUDGET_GZIPPED = 12 * 1024
SETTINGS = Settings(widget_session_secret="unit-test-widget-secret")
CHATBOT = uuid.uuid4()
SESSION = tokens.VisitorSession(
    chatbot_id=CHATBOT,
    visitor_id="3f9c2a7e-8b1d-4c5e-9f60-1a2b3c4d5e6f",
    origin="https://shop.example",
    visitor_ref=uuid.uuid4(),
    expires_at=int(time.time()) + 3600,
)


def verify(
    token: str, *, chatbot: uuid.UUID = CHATBOT, origin: str = "https://shop.example"
) -> tokens.VisitorSession:
    return tokens.verify(SETTINGS, f"Bearer {token}", chatbot_id=chatbot, origin=origin)


def test_a_session_token_is_accepted_only_as_issued() -> None:
    token = tokens.issue(SETTINGS, SESSION)
    assert verify(token) == SESSION
    prefix, payload, signature = token.split(".")
    forged_payload = tokens._b64(tokens._unb64(payload).replace(b"shop.example", b"evil.example"))
    for bad in (
        f"{prefix}.{forged_payload}.{signature}",  # another origin written in
        f"{prefix}.{payload}.{signature[::-1]}",
        f"wst0.{payload}.{signature}",
        token + "x",
        "",
    ):
        with pytest.raises(UnauthorizedError):
            verify(bad)
    with pytest.raises(UnauthorizedError):
        verify(token, origin="https://evil.example")
    with pytest.raises(UnauthorizedError):
        verify(token, chatbot=uuid.uuid4())
    with pytest.raises(UnauthorizedError):  # signed with another key
        tokens.verify(
            Settings(widget_session_secret="another-key"),
            f"Bearer {token}",
            chatbot_id=CHATBOT,
            origin=SESSION.origin,
        )
    expired = tokens.issue(SETTINGS, dataclasses.replace(SESSION, expires_at=int(time.time()) - 1))
    with pytest.raises(UnauthorizedError):
        verify(expired)
    with pytest.raises(UnauthorizedError):
        tokens.verify(SETTINGS, f"Basic {token}", chatbot_id=CHATBOT, origin=SESSION.origin)


def test_without_a_session_key_the_widget_is_unavailable() -> None:
    with pytest.raises(UnavailableError):
        tokens.issue(Settings(widget_session_secret=None), SESSION)


@pytest.mark.parametrize(
    ("origin", "allowed", "admitted"),
    [
        ("https://shop.example", [], True),
        (None, [], True),
        (None, ["https://shop.example"], False),
        ("https://shop.example", ["https://shop.example"], True),
        ("https://SHOP.example:443", ["https://shop.example/"], True),
        ("http://shop.example", ["https://shop.example"], False),
        ("https://shop.example:8443", ["https://shop.example"], False),
        ("https://shop.example.evil.example", ["https://shop.example"], False),
        ("https://help.acme.example", ["https://*.acme.example"], True),
        ("https://acme.example", ["https://*.acme.example"], False),
        ("https://evilacme.example", ["https://*.acme.example"], False),
        ("null", ["https://shop.example"], False),
        ("https://user@shop.example", ["https://shop.example"], False),
        ("http://127.0.0.1:8123", ["http://127.0.0.1:8123"], True),
    ],
)
def test_allowed_origins(origin: str | None, allowed: list[str], admitted: bool) -> None:
    assert origins.is_allowed(origin, allowed) is admitted


def test_the_script_is_cached_briefly_unversioned_and_for_ever_by_its_hash() -> None:
    script = Script.of(b"console.log(1)")
    assert script.headers(None)["cache-control"] == SHORT_CACHE
    assert script.headers(script.version)["cache-control"] == IMMUTABLE_CACHE
    assert script.headers("0123")["cache-control"] == SHORT_CACHE
    assert script.headers(None)["content-type"] == "text/javascript; charset=utf-8"
    assert script.not_modified(script.etag) and script.not_modified(f'W/{script.etag}, "other"')
    assert not script.not_modified('"other"') and not script.not_modified(None)
    assert Script.of(b"console.log(2)").etag != script.etag


def test_widget_settings_are_checked_on_the_way_out() -> None:
    shown = WidgetSettings.from_stored(
        "cb_x",
        "Bot",
        {
            "color": "#fff",
            "position": "left",
            "avatar_url": "data:image/svg+xml,<svg onload=alert(1)>",
            "suggested_questions": ["  a  ", 3, "", *[f"q{i}" for i in range(10)]],
            "allowed_origins": ["https://shop.example"],
        },
    )
    assert shown.color == "#fff" and shown.position == "bottom-right" and shown.avatar_url is None
    assert shown.suggested_questions == ["a", "q0", "q1", "q2", "q3", "q4"]
    assert shown.title == "Bot" and "allowed_origins" not in shown.model_dump()


def test_widget_js_is_within_its_size_budget() -> None:
    raw = WIDGET_JS.read_bytes()
    gzipped = len(gzip.compress(raw, compresslevel=9))
    assert gzipped <= BUDGET_GZIPPED, f"widget.js is {gzipped} bytes gzipped, over {BUDGET_GZIPPED}"


def test_the_widgets_stream_reader_reads_a_recorded_reply() -> None:
    node = shutil.which("node")
    if node is None:
        pytest.fail("node is not on PATH: the widget's stream reader runs under Node.js")
    result = subprocess.run(
        [node, "--test", "tests/node/widget_stream.test.mjs"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "# fail 0" in result.stdout


def test_the_source_address_is_api_gateways_not_the_adapters_nor_a_header_the_client_writes() -> None:
    def request(headers: dict[str, str], client: tuple[str, int] | None = ("127.0.0.1", 50000)) -> Request:
        raw = [(k.lower().encode(), v.encode()) for k, v in headers.items()]
        return Request({"type": "http", "method": "GET", "path": "/", "headers": raw, "client": client})

    # Under the Lambda Web Adapter the peer is the adapter (127.0.0.1): the address is API Gateway's.
    context = '{"requestId": "r", "identity": {"sourceIp": "203.0.113.9"}}'
    assert source_address(request({"x-amzn-request-context": context})) == "203.0.113.9"
    assert source_address(request({"x-forwarded-for": "198.51.100.1"})) == "127.0.0.1"
    for odd in ("not json", "[1]", '{"identity": "x"}', '{"identity": {"sourceIp": ""}}', "[" * 5000):
        assert source_address(request({"x-amzn-request-context": odd})) == "127.0.0.1"
    assert source_address(request({}, client=None)) is None
