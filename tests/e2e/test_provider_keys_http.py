"""A workspace's own provider keys over HTTP through the local server (issue 26 items 1-3): an admin adds
keys (answered masked), lists, renames, limits, replaces and deletes them; a viewer is refused even the
masked list (403), a stranger and another workspace's admin get 404; a key's test calls the provider's
`GET /models` with the key (the fake OpenRouter plays OpenAI; a tiny server in this file plays a custom
endpoint), a refused key turns `invalid` with an error naming it, a network failure is a plain reason, and
a redirect from the endpoint is not followed. Then the key is searched for everywhere a user or an operator
could see it: every response, the server's log, the user's data export, the audit log, and every row of
the database."""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import psycopg
import pytest

from local.dev_process import free_port
from local.fake_openrouter import FakeOpenRouter, Status
from tests.conftest import AppUser, create_user
from tests.e2e.conftest import LocalServer

pytestmark = pytest.mark.e2e

OPENAI_KEY = "sk-proj-E2eSecretKeyNeverShown9f3a7Q2w"
CUSTOM_KEY = "custom-e2e-secret-8c1d5e7f9a0b"
NEW_KEY = "sk-proj-E2eReplacementKeyZ4x8"


class CustomEndpoint:
    """A custom provider's OpenAI-compatible API on 127.0.0.1: `GET /v1/models` lists two models for the
    right bearer key and is 401 otherwise; `GET /moved/v1/models` redirects to the metadata address."""

    def __init__(self, key: str) -> None:
        self.key = key
        self.seen: list[tuple[str, str | None]] = []
        endpoint = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                endpoint.seen.append((self.path, self.headers.get("authorization")))
                if self.path.startswith("/moved/"):
                    self.send_response(302)
                    self.send_header("location", "http://169.254.169.254/latest/meta-data/")
                    self.send_header("content-length", "0")
                    self.end_headers()
                    return
                good = self.headers.get("authorization") == f"Bearer {endpoint.key}"
                body = json.dumps(
                    {
                        "object": "list",
                        "data": [{"id": "llama3", "object": "model"}, {"id": "qwen2", "object": "model"}],
                    }
                    if good
                    else {"error": {"message": "invalid api key"}}
                ).encode()
                self.send_response(200 if good else 401)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.base_url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> CustomEndpoint:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def custom_endpoint() -> Iterator[CustomEndpoint]:
    with CustomEndpoint(CUSTOM_KEY) as endpoint:
        yield endpoint


@pytest.fixture
def client(local_server: LocalServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=local_server.base_url, timeout=30) as http:
        yield http


def team(client: httpx.Client, database_url: str, owner: AppUser, members: dict[AppUser, str]) -> str:
    with psycopg.connect(database_url, autocommit=True) as conn:  # pro: room for a second workspace
        conn.execute("update public.users set subscription_tier = 'pro' where id = %s", (owner.id,))
    created = client.post("/workspaces", json={"name": f"Keys {uuid.uuid4().hex[:6]}"}, headers=owner.headers)
    assert created.status_code == 201, created.text
    workspace_id = str(created.json()["id"])
    with psycopg.connect(database_url, autocommit=True) as conn:
        for user, role in members.items():
            conn.execute(
                "insert into public.workspace_members (workspace_id, user_id, role) values (%s, %s, %s)",
                (workspace_id, user.id, role),
            )
    return workspace_id


class Seen:
    """Every response body the test received, to search for the keys at the end."""

    def __init__(self, client: httpx.Client) -> None:
        self.client = client
        self.bodies: list[str] = []

    def __call__(self, method: str, url: str, user: AppUser, **kwargs: Any) -> httpx.Response:
        response = self.client.request(method, url, headers=user.headers, **kwargs)
        self.bodies.append(f"{response.status_code} {dict(response.headers)} {response.text}")
        return response


