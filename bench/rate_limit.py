"""What the per-caller rate check adds to a request, on a buffered route and on the chat path, measured
against the same path without it in the same run.

Two measurements, each against the same path without the check in the same run.

1. Where the check runs, on the real database. The check is one more statement in the round trip that
opens a request's first user transaction (the `take_rate_limit` UPDATE, then a savepoint):
- buffered route: what `GET /user/quota` does in the database: `Database.user_transaction` (the first
  round trip sets the scope and reads the users row) and `account.service.quota_overview`;
- chat path: `oneai.chat.turn.prepare_turn` for a new conversation (the transaction before the model is
  called: tier, conversation, quota reserve, user message, history).
Each pair runs the same work with a principal that carries a rate check (limits high enough to admit
every request, as for a caller within its limits) and one without, interleaved in alternating order on
one connection, after a warm-up. One caller, so its bucket row is updated by every checked request, as
it is for a busy caller. The HTTP layers around (auth, routing, the header middleware) are the same in
both and not part of the difference.

2. Over HTTP, as a client sees it: two local servers (`python -m local`, as `make dev` runs it) on the
same database and the same fake OpenRouter, one with the limiter on (limits high enough to admit
everything), one with `ONEAI_RATE_LIMIT_ENABLED=false`; the same caller sends `GET /user/quota`, and
`POST /chat/stream` into a new conversation (the whole stream read; the fake replies at once), to each
in turn, alternating which goes first, on kept-alive connections.
"""

from __future__ import annotations

import contextlib
import dataclasses
import statistics
import time
import uuid
from collections.abc import Callable, Iterator

import httpx
import psycopg
from pydantic import SecretStr

from bench._db import throwaway_database
from bench._report import SUMMARY_HEADERS, ms, summarize, summary_row, table
from local.dev_process import LocalServerProcess, run_local_server
from local.fake_openrouter import FakeOpenRouter
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
HTTP_PAIRS = 200
QUICK_HTTP_PAIRS = 40
CHAT_HTTP_PAIRS = 100
QUICK_CHAT_HTTP_PAIRS = 20
JWT_SECRET = "bench-jwt-secret-for-the-oneai-benchmarks-0000"  # noqa: S105 - a local throwaway key
SUPABASE_URL = "http://127.0.0.1:54321"
ISSUER = f"{SUPABASE_URL}/auth/v1"
HIGH = 10_000_000  # admits everything: the cost of an admitted check
CHAT_MODEL = "anthropic/claude-3.5-haiku"


def make_user(url: str) -> tuple[uuid.UUID, str]:
    """A user as Supabase makes one, with quotas too large to run out, and a token for it."""
    user_id = uuid.uuid4()
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(
            "insert into auth.users (id, email) values (%s, %s)", (user_id, f"{user_id.hex[:8]}@bench.test")
        )
        conn.execute("update public.usage_quotas set quota_limit = %s where user_id = %s", (HIGH, user_id))
    return user_id, mint_dev_token(user_id, secret=JWT_SECRET, issuer=ISSUER)


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


@contextlib.contextmanager
def servers(url: str, fake: FakeOpenRouter) -> Iterator[tuple[LocalServerProcess, LocalServerProcess]]:
    """(without the limiter, with it) against the same database and fake upstream."""
    env = {
        "DATABASE_URL": url,
        "SUPABASE_URL": SUPABASE_URL,
        "SUPABASE_JWT_SECRET": JWT_SECRET,
        "OPENROUTER_API_KEY": "sk-or-v1-bench-key",
        "OPENROUTER_BASE_URL": fake.base_url,
        "ONEAI_TITLE_MODEL": CHAT_MODEL,
        "ONEAI_RATE_LIMIT_PER_MINUTE": str(HIGH),
        "ONEAI_RATE_LIMIT_BURST": str(HIGH),
        "ONEAI_CHAT_RATE_LIMIT_PER_MINUTE": str(HIGH),
        "ONEAI_CHAT_RATE_LIMIT_BURST": str(HIGH),
    }
    with (
        run_local_server({**env, "ONEAI_RATE_LIMIT_ENABLED": "false"}) as plain,
        run_local_server({**env, "ONEAI_RATE_LIMIT_ENABLED": "true"}) as limited,
    ):
        yield plain, limited


def check_rows(label: str, plain: list[float], limited: list[float]) -> list[list[str]]:
    """The report's rows for one path measured without and with the check, in interleaved pairs."""
    added = statistics.median(limited) - statistics.median(plain)
    paired = statistics.median(b - a for a, b in zip(plain, limited, strict=True))
    return [
        summary_row(f"{label}, without the check", summarize(plain)),
        summary_row(f"{label}, with the check", summarize(limited)),
        ["  added by the check: difference of the medians", ms(added, 3), "", ""],
        # Each pair ran back to back, so its difference is less exposed to a busy machine's drift.
        ["  added by the check: median of the pairs' differences", ms(paired, 3), "", ""],
    ]


def over_http(url: str, http_pairs: int, chat_pairs: int) -> list[tuple[str, tuple[list[float], list[float]]]]:
    _, token = make_user(url)
    headers = {"authorization": f"Bearer {token}"}
    chat_body = {"model": CHAT_MODEL, "content": "Hello"}
    with (
        FakeOpenRouter(delay=0.0) as fake,
        servers(url, fake) as (plain, limited),
        httpx.Client(base_url=plain.base_url) as to_plain,
        httpx.Client(base_url=limited.base_url) as to_limited,
    ):

        def quota(client: httpx.Client) -> Callable[[], None]:
            def work() -> None:
                response = client.get("/user/quota", headers=headers)
                if response.status_code != 200 or (client is to_limited) != ("ratelimit" in response.headers):
                    raise RuntimeError(f"GET /user/quota: {response.status_code} {response.text[:200]}")

            return work

        def chat(client: httpx.Client) -> Callable[[], None]:
            def work() -> None:
                response = client.post("/chat/stream", json=chat_body, headers=headers, timeout=30)
                if response.status_code != 200 or '"type":"finish"' not in response.text:
                    raise RuntimeError(f"POST /chat/stream: {response.status_code} {response.text[:200]}")

            return work

        return [
            ("GET /user/quota over HTTP", pairs(http_pairs, quota(to_plain), quota(to_limited))),
            ("POST /chat/stream over HTTP (whole reply)", pairs(chat_pairs, chat(to_plain), chat(to_limited))),
        ]


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
                principal = authenticate(f"Bearer {make_user(url)[1]}")

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
        http = over_http(
            url,
            QUICK_HTTP_PAIRS if quick else HTTP_PAIRS,
            QUICK_CHAT_HTTP_PAIRS if quick else CHAT_HTTP_PAIRS,
        )
    version = version_row[0] if version_row else "?"
    rows = []
    for label, (plain, limited) in (
        ("GET /user/quota (transaction + quota overview)", buffered),
        ("POST /chat/stream (prepare_turn, new conversation)", chat),
        *http,
    ):
        rows += check_rows(label, plain, limited)
    print(
        f"PostgreSQL {version}; one caller; database work: one connection, {count} interleaved pairs per path;"
        f" HTTP: two local servers, kept-alive connections; {WARMUP} warm-up pairs each;"
        f" whole run {time.perf_counter() - started:.1f} s"
    )
    print(table(SUMMARY_HEADERS, rows))
