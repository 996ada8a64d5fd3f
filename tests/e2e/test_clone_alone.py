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
from collections.abc import Callable, Iterator
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path
from typing import Any, cast

import httpx
import openai
import pytest

from local import DEV_USER_EMAIL, DEV_USER_ID, LOCAL_SUPABASE_URL
from local.dev_process import LocalServerProcess, run_local_server
from local.events import DEV_RAZORPAY_WEBHOOK_SECRET
from local.fake_razorpay import DEV_KEY_SECRET, DEV_PLAN_IDS
from local.png import solid_png
from local.template_routes import list_routes, load_template
from oneai.auth import mint_dev_token
from oneai.config import DEV_JWT_SECRET
from tests.conftest import REPO_ROOT
from tests.e2e.conftest import GENEROUS_RATE_LIMITS
from tests.knowledge_files import docx_paragraph, make_csv, make_docx, make_html, make_pdf
from tests.sse_support import events_of
from tests.webhook_receiver import WebhookReceiver, verify_standard_webhook

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]

# Variables of this process that would make the clone's server use something other than its own setup.
FOREIGN_PREFIXES = ("ONEAI_", "OPENROUTER_", "RAZORPAY_", "SUPABASE_", "COVERAGE_", "PYTEST_")
FOREIGN_NAMES = ("DATABASE_URL", "PORT", "PYTHONPATH", "VIRTUAL_ENV")
# pytest's closing line of a clean collection (with errors it reads "N tests collected, M errors in ...")
COLLECTED = re.compile(r"^(\d+) tests? collected in ", re.MULTILINE)
ADMIN_TOKEN_LINE = re.compile(r"^export ONEAI_ADMIN_TOKEN=(\S+)$")
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
    # The generous rate limits of every server a test starts (tests/e2e/conftest.py): the walk checks routes.
    with run_local_server(
        GENEROUS_RATE_LIMITS,
        repo_root=clone,
        scrub=foreign_environment(),
        timeout=150,
        log_path=clone / ".oneai" / "dev.log",
    ) as server:
        yield server


class RouteWalk:
    """An HTTP client for the clone's server that records which template route each request was for, and
    what one area of the walk leaves for the next (ids, keys)."""

    def __init__(self, clone: Path, server: LocalServerProcess) -> None:
        self.clone = clone
        self.base_url = server.base_url
        self.http = httpx.Client(base_url=server.base_url, timeout=30)
        self.auth = {"authorization": f"Bearer {server.token}"}
        admin_token = next((m.group(1) for m in map(ADMIN_TOKEN_LINE.match, server.output) if m), "")
        assert admin_token, "the banner printed no ONEAI_ADMIN_TOKEN"
        self.admin = {"authorization": f"Bearer {admin_token}"}
        self.visited: set[tuple[str, str]] = set()
        self.notes: dict[str, str] = {}

    def call(
        self, method: str, route: str, path: str | None = None, *, public: bool = False, **kw: Any
    ) -> httpx.Response:
        self.visited.add((method, route))
        headers = {**({} if public else self.auth), **kw.pop("headers", {})}
        return self.http.request(method, path or route, headers=headers, **kw)

    def as_admin(self, method: str, route: str, path: str | None = None, **kw: Any) -> httpx.Response:
        return self.call(method, route, path, headers=self.admin, **kw)

    def mark(self, method: str, route: str) -> None:
        """A route walked through another client (the openai SDK)."""
        self.visited.add((method, route))


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


# --- the walk: one function per area of the API, in order (each may use what an earlier one left in
# `walk.notes`). A route added to template.yaml fails the test until an area walks it: add its calls to
# the area it belongs to, or a new `walk_...` function to AREAS (before `walk_export_and_erasure`, which
# erases the dev user and stays last).


def walk_billing(walk: RouteWalk) -> None:
    """Public plans, a subscription through the fake Razorpay (the clone's SDK mocks), Razorpay's webhook,
    the payment-method portal, a plan change, a cancellation at the end of the cycle."""
    call = walk.call
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
    body, headers = signed_webhook(walk.clone, subscription_id, f"evt_{uuid.uuid4().hex[:14]}")
    delivered = call("POST", "/webhooks/razorpay", content=body, headers=headers, public=True)
    assert delivered.status_code == 200, delivered.text
    current = call("GET", "/subscription")
    assert current.status_code == 200, current.text
    assert current.json()["subscription"]["status"] == "active" and current.json()["replacement"] is None
    # The portal asks Razorpay for the subscription's page. The clone's fake Razorpay learns that Checkout
    # was completed only when a test tells it (`complete_checkout`, test_account_erasure_http.py has the
    # 200), so Razorpay still holds it as `created`: no payment method to manage yet, and the portal says so.
    portal = call("GET", "/subscription/portal")
    assert portal.status_code == 404, portal.text
    assert portal.json()["error"]["message"] == "You have no subscription whose payment method can be changed"
    invoices = call("GET", "/subscription/invoices")
    assert invoices.status_code == 200, invoices.text
    assert isinstance(invoices.json()["items"], list)
    upgraded = call("POST", "/subscription/update", json={"tier": "enterprise"})
    assert upgraded.status_code == 200, upgraded.text
    assert upgraded.json()["change"] in {"edited", "recreated"}
    # A plan change by replacement keeps the paid plan until Razorpay activates the new subscription
    after_change = call("GET", "/subscription").json()
    assert after_change["subscription"]["razorpay_subscription_id"] == subscription_id
    assert after_change["subscription"]["status"] == "active"
    if upgraded.json()["change"] == "recreated":
        assert after_change["replacement"]["tier"] == "enterprise"
    cancelled = call("POST", "/subscription/cancel", json={"at_cycle_end": True})
    assert cancelled.status_code == 200, cancelled.text
    walk.notes["subscription_id"] = subscription_id


