"""What a new user found (issue 22, items 7 to 10), over HTTP through the local server: a path id is read in
its one canonical form only; every date range follows one rule; every time is written with `Z`, the shared
snapshot's `shared_at` included; every item of a 422 carries a `type`."""

from __future__ import annotations

import re
import uuid
from typing import Any

import httpx
import pytest

from local.fake_openrouter import FakeOpenRouter, Reply
from tests.conftest import AppUser, create_user
from tests.e2e.conftest import CHAT_MODEL, admin_headers

pytestmark = pytest.mark.e2e
Z_TIME = r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?Z$"


@pytest.fixture
def user(database_url: str) -> AppUser:
    return create_user(database_url)


def aliases(canonical: str) -> list[str]:
    """Other spellings of one UUID that Python's `UUID()` reads as the same id."""
    value = uuid.UUID(canonical)
    return [canonical.upper(), value.hex, "{" + canonical + "}", value.urn, value.hex.upper()]


def is_not_found(response: httpx.Response) -> bool:
    return response.status_code == 404 and response.json()["error"]["code"] == "NOT_FOUND"


def test_a_path_id_in_any_form_but_the_canonical_one_names_nothing(
    client: httpx.Client, user: AppUser, database_url: str, openrouter: FakeOpenRouter
) -> None:
    # GIVEN a conversation with a message, an API key, and an admin looking at the user
    openrouter.script(Reply(chunks=["a reply"]), model=CHAT_MODEL)
    streamed = client.post("/chat/stream", json={"model": CHAT_MODEL, "content": "hello"}, headers=user.headers)
    assert streamed.status_code == 200
    conversation = client.get("/conversations", headers=user.headers).json()["items"][0]["id"]
    message = client.get(f"/conversations/{conversation}", headers=user.headers).json()["messages"][0]["id"]
    key = client.post("/user/api-keys", json={"name": "ci"}, headers=user.headers).json()["id"]
    admin = admin_headers(create_user(database_url))
    reads: list[tuple[str, str, dict[str, str]]] = [
        ("GET", "/conversations/{c}", user.headers),
        ("GET", "/conversations/{c}/messages", user.headers),
        ("GET", "/conversations/{c}/export", user.headers),
        ("GET", "/conversations/{c}/messages/{m}/revisions", user.headers),
        ("GET", "/chat/stream/{c}/stream", user.headers),
        ("GET", "/admin/users/{u}", admin),
    ]
    writes: list[tuple[str, str, dict[str, str]]] = [
        ("DELETE", "/user/api-keys/{k}", user.headers),
        ("DELETE", "/conversations/{c}", user.headers),
    ]
    ids = {"c": conversation, "m": message, "u": str(user.id), "k": key}
    # WHEN each is asked for by another spelling of its ids
    answered = {}
    for method, template, headers in reads + writes:
        for field in re.findall(r"\{(\w)\}", template):
            for alias in aliases(ids[field]):
                path = template.format(**(ids | {field: alias}))
                answered[(method, path)] = client.request(method, path, headers=headers)
    # THEN every one is 404, as an id that names nothing is
    assert [path for path, response in answered.items() if not is_not_found(response)] == []
    # AND the canonical spelling still reaches each, and nothing was deleted by an alias
    for method, template, headers in reads:
        assert client.request(method, template.format(**ids), headers=headers).status_code in (200, 204), template
    keys = client.get("/user/api-keys", headers=user.headers).json()["items"]
    assert [(k["id"], k["revoked_at"]) for k in keys] == [(key, None)]


def test_a_path_id_that_is_bad_is_404_even_when_the_body_is_bad_too(client: httpx.Client, user: AppUser) -> None:
    response = client.patch("/conversations/not-an-id", json={"title": 5}, headers=user.headers)
    assert is_not_found(response), response.text


