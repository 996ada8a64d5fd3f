"""What a reply paid from a workspace's credits costs in the database, next to the personal quota's reserve,
in the same run against the same database (issue 26).

Per reply, the credits take two steps where the quota takes one reserve (its settle writes nothing more
than the usage record the turn writes anyway): `reserve_credits` before the model is called (one
conditional UPDATE on the workspace's account row, plus the reservation row), and `settle_credits` after
(lock the account row, take the cost, release the hold, write the ledger row). Each step runs as the API
runs it: a user transaction (role, claims, the users-row check) + the call + COMMIT, for a member of the
workspace. The phases:
- sequential: one connection, one reply after another (latency without contention), each step in its
  own transaction, and the statements alone inside one open transaction (what the chat turn adds to the
  two round trips it makes anyway);
- hot: THREADS connections on ONE workspace (every reply queues on its account row) and, for the quota,
  on ONE user's row, released by a barrier, timed; the account ends checked: balance = purchases minus the
  settled usage, nothing held.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal

import psycopg
from pydantic import SecretStr

from bench._db import throwaway_database
from bench._report import ms, summarize, table
from oneai.auth import Principal, authenticate, mint_dev_token
from oneai.config import Settings, override_settings
from oneai.credits import service as credits
from oneai.db.connection import Database
from oneai.quota import service as quota

THREADS = 16
SEQUENTIAL = 400
QUICK_SEQUENTIAL = 100
SECONDS = 2.5
QUICK_SECONDS = 0.75
KEY = "small_messages"
RESERVE = Decimal("0.50")  # INR held per reply
COST_USD = Decimal("0.00012")  # what a small reply costs (gpt-4o-mini, a few hundred tokens)

JWT_SECRET = "bench-jwt-secret-for-the-oneai-benchmarks-0000"  # noqa: S105 - a local throwaway key
SUPABASE_URL = "http://127.0.0.1:54321"
ISSUER = f"{SUPABASE_URL}/auth/v1"


@dataclass
class Sample:
    label: str
    latencies: list[float] = field(default_factory=list)
    seconds: float = 0.0


def make_user(url: str) -> tuple[uuid.UUID, Principal]:
    user_id = uuid.uuid4()
    email = f"bench-credits-{user_id.hex[:10]}@example.test"
    with psycopg.connect(url, autocommit=True) as admin:
        admin.execute("insert into auth.users (id, email) values (%s, %s)", (user_id, email))
        admin.execute(
            "update public.usage_quotas set quota_limit = 1000000000 where user_id = %s and quota_key = %s",
            (user_id, KEY),
        )
    return user_id, authenticate(
        "Bearer " + mint_dev_token(user_id, secret=JWT_SECRET, issuer=ISSUER, email=email)
    )


def fund(db: Database, url: str, user_id: uuid.UUID, inr: Decimal) -> uuid.UUID:
    """The user's personal workspace, with `inr` bought (an order paid, as the webhook credits it)."""
    order = f"order_bench{uuid.uuid4().hex[:12]}"
    with psycopg.connect(url, autocommit=True) as admin:
        row = admin.execute(
            "select id from public.workspaces where owner_id = %s and personal", (user_id,)
        ).fetchone()
        assert row is not None
        workspace_id: uuid.UUID = row[0]
        admin.execute(
            "insert into public.credit_orders (razorpay_order_id, workspace_id, amount, amount_paise)"
            " values (%s, %s, %s, %s)",
            (order, workspace_id, inr, int(inr * 100)),
        )
    with db.service_transaction() as conn:
        conn.execute(
            "select oneai_private.apply_credit_purchase(%s, %s, %s, 'INR')",
            (order, f"pay_{order}", int(inr * 100)),
        )
    return workspace_id


def quota_reply(db: Database, principal: Principal) -> None:
    with db.user_transaction(principal) as conn:
        quota.reserve(conn, KEY)


def credits_reserve(db: Database, principal: Principal, workspace_id: uuid.UUID) -> credits.Reservation:
    with db.user_transaction(principal) as conn:
        return credits.reserve(conn, workspace_id, RESERVE)


def credits_settle(
    db: Database, principal: Principal, reservation: credits.Reservation, settings: Settings
) -> None:
    with db.user_transaction(principal) as conn:
        credits.settle(conn, settings, reservation.id, cost_usd=COST_USD)


