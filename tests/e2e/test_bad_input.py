"""Input the database cannot store, or that is not what it claims to be, answers a 4xx in the error
envelope over HTTP through the local server (issue 9, "Bad input that answers 500"): never a 500, never a
reset connection, never a redirect to a host the request named."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from local.fake_openrouter import FakeOpenRouter, Reply
from tests.conftest import AppUser, create_user
from tests.e2e.conftest import CHAT_MODEL, LocalServer, use_up_small_messages

pytestmark = pytest.mark.e2e
NUL = "\u0000"


@pytest.fixture
def client(local_server: LocalServer) -> Any:
    with httpx.Client(base_url=local_server.base_url, timeout=30) as http:
        yield http


@pytest.fixture
def user(database_url: str) -> AppUser:
    return create_user(database_url)


def envelope(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error"} and body["error"]["code"] == code, body
    return dict(body["error"])


def field_of(response: httpx.Response) -> str:
    return str(envelope(response, 422, "VALIDATION_ERROR")["details"]["errors"][0]["field"])


def raw_json(client: httpx.Client, method: str, path: str, user: AppUser, raw: str) -> httpx.Response:
    """A body sent byte for byte (httpx would refuse NaN, and escape nothing the test means to send)."""
    headers = user.headers | {"content-type": "application/json"}
    return client.request(method, path, content=raw.encode(), headers=headers)


def test_a_nul_in_any_stored_text_is_422_naming_the_field(
    client: httpx.Client, user: AppUser, openrouter: FakeOpenRouter
) -> None:
    conversation = client.post("/conversations", json={"title": "fine"}, headers=user.headers).json()
    path = f"/conversations/{conversation['id']}"
    cases = [
        ("POST", "/conversations", {"title": f"a{NUL}b"}, "title"),
        ("POST", "/conversations", {"metadata": {"note": f"x{NUL}"}}, "metadata.note"),
        ("POST", "/conversations", {"metadata": {f"k{NUL}": 1}}, "metadata"),
        ("PATCH", path, {"title": f"{NUL}"}, "title"),
        ("PATCH", path, {"metadata": {"deep": [{"x": f"{NUL}"}]}}, "metadata.deep.0.x"),
        ("POST", "/chat/stream", {"model": CHAT_MODEL, "content": f"hi{NUL}"}, "content"),
        (
            "POST",
            "/chat/stream",
            {"messages": [{"id": "m", "role": "user", "parts": [{"type": "text", "text": f"hi{NUL}"}]}]},
            "messages.0.parts.0.text",
        ),
        ("PATCH", "/user/profile", {"name": f"Ada{NUL}"}, "name"),
    ]
    for method, route, body, field in cases:
        response = client.request(method, route, json=body, headers=user.headers)
        assert field_of(response) == field, (method, route, body)
    # AND nothing was written, nor sent to the model
    assert client.get(path, headers=user.headers).json()["title"] == "fine"
    assert [c["title"] for c in client.get("/conversations", headers=user.headers).json()["items"]] == ["fine"]
    assert client.get("/user/profile", headers=user.headers).json()["name"] is None
    assert openrouter.chat_requests == []


def test_a_body_nested_too_deep_or_not_utf8_is_400_on_every_body_route(
    client: httpx.Client, user: AppUser, openrouter: FakeOpenRouter
) -> None:
    bodies = [
        b"[" * 5000 + b"]" * 5000,
        b'{"a":' * 5000 + b"1" + b"}" * 5000,
        # Parsed by Python's JSON parser, then too deep for the recursive walks after it.
        b'{"content": ' + b"[" * 1400 + b'"\\u0000"' + b"]" * 1400 + b"}",
        b'{"model": "' + CHAT_MODEL.encode() + b'", "content": "\xff"}',
    ]
    for route in ("/chat/stream", "/conversations"):
        for body in bodies:
            response = client.post(
                route, content=body, headers=user.headers | {"content-type": "application/json"}
            )
            envelope(response, 400, "BAD_REQUEST")
    # AND nothing was written, nor sent to the model
    assert client.get("/conversations", headers=user.headers).json()["items"] == []
    assert openrouter.chat_requests == []


def test_a_nul_in_a_searched_query_parameter_is_422(client: httpx.Client, user: AppUser) -> None:
    for route, param in [
        ("/conversations", "q"),
        ("/conversations", "model"),
        ("/chat/history", "q"),
        ("/chat/history", "model"),
    ]:
        response = client.get(route, params={param: f"x{NUL}y"}, headers=user.headers)
        assert field_of(response) == param, (route, param)
    # AND the same searches without the NUL work
    assert (
        client.get("/chat/history", params={"q": "xy", "model": CHAT_MODEL}, headers=user.headers).status_code
        == 200
    )


def test_a_nul_in_a_public_share_token_is_404(client: httpx.Client) -> None:
    for token in ("%00", "abc%00def"):
        envelope(client.get(f"/shared/{token}"), 404, "NOT_FOUND")


def test_a_nul_in_the_profile_name_gets_an_answer_under_make_dev(local_server: LocalServer, user: AppUser) -> None:
    # A fresh connection for this one request: the server must answer it, not reset it.
    with httpx.Client(base_url=local_server.base_url, timeout=10) as fresh:
        response = fresh.patch("/user/profile", json={"name": f"{NUL}"}, headers=user.headers)
    assert field_of(response) == "name"


def test_lone_surrogates_and_non_numbers_in_metadata_are_422(client: httpx.Client, user: AppUser) -> None:
    bodies = [
        ('{"metadata": {"a": "\\udc00"}}', "metadata.a"),
        ('{"metadata": {"a": "ok \\ud83d"}}', "metadata.a"),
        ('{"title": "t\\udfff"}', "title"),
        ('{"metadata": {"a": NaN}}', ""),
        ('{"metadata": {"a": Infinity}}', ""),
        ('{"metadata": {"a": [-Infinity]}}', ""),
    ]
    for raw, field in bodies:
        response = raw_json(client, "POST", "/conversations", user, raw)
        assert field_of(response) == field, raw
    created = client.post("/conversations", json={"title": "t"}, headers=user.headers).json()
    patched = raw_json(client, "PATCH", f"/conversations/{created['id']}", user, '{"metadata": {"n": NaN}}')
    envelope(patched, 422, "VALIDATION_ERROR")
    # AND a real surrogate pair (an emoji written as two escapes) is text like any other
    emoji = raw_json(client, "POST", "/conversations", user, '{"title": "\\ud83d\\ude00"}')
    assert emoji.status_code == 201 and emoji.json()["title"] == "😀"


def test_only_iso_8601_dates_and_times_are_read_as_times(client: httpx.Client, user: AppUser) -> None:
    for route, param, value in [
        ("/user/usage", "to", "0.5"),
        ("/user/usage", "from", "1700000000"),
        ("/chat/history", "from", "-100000001"),
        ("/chat/history", "to", "12"),
        ("/chat/history", "to", "yesterday"),
    ]:
        response = client.get(route, params={param: value}, headers=user.headers)
        assert field_of(response) == param, (route, param, value)
    # AND dates and date-times are read, in UTC
    usage = client.get(
        "/user/usage", params={"from": "2026-01-01", "to": "2026-02-01T00:00:00Z"}, headers=user.headers
    )
    assert usage.status_code == 200 and (usage.json()["from"], usage.json()["to"]) == (
        "2026-01-01T00:00:00Z",
        "2026-02-01T00:00:00Z",
    )
    history = client.get("/chat/history", params={"from": "2026-01-01T05:30:00+05:30"}, headers=user.headers)
    assert history.status_code == 200


def test_a_trailing_slash_is_404_and_never_a_redirect_to_the_requested_host(
    client: httpx.Client, user: AppUser
) -> None:
    for path in ("/conversations/", "/user/profile/", "/subscription/plans/", "/chat/models/"):
        response = client.get(path, headers=user.headers | {"host": "evil.example"}, follow_redirects=False)
        assert "location" not in response.headers, path
        envelope(response, 404, "NOT_FOUND")


def test_every_route_that_answers_quota_exceeded_says_when_to_retry(
    client: httpx.Client, user: AppUser, database_url: str, openrouter: FakeOpenRouter
) -> None:
    resets_at = use_up_small_messages(database_url, user.id)
    openrouter.script(Reply(chunks=["never"]), model=CHAT_MODEL)
    responses = [
        client.post("/chat/stream", json={"model": CHAT_MODEL, "content": "hi"}, headers=user.headers),
        client.post(
            "/chat/stream",
            json={"messages": [{"id": "m", "role": "user", "parts": [{"type": "text", "text": "hi"}]}]},
            headers=user.headers,
        ),
        client.post("/user/quota/check", json={"quota_key": "small_messages"}, headers=user.headers),
    ]
    for response in responses:
        error = envelope(response, 429, "QUOTA_EXCEEDED")
        seconds = int(response.headers["retry-after"])
        assert seconds >= 1
        assert error["details"]["resets_at"].endswith("Z")
        expected = (resets_at - datetime.now(UTC)).total_seconds()
        assert abs(seconds - expected) <= 5, (seconds, expected)
    assert openrouter.chat_requests == []  # refused before the model was asked
