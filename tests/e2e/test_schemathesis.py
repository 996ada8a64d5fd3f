"""Schemathesis (pinned in requirements-dev.txt) against every FastAPI app's OpenAPI document, as the local
server serves it: real HTTP, a signed-in test user, every phase (examples, coverage, fuzzing, stateful
with the links schemathesis infers), every check but the ones excluded below (each with its reason),
a bounded number of examples. Held to zero failures: no 5xx, no response outside its schema, no bad
input accepted.

Excluded checks:
- `unsupported_method`, `allow_header_conformance`: they expect 405 with `Allow`; an unknown method on a
  path is 404 in the envelope here, as API Gateway answers it in AWS (README, "Two commands").
- `ensure_resource_availability` (ST302): an attachment exists once its file is in S3
  (docs/api/attachments.md), so reading it right after `POST /attachments` is 404 by design; schemathesis's
  stateful phase applies no per-operation check settings, so the check is off for the run.
`positive_data_acceptance` also accepts 422 (tests/e2e/schemathesis.toml says why).

Every FastAPI app's document is run: the admin API with an admin's token, and with the fake Razorpay
knowing every subscription in the database (as Razorpay does in production), since its sync and erasure
routes ask Razorpay about what they find.
"""

from __future__ import annotations

import copy
import os
import shutil
import subprocess
import sys
from pathlib import Path

import psycopg
import pytest

from local.fake_razorpay import FakeRazorpay
from local.openapi import FASTAPI_FUNCTIONS
from tests.conftest import REPO_ROOT, create_user, token_for
from tests.e2e.conftest import LocalServer

pytestmark = pytest.mark.e2e

# App -> where the local server serves its document (the app's prefix + /openapi.json): every FastAPI
# function's (test_every_openapi_document_is_checked holds this to local.openapi's list).
DOCUMENTS = {
    "conversations": "/conversations/openapi.json",
    "chat_stream": "/chat/openapi.json",
    "account": "/user/openapi.json",
    "billing": "/subscription/openapi.json",
    "admin": "/admin/openapi.json",
    "docs": "/docs/openapi.json",
    "workspaces": "/workspaces/openapi.json",
    "chatbots": "/chatbots/openapi.json",
    "credits": "/credits/openapi.json",
    "widget": "/public/openapi.json",
}
# The admin API is run as an admin (the token's `app_metadata.role`); every other app as a plain user.
ADMIN_APPS = {"admin"}
MAX_EXAMPLES = int(os.environ.get("ONEAI_SCHEMATHESIS_EXAMPLES", "20"))
RUN_TIMEOUT_SECONDS = 240
EXCLUDED_CHECKS = "unsupported_method,allow_header_conformance,ensure_resource_availability"
REPORTS = REPO_ROOT / ".oneai" / "schemathesis"
CONFIG = Path(__file__).with_name("schemathesis.toml")


def schemathesis_binary() -> str:
    found = Path(sys.executable).with_name("schemathesis")
    if found.exists():
        return str(found)
    on_path = shutil.which("schemathesis")
    if on_path is None:
        pytest.fail("schemathesis is not installed: run `make test` (requirements-dev.txt pins it)")
    return on_path


def test_every_openapi_document_is_checked() -> None:
    assert sorted(DOCUMENTS) == sorted(FASTAPI_FUNCTIONS)


def razorpay_knows_every_subscription(razorpay: FakeRazorpay, database_url: str) -> None:
    """Every subscription in the database exists at the fake Razorpay, as in production. Other tests leave
    theirs in the session's database while the fake forgets them between tests, and the admin API's sync
    and erasure ask Razorpay about any subscription they find (a refusal is a 502 by design)."""
    with psycopg.connect(database_url) as conn:
        ids = [row[0] for row in conn.execute("select provider_subscription_id from public.subscriptions")]
    with razorpay.state.lock:
        for subscription_id in ids:
            known = copy.deepcopy(razorpay.state.subscription_template) | {"id": subscription_id}
            razorpay.state.subscriptions.setdefault(subscription_id, known)


@pytest.mark.parametrize("app", sorted(DOCUMENTS))
def test_schemathesis_finds_nothing(
    app: str, local_server: LocalServer, database_url: str, razorpay: FakeRazorpay
) -> None:
    # GIVEN a fresh user signed in (an admin for the admin API), and the app's document as the server serves it
    user = create_user(database_url)
    token = user.token
    if app in ADMIN_APPS:
        token = token_for(user.id, user.principal.email, extra_claims={"app_metadata": {"role": "admin"}})
        razorpay_knows_every_subscription(razorpay, database_url)
    REPORTS.mkdir(parents=True, exist_ok=True)
    log = REPORTS / f"{app}.log"
    command = [
        schemathesis_binary(),
        "--config-file",
        str(CONFIG),
        "run",
        f"{local_server.base_url}{DOCUMENTS[app]}",
        "--url",
        local_server.base_url,
        "--header",
        f"Authorization: Bearer {token}",
        "--checks",
        "all",
        "--exclude-checks",
        EXCLUDED_CHECKS,
        "--phases",
        "examples,coverage,fuzzing,stateful",
        "--max-examples",
        str(MAX_EXAMPLES),
        "--workers",
        "1",
        "--seed",
        "20261122",
        # Reproducible runs: the fixed seed, and no example database carried from one run to the next.
        "--generation-database",
        "none",
        "--no-color",
        "--suppress-health-check",
        "too_slow,filter_too_much",
    ]
    # WHEN schemathesis runs every phase against it
    completed = subprocess.run(
        command,
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT_SECONDS,
        check=False,
        env={**os.environ, "SCHEMATHESIS_TELEMETRY": "false", "NO_COLOR": "1"},
    )
    log.write_text(completed.stdout + completed.stderr, encoding="utf-8")
    # THEN it found no failure of any check (the log keeps the whole report)
    assert completed.returncode == 0, f"schemathesis failed on {app} (full log: {log})\n{completed.stdout[-6000:]}"
    assert "No issues found" in completed.stdout or "passed" in completed.stdout, completed.stdout[-3000:]