def test_an_id_in_a_query_is_read_in_the_canonical_form_only(client: httpx.Client, database_url: str) -> None:
    admin_user = create_user(database_url)
    admin = admin_headers(admin_user)
    canonical = client.get("/admin/audit-log", params={"actor_id": str(admin_user.id)}, headers=admin)
    assert canonical.status_code == 200, canonical.text
    for alias in aliases(str(admin_user.id)):
        response = client.get("/admin/audit-log", params={"actor_id": alias}, headers=admin)
        assert response.status_code == 422, (alias, response.text)
        assert response.json()["error"]["details"]["errors"][0]["field"] == "actor_id"


def range_error(response: httpx.Response) -> dict[str, Any]:
    assert response.status_code == 422, response.text
    errors = response.json()["error"]["details"]["errors"]
    assert len(errors) == 1, errors
    return dict(errors[0])


def test_every_reversed_date_range_is_the_same_422(client: httpx.Client, user: AppUser, database_url: str) -> None:
    # GIVEN the routes that read a range `from`..`to`
    admin = admin_headers(create_user(database_url))
    reversed_range = {"from": "2026-11-30", "to": "2026-11-01"}
    # WHEN each is asked for a range that ends before it starts
    history = client.get("/chat/history", params=reversed_range, headers=user.headers)
    usage = client.get("/user/usage", params=reversed_range, headers=user.headers)
    analytics = client.get("/admin/analytics", params=reversed_range, headers=admin)
    # THEN each is a 422 on `to`, of one type
    for response in (history, usage, analytics):
        error = range_error(response)
        assert (error["field"], error["type"]) == ("to", "date_range"), error
    # AND a range [from, to) that holds no time is refused alike, where `to` is excluded
    empty = {"from": "2026-11-01T00:00:00Z", "to": "2026-11-01T00:00:00Z"}
    for route in ("/chat/history", "/user/usage"):
        error = range_error(client.get(route, params=empty, headers=user.headers))
        assert (error["field"], error["type"], error["message"]) == ("to", "date_range", "must be later than from")
    # AND an analytics day is an ISO 8601 date, never a number read as a Unix time (`to=0` is not 1970)
    for value in ("0", "1700000000", "2026-11-01T00:00:00Z"):
        error = range_error(client.get("/admin/analytics", params={"to": value}, headers=admin))
        assert error["field"] == "to", (value, error)
    # AND a one-day analytics range (its `to` day is included) is fine
    one_day = client.get("/admin/analytics", params={"from": "2026-11-01", "to": "2026-11-01"}, headers=admin)
    assert one_day.status_code == 200, one_day.text


def test_the_shared_snapshot_writes_shared_at_with_z(
    client: httpx.Client, user: AppUser, openrouter: FakeOpenRouter
) -> None:
    openrouter.script(Reply(chunks=["a reply"]), model=CHAT_MODEL)
    client.post("/chat/stream", json={"model": CHAT_MODEL, "content": "share me"}, headers=user.headers)
    conversation = client.get("/conversations", headers=user.headers).json()["items"][0]["id"]
    token = client.post(f"/conversations/{conversation}/share", headers=user.headers).json()["token"]
    shared = client.get(f"/shared/{token}").json()
    assert set(shared) == {"title", "created_at", "shared_at", "messages"}
    assert re.match(Z_TIME, shared["shared_at"]), shared["shared_at"]


def test_every_422_item_carries_a_type(client: httpx.Client, user: AppUser) -> None:
    # GIVEN refusals written by hand (not by pydantic) on several routes
    refused = [
        client.patch(
            "/user/profile",
            json={"preferences": {"default_model": "anthropic/claude-opus-4"}},
            headers=user.headers,
        ),
        client.patch(
            "/user/profile", json={"preferences": {"default_model": "no/such-model"}}, headers=user.headers
        ),
        client.get("/conversations", params={"cursor": "bm90IG91cnM"}, headers=user.headers),
        client.get("/chat/history", params={"cursor": "bm90IG91cnM"}, headers=user.headers),
    ]
    # THEN every item of every 422 has its field, message and a type
    for response in refused:
        assert response.status_code == 422, response.text
        for item in response.json()["error"]["details"]["errors"]:
            assert set(item) == {"field", "message", "type"} and item["type"], item
    assert refused[0].json()["error"]["details"]["errors"][0]["type"] == "model_not_in_plan"
