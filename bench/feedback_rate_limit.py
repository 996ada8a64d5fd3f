"""What the anonymous rate check adds to `POST /docs/feedback`, measured against the same work without it
in the same run, on the real database.

The check of an anonymous request is one more statement in the round trip that opens its anonymous
transaction (`take_source_rate_limit`: the keyed hash of the source, one conditional UPDATE, then a
savepoint). Each pair stores one anonymous feedback (`Database.anon_transaction` and
`oneai.guide.service.submit_feedback`) with a source check (limits high enough to admit every request, as
for a reader within the limit) and without one, interleaved in alternating order on one connection, after
a warm-up. Two sources: one address sending everything (its bucket row updated by every checked request),
and a new address per request (a first request: the row is inserted).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable

import psycopg
from pydantic import SecretStr

from bench._db import throwaway_database
from bench._report import SUMMARY_HEADERS, table
from bench.rate_limit import PAIRS, QUICK_PAIRS, WARMUP, check_rows, pairs
from oneai.config import override_settings
from oneai.db.connection import Database
from oneai.guide import service
from oneai.guide.index import index_guide
from oneai.guide.models import FeedbackRequest
from oneai.ratelimit import new_source_check

HIGH = 10_000_000  # admits everything: the cost of an admitted check
BODY = FeedbackRequest(slug="quotas-and-resets", helpful=True, comment="Clear, thanks")


def run(*, quick: bool = False) -> None:
    count = QUICK_PAIRS if quick else PAIRS
    print("== feedback_rate_limit: the added cost of the anonymous (per source) rate check on guide feedback ==")
    started = time.perf_counter()
    with throwaway_database() as url:
        index_guide(url)
        with psycopg.connect(url) as admin:
            version_row = admin.execute("show server_version").fetchone()
        with override_settings(
            database_url=SecretStr(url), feedback_rate_limit_per_minute=HIGH, feedback_rate_limit_burst=HIGH
        ) as settings:
            db = Database(settings)
            try:

                def feedback(source: Callable[[], str] | None) -> Callable[[], None]:
                    def work() -> None:
                        check = None if source is None else new_source_check(settings, "feedback", source())
                        with db.anon_transaction(check) as conn:
                            service.submit_feedback(conn, BODY, user_id=None)

                    return work

                one_source = pairs(count, feedback(None), feedback(lambda: "203.0.113.7"))
                new_sources = pairs(count, feedback(None), feedback(lambda: f"2001:db8::{uuid.uuid4().hex[:4]}"))
            finally:
                db.close()
    version = version_row[0] if version_row else "?"
    rows = []
    for label, (plain, limited) in (
        ("POST /docs/feedback, one address", one_source),
        ("POST /docs/feedback, a new address each", new_sources),
    ):
        rows += check_rows(label, plain, limited)
    print(
        f"PostgreSQL {version}; anonymous feedback in the database (anon transaction + insert); one connection,"
        f" {count} interleaved pairs per case, {WARMUP} warm-up pairs; whole run"
        f" {time.perf_counter() - started:.1f} s"
    )
    print(table(SUMMARY_HEADERS, rows))