def test_provider_keys_end_to_end_and_the_key_appears_nowhere(
    client: httpx.Client,
    local_server: LocalServer,
    openrouter: FakeOpenRouter,
    custom_endpoint: CustomEndpoint,
    database_url: str,
) -> None:
    owner, admin, viewer, stranger, other = (create_user(database_url) for _ in range(5))
    workspace = team(client, database_url, owner, {admin: "admin", viewer: "viewer"})
    other_workspace = team(client, database_url, other, {})
    call = Seen(client)
    keys = f"/workspaces/{workspace}/provider-keys"

    # add: 201, masked; the key is never answered
    made = call("POST", keys, admin, json={"provider": "openai", "name": "Main", "key": OPENAI_KEY})
    assert made.status_code == 201, made.text
    key = made.json()
    assert key["key"] == f"…{OPENAI_KEY[-4:]}"
    assert {
        k: key[k] for k in ("provider", "name", "base_url", "monthly_limit", "spent_this_month", "status")
    } == {
        "provider": "openai",
        "name": "Main",
        "base_url": None,
        "monthly_limit": None,
        "spent_this_month": "0.00",
        "status": "active",
    }
    key_url = f"/provider-keys/{key['id']}"

    # who may see it
    assert call("GET", keys, viewer).status_code == 403
    assert call("GET", keys, stranger).status_code == 404
    assert (
        call("POST", keys, viewer, json={"provider": "openai", "name": "v", "key": OPENAI_KEY}).status_code == 403
    )
    for user in (viewer, stranger, other):
        assert call("GET", key_url, user).status_code == 404
        assert call("PATCH", key_url, user, json={"name": "x"}).status_code == 404
        assert call("DELETE", key_url, user).status_code == 404
        assert call("POST", f"{key_url}/test", user).status_code == 404
    assert call("GET", f"/workspaces/{other_workspace}/provider-keys", admin).status_code == 404
    listed = call("GET", keys, owner)
    assert listed.status_code == 200 and [k["id"] for k in listed.json()] == [key["id"]]

    # bad input: 422 naming the field, never echoing the key
    for body, field in (
        ({"provider": "openai", "name": "short", "key": "sk-1"}, "key"),
        ({"provider": "openai", "name": "space", "key": f"{OPENAI_KEY} x"}, "key"),
        ({"provider": "openai", "name": "nul", "key": f"{OPENAI_KEY}\u0000"}, "key"),
        ({"provider": "openai", "name": "", "key": OPENAI_KEY}, "name"),
        ({"provider": "mistral", "name": "m", "key": OPENAI_KEY}, "provider"),
        (
            {"provider": "openai", "name": "u", "key": OPENAI_KEY, "base_url": "https://api.example.com"},
            "base_url",
        ),
        ({"provider": "custom", "name": "c", "key": OPENAI_KEY}, "base_url"),
        ({"provider": "custom", "name": "c", "key": OPENAI_KEY, "base_url": "ftp://example.com"}, "base_url"),
        ({"provider": "openai", "name": "l", "key": OPENAI_KEY, "monthly_limit": "-1"}, "monthly_limit"),
        # pydantic's errors carry the input (the whole body for a missing field, the value for an extra
        # one or a wrong type): none of it may reach the answer
        ({"provider": "openai", "key": OPENAI_KEY}, "name"),
        ({"provider": "openai", "name": "x", "key": OPENAI_KEY, "api_key": OPENAI_KEY}, "api_key"),
        ({"provider": "openai", "name": "list", "key": [OPENAI_KEY]}, "key"),
        ({"provider": "openai", "name": "obj", "key": {"value": OPENAI_KEY}}, "key"),
        ({"provider": OPENAI_KEY, "name": "p", "key": OPENAI_KEY}, "provider"),
    ):
        refused = call("POST", keys, admin, json=body)
        assert refused.status_code == 422, (body, refused.text)
        assert [e["field"] for e in refused.json()["error"]["details"]["errors"]] == [field], refused.text
    for body, field in (
        ({"key": "short"}, "key"),
        ({"key": [OPENAI_KEY]}, "key"),
        ({"name": "n", "secret": OPENAI_KEY}, "secret"),
        ({"monthly_limit": OPENAI_KEY}, "monthly_limit"),
    ):
        refused = call("PATCH", f"/provider-keys/{key['id']}", admin, json=body)
        assert refused.status_code == 422, (body, refused.text)
        assert [e["field"] for e in refused.json()["error"]["details"]["errors"]] == [field], refused.text
    duplicate = call("POST", keys, admin, json={"provider": "openai", "name": "Main", "key": OPENAI_KEY})
    assert duplicate.status_code == 409

    # the test: GET {openai base}/models with the key as a bearer token
    tested = call("POST", f"{key_url}/test", admin)
    assert tested.status_code == 200 and tested.json()["ok"] is True, tested.text
    assert tested.json()["models"] and tested.json()["error"] is None
    (seen,) = [r for r in openrouter.requests if r.scenario == "models"]
    assert seen.path.endswith("/openai/models") and seen.headers["authorization"] == f"Bearer {OPENAI_KEY}"

    # refused by the provider: ok false, the key named, marked invalid
    openrouter.script_models(Status(401))
    refused_test = call("POST", f"{key_url}/test", admin).json()
    assert refused_test == {
        "ok": False,
        "models": None,
        "error": "the key 'Main' was refused by openai",
        "reason": "refused",
    }
    shown = call("GET", key_url, admin).json()
    assert (shown["status"], shown["invalid_reason"]) == ("invalid", "the key 'Main' was refused by openai")
    assert shown["checked_at"] is not None

    # patch: name, limit, a new key (active again, unchecked); a base_url is a custom key's only
    patched = call("PATCH", key_url, owner, json={"name": "Primary", "monthly_limit": "2500.00", "key": NEW_KEY})
    assert patched.status_code == 200, patched.text
    assert {k: patched.json()[k] for k in ("name", "monthly_limit", "key", "status", "invalid_reason")} == {
        "name": "Primary",
        "monthly_limit": "2500.00",
        "key": f"…{NEW_KEY[-4:]}",
        "status": "active",
        "invalid_reason": None,
    }
    assert call("PATCH", key_url, owner, json={"monthly_limit": None}).json()["monthly_limit"] is None
    assert call("PATCH", key_url, owner, json={"base_url": "https://api.example.com"}).status_code == 422
    openrouter.reset()
    assert call("POST", f"{key_url}/test", admin).json()["ok"] is True
    (seen,) = [r for r in openrouter.requests if r.scenario == "models"]
    assert seen.headers["authorization"] == f"Bearer {NEW_KEY}"

    # a custom endpoint (loopback allowed by ONEAI_ALLOW_LOOPBACK_URLS in the tests)
    custom = call(
        "POST",
        keys,
        admin,
        json={
            "provider": "custom",
            "name": "Local",
            "key": CUSTOM_KEY,
            "base_url": f"{custom_endpoint.base_url}/v1",
        },
    )
    assert custom.status_code == 201, custom.text
    custom_url = f"/provider-keys/{custom.json()['id']}"
    assert call("POST", f"{custom_url}/test", admin).json() == {
        "ok": True,
        "models": ["llama3", "qwen2"],
        "error": None,
        "reason": None,
    }
    assert custom_endpoint.seen[-1] == ("/v1/models", f"Bearer {CUSTOM_KEY}")
    # the key goes only where it was saved for: another admin cannot move it without giving it again
    # (else they could point it at their own server and press "test" to receive it)
    exfiltrate = call("PATCH", custom_url, owner, json={"base_url": f"http://127.0.0.1:{free_port()}/v1"})
    assert exfiltrate.status_code == 422, exfiltrate.text
    assert [e["field"] for e in exfiltrate.json()["error"]["details"]["errors"]] == ["key"]
    assert call("GET", custom_url, admin).json()["base_url"] == f"{custom_endpoint.base_url}/v1"
    # a redirect from the endpoint is not followed (and is not a refusal of the key)
    moved = call(
        "PATCH", custom_url, admin, json={"base_url": f"{custom_endpoint.base_url}/moved/v1", "key": CUSTOM_KEY}
    )
    assert moved.status_code == 200, moved.text
    redirected = call("POST", f"{custom_url}/test", admin).json()
    assert redirected["ok"] is False and "redirect" in redirected["error"]
    assert call("GET", custom_url, admin).json()["status"] == "active"
    assert [path for path, _ in custom_endpoint.seen] == ["/v1/models", "/moved/v1/models"]
    # a network failure: a plain reason
    closed = call(
        "PATCH", custom_url, admin, json={"base_url": f"http://127.0.0.1:{free_port()}/v1", "key": CUSTOM_KEY}
    )
    assert closed.status_code == 200
    unreachable = call("POST", f"{custom_url}/test", admin).json()
    assert unreachable == {"ok": False, "models": None, "error": "custom could not be reached", "reason": None}

    # delete
    assert call("DELETE", custom_url, owner).status_code == 204
    assert call("GET", custom_url, owner).status_code == 404
    assert [k["name"] for k in call("GET", keys, owner).json()] == ["Primary"]

    # ... and the keys appear nowhere: responses, the server's log, the export, the audit log, the database
    secrets = (OPENAI_KEY, NEW_KEY, CUSTOM_KEY)
    exported = call("GET", "/user/export", admin)
    assert exported.status_code == 200
    exported_owner = call("GET", "/user/export", owner)
    assert exported_owner.status_code == 200
    for secret in secrets:
        for body in call.bodies:
            assert secret not in body
        assert secret not in local_server.log
    with psycopg.connect(database_url, autocommit=True) as conn:
        tables = conn.execute(
            "select table_schema, table_name from information_schema.tables"
            " where table_schema in ('public', 'oneai_private', 'auth') and table_type = 'BASE TABLE'"
        ).fetchall()
        assert any(name == "audit_log" for _, name in tables)
        for schema, name in tables:
            for secret in secrets:
                found = conn.execute(
                    f'select count(*) from "{schema}"."{name}" t where t::text like %s',  # noqa: S608 - catalog names
                    (f"%{secret}%",),
                ).fetchone()
                assert found is not None and found[0] == 0, (schema, name)
