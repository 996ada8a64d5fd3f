"""The repository stands alone: a `git clone` of its committed HEAD into an empty temporary directory,
with no team folder beside it, collects the whole test suite and serves every route of template.yaml
under `make dev` (`python -m local`, with the embedded PostgreSQL in the clone's own `.oneai/`, the
offline model and the fake Razorpay from the clone's own fixtures).

The clone reuses this run's interpreter (the installed virtualenv) so the test stays quick; everything
it reads comes from the clone. Nothing of the caller's environment that could point the server elsewhere
(a database, keys, coverage's subprocess hook) reaches it.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import re
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from local import DEV_USER_ID
from local.dev_process import LocalServerProcess, run_local_server
from local.events import DEV_RAZORPAY_WEBHOOK_SECRET
from local.fake_razorpay import DEV_KEY_SECRET, DEV_PLAN_IDS
from local.png import solid_png
from local.template_routes import list_routes, load_template
from tests.conftest import REPO_ROOT

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]

# Variables of this process that would make the clone's server use something other than its own setup.
FOREIGN_PREFIXES = ("ONEAI_", "OPENROUTER_", "RAZORPAY_", "SUPABASE_", "COVERAGE_", "PYTEST_")
FOREIGN_NAMES = ("DATABASE_URL", "PORT", "PYTHONPATH", "VIRTUAL_ENV")
# pytest's closing line of a clean collection (with errors it reads "N tests collected, M errors in ...")
COLLECTED = re.compile(r"^(\d+) tests? collected in ", re.MULTILINE)
PRO_PLAN = dict(entry.split("=") for entry in DEV_PLAN_IDS.split(","))["pro"]


def foreign_environment() -> list[str]:
    return [name for name in os.environ if name.startswith(FOREIGN_PREFIXES) or name in FOREIGN_NAMES]


def clean_environment() -> dict[str, str]:
    foreign = set(foreign_environment())
    return {name: value for name, value in os.environ.items() if name not in foreign}


def git(*args: str, cwd: Path) -> str:
    done = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, f"git {' '.join(args)} failed: {done.stderr}"
    return done.stdout.strip()


@pytest.fixture(scope="module")
def clone(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The committed HEAD of this repository, cloned alone into an empty directory."""
    head = git("rev-parse", "HEAD", cwd=REPO_ROOT)
    parent = tmp_path_factory.mktemp("alone")
    assert list(parent.iterdir()) == []
    target = parent / "oneai"
    git("clone", "--quiet", "--no-checkout", str(REPO_ROOT), str(target), cwd=parent)
    git("checkout", "--quiet", "--detach", head, cwd=target)
    assert sorted(p.name for p in parent.iterdir()) == ["oneai"]  # no shared folder beside it
    assert not (target / ".oneai").exists() and not (target / ".venv").exists()
    return target


def test_the_whole_suite_collects_from_a_lone_clone(clone: Path) -> None:
    # WHEN pytest collects every test of the clone, as `make test` would start
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider", "tests"],
        cwd=clone,
        env=clean_environment(),
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    output = done.stdout + done.stderr
    # THEN it succeeds, with no error, and the tests that read Razorpay's samples found them in the clone
    assert done.returncode == 0, output[-4000:]
    match = COLLECTED.search(output)
    assert match is not None and int(match.group(1)) > 300, output[-2000:]
    for sample in ("subscription.charged", "payment.failed__upi", "invoice.paid__card"):
        assert f"[{sample}]" in output, f"no test over Razorpay's {sample} sample was collected"


@pytest.fixture(scope="module")
def clone_server(clone: Path) -> Iterator[LocalServerProcess]:
    """`make dev` in the clone: no DATABASE_URL (the embedded server under the clone's .oneai/), no keys."""
    with run_local_server(
        {}, repo_root=clone, scrub=foreign_environment(), timeout=150, log_path=clone / ".oneai" / "dev.log"
    ) as server:
        yield server


class RouteWalk:
    """An HTTP client for the clone's server that records which template route each request was for."""

    def __init__(self, server: LocalServerProcess) -> None:
        self.http = httpx.Client(base_url=server.base_url, timeout=30)
        self.auth = {"authorization": f"Bearer {server.token}"}
        self.visited: set[tuple[str, str]] = set()

    def call(
        self, method: str, route: str, path: str | None = None, *, public: bool = False, **kw: Any
    ) -> httpx.Response:
        self.visited.add((method, route))
        headers = {**({} if public else self.auth), **kw.pop("headers", {})}
        return self.http.request(method, path or route, headers=headers, **kw)