def sequential(
    db: Database, principal: Principal, workspace_id: uuid.UUID, settings: Settings, n: int
) -> list[Sample]:
    q, r, s, both = Sample("quota reserve"), Sample("credits reserve"), Sample("credits settle"), Sample("")
    both.label = "credits reserve + settle (per reply)"
    for _ in range(n):
        t0 = time.perf_counter()
        quota_reply(db, principal)
        t1 = time.perf_counter()
        held = credits_reserve(db, principal, workspace_id)
        t2 = time.perf_counter()
        credits_settle(db, principal, held, settings)
        t3 = time.perf_counter()
        q.latencies.append(t1 - t0)
        r.latencies.append(t2 - t1)
        s.latencies.append(t3 - t2)
        both.latencies.append(t3 - t1)
    # The statements alone, inside one open transaction (what the chat turn adds to the round trips it
    # makes anyway: its prepare and finish transactions would call these among their other statements).
    sq, sr, ss = Sample("  statement: reserve_quota"), Sample("  statement: reserve_credits"), Sample("")
    ss.label = "  statement: settle_credits"
    with db.user_transaction(principal) as conn:
        for _ in range(n):
            t0 = time.perf_counter()
            conn.execute("select * from oneai_private.reserve_quota(%s, 1)", (KEY,)).fetchone()
            t1 = time.perf_counter()
            held = credits.reserve(conn, workspace_id, RESERVE)
            t2 = time.perf_counter()
            credits.settle(conn, settings, held.id, cost_usd=COST_USD)
            t3 = time.perf_counter()
            sq.latencies.append(t1 - t0)
            sr.latencies.append(t2 - t1)
            ss.latencies.append(t3 - t2)
    return [q, r, s, both, sq, sr, ss]


def hot(
    settings: Settings,
    principal: Principal,
    *,
    seconds: float,
    label: str,
    reply: Callable[[Database], None],
) -> Sample:
    sample = Sample(label)
    databases = [Database(settings) for _ in range(THREADS)]
    barrier = threading.Barrier(THREADS + 1)
    lock = threading.Lock()
    errors: list[BaseException] = []

    def run(db: Database) -> None:
        with db.user_transaction(principal):
            pass
        barrier.wait(timeout=60)
        deadline = time.perf_counter() + seconds
        mine: list[float] = []
        try:
            while time.perf_counter() < deadline:
                started = time.perf_counter()
                reply(db)
                mine.append(time.perf_counter() - started)
        except BaseException as exc:
            errors.append(exc)
        with lock:
            sample.latencies.extend(mine)

    threads = [threading.Thread(target=run, args=(d,)) for d in databases]
    for thread in threads:
        thread.start()
    barrier.wait(timeout=60)
    started = time.perf_counter()
    for thread in threads:
        thread.join()
    sample.seconds = time.perf_counter() - started
    for db in databases:
        db.close()
    if errors:
        raise RuntimeError(f"{len(errors)} worker(s) failed; first: {errors[0]!r}") from errors[0]
    return sample


def run(*, quick: bool = False) -> None:
    n = QUICK_SEQUENTIAL if quick else SEQUENTIAL
    seconds = QUICK_SECONDS if quick else SECONDS
    print(
        "== credit_reserve: a reply paid from credits (reserve + settle) next to the personal quota's reserve =="
    )
    started = time.perf_counter()
    with throwaway_database() as url:
        with override_settings(
            database_url=SecretStr(url),
            supabase_jwt_secret=SecretStr(JWT_SECRET),
            supabase_jwt_issuer=ISSUER,
            supabase_url=SUPABASE_URL,
            dev_mode=False,
            rate_limit_enabled=False,
        ) as settings:
            user_id, principal = make_user(url)
            bought = Decimal("10000000")
            db = Database(settings)
            try:
                workspace_id = fund(db, url, user_id, bought)
                rows = sequential(db, principal, workspace_id, settings, n)
            finally:
                db.close()

            def credit_reply(database: Database) -> None:
                credits_settle(database, principal, credits_reserve(database, principal, workspace_id), settings)

            hot_quota = hot(
                settings,
                principal,
                seconds=seconds,
                label=f"hot quota reserve, {THREADS} threads, 1 user",
                reply=lambda database: quota_reply(database, principal),
            )
            hot_credits = hot(
                settings,
                principal,
                seconds=seconds,
                label=f"hot credits reserve + settle, {THREADS} threads, 1 workspace",
                reply=credit_reply,
            )
        with psycopg.connect(url) as admin:
            account = admin.execute(
                "select balance, reserved from public.workspace_credits where workspace_id = %s", (workspace_id,)
            ).fetchone()
            usage = admin.execute(
                "select coalesce(sum(amount), 0), count(*) from public.credit_transactions"
                " where workspace_id = %s and type = 'usage'",
                (workspace_id,),
            ).fetchone()
    assert account is not None
    assert usage is not None
    table_rows = []
    for sample in rows:
        summary = summarize(sample.latencies)
        table_rows.append(
            [sample.label, "sequential", f"{len(sample.latencies):,}", "", ms(summary.median), ms(summary.p95)]
        )
    for sample in (hot_quota, hot_credits):
        summary = summarize(sample.latencies)
        table_rows.append(
            [
                sample.label,
                "hot",
                f"{len(sample.latencies):,}",
                f"{len(sample.latencies) / sample.seconds:,.0f}",
                ms(summary.median),
                ms(summary.p95),
            ]
        )
    print(f"whole run {time.perf_counter() - started:.1f} s (database made, migrated and dropped)")
    print(table(("operation", "phase", "ops", "ops/s", "p50 ms", "p95 ms"), table_rows, align="llrrrr"))
    balance, reserved = account
    spent, replies = usage
    consistent = balance == bought + spent and reserved == 0 and balance >= 0
    print(
        f"account after {replies:,} settled replies: balance {balance} = bought {bought} + usage {spent},"
        f" held {reserved}: {'PASS' if consistent else 'FAIL'}"
    )


if __name__ == "__main__":
    run()