def walk_account(walk: RouteWalk) -> None:
    """The webhook's tier shows in the quotas; the profile, with notification preferences."""
    call = walk.call
    quota = call("GET", "/user/quota")
    assert quota.status_code == 200, quota.text
    assert quota.json()["subscription"]["tier"] == "pro"
    check = call("POST", "/user/quota/check", json={"quota_key": "small_messages", "units": 1})
    assert check.status_code == 200 and check.json()["allowed"] is True, check.text
    profile = call(
        "PATCH",
        "/user/profile",
        json={"name": "Clone Alone", "preferences": {"notifications": {"usage_summary": False}}},
    )
    assert profile.status_code == 200, profile.text
    shown = call("GET", "/user/profile").json()
    assert shown["name"] == "Clone Alone"
    assert shown["preferences"]["notifications"] == {"usage_summary": False}


def walk_chat(walk: RouteWalk) -> None:
    """The offline model streams a reply into a new conversation, and the usage shows it."""
    call = walk.call
    models = call("GET", "/chat/models")
    assert models.status_code == 200, models.text
    assert "oneai/offline" in {model["id"] for model in models.json()["items"]}
    streamed = call("POST", "/chat/stream", json={"model": "oneai/offline", "content": "Hello from a clone"})
    assert streamed.status_code == 200, streamed.text
    assert streamed.headers["content-type"].startswith("text/event-stream")
    parts = events_of(streamed.text)
    assert parts[-1] == "[DONE]"
    assert "".join(p["delta"] for p in parts if isinstance(p, dict) and p["type"] == "text-delta")
    walk.notes["conversation_id"] = next(
        p["data"]["id"] for p in parts if isinstance(p, dict) and p["type"] == "data-conversation"
    )
    # Resumable replies (issue 16): that reply is over, so there is nothing to resume or stop
    resume_at = f"/chat/stream/{walk.notes['conversation_id']}"
    resumed = call("GET", "/chat/stream/{conversation_id}/stream", f"{resume_at}/stream")
    assert resumed.status_code == 204, resumed.text
    stopped = call("POST", "/chat/stream/{conversation_id}/stop", f"{resume_at}/stop")
    assert stopped.status_code == 204, stopped.text
    usage = call("GET", "/user/usage", params={"group_by": "model"})
    assert usage.status_code == 200, usage.text
    assert "oneai/offline" in json.dumps(usage.json())


def walk_conversations(walk: RouteWalk) -> None:
    """What the chat saved: messages, revisions, search, rename, share, export, delete."""
    call = walk.call
    conversation_id = walk.notes["conversation_id"]
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
    described = "".join(
        p["delta"] for p in events_of(seen.text) if isinstance(p, dict) and p["type"] == "text-delta"
    )
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


