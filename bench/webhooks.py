"""The Razorpay webhook handler's time per call on a warm process, against a throwaway database, with two
baselines measured in the same run.

The handler is the deployed entry point (`webhooks.handler.lambda_handler`) called with Function URL
(payload v2) events built by the local server's builder; the process is warmed first (the handler
imported, the container's connection open, one delivery made). Cases:
- activated (tier change): a new `subscription.activated` for a fresh user and subscription id each call:
  signature, record the event id, adopt the subscription, lock it with its user, write it, change the
  tier (users row, history row, quota rows), commit;
- duplicate: the same delivery again: signature, the event id found recorded, commit;
- bad signature: rejected before the database is touched (400);
- baseline, signature + parse: `verify_signature` and `parse_event` alone, no database;
- baseline, empty transaction: one `service_transaction()` that does nothing (the scope statement and
  the commit: two round trips).
Bodies are built and signed before the clock starts; the logs and EMF metrics the handler writes are
formatted as in Lambda but sent to /dev/null. Goal: p95 <= 50 ms for the activated case (Razorpay waits
5 s; the rest is for a cold start and the network).
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import io
import json
import logging
import os
import statistics
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any, Final

import psycopg
from pydantic import SecretStr

from bench import REPO_ROOT
from bench._db import throwaway_database
from bench._report import ms, table
from local.apigw import HttpRequest, build_function_url_event
from oneai.config import Settings, override_settings

CALLS: Final = 400
QUICK_CALLS: Final = 60
GOAL_P95_MS: Final = 50.0
SECRET: Final = "bench-razorpay-webhook-secret-0000"  # noqa: S105 - a throwaway key
PRO_PLAN: Final = "plan_BenchProMonthly"
WEBHOOKS_CODE = REPO_ROOT / "functions" / "webhooks"


class Context:
    function_name = "WebhooksFunction"
    memory_limit_in_mb = 512
    invoked_function_arn = "arn:aws:lambda:ap-south-1:123456789012:function:WebhooksFunction"
    aws_request_id = "bench"

    def get_remaining_time_in_millis(self) -> int:
        return 10_000


def activated_body(user_id: uuid.UUID, subscription_id: str, now: int) -> bytes:
    """A subscription.activated delivery shaped like Razorpay's (non-ASCII notes included)."""
    entity = {
        "id": subscription_id,
        "entity": "subscription",
        "plan_id": PRO_PLAN,
        "customer_id": f"cust_{subscription_id[4:]}",
        "status": "active",
        "current_start": now,
        "current_end": now + 30 * 86_400,
        "ended_at": None,
        "quantity": 1,
        "notes": {"user_id": str(user_id), "tier": "pro", "source": "bench – ✓"},
        "charge_at": now + 30 * 86_400,
        "start_at": now,
        "end_at": None,
        "auth_attempts": 0,
        "total_count": 12,
        "paid_count": 1,
        "customer_notify": True,
        "created_at": now - 60,
    }
    document = {
        "entity": "event",
        "account_id": "acc_Bench",
        "event": "subscription.activated",
        "contains": ["subscription"],
        "payload": {"subscription": {"entity": entity}},
        "created_at": now,
    }
    return json.dumps(document, ensure_ascii=False).encode("utf-8")


def url_event(body: bytes, *, secret: str = SECRET, event_id: str | None = None) -> dict[str, Any]:
    signature = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    headers = [
        ("Host", "benchurl.lambda-url.ap-south-1.on.aws"),
        ("Content-Type", "application/json"),
        ("User-Agent", "Razorpay-Webhook/v1"),
        ("X-Razorpay-Signature", signature),
        ("X-Razorpay-Event-Id", event_id or f"evt_{uuid.uuid4().hex[:14]}"),
    ]
    return build_function_url_event(HttpRequest("POST", "/", headers=headers, body=body))


def make_users(url: str, count: int) -> list[uuid.UUID]:
    ids = [uuid.uuid4() for _ in range(count)]
    with psycopg.connect(url, autocommit=True) as admin, admin.cursor() as cur:
        # As Supabase does it: auth.users rows; the trigger creates users and their free quotas.
        cur.executemany(
            "insert into auth.users (id, email) values (%s, %s)",
            [(i, f"bench-wh-{i.hex[:10]}@example.test") for i in ids],
        )
    return ids


@contextlib.contextmanager
def quiet_output() -> Iterator[None]:
    """The handler's log lines and EMF documents, formatted as in Lambda, written to /dev/null."""
    from oneai.logging import logger

    handler = logger.registered_handler
    if not isinstance(handler, logging.StreamHandler):
        with contextlib.redirect_stdout(io.StringIO()):
            yield
        return
    with open(os.devnull, "w", encoding="utf-8") as null:
        previous = handler.setStream(null)
        try:
            with contextlib.redirect_stdout(io.StringIO()):
                yield
        finally:
            handler.setStream(previous or sys.stdout)


def timed(calls: list[Callable[[], Any]]) -> list[float]:
    samples = []
    for call in calls:
        started = time.perf_counter()
        call()
        samples.append(time.perf_counter() - started)
    return samples