def read_stream(response: httpx.Response) -> list[Any]:
    parts: list[Any] = []
    for line in response.text.splitlines():
        if line.startswith("data: "):
            payload = line.removeprefix("data: ")
            parts.append(payload if payload == "[DONE]" else json.loads(payload))
    return parts


def signed_webhook(clone: Path, subscription_id: str, event_id: str) -> tuple[bytes, dict[str, str]]:
    """Razorpay's published subscription.activated sample from the clone's fixtures, for our subscription."""
    sample = (
        clone
        / "tests/fixtures/razorpay/docs_webhooks/subscription.activated__immediate_start_date_upfront_amount_both.json"
    )
    document = json.loads(sample.read_bytes())
    now = int(time.time())
    document["created_at"] = now
    entity = document["payload"]["subscription"]["entity"]
    entity.update(
        id=subscription_id,
        plan_id=PRO_PLAN,
        status="active",
        current_start=now,
        current_end=now + 30 * 86_400,
        notes={"user_id": DEV_USER_ID, "tier": "pro"},
    )
    body = json.dumps(document).encode()
    signature = hmac.new(DEV_RAZORPAY_WEBHOOK_SECRET.encode(), body, hashlib.sha256).hexdigest()
    return body, {
        "content-type": "application/json",
        "x-razorpay-signature": signature,
        "x-razorpay-event-id": event_id,
    }


