"""The local server (`python -m local`, what `make dev` runs) as a subprocess, shared by the e2e tests.

It runs against the run's fresh, migrated database and signs with the suite's JWT secret, so tokens
from `tests.conftest.token_for` work against it; `local_server.token` is the dev user's token it printed.
"""

from __future__ import annotations

import contextlib
import shutil
from collections.abc import Iterator
from datetime import datetime

import httpx
import psycopg
import pytest

from local.dev_process import LocalServerProcess, run_local_server
from local.fake_openrouter import FakeOpenRouter
from local.fake_razorpay import FakeRazorpay
from local.kms import local_kms_environment
from local.s3_server import LocalS3
from tests.conftest import REPO_ROOT, TEST_JWT_SECRET, TEST_SUPABASE_URL, AppUser, create_user, token_for

LOG_PATH = REPO_ROOT / ".oneai" / "e2e-local-server.log"  # the server's output, kept for debugging
# The tests name the server's type by this name.
LocalServer = LocalServerProcess


# The chat model the e2e tests script, and the (different) model that writes titles, so that the title
# request never takes a scenario meant for the reply.
CHAT_MODEL = "anthropic/claude-3.5-haiku"
TITLE_MODEL = "openai/gpt-4o-mini"
UPSTREAM_TIMEOUT_SECONDS = "1.5"
# The billing function's Razorpay: the session's fake, this key pair, a short timeout (test_billing_http.py).
E2E_RAZORPAY_KEY_ID = "rzp_test_E2EKey0000001"
E2E_RAZORPAY_KEY_SECRET = "e2e-razorpay-key-secret-never-shown"
RAZORPAY_TIMEOUT_SECONDS = "1.0"
E2E_WEBHOOK_SECRET = "e2e-razorpay-webhook-secret-for-the-local-server"
E2E_PLAN_IDS = "pro=plan_E2EProMonthly,enterprise=plan_E2EEnterprise"
# The attachments bucket in the session's local S3 (moto's server, as under `make dev`).
E2E_BUCKET = "oneai-attachments-e2e"
# Where the local server writes the emails it would send (test_notifications_http.py), emptied per session.
E2E_OUTBOX = REPO_ROOT / ".oneai" / "e2e-outbox"


# Rate limits far above what any test sends, for every server a test starts: the tests of the limits run a
# server of their own with tight ones (tests/e2e/limited_server.py), so no other test is throttled by accident.
GENEROUS_RATE_LIMITS = {
    "ONEAI_RATE_LIMIT_PER_MINUTE": "100000",
    "ONEAI_RATE_LIMIT_BURST": "100000",
    "ONEAI_CHAT_RATE_LIMIT_PER_MINUTE": "100000",
    "ONEAI_CHAT_RATE_LIMIT_BURST": "100000",
    "ONEAI_FEEDBACK_RATE_LIMIT_PER_MINUTE": "100000",
    "ONEAI_FEEDBACK_RATE_LIMIT_BURST": "100000",
    "ONEAI_WIDGET_RATE_LIMIT_PER_MINUTE": "100000",
    "ONEAI_WIDGET_RATE_LIMIT_BURST": "100000",
    "ONEAI_WIDGET_VISITOR_RATE_LIMIT_PER_MINUTE": "100000",
    "ONEAI_WIDGET_VISITOR_RATE_LIMIT_BURST": "100000",
}


@pytest.fixture(scope="session")
def fake_openrouter_server() -> Iterator[FakeOpenRouter]:
    with FakeOpenRouter(delay=0.0) as fake:
        yield fake


@pytest.fixture
def openrouter(fake_openrouter_server: FakeOpenRouter) -> FakeOpenRouter:
    """The fake OpenRouter behind the local server, with no scripts or records left from other tests."""
    fake_openrouter_server.reset()
    return fake_openrouter_server


@pytest.fixture(scope="session")
def fake_razorpay_server() -> Iterator[FakeRazorpay]:
    with FakeRazorpay(key_id=E2E_RAZORPAY_KEY_ID, key_secret=E2E_RAZORPAY_KEY_SECRET) as fake:
        yield fake


@pytest.fixture
def razorpay(fake_razorpay_server: FakeRazorpay) -> FakeRazorpay:
    """The fake Razorpay behind the local server, with no scripts, records or subscriptions left."""
    fake_razorpay_server.reset()
    return fake_razorpay_server


@pytest.fixture(scope="session")
def local_s3() -> Iterator[LocalS3]:
    """moto's S3 server with S3's POST policy checks (local/s3_server.py), the bucket created."""
    with LocalS3() as s3:
        s3.create_bucket(E2E_BUCKET)
        yield s3