def walk_api_keys_and_v1(walk: RouteWalk) -> None:
    """API keys, and the OpenAI-compatible API through the official openai SDK with one of them."""
    call = walk.call
    keys = {}
    for name in ("clone script", "clone laptop"):
        created = call("POST", "/user/api-keys", json={"name": name})
        assert created.status_code == 201, created.text
        assert created.json()["key"].startswith(created.json()["prefix"])
        keys[name] = created.json()
    sdk = openai.OpenAI(
        api_key=keys["clone script"]["key"], base_url=f"{walk.base_url}/v1", max_retries=0, timeout=30
    )
    walk.mark("GET", "/v1/models")
    assert "oneai/offline" in {model.id for model in sdk.models.list()}
    walk.mark("POST", "/v1/chat/completions")
    completion = sdk.chat.completions.create(
        model="oneai/offline", messages=[{"role": "user", "content": "Hello over /v1 from a clone"}]
    )
    assert completion.choices[0].message.content
    assert completion.usage is not None and completion.usage.total_tokens > 0
    walk.mark("POST", "/v1/chat/completions")
    streamed = sdk.chat.completions.create(
        model="oneai/offline",
        messages=[{"role": "user", "content": "And streamed"}],
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(streamed)
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert chunks[-1].usage is not None and chunks[-1].choices == []
    listed = call("GET", "/user/api-keys")
    assert listed.status_code == 200, listed.text
    by_name = {item["name"]: item for item in listed.json()["items"]}
    assert by_name["clone script"]["last_used_at"] and by_name["clone laptop"]["last_used_at"] is None
    assert all("key" not in item for item in by_name.values())
    revoked = call("DELETE", "/user/api-keys/{id}", f"/user/api-keys/{keys['clone script']['id']}")
    assert revoked.status_code == 204, revoked.text
    walk.mark("GET", "/v1/models")
    with pytest.raises(openai.AuthenticationError):
        sdk.models.list()
    walk.notes["api_key"] = keys["clone laptop"]["key"]


def outbox_emails(clone: Path, address: str) -> list[EmailMessage]:
    emails = [
        cast(EmailMessage, message_from_bytes(path.read_bytes(), policy=policy.default))
        for path in sorted((clone / ".oneai" / "outbox").glob("*.eml"))
    ]
    return [email for email in emails if address in str(email["To"])]


def walk_notifications(walk: RouteWalk) -> None:
    """The welcome email in the clone's outbox, and its one-click unsubscribe link (RFC 8058)."""
    deadline = time.monotonic() + 20
    while not (
        welcome := [e for e in outbox_emails(walk.clone, DEV_USER_EMAIL) if "Welcome" in str(e["Subject"])]
    ):
        assert time.monotonic() < deadline, "no welcome email reached the clone's outbox"
        time.sleep(0.1)
    assert welcome[0]["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    link = str(welcome[0]["List-Unsubscribe"]).strip("<>")
    assert link.startswith(f"{walk.base_url}/notifications/unsubscribe?token=")
    # A mail scanner fetching the link changes nothing: a page with a button
    page = walk.call("GET", "/notifications/unsubscribe", link, public=True)
    assert page.status_code == 200 and '<form method="post"' in page.text
    assert walk.call("GET", "/user/profile").json()["preferences"]["notifications"] == {"usage_summary": False}
    clicked = walk.call(
        "POST",
        "/notifications/unsubscribe",
        link,
        public=True,
        content=b"List-Unsubscribe=One-Click",
        headers={"content-type": "application/x-www-form-urlencoded"},
    )
    assert clicked.status_code == 200, clicked.text
    assert walk.call("GET", "/user/profile").json()["preferences"]["notifications"] == {
        "usage_summary": False,
        "product": False,
    }


def walk_admin(walk: RouteWalk) -> None:
    """Every /admin route with the banner's admin token (the dev user with the admin claim), on a second
    user: find, suspend, override a quota, audit, erase; the dev user's subscription synced."""
    admin = walk.as_admin
    bea_id = uuid.uuid4()
    bea_email = f"bea-{bea_id.hex[:8]}@example.test"
    bea_token = mint_dev_token(
        bea_id, secret=DEV_JWT_SECRET, issuer=f"{LOCAL_SUPABASE_URL}/auth/v1", email=bea_email
    )
    bea = {"authorization": f"Bearer {bea_token}"}
    assert walk.http.get("/user/profile", headers=bea).status_code == 200  # her first sign-in
    users = admin("GET", "/admin/users", params={"q": bea_email})
    assert users.status_code == 200, users.text
    assert [u["id"] for u in users.json()["items"]] == [str(bea_id)]
    one = f"/admin/users/{bea_id}"
    detail = admin("GET", "/admin/users/{id}", one)
    assert detail.status_code == 200 and detail.json()["tier"] == "free", detail.text
    suspended = admin("POST", "/admin/users/{id}/suspend", f"{one}/suspend", json={"reason": "Clone walk"})
    assert suspended.status_code == 200 and suspended.json()["suspended_at"], suspended.text
    assert walk.http.get("/user/profile", headers=bea).status_code == 403
    assert admin("POST", "/admin/users/{id}/unsuspend", f"{one}/unsuspend").status_code == 200
    assert walk.http.get("/user/profile", headers=bea).status_code == 200
    quota_path = f"{one}/quotas/small_messages"
    override = admin("PUT", "/admin/users/{id}/quotas/{quota_key}", quota_path, json={"limit": 77, "reason": "x"})
    assert override.status_code == 200 and override.json()["limit"] == 77, override.text
    assert walk.http.get("/user/quota", headers=bea).json()["quotas"]["small_messages"]["limit"] == 77
    assert admin("DELETE", "/admin/users/{id}/quotas/{quota_key}", quota_path).status_code == 204
    assert walk.http.get("/user/quota", headers=bea).json()["quotas"]["small_messages"]["limit"] != 77
    subscriptions = admin("GET", "/admin/subscriptions")
    assert subscriptions.status_code == 200, subscriptions.text
    mine = next(
        s for s in subscriptions.json()["items"] if s["provider_subscription_id"] == walk.notes["subscription_id"]
    )
    synced = admin("POST", "/admin/subscriptions/{id}/sync", f"/admin/subscriptions/{mine['id']}/sync")
    assert synced.status_code == 200, synced.text
    assert synced.json()["subscription"]["provider_subscription_id"] == walk.notes["subscription_id"]
    workspaces = admin("GET", "/admin/workspaces", params={"q": "Clone Support"})
    assert workspaces.status_code == 200, workspaces.text
    team = f"/admin/workspaces/{workspaces.json()['items'][0]['id']}"
    held = admin("POST", "/admin/workspaces/{id}/suspend", f"{team}/suspend", json={"reason": "Clone walk"})
    assert held.status_code == 200 and held.json()["suspended_at"], held.text
    lifted = admin("POST", "/admin/workspaces/{id}/unsuspend", f"{team}/unsuspend")
    assert lifted.status_code == 200 and lifted.json()["suspended_at"] is None, lifted.text
    analytics = admin("GET", "/admin/analytics")
    assert analytics.status_code == 200, analytics.text
    assert analytics.json()["users"]["total"] >= 2
    # An admin cannot erase themselves here; erasing bea leaves her audit trail, ids and counts only
    assert admin("DELETE", "/admin/users/{id}", f"/admin/users/{DEV_USER_ID}").status_code == 409
    erased = admin("DELETE", "/admin/users/{id}", one)
    assert erased.status_code == 204, erased.text
    assert admin("GET", "/admin/users/{id}", one).status_code == 404
    audit = admin("GET", "/admin/audit-log", params={"target_id": str(bea_id)})
    assert audit.status_code == 200, audit.text
    actions = [entry["action"] for entry in reversed(audit.json()["items"])]
    assert actions == [
        "user.suspend",
        "user.unsuspend",
        "quota_override.set",
        "quota_override.remove",
        "user.erase",
    ]
    assert bea_email not in audit.text


def walk_docs(walk: RouteWalk) -> None:
    """The user guide, indexed from the clone's own markdown: search (a misspelt title too), a page, and
    feedback, anonymous and signed in."""
    found = walk.call("GET", "/docs/search", "/docs/search?q=reset%20my%20quota", public=True)
    assert found.status_code == 200, found.text
    assert found.json()["items"][0]["slug"] == "quotas-and-resets"
    assert "<mark>" in found.json()["items"][0]["snippet"]
    misspelt = walk.call("GET", "/docs/search", "/docs/search?q=quotas%20and%20resetz", public=True).json()
    assert misspelt["items"][0]["slug"] == "quotas-and-resets"
    assert walk.call("GET", "/docs/search", "/docs/search?q=zzxqv", public=True).json()["items"] == []
    page = walk.call("GET", "/docs/{slug}", "/docs/quotas-and-resets", public=True)
    assert page.status_code == 200 and page.json()["title"] == "Quotas and resets"
    assert "Messages to large models" in page.json()["markdown"]  # the generated tier table
    assert walk.call("GET", "/docs/{slug}", "/docs/no-such-page", public=True).status_code == 404
    anonymous = walk.call(
        "POST", "/docs/feedback", json={"slug": "quotas-and-resets", "helpful": True}, public=True
    )
    assert anonymous.status_code == 201 and anonymous.json()["signed_in"] is False, anonymous.text
    signed = walk.call(
        "POST", "/docs/feedback", json={"slug": "getting-started", "helpful": False, "comment": "More!"}
    )
    assert signed.status_code == 201 and signed.json()["signed_in"] is True, signed.text
    summary = {p["slug"]: p for p in walk.as_admin("GET", "/admin/docs/feedback").json()["items"]}
    assert summary["quotas-and-resets"]["helpful"] >= 1 and summary["getting-started"]["not_helpful"] >= 1


def walk_workspaces(walk: RouteWalk) -> None:
    """A workspace of the dev user (on pro since the billing walk; the admin walk's sync takes it back):
    changed, a second user invited by email from the clone's outbox and accepted, their role changed,
    removed; an invitation withdrawn; the workspace deleted and restored. The second user, on free, owns
    only their personal workspace: a second one is 402."""
    cleo_id = uuid.uuid4()
    cleo_email = f"cleo-{cleo_id.hex[:8]}@example.test"
    cleo_token = mint_dev_token(
        cleo_id,
        secret=DEV_JWT_SECRET,
        issuer=f"{LOCAL_SUPABASE_URL}/auth/v1",
        email=cleo_email,
        extra_claims={"user_metadata": {"email_verified": True}},
    )
    cleo = {"authorization": f"Bearer {cleo_token}"}
    created = walk.call("POST", "/workspaces", json={"name": "Clone Support", "industry": "software"})
    assert created.status_code == 201, created.text
    one = f"/workspaces/{created.json()['id']}"
    assert [w["role"] for w in walk.call("GET", "/workspaces").json()["items"]] == ["owner", "owner"]
    changed = walk.call("PATCH", "/workspaces/{workspace_id}", one, json={"settings": {"tone": "calm"}})
    assert changed.status_code == 200 and changed.json()["settings"] == {"tone": "calm"}, changed.text
    assert walk.call("GET", "/workspaces/{workspace_id}", one).json()["limits"]["members"] == 10
    invited = walk.call(
        "POST", "/workspaces/{workspace_id}/invitations", f"{one}/invitations", json={"email": cleo_email}
    )
    assert invited.status_code == 201, invited.text
    deadline = time.monotonic() + 20
    while not (emails := outbox_emails(walk.clone, cleo_email)):
        assert time.monotonic() < deadline, "no invitation email reached the clone's outbox"
        time.sleep(0.1)
    body = emails[0].get_body(preferencelist=("plain",))
    assert body is not None
    token = re.search(r"/invitations/([A-Za-z0-9_-]+)", str(cast(EmailMessage, body).get_content()))
    assert token is not None
    accept_path = f"/invitations/{token.group(1)}/accept"
    accepted = walk.call("POST", "/invitations/{token}/accept", accept_path, headers=cleo)
    assert accepted.status_code == 200 and accepted.json()["role"] == "viewer", accepted.text
    over = walk.call("POST", "/workspaces", json={"name": "Cleo's own"}, headers=cleo)
    assert over.status_code == 402 and over.json()["error"]["details"]["tier"] == "free", over.text
    members = walk.call("GET", "/workspaces/{workspace_id}/members", f"{one}/members").json()["items"]
    assert {m["email"] for m in members} == {DEV_USER_EMAIL, cleo_email}
    member = f"{one}/members/{cleo_id}"
    role = walk.call("PATCH", "/workspaces/{workspace_id}/members/{user_id}", member, json={"role": "editor"})
    assert role.status_code == 200 and role.json()["role"] == "editor", role.text
    assert walk.call("DELETE", "/workspaces/{workspace_id}/members/{user_id}", member).status_code == 204
    pending = walk.call(
        "POST", "/workspaces/{workspace_id}/invitations", f"{one}/invitations", json={"email": "dan@example.test"}
    )
    listed = walk.call("GET", "/workspaces/{workspace_id}/invitations", f"{one}/invitations").json()["items"]
    assert [i["email"] for i in listed] == ["dan@example.test"]
    withdrawn = f"{one}/invitations/{pending.json()['id']}"
    assert (
        walk.call("DELETE", "/workspaces/{workspace_id}/invitations/{invitation_id}", withdrawn).status_code == 204
    )
    assert walk.call("DELETE", "/workspaces/{workspace_id}", one).status_code == 204
    restored = walk.call("POST", "/workspaces/{workspace_id}/restore", f"{one}/restore")
    assert restored.status_code == 200, restored.text


def document_settled(walk: RouteWalk, path: str, seconds: float = 60) -> dict[str, Any]:
    """The document once its ingest ended (ready or failed), polled over HTTP."""
    deadline = time.monotonic() + seconds
    while True:
        detail = walk.call("GET", "/documents/{document_id}", path)
        assert detail.status_code == 200, detail.text
        if detail.json()["status"] in ("ready", "failed"):
            return cast(dict[str, Any], detail.json())
        assert time.monotonic() < deadline, f"the document stayed {detail.json()['status']}"
        time.sleep(0.2)


def upload_to(upload: dict[str, Any], data: bytes, content_type: str) -> None:
    landed = httpx.post(
        upload["url"], data=upload["fields"], files={"file": ("f", data, content_type)}, timeout=20
    )
    assert landed.status_code in (200, 201, 204), landed.text


def walk_documents(walk: RouteWalk) -> None:
    """The knowledge base under make dev: a two-page PDF posted to the clone's local S3 with its presigned
    POST is ingested by the same handler (parse, chunk, offline embeddings) until ready; the search finds
    its sentence first; the document is changed, downloaded, reprocessed; a bulk upload's CSV, DOCX and
    HTML become ready and a scanned-like PDF (no text) fails with that reason, the failed one is
    reprocessed in bulk, and all are deleted."""
    personal = next(w for w in walk.call("GET", "/workspaces").json()["items"] if w["personal"])
    space = f"/workspaces/{personal['id']}"
    pdf = make_pdf(["Refunds reach the card within five working days.", "Invoices are sent every month."])
    created = walk.call(
        "POST",
        "/workspaces/{workspace_id}/documents",
        f"{space}/documents",
        json={"filename": "policies.pdf", "media_type": "application/pdf", "size": len(pdf)},
    )
    assert created.status_code == 201, created.text
    one = f"/documents/{created.json()['id']}"
    upload_to(created.json()["upload"], pdf, "application/pdf")
    ready = document_settled(walk, one)
    assert ready["status"] == "ready" and ready["pages"] == 2, ready
    chunks = walk.call("GET", "/documents/{document_id}/chunks", f"{one}/chunks").json()["items"]
    assert sorted(c["page"] for c in chunks) == [1, 2]
    found = walk.call(
        "POST",
        "/workspaces/{workspace_id}/knowledge/search",
        f"{space}/knowledge/search",
        json={"query": "how long do refunds take to reach the card"},
    )
    assert found.status_code == 200, found.text
    assert (found.json()["items"][0]["document_id"], found.json()["items"][0]["page"]) == (created.json()["id"], 1)
    changed = walk.call("PATCH", "/documents/{document_id}", one, json={"tags": ["walk"], "description": "Policy"})
    assert changed.status_code == 200 and changed.json()["tags"] == ["walk"], changed.text
    listed = walk.call("GET", "/workspaces/{workspace_id}/documents", f"{space}/documents").json()
    assert created.json()["id"] in {d["id"] for d in listed["items"]}
    download = walk.call("GET", "/documents/{document_id}/download", f"{one}/download")
    assert download.status_code == 302 and httpx.get(download.headers["location"], timeout=20).content == pdf
    again = walk.call("POST", "/documents/{document_id}/reprocess", f"{one}/reprocess")
    assert again.status_code == 200 and again.json()["status"] == "queued", again.text
    assert document_settled(walk, one)["status"] == "ready"
    docx_type = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
    files = [
        ("rows.csv", "text/csv", make_csv(30)),
        ("terms.docx", docx_type, make_docx(docx_paragraph("Terms", heading=1) + docx_paragraph("Be kind."))),
        ("returns.html", "text/html", make_html("Returns are free within 30 days.")),
        ("scan.pdf", "application/pdf", make_pdf([None])),
    ]
    bulk = walk.call(
        "POST",
        "/workspaces/{workspace_id}/documents/bulk",
        f"{space}/documents/bulk",
        json={"documents": [{"filename": f, "media_type": t, "size": len(data)} for f, t, data in files]},
    )
    assert bulk.status_code == 201, bulk.text
    (rows, terms, returns, scan) = bulk.json()["items"]
    for item, (_, media_type, data) in zip(bulk.json()["items"], files, strict=True):
        upload_to(item["upload"], data, media_type)
    # 30 CSV rows (about 30 tokens each) take two chunks of about 500 tokens, each under the header; the
    # HTML page has two sections (Returns, Refunds) and a chunk never spans two; the DOCX has one
    for item, chunk_count in ((rows, 2), (terms, 1), (returns, 2)):
        settled = document_settled(walk, f"/documents/{item['id']}")
        assert (settled["status"], settled["chunks"]) == ("ready", chunk_count), settled
    failed = document_settled(walk, f"/documents/{scan['id']}")
    assert failed["status"] == "failed" and "scanned" in failed["error"], failed
    requeued = walk.call(
        "POST", "/workspaces/{workspace_id}/documents/bulk-reprocess", f"{space}/documents/bulk-reprocess"
    )
    assert requeued.status_code == 200 and requeued.json()["ids"] == [scan["id"]], requeued.text
    assert document_settled(walk, f"/documents/{scan['id']}")["status"] == "failed"
    gone = walk.call(
        "POST",
        "/workspaces/{workspace_id}/documents/bulk-delete",
        f"{space}/documents/bulk-delete",
        json={"ids": [item["id"] for item in (rows, terms, returns, scan)]},
    )
    assert gone.status_code == 204, gone.text
    assert walk.call("DELETE", "/documents/{document_id}", one).status_code == 204
    assert walk.call("GET", "/documents/{document_id}", one).status_code == 404


def walk_chatbots(walk: RouteWalk) -> None:
    """A chatbot of the dev user's personal workspace (on pro since the billing walk) on an HTML page the
    clone ingests: created, listed, read, changed, toggled, duplicated, its embed code, stats and templates;
    its retrieval finds the page; a chat with it streams the page as a source before the offline model's
    text (paid from the credits the credits walk granted); the copy and then the chatbot are deleted."""
    personal = next(w for w in walk.call("GET", "/workspaces").json()["items"] if w["personal"])
    space = f"/workspaces/{personal['id']}"
    page = make_html("Parcels leave the warehouse every weekday before noon.")
    document = walk.call(
        "POST",
        "/workspaces/{workspace_id}/documents",
        f"{space}/documents",
        json={"filename": "shipping.html", "media_type": "text/html", "size": len(page)},
    )
    assert document.status_code == 201, document.text
    upload_to(document.json()["upload"], page, "text/html")
    assert document_settled(walk, f"/documents/{document.json()['id']}")["status"] == "ready"
    templates = walk.call("GET", "/chatbot-templates")
    assert templates.status_code == 200 and "support" in {t["use_case"] for t in templates.json()["items"]}
    created = walk.call(
        "POST",
        "/workspaces/{workspace_id}/chatbots",
        f"{space}/chatbots",
        json={
            "name": "Shipping helper",
            "use_case": "support",
            "model": "oneai/offline",
            "system_prompt": "Answer from the passages.",
            "document_ids": [document.json()["id"]],
            "retrieval": {"top_k": 3, "min_score": 0.05},
            "status": "active",
        },
    )
    assert created.status_code == 201, created.text
    bot = created.json()
    one = f"/chatbots/{bot['id']}"
    listed = walk.call("GET", "/workspaces/{workspace_id}/chatbots", f"{space}/chatbots")
    assert [b["id"] for b in listed.json()["items"]] == [bot["id"]], listed.text
    detail = walk.call("GET", "/chatbots/{chatbot_id}", one)
    assert [d["filename"] for d in detail.json()["documents"]] == ["shipping.html"], detail.text
    changed = walk.call("PATCH", "/chatbots/{chatbot_id}", one, json={"description": "Where parcels are"})
    assert changed.status_code == 200 and changed.json()["description"] == "Where parcels are", changed.text
    found = walk.call("POST", "/chatbots/{chatbot_id}/retrieve", f"{one}/retrieve", json={"query": "parcels"})
    assert found.status_code == 200, found.text
    assert found.json()["items"][0]["document_id"] == document.json()["id"]
    streamed = walk.call(
        "POST", "/chat/stream", json={"chatbot_id": bot["id"], "content": "When do parcels leave?"}
    )
    assert streamed.status_code == 200, streamed.text
    parts = [p for p in events_of(streamed.text) if isinstance(p, dict)]
    types = [p["type"] for p in parts]
    assert "source-document" in types and types.index("source-document") < types.index("text-start"), types
    assert {p["filename"] for p in parts if p["type"] == "source-document"} == {"shipping.html"}
    embed = walk.call("GET", "/chatbots/{chatbot_id}/embed-code", f"{one}/embed-code")
    assert embed.status_code == 200 and bot["public_id"] in embed.json()["html"], embed.text
    stats = walk.call("GET", "/chatbots/{chatbot_id}/stats", f"{one}/stats")
    assert stats.status_code == 200, stats.text
    assert sum(day["conversations"] for day in stats.json()["days"]) == 1
    assert walk.call("POST", "/chatbots/{chatbot_id}/reset-stats", f"{one}/reset-stats").status_code in (200, 204)
    # Its inbox: no visitor has talked to it here (the widget's chat comes with its issue), so the lists are
    # empty and an unknown visitor conversation is 404 (tests/e2e/test_inbox_http.py has the full inbox)
    inbox = f"{one}/conversations"
    listed = walk.call("GET", "/chatbots/{chatbot_id}/conversations", inbox, params={"q": "parcels"})
    assert listed.status_code == 200 and listed.json()["items"] == [], listed.text
    inbox_stats = walk.call("GET", "/chatbots/{chatbot_id}/conversations/stats", f"{inbox}/stats")
    assert inbox_stats.status_code == 200, inbox_stats.text
    exported = walk.call(
        "GET", "/chatbots/{chatbot_id}/conversations/export", f"{inbox}/export", params={"format": "json"}
    )
    assert exported.status_code == 200 and exported.json() == {"items": []}, exported.text
    nobody = str(uuid.uuid4())
    removed = walk.call(
        "POST", "/chatbots/{chatbot_id}/conversations/bulk-delete", f"{inbox}/bulk-delete", json={"ids": [nobody]}
    )
    assert removed.status_code == 200 and removed.json() == {"deleted": 0}, removed.text
    unknown = f"/chatbot-conversations/{nobody}"
    for method, body in (("GET", None), ("PATCH", {"status": "resolved"}), ("DELETE", None)):
        answer = walk.call(method, "/chatbot-conversations/{conversation_id}", unknown, json=body)
        assert answer.status_code == 404, (method, answer.text)
    toggled = walk.call("POST", "/chatbots/{chatbot_id}/toggle", f"{one}/toggle")
    assert toggled.status_code == 200 and toggled.json()["status"] == "disabled", toggled.text
    copy = walk.call("POST", "/chatbots/{chatbot_id}/duplicate", f"{one}/duplicate")
    assert copy.status_code == 201 and copy.json()["status"] == "draft", copy.text
    assert walk.call("DELETE", "/chatbots/{chatbot_id}", f"/chatbots/{copy.json()['id']}").status_code == 204
    assert walk.call("DELETE", "/chatbots/{chatbot_id}", one).status_code == 204
    assert walk.call("GET", "/chatbots/{chatbot_id}", one).status_code == 404


def walk_credits(walk: RouteWalk) -> None:
    """The dev user's personal workspace's credits: a purchase opens a Razorpay Order at the clone's fake
    Razorpay (nothing credited until its webhook); an admin grants credits and then adjusts them down (the ledger
    and the balance show both); the usage breakdown answers in JSON and CSV. Its provider keys: a custom key whose endpoint is
    this server's own /v1 (loopback is allowed under make dev) is added masked, listed, changed, tested
    (the endpoint refuses it, so it is marked invalid) and deleted."""
    personal = next(w for w in walk.call("GET", "/workspaces").json()["items"] if w["personal"])
    space = f"/workspaces/{personal['id']}"
    order = walk.call(
        "POST", "/workspaces/{workspace_id}/credits/purchase", f"{space}/credits/purchase", json={"amount": "500"}
    )
    assert order.status_code in (200, 201) and order.json()["amount"] == 50000, order.text
    granted = walk.as_admin(
        "POST",
        "/admin/workspaces/{id}/credits/grant",
        f"/admin/workspaces/{personal['id']}/credits/grant",
        json={"amount": "250.00", "reason": "Clone walk"},
    )
    assert granted.status_code == 200, granted.text
    adjusted = walk.as_admin(
        "POST",
        "/admin/workspaces/{id}/credits/adjust",
        f"/admin/workspaces/{personal['id']}/credits/adjust",
        json={"amount": "-20.50", "reason": "Clone walk correction"},
    )
    assert adjusted.status_code == 200 and adjusted.json()["amount"] == "-20.50", adjusted.text
    balance = walk.call("GET", "/workspaces/{workspace_id}/credits", f"{space}/credits")
    assert balance.status_code == 200 and balance.json()["balance"] == adjusted.json()["balance"], balance.text
    ledger = walk.call("GET", "/workspaces/{workspace_id}/credits/transactions", f"{space}/credits/transactions")
    assert {"grant", "adjustment"} <= {t["type"] for t in ledger.json()["items"]}, ledger.text
    usage = walk.call(
        "GET", "/workspaces/{workspace_id}/credits/usage", f"{space}/credits/usage", params={"group_by": "model"}
    )
    assert usage.status_code == 200, usage.text
    csv_usage = walk.http.get(
        f"{space}/credits/usage", params={"group_by": "day"}, headers={**walk.auth, "accept": "text/csv"}
    )
    assert csv_usage.status_code == 200 and csv_usage.headers["content-type"].startswith("text/csv")
    secret = "clone-walk-key-0123456789"
    added = walk.call(
        "POST",
        "/workspaces/{workspace_id}/provider-keys",
        f"{space}/provider-keys",
        json={"provider": "custom", "name": "Own", "key": secret, "base_url": f"{walk.base_url}/v1"},
    )
    assert added.status_code == 201 and added.json()["key"] == "…6789", added.text
    key = f"/provider-keys/{added.json()['id']}"
    listed = walk.call("GET", "/workspaces/{workspace_id}/provider-keys", f"{space}/provider-keys")
    assert [k["name"] for k in listed.json()] == ["Own"] and secret not in listed.text, listed.text
    renamed = walk.call("PATCH", "/provider-keys/{provider_key_id}", key, json={"name": "Own endpoint"})
    assert renamed.status_code == 200 and renamed.json()["name"] == "Own endpoint", renamed.text
    tested = walk.call("POST", "/provider-keys/{provider_key_id}/test", f"{key}/test")
    assert tested.status_code == 200 and tested.json()["ok"] is False, tested.text
    assert walk.call("GET", "/provider-keys/{provider_key_id}", key).json()["status"] == "invalid"
    assert walk.call("DELETE", "/provider-keys/{provider_key_id}", key).status_code == 204


def walk_widget(walk: RouteWalk) -> None:
    """The widget's script from the clone, and its public routes. No chatbot exists here (they are made by
    the chatbots API), so each public route answers an unknown chatbot's 404, preflights included; the
    routes' behaviour with chatbots is tests/e2e/test_widget_http.py's and test_widget_browser.py's."""
    script = walk.call("GET", "/widget.js", public=True)
    assert script.status_code == 200 and script.headers["content-type"] == "text/javascript; charset=utf-8"
    assert script.content == (walk.clone / "functions" / "widget" / "widget.js").read_bytes()
    base = "/public/chatbots/{public_id}"
    unknown = "/public/chatbots/cb_00000000000000000000000000000000"
    conversation = f"{unknown}/conversations/{uuid.uuid4()}"
    origin = {"origin": "https://shop.example"}
    for method, route, path, body in (
        ("GET", base, unknown, None),
        ("OPTIONS", base, unknown, None),
        (
            "POST",
            f"{base}/sessions",
            f"{unknown}/sessions",
            {"visitor_id": str(uuid.uuid4()), "page_url": "https://shop.example/"},
        ),
        ("OPTIONS", f"{base}/sessions", f"{unknown}/sessions", None),
        ("POST", f"{base}/chat", f"{unknown}/chat", {"content": "Hello"}),
        ("OPTIONS", f"{base}/chat", f"{unknown}/chat", None),
        ("GET", f"{base}/conversations/{{conversation_id}}/messages", f"{conversation}/messages", None),
        ("OPTIONS", f"{base}/conversations/{{conversation_id}}/messages", f"{conversation}/messages", None),
        ("POST", f"{base}/conversations/{{conversation_id}}/rating", f"{conversation}/rating", {"score": 5}),
        ("OPTIONS", f"{base}/conversations/{{conversation_id}}/rating", f"{conversation}/rating", None),
    ):
        answer = walk.call(method, route, path, public=True, headers=origin, json=body)
        assert answer.status_code == 404, (method, path, answer.text)


def walk_openapi(walk: RouteWalk) -> None:
    """Each function's OpenAPI document."""
    prefixes = (
        "conversations",
        "chat",
        "user",
        "subscription",
        "admin",
        "docs",
        "workspaces",
        "chatbots",
        "credits",
    )
    for prefix in (*prefixes, "public"):
        document = walk.call("GET", f"/{prefix}/openapi.json", public=True)
        assert document.status_code == 200 and document.json()["paths"], prefix


def walk_export_and_erasure(walk: RouteWalk) -> None:
    """The account export holds what the walk made; then the account is erased (last: the dev user goes)."""
    exported = walk.call("GET", "/user/export")
    assert exported.status_code == 200, exported.text
    document = json.loads(exported.content)
    assert document["profile"]["name"] == "Clone Alone"
    assert "Standing alone" in {c["title"] for c in document["conversations"]}
    assert {k["name"] for k in document["api_keys"]} == {"clone script", "clone laptop"}
    assert walk.notes["api_key"] not in exported.text
    assert ("welcome", "sent") in {(n["kind"], n["status"]) for n in document["sent_notifications"]}
    assert walk.notes["subscription_id"] in {s["provider_subscription_id"] for s in document["subscriptions"]}
    erased = walk.call("DELETE", "/user")
    assert erased.status_code == 204, erased.text
    # The kept API key stops working, and nothing the dev user made is left
    key = {"authorization": f"Bearer {walk.notes['api_key']}"}
    assert walk.http.get("/v1/models", headers=key).status_code == 401
    # (401 in AWS: the token's user is gone; `make dev` signs an unknown token's user up again, empty: 404)
    assert walk.http.get(f"/conversations/{walk.notes['conversation_id']}", headers=walk.auth).status_code in {
        401,
        404,
    }


def walk_webhook(walk: RouteWalk) -> None:
    """The dev user's workspace gets a webhook endpoint on a loopback receiver (make dev allows loopback
    URLs): the secret once, a test event signed by it, the deliveries, a new secret, the endpoint deleted."""
    workspace = walk.call("GET", "/workspaces").json()["items"][0]["id"]
    base = f"/workspaces/{workspace}/webhook"
    with WebhookReceiver() as receiver:
        saved = walk.call(
            "PUT",
            "/workspaces/{workspace_id}/webhook",
            base,
            json={"url": receiver.url, "events": ["credits.low"]},
        )
        assert saved.status_code == 201, saved.text
        shown = walk.call("GET", "/workspaces/{workspace_id}/webhook", base)
        assert shown.status_code == 200 and "secret" not in shown.json(), shown.text
        tested = walk.call("POST", "/workspaces/{workspace_id}/webhook/test", f"{base}/test")
        assert tested.status_code == 200 and tested.json()["status"] == "succeeded", tested.text
        (request,) = receiver.received
        verify_standard_webhook(saved.json()["secret"], request.headers, request.body)
    listed = walk.call("GET", "/workspaces/{workspace_id}/webhook/deliveries", f"{base}/deliveries")
    assert [d["id"] for d in listed.json()["items"]] == [tested.json()["id"]], listed.text
    rotated = walk.call("POST", "/workspaces/{workspace_id}/webhook/rotate-secret", f"{base}/rotate-secret")
    assert rotated.status_code == 200 and rotated.json()["secret"] != saved.json()["secret"], rotated.text
    assert walk.call("DELETE", "/workspaces/{workspace_id}/webhook", base).status_code == 204


def walk_analytics(walk: RouteWalk) -> None:
    """The dev user's workspace's analytics over the last 30 days, as JSON and as the CSV report (the
    chatbots' reply of walk_chatbots is a member's, not a visitor's: the figures may be zero)."""
    workspace = walk.call("GET", "/workspaces").json()["items"][0]["id"]
    path = f"/workspaces/{workspace}/analytics"
    answered = walk.call("GET", "/workspaces/{workspace_id}/analytics", path)
    assert answered.status_code == 200, answered.text
    assert len(answered.json()["messages_by_day"]) == 30 and "top_questions" in answered.json()
    report = walk.call("GET", "/workspaces/{workspace_id}/analytics", path, headers={"accept": "text/csv"})
    assert report.status_code == 200 and report.headers["content-type"].startswith("text/csv"), report.text
    assert report.text.startswith("metric,value\r\n")


AREAS: tuple[Callable[[RouteWalk], None], ...] = (
    walk_billing,
    walk_account,
    walk_chat,
    walk_conversations,
    walk_api_keys_and_v1,
    walk_notifications,
    walk_workspaces,
    walk_documents,
    walk_credits,  # before the chatbots: the admin's grant pays the chatbot's reply
    walk_chatbots,
    walk_webhook,
    walk_analytics,
    walk_admin,
    walk_docs,
    walk_widget,
    walk_openapi,
    walk_export_and_erasure,
)


def test_make_dev_from_a_lone_clone_serves_every_route_of_its_template(
    clone: Path, clone_server: LocalServerProcess
) -> None:
    # The embedded PostgreSQL lives in the clone
    assert (clone / ".oneai" / "pgdata").is_dir()
    walk = RouteWalk(clone, clone_server)
    try:
        for area in AREAS:
            area(walk)
    finally:
        walk.http.close()
    # THEN every route of the clone's template was served
    template_routes = {(route.method, route.path) for route in list_routes(load_template(clone / "template.yaml"))}
    missed = sorted(template_routes - walk.visited)
    assert missed == [], f"routes of template.yaml no area of the walk served (add them to AREAS): {missed}"