def test_make_dev_from_a_lone_clone_serves_every_route_billing_included(
    clone: Path, clone_server: LocalServerProcess
) -> None:
    walk = RouteWalk(clone_server)
    call = walk.call
    # The embedded PostgreSQL lives in the clone
    assert (clone / ".oneai" / "pgdata").is_dir()

    # Billing: public plans, then a subscription through the fake Razorpay (the clone's SDK mocks)
    plans = call("GET", "/subscription/plans", public=True)
    assert plans.status_code == 200, plans.text
    assert {"free", "pro", "enterprise"} <= {plan["tier"] for plan in plans.json()["items"]}
    created = call("POST", "/subscription/create", json={"tier": "pro"})
    assert created.status_code == 200, created.text
    subscription_id = created.json()["subscription_id"]
    assert subscription_id.startswith("sub_") and created.json()["short_url"]
    signature = hmac.new(
        DEV_KEY_SECRET.encode(), f"pay_CloneAlone0001|{subscription_id}".encode(), hashlib.sha256
    ).hexdigest()
    verified = call(
        "POST",
        "/subscription/verify",
        json={
            "razorpay_payment_id": "pay_CloneAlone0001",
            "razorpay_subscription_id": subscription_id,
            "razorpay_signature": signature,
        },
    )
    assert verified.status_code == 200, verified.text
    # Razorpay's webhook grants the tier
    body, headers = signed_webhook(clone, subscription_id, f"evt_{uuid.uuid4().hex[:14]}")
    delivered = call("POST", "/webhooks/razorpay", content=body, headers=headers, public=True)
    assert delivered.status_code == 200, delivered.text
    current = call("GET", "/subscription")
    assert current.status_code == 200, current.text
    assert current.json()["subscription"]["status"] == "active"
    invoices = call("GET", "/subscription/invoices")
    assert invoices.status_code == 200, invoices.text
    assert isinstance(invoices.json()["items"], list)
    upgraded = call("POST", "/subscription/update", json={"tier": "enterprise"})
    assert upgraded.status_code == 200, upgraded.text
    assert upgraded.json()["change"] in {"edited", "recreated"}
    cancelled = call("POST", "/subscription/cancel", json={"at_cycle_end": True})
    assert cancelled.status_code == 200, cancelled.text

    # Account: the webhook's tier shows in the quotas
    quota = call("GET", "/user/quota")
    assert quota.status_code == 200, quota.text
    assert quota.json()["subscription"]["tier"] == "pro"
    check = call("POST", "/user/quota/check", json={"quota_key": "small_messages", "units": 1})
    assert check.status_code == 200 and check.json()["allowed"] is True, check.text
    profile = call("PATCH", "/user/profile", json={"name": "Clone Alone"})
    assert profile.status_code == 200, profile.text
    assert call("GET", "/user/profile").json()["name"] == "Clone Alone"

    # Chat: the offline model streams a reply into a new conversation
    models = call("GET", "/chat/models")
    assert models.status_code == 200, models.text
    assert "oneai/offline" in {model["id"] for model in models.json()["items"]}
    streamed = call("POST", "/chat/stream", json={"model": "oneai/offline", "content": "Hello from a clone"})
    assert streamed.status_code == 200, streamed.text
    assert streamed.headers["content-type"].startswith("text/event-stream")
    parts = read_stream(streamed)
    assert parts[-1] == "[DONE]"
    assert "".join(p["delta"] for p in parts if isinstance(p, dict) and p["type"] == "text-delta")
    conversation_id = next(
        p["data"]["id"] for p in parts if isinstance(p, dict) and p["type"] == "data-conversation"
    )
    usage = call("GET", "/user/usage", params={"group_by": "model"})
    assert usage.status_code == 200, usage.text
    assert "oneai/offline" in json.dumps(usage.json())

    # Conversations: what the chat saved, revisions, search, share, export, then delete
    one = f"/conversations/{conversation_id}"
    messages = call("GET", "/conversations/{id}/messages", f"{one}/messages")
    assert messages.status_code == 200, messages.text
    assert [m["role"] for m in messages.json()["items"]] == ["user", "assistant"]
    reply_id = messages.json()["items"][1]["id"]
    revisions = call(
        "GET", "/conversations/{id}/messages/{message_id}/revisions", f"{one}/messages/{reply_id}/revisions"
    )
    assert revisions.status_code == 200, revisions.text
    activated = call(
        "POST", "/conversations/{id}/messages/{message_id}/activate", f"{one}/messages/{reply_id}/activate"
    )
    assert activated.status_code == 200, activated.text
    found = call("GET", "/chat/history", params={"q": "clone"})
    assert found.status_code == 200, found.text
    assert conversation_id in {item["conversation_id"] for item in found.json()["items"]}
    renamed = call("PATCH", "/conversations/{id}", one, json={"title": "Standing alone"})
    assert renamed.status_code == 200, renamed.text
    assert call("GET", "/conversations/{id}", one).json()["title"] == "Standing alone"
    listed = call("GET", "/conversations")
    assert conversation_id in {c["id"] for c in listed.json()["items"]}
    # Attachments: a picture uploaded to the clone's local S3 (moto's server), then sent with a message
    picture = solid_png(2, 2, (10, 20, 30))
    started = call(
        "POST", "/attachments", json={"filename": "dot.png", "media_type": "image/png", "size": len(picture)}
    )
    assert started.status_code == 201, started.text
    attachment = started.json()
    upload = attachment["upload"]
    stored = httpx.post(upload["url"], data=upload["fields"], files={"file": ("dot.png", picture, "image/png")})
    assert stored.status_code == 204, stored.text
    assert call("GET", "/attachments/{id}", f"/attachments/{attachment['id']}").status_code == 200
    content = call("GET", "/attachments/{id}/content", f"/attachments/{attachment['id']}/content")
    assert content.status_code == 302 and httpx.get(content.headers["location"]).content == picture
    seen = call(
        "POST",
        "/chat/stream",
        json={
            "model": "oneai/offline",
            "conversation_id": conversation_id,
            "content": "And this?",
            "attachments": [attachment["id"]],
        },
    )
    assert seen.status_code == 200, seen.text
    described = "".join(p["delta"] for p in read_stream(seen) if isinstance(p, dict) and p["type"] == "text-delta")
    assert "image/png of 2×2 pixels" in described, described
    share = call("POST", "/conversations/{id}/share", f"{one}/share")
    assert share.status_code in {200, 201}, share.text
    token = share.json()["token"]
    snapshot = call("GET", "/shared/{token}", f"/shared/{token}", public=True)
    assert snapshot.status_code == 200, snapshot.text
    shared_file = call(
        "GET", "/shared/{token}/attachments/{id}", f"/shared/{token}/attachments/{attachment['id']}", public=True
    )
    assert shared_file.status_code == 302, shared_file.text
    exported = call("GET", "/conversations/{id}/export", f"{one}/export", params={"format": "markdown"})
    assert exported.status_code == 200 and "Hello from a clone" in exported.text
    assert call("DELETE", "/conversations/{id}/share", f"{one}/share").status_code == 204
    assert call("GET", "/shared/{token}", f"/shared/{token}", public=True).status_code == 404
    spare = call("POST", "/conversations", json={"title": "to delete"})
    assert spare.status_code == 201, spare.text
    assert call("DELETE", "/conversations/{id}", f"/conversations/{spare.json()['id']}").status_code == 204

    # Each function's OpenAPI document
    for prefix in ("conversations", "chat", "user", "subscription"):
        document = call("GET", f"/{prefix}/openapi.json", public=True)
        assert document.status_code == 200 and document.json()["paths"], prefix

    # THEN every route of the clone's template was served
    template_routes = {(route.method, route.path) for route in list_routes(load_template(clone / "template.yaml"))}
    assert template_routes - walk.visited == set()
    walk.http.close()
