"""The notifications function's cost per email on a warm process, against a throwaway database, with
baselines measured in the same run, and the monthly usage-summary sweep's rate.

Per record, through the deployed entry point (`notifications.handler.lambda_handler`, one SQS record a
call, the outbox mailer writing .eml files to a temporary directory, as under `make dev`):
- new occasion: parse, read the recipient, claim (insert, commit), render, build the RFC 5322 message,
  write it, mark the claim sent: three short transactions;
- duplicate delivery: parse, read the recipient, the claim refused: two transactions, nothing written;
- baseline, render + build message, no database: what an email costs without at-most-once;
- baseline, empty service transaction: one round trip pair.
The sweep: `USERS` users with usage last month, events counted by a local sink (no network), users/s.
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Final

import psycopg
from pydantic import SecretStr

from bench import REPO_ROOT
from bench._db import throwaway_database
from bench._report import ms, summarize, table
from bench.webhooks import quiet_output, timed
from oneai.config import override_settings

CALLS: Final = 300
QUICK_CALLS: Final = 40
USERS: Final = 20_000
QUICK_USERS: Final = 2_000
NOTIFICATIONS_CODE = REPO_ROOT / "functions" / "notifications"


class Context:
    function_name = "NotificationsFunction"
    memory_limit_in_mb = 512
    invoked_function_arn = "arn:aws:lambda:ap-south-1:123456789012:function:NotificationsFunction"
    aws_request_id = "bench"

    def get_remaining_time_in_millis(self) -> int:
        return 900_000


def make_users(url: str, count: int) -> list[uuid.UUID]:
    ids = [uuid.uuid4() for _ in range(count)]
    with psycopg.connect(url, autocommit=True) as admin, admin.cursor() as cur:
        cur.executemany(
            "insert into auth.users (id, email) values (%s, %s)",
            [(i, f"bench-n-{i.hex[:10]}@example.test") for i in ids],
        )
    return ids


def warning_record(user_id: uuid.UUID, threshold: int = 80) -> dict[str, Any]:
    event = {
        "version": "0",
        "id": str(uuid.uuid4()),
        "source": "oneai.quota",
        "detail-type": "QuotaWarning",
        "detail": {
            "user_id": str(user_id),
            "quota_key": "small_messages",
            "threshold": threshold,
            "used": 80,
            "limit": 100,
            "resets_at": "2030-01-01T00:00:00Z",
            "tier": "free",
        },
    }
    body = json.dumps(event)
    return {"messageId": str(uuid.uuid4()), "receiptHandle": "r", "body": body, "attributes": {}, "md5OfBody": "",
            "eventSource": "aws:sqs", "eventSourceARN": "arn:aws:sqs:ap-south-1:123456789012:q", "awsRegion": "ap-south-1"}  # fmt: skip


def run(*, quick: bool = False) -> None:
    calls = QUICK_CALLS if quick else CALLS
    users_count = QUICK_USERS if quick else USERS
    print(
        f"== notifications: cost per email ({calls} calls per case) and the usage-summary sweep ({users_count} users) =="
    )
    if str(NOTIFICATIONS_CODE) not in sys.path:
        sys.path.insert(0, str(NOTIFICATIONS_CODE))
    with (
        throwaway_database() as url,
        tempfile.TemporaryDirectory() as outbox,
        override_settings(
            database_url=SecretStr(url),
            event_bus_name=None,
            mail_outbox=outbox,
            mail_from="OneAI <no-reply@oneai.local>",
            unsubscribe_secret=SecretStr("bench-unsubscribe-secret"),
            dev_mode=False,
        ),
    ):
        results, written = per_email(url, calls)
        sweep = sweep_rate(url, users_count)
    rows = [
        [name, str(s.n), ms(s.median), ms(s.p95)] for name, s in ((n, summarize(v)) for n, v in results.items())
    ]
    print(table(["case", "n", "median ms", "p95 ms"], rows))
    print(f"  .eml files written: {written} (expected {calls + 1}: one per new occasion, none for duplicates)")
    print(
        f"  usage-summary sweep: {sweep[0]} users in {sweep[1]:.2f} s = {sweep[0] / sweep[1]:,.0f} users/s, {sweep[2]} batches"
    )


def per_email(url: str, calls: int) -> tuple[dict[str, list[float]], int]:
    from notifications.handler import lambda_handler, notifier

    from oneai.database import get_database
    from oneai.notifications.mail import build_message
    from oneai.notifications.occasions import occasion_of
    from oneai.notifications.render import render

    context = Context()
    users = make_users(url, calls + 1)
    fresh = [warning_record(user) for user in users[1:]]
    duplicate = warning_record(users[0])
    event = json.loads(duplicate["body"])

    def invoke(record: dict[str, Any]) -> Callable[[], None]:
        def call() -> None:
            assert lambda_handler({"Records": [record]}, context) == {"batchItemFailures": []}

        return call

    def render_only() -> None:
        occasion = occasion_of(event)
        email = render(
            occasion, name="Bench", unsubscribe_url="http://127.0.0.1:3000/notifications/unsubscribe?token=x"
        )
        build_message(
            email, sender="OneAI <no-reply@oneai.local>", to="bench@example.test", unsubscribe_url="x"
        ).as_bytes()

    def empty_transaction() -> None:
        with get_database().service_transaction():
            pass

    with quiet_output():
        invoke(duplicate)()  # warm: imports, the container's connection, the duplicate's first delivery
        notifier()
        results = {
            "new occasion (claim, render, write, mark sent)": timed([invoke(r) for r in fresh]),
            "duplicate delivery (claim refused)": timed([invoke(duplicate)] * calls),
            "baseline: render + build message, no database": timed([render_only] * calls),
            "baseline: empty service transaction": timed([empty_transaction] * calls),
        }
    written = len(list(Path(get_database().settings.mail_outbox or ".").glob("*.eml")))
    return results, written


def sweep_rate(url: str, count: int) -> tuple[int, float, int]:
    from oneai.database import get_database
    from oneai.events import EventPublisher, set_local_sink
    from oneai.notifications.summary import Month, emit_usage_summaries

    month = Month.before(datetime.now(UTC))
    users = make_users(url, count)
    with psycopg.connect(url, autocommit=True) as admin, admin.cursor() as cur:
        cur.executemany(
            "insert into public.usage_records (user_id, quota_key, requested_model, model_id, prompt_tokens,"
            " completion_tokens, cost, created_at) values (%s, 'small_messages', 'm', 'm', 10, 20, 0.001, %s)",
            [
                (u, month.start + timedelta(days=i % 27, hours=i % 24))
                for i, u in enumerate(users)
                for _ in range(2)
            ],
        )
        admin.execute("analyze public.usage_records")
    received: list[Any] = []
    set_local_sink(received.append)
    try:
        started = time.perf_counter()
        report = emit_usage_summaries(get_database(), EventPublisher(None), month)
        seconds = time.perf_counter() - started
    finally:
        set_local_sink(None)
    assert report.users == count == len(received), (report, len(received))
    return report.users, seconds, report.batches