def figures(samples: list[float]) -> tuple[float, float, float]:
    ordered = sorted(samples)
    p95 = ordered[max(0, -(-len(ordered) * 95 // 100) - 1)]
    return statistics.median(ordered), p95, ordered[-1]


def run(*, quick: bool = False) -> None:
    calls = QUICK_CALLS if quick else CALLS
    print(f"== webhooks: the Razorpay webhook handler per call on a warm process, {calls} calls per case ==")
    if str(WEBHOOKS_CODE) not in sys.path:
        sys.path.insert(0, str(WEBHOOKS_CODE))
    started = time.perf_counter()
    with throwaway_database() as url:
        with psycopg.connect(url) as admin:
            version_row = admin.execute("show server_version").fetchone()
        version = version_row[0] if version_row else "?"
        with override_settings(
            database_url=SecretStr(url),
            razorpay_webhook_secret=SecretStr(SECRET),
            razorpay_webhook_secret_previous=None,
            razorpay_plan_ids=f"pro={PRO_PLAN}",
            event_bus_name=None,
            dev_mode=False,
        ) as settings:
            results, checks = measure(url, settings, calls)
    total = time.perf_counter() - started
    report(results, checks, version, calls, total)


def measure(url: str, settings: Settings, calls: int) -> tuple[dict[str, list[float]], dict[str, int]]:
    from webhooks.handler import lambda_handler

    from oneai.billing.razorpay_events import parse_event
    from oneai.billing.webhooks import verify_signature
    from oneai.database import get_database

    context = Context()
    now = int(time.time())
    users = make_users(url, calls + 1)
    bodies = [activated_body(user, f"sub_B{uuid.uuid4().hex[:13]}", now) for user in users]
    activated_events = [url_event(body) for body in bodies[1:]]
    duplicate = url_event(bodies[0], event_id="evt_bench_duplicate")
    bad = url_event(bodies[0], secret="not-the-secret")  # noqa: S106 - a wrong key on purpose
    statuses: dict[str, list[int]] = {"activated": [], "duplicate": [], "bad signature": []}

    def invoke(case: str, event: dict[str, Any]) -> Callable[[], None]:
        def call() -> None:
            statuses[case].append(lambda_handler(event, context)["statusCode"])

        return call

    def empty_transaction() -> None:
        with get_database().service_transaction():
            pass

    body = bodies[0]
    signature = duplicate["headers"]["x-razorpay-signature"]

    def verify_and_parse() -> None:
        verify_signature(body, signature, settings)
        parse_event(body)

    with quiet_output():
        # warm: imports done, the container's connection open, one delivery (the duplicate's first) made
        assert lambda_handler(duplicate, context)["statusCode"] == 200
        results = {
            "activated (new subscription, tier change)": timed([invoke("activated", e) for e in activated_events]),
            "duplicate (event id seen)": timed([invoke("duplicate", duplicate)] * calls),
            "bad signature (400)": timed([invoke("bad signature", bad)] * calls),
            "baseline: signature + parse, no database": timed([verify_and_parse] * calls),
            "baseline: empty service transaction": timed([empty_transaction] * calls),
        }
    with psycopg.connect(url) as admin:
        row = admin.execute(
            "select (select count(*) from public.subscription_history where change_reason = 'new_subscription'),"
            " (select count(*) from public.users where subscription_tier = 'pro')"
        ).fetchone()
    history_rows, pro_users = row if row else (0, 0)
    checks = {
        "activated 200": statuses["activated"].count(200),
        "duplicate 200": statuses["duplicate"].count(200),
        "bad signature 400": statuses["bad signature"].count(400),
        "history rows": int(history_rows),
        "pro users": int(pro_users),
    }
    return results, checks


def report(
    results: dict[str, list[float]], checks: dict[str, int], version: str, calls: int, total: float
) -> None:
    print(
        f"PostgreSQL {version} on this machine (no network hop); one process, one connection, calls one at a time;"
        f" whole run {total:.1f} s (database made, migrated and dropped)"
    )
    rows = []
    for label, samples in results.items():
        p50, p95, worst = figures(samples)
        rows.append([label, str(len(samples)), ms(p50), ms(p95), ms(worst)])
    print(table(("case", "calls", "p50 ms", "p95 ms", "max ms"), rows))
    print(
        f"checks: {checks['activated 200']}/{calls} activations answered 200, {checks['pro users']} users on pro,"
        f" {checks['history rows']} new_subscription rows (1 more from the warm-up);"
        f" duplicates 200: {checks['duplicate 200']}/{calls}; bad signatures 400: {checks['bad signature 400']}/{calls}"
    )
    _, p95, _ = figures(next(iter(results.values())))
    verdict = "PASS" if p95 * 1000 <= GOAL_P95_MS else "MISS"
    print(f"goal: p95 of the activated case <= {GOAL_P95_MS:.0f} ms: {ms(p95)} ms  {verdict}")


if __name__ == "__main__":
    run()