@pytest.fixture(scope="session")
def local_server(
    database_url: str,
    fake_openrouter_server: FakeOpenRouter,
    fake_razorpay_server: FakeRazorpay,
    local_s3: LocalS3,
) -> Iterator[LocalServer]:
    env = {
        "DATABASE_URL": database_url,
        "SUPABASE_URL": TEST_SUPABASE_URL,
        "SUPABASE_JWT_SECRET": TEST_JWT_SECRET,
        "OPENROUTER_API_KEY": "sk-or-v1-test-key",
        "OPENROUTER_BASE_URL": fake_openrouter_server.base_url,
        "ONEAI_TITLE_MODEL": TITLE_MODEL,
        "OPENROUTER_FIRST_TOKEN_TIMEOUT": UPSTREAM_TIMEOUT_SECONDS,
        "OPENROUTER_IDLE_TIMEOUT": UPSTREAM_TIMEOUT_SECONDS,
        # Razorpay webhooks (test_webhooks_http.py): the secret they are signed with, the plans they name.
        "RAZORPAY_WEBHOOK_SECRET": E2E_WEBHOOK_SECRET,
        "RAZORPAY_PLAN_IDS": E2E_PLAN_IDS,
        # Razorpay API calls of the billing function go to the session's fake.
        "RAZORPAY_KEY_ID": E2E_RAZORPAY_KEY_ID,
        "RAZORPAY_KEY_SECRET": E2E_RAZORPAY_KEY_SECRET,
        "RAZORPAY_API_BASE_URL": fake_razorpay_server.base_url,
        "RAZORPAY_TIMEOUT_SECONDS": RAZORPAY_TIMEOUT_SECONDS,
        # Attachments: the session's local S3 and its bucket.
        **local_s3.environment(E2E_BUCKET),
        # Provider keys are sealed under a KMS key in the same moto server; customers' endpoints are local.
        **local_kms_environment(local_s3),
        "ONEAI_ALLOW_LOOPBACK_URLS": "1",
        # The providers' own endpoints (a workspace's openai/anthropic/google keys): the fake OpenRouter's
        # `GET .../models` under a prefix of each, so a key's test is seen and can be scripted.
        **{
            f"ONEAI_{provider.upper()}_BASE_URL": f"{fake_openrouter_server.base_url}/{provider}"
            for provider in ("openai", "anthropic", "google")
        },
        "ONEAI_PROVIDER_KEY_TEST_TIMEOUT": "3",
        # Outbound webhooks (test_outbound_webhooks_http.py): retries after tens of milliseconds, not
        # minutes, and a hanging receiver cut after a second.
        "ONEAI_WEBHOOK_RETRY_BASE_SECONDS": "0.05",
        "ONEAI_WEBHOOK_TIMEOUT_SECONDS": "1",
        **GENEROUS_RATE_LIMITS,
        "ONEAI_MAIL_OUTBOX": str(E2E_OUTBOX),
        # No analytics schedule: the e2e tests run the job themselves, and this server outlives them into
        # the integration tests on the same database, where a scheduled run would claim the days an
        # integration test's own runs count (test_analytics_events).
        "ONEAI_LOCAL_ANALYTICS_SECONDS": "0",
        # No ingest sweep either: it would race the integration tests' own sweeps on the same database.
        "ONEAI_LOCAL_INGEST_SWEEP_SECONDS": "0",
    }
    shutil.rmtree(E2E_OUTBOX, ignore_errors=True)
    with contextlib.ExitStack() as stack:
        try:
            server = stack.enter_context(run_local_server(env, log_path=LOG_PATH))
        except (RuntimeError, TimeoutError) as exc:
            pytest.fail(str(exc))
        yield server


@pytest.fixture
def client(local_server: LocalServer) -> Iterator[httpx.Client]:
    """An HTTP client of the local server (a test file that wants another timeout defines its own)."""
    with httpx.Client(base_url=local_server.base_url, timeout=30) as http:
        yield http


def admin_headers(user: AppUser) -> dict[str, str]:
    """The headers of `user` signed in as an admin (the `role` claim the admin API checks)."""
    token = token_for(
        user.id, user.principal.email, extra_claims={"app_metadata": {"provider": "google", "role": "admin"}}
    )
    return {"authorization": f"Bearer {token}"}


@pytest.fixture
def admin_user(database_url: str) -> AppUser:
    return create_user(database_url)


@pytest.fixture
def admin(admin_user: AppUser) -> dict[str, str]:
    return admin_headers(admin_user)


def use_up_small_messages(database_url: str, user_id: object) -> datetime:
    """The user's `small_messages` quota used up in the database; when it resets."""
    with psycopg.connect(database_url, autocommit=True) as conn:
        row = conn.execute(
            "update public.usage_quotas set used_count = quota_limit"
            " where user_id = %s and quota_key = 'small_messages' returning next_reset_at",
            (user_id,),
        ).fetchone()
    assert row is not None and isinstance(row[0], datetime)
    return row[0]
