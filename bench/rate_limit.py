"""What the per-caller rate check adds to a request, on a buffered route and on the chat path, measured
against the same path without it in the same run.

The check is one more statement in the round trip that opens a request's first user transaction (the
`take_rate_limit` UPDATE, then a savepoint), so it is measured where it runs, on the real database:
- buffered route: what `GET /user/quota` does in the database: `Database.user_transaction` (the first
  round trip sets the scope and reads the users row) and `account.service.quota_overview`;
- chat path: `oneai.chat.turn.prepare_turn` for a new conversation (the transaction before the model is
  called: tier, conversation, quota reserve, user message, history).
Each pair runs the same work with a principal that carries a rate check (limits high enough to admit
every request, as for a caller within its limits) and one without, interleaved in alternating order on
one connection, after a warm-up. One caller, so its bucket row is updated by every checked request, as
it is for a busy caller. The HTTP layers around (auth, routing, the header middleware) are the same in
both and not part of the difference.
"""

from __future__ import annotations

import dataclasses
import statistics
import time
import uuid
from collections.abc import Callable

import psycopg
from pydantic import SecretStr

from bench._db import throwaway_database
from bench._report import SUMMARY_HEADERS, ms, summarize, summary_row, table
from oneai.account import service as account
from oneai.auth import Principal, authenticate, mint_dev_token
from oneai.chat.requests import ChatTurn
from oneai.chat.turn import prepare_turn
from oneai.config import override_settings
from oneai.db.connection import Database
from oneai.ratelimit import RateCheck, RatePolicy

PAIRS = 400
QUICK_PAIRS = 80
WARMUP = 20
JWT_SECRET = "bench-jwt-secret-for-the-oneai-benchmarks-0000"  # noqa: S105 - a local throwaway key
SUPABASE_URL = "http://127.0.0.1:54321"
ISSUER = f"{SUPABASE_URL}/auth/v1"
HIGH = 10_000_000  # admits everything: the cost of an admitted check
CHAT_MODEL = "anthropic/claude-3.5-haiku"


def make_user(url: str) -> Principal:
    user_id = uuid.uuid4()
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(
            "insert into auth.users (id, email) values (%s, %s)", (user_id, f"{user_id.hex[:8]}@bench.test")
        )
        conn.execute("update public.usage_quotas set quota_limit = %s where user_id = %s", (HIGH, user_id))
    token = mint_dev_token(user_id, secret=JWT_SECRET, issuer=ISSUER)
    return authenticate(f"Bearer {token}")


def checked(principal: Principal, bucket: str) -> Principal:
    return dataclasses.replace(principal, rate_check=RateCheck(RatePolicy(bucket, HIGH, HIGH)))  # type: ignore[arg-type]


def pairs(
    count: int, without: Callable[[], None], with_check: Callable[[], None]
) -> tuple[list[float], list[float]]:
    """Timings of `without` and `with_check`, interleaved (the order alternates), after a warm-up."""
    for _ in range(WARMUP):
        without()
        with_check()
    plain: list[float] = []
    limited: list[float] = []
    for index in range(count):
        order = ((without, plain), (with_check, limited))
        for work, samples in order if index % 2 == 0 else reversed(order):
            started = time.perf_counter()
            work()
            samples.append(time.perf_counter() - started)
    return plain, limited


def run(*, quick: bool = False) -> None:
    count = QUICK_PAIRS if quick else PAIRS
    print("== rate_limit: the added cost of the rate check (one GCRA UPDATE in the first round trip) ==")
    started = time.perf_counter()
    with throwaway_database() as url:
        with psycopg.connect(url) as admin:
            version_row = admin.execute("show server_version").fetchone()
        with override_settings(
            database_url=SecretStr(url),
            supabase_jwt_secret=SecretStr(JWT_SECRET),
            supabase_jwt_issuer=ISSUER,
            supabase_url=SUPABASE_URL,
            dev_mode=False,
        ) as settings:
            db = Database(settings)
            try:
                principal = make_user(url)

                # A fresh check per request, as each request gets one.
                def quota_route(bucket: str | None) -> Callable[[], None]:
                    def work() -> None:
                        who = principal if bucket is None else checked(principal, bucket)
                        with db.user_transaction(who) as conn:
                            account.quota_overview(conn)

                    return work

                def chat_prepare(bucket: str | None) -> Callable[[], None]:
                    def work() -> None:
                        who = principal if bucket is None else checked(principal, bucket)
                        turn = ChatTurn(
                            conversation_id=None, model=CHAT_MODEL, action="send", content="Hello", message_id=None
                        )
                        prepare_turn(db, who, turn)

                    return work

                buffered = pairs(count, quota_route(None), quota_route("all"))
                chat = pairs(count, chat_prepare(None), chat_prepare("chat"))
            finally:
                db.close()
    version = version_row[0] if version_row else "?"
    rows = []
    for label, (plain, limited) in (
        ("GET /user/quota (transaction + quota overview)", buffered),
        ("POST /chat/stream (prepare_turn, new conversation)", chat),
    ):
        rows.append(summary_row(f"{label}, without the check", summarize(plain)))
        rows.append(summary_row(f"{label}, with the check", summarize(limited)))
        added = statistics.median(limited) - statistics.median(plain)
        paired = statistics.median(b - a for a, b in zip(plain, limited, strict=True))
        rows.append(["  added by the check: difference of the medians", ms(added, 3), "", ""])
        # Each pair ran back to back, so its difference is less exposed to a busy machine's drift.
        rows.append(["  added by the check: median of the pairs' differences", ms(paired, 3), "", ""])
    print(
        f"PostgreSQL {version}; one connection, one caller; {count} interleaved pairs per path after"
        f" {WARMUP} warm-up pairs; whole run {time.perf_counter() - started:.1f} s"
    )
    print(table(SUMMARY_HEADERS, rows))
