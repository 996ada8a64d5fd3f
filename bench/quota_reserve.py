"""Quota reserves per second with 32 concurrent connections: our one conditional UPDATE against the plan's
check-then-increment, measured in the same run against the same database.

Each of the 32 threads has its own `Database` (its own connection, opened before a barrier releases
them all at once). The variants:
- ours: `oneai.quota.service.reserve` in a user transaction (role `authenticated`, JWT claims, the
  users-row check, then `oneai_private.reserve_quota`: one conditional UPDATE), as the API does it;
- naive: the plan's QuotaManager as the service role: `SELECT used_count, quota_limit`, compare in
  Python, then `UPDATE ... SET used_count = used_count + 1` in a second statement.
The phases:
- spread: 32 users with a limit of 10^9, one thread each (no two requests on the same row), timed;
- hot: one user with a limit of 10^9, all 32 threads on its row, timed;
- edge: 4 users with 50 units left each, 8 threads per user making a fixed number of attempts (more
  attempts than units): most are refused, and every admission beyond the units left is an
  over-admission, counted from the admitted count per user against the units that were left and
  checked against the row's final used_count.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

import psycopg
from pydantic import SecretStr

from bench._db import throwaway_database
from bench._report import ms, summarize, table
from oneai.auth import Principal, authenticate, mint_dev_token
from oneai.config import Settings, override_settings
from oneai.db.connection import Database
from oneai.errors import QuotaExceededError
from oneai.quota import service as quota

THREADS = 32
SECONDS = 2.5
QUICK_SECONDS = 0.75
BIG_LIMIT = 1_000_000_000
EDGE_USERS = 4
EDGE_LEFT = 50
EDGE_ATTEMPTS = 20  # per thread: 8 threads x 20 = 160 attempts per user for 50 units
KEY = "small_messages"

JWT_SECRET = "bench-jwt-secret-for-the-oneai-benchmarks-0000"  # noqa: S105 - a local throwaway key
SUPABASE_URL = "http://127.0.0.1:54321"
ISSUER = f"{SUPABASE_URL}/auth/v1"

Variant = Literal["ours", "naive"]
VARIANTS: tuple[Variant, ...] = ("ours", "naive")

NAIVE_CHECK = "select used_count, quota_limit from public.usage_quotas where user_id = %s and quota_key = %s"
NAIVE_INCREMENT = (
    "update public.usage_quotas set used_count = used_count + 1 where user_id = %s and quota_key = %s"
)
USED = (
    "select user_id, used_count, quota_limit from public.usage_quotas where quota_key = %s and user_id = any(%s)"
)
SET_USAGE = (
    "update public.usage_quotas set quota_limit = %s, used_count = %s where quota_key = %s and user_id = any(%s)"
)


@dataclass(frozen=True)
class User:
    id: uuid.UUID
    principal: Principal


@dataclass
class Worker:
    """One thread: its own Database, the user it reserves for, what it saw."""

    database: Database
    user: User
    latencies: list[float] = field(default_factory=list)
    admitted: int = 0
    refused: int = 0
    error: BaseException | None = None


@dataclass(frozen=True)
class Result:
    phase: str
    variant: Variant
    seconds: float
    latencies: list[float]
    admitted: int
    refused: int
    over_admitted: int
    over_limit_rows: int


def ours(worker: Worker) -> bool:
    try:
        with worker.database.user_transaction(worker.user.principal) as conn:
            quota.reserve(conn, KEY)
    except QuotaExceededError:
        return False
    return True


def naive(worker: Worker) -> bool:
    with worker.database.service_transaction() as conn:
        row = conn.execute(NAIVE_CHECK, (worker.user.id, KEY)).fetchone()
        if row is None or row["used_count"] + 1 > row["quota_limit"]:
            return False
        conn.execute(NAIVE_INCREMENT, (worker.user.id, KEY))
        return True


OPERATIONS: dict[Variant, Callable[[Worker], bool]] = {"ours": ours, "naive": naive}


def warm(worker: Worker, variant: Variant) -> None:
    """Open this thread's connection (Database keeps one per thread) before the barrier."""
    if variant == "ours":
        with worker.database.user_transaction(worker.user.principal):
            pass
    else:
        with worker.database.service_transaction():
            pass


def drive(workers: list[Worker], variant: Variant, *, seconds: float | None, attempts: int | None) -> float:
    """Every worker in its own thread, released together; until `seconds` pass or `attempts` are made.
    Returns the wall time from the release to the last worker's end."""
    operation = OPERATIONS[variant]
    barrier = threading.Barrier(len(workers) + 1)

    def run(worker: Worker) -> None:
        try:
            warm(worker, variant)
        except BaseException as exc:
            worker.error = exc
        barrier.wait(timeout=60)
        if worker.error is not None:
            return
        deadline = time.perf_counter() + (seconds or 0.0)
        try:
            made = 0
            while (attempts is None or made < attempts) and (seconds is None or time.perf_counter() < deadline):
                started = time.perf_counter()
                admitted = operation(worker)
                worker.latencies.append(time.perf_counter() - started)
                made += 1
                if admitted:
                    worker.admitted += 1
                else:
                    worker.refused += 1
        except BaseException as exc:
            worker.error = exc

    threads = [threading.Thread(target=run, args=(w,)) for w in workers]
    for thread in threads:
        thread.start()
    # Everyone is connected once the barrier breaks; the clock starts then.
    barrier.wait(timeout=60)
    started = time.perf_counter()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - started
    errors = [w.error for w in workers if w.error is not None]
    if errors:
        raise RuntimeError(f"{len(errors)} worker(s) failed; first: {errors[0]!r}") from errors[0]
    return elapsed


def set_usage(url: str, users: list[User], *, limit: int, used: int) -> None:
    with psycopg.connect(url, autocommit=True) as admin:
        admin.execute(SET_USAGE, (limit, used, KEY, [u.id for u in users]))


def usage(url: str, users: list[User]) -> dict[uuid.UUID, tuple[int, int]]:
    with psycopg.connect(url) as admin:
        return {row[0]: (row[1], row[2]) for row in admin.execute(USED, (KEY, [u.id for u in users]))}


def measure(
    url: str,
    settings: Settings,
    phase: str,
    variant: Variant,
    assignment: list[User],
    *,
    limit: int,
    used: int,
    seconds: float | None = None,
    attempts: int | None = None,
) -> Result:
    """One phase of one variant: usage set to `used` of `limit` for the phase's users, then the race."""
    users = list(dict.fromkeys(assignment))
    set_usage(url, users, limit=limit, used=used)
    workers = [Worker(Database(settings), user) for user in assignment]
    try:
        elapsed = drive(workers, variant, seconds=seconds, attempts=attempts)
    finally:
        for worker in workers:
            worker.database.close()
    admitted_per_user = Counter[uuid.UUID]()
    for worker in workers:
        admitted_per_user[worker.user.id] += worker.admitted
    final = usage(url, users)
    left = limit - used
    for user in users:
        if final[user.id][0] != used + admitted_per_user[user.id]:  # neither variant may lose an update
            raise RuntimeError(f"{variant}: used_count {final[user.id][0]} != {used} + admitted")
    return Result(
        phase=phase,
        variant=variant,
        seconds=elapsed,
        latencies=[latency for w in workers for latency in w.latencies],
        admitted=sum(w.admitted for w in workers),
        refused=sum(w.refused for w in workers),
        over_admitted=sum(max(0, admitted_per_user[u.id] - left) for u in users),
        over_limit_rows=sum(1 for used_now, row_limit in final.values() if used_now > row_limit),
    )


def make_users(url: str, count: int) -> list[User]:
    ids = [uuid.uuid4() for _ in range(count)]
    emails = [f"bench-quota-{i.hex[:10]}@example.test" for i in ids]
    with psycopg.connect(url, autocommit=True) as admin, admin.cursor() as cur:
        # As Supabase does it: auth.users rows; the trigger creates users and their free quotas.
        cur.executemany("insert into auth.users (id, email) values (%s, %s)", list(zip(ids, emails, strict=True)))
    return [
        User(i, authenticate("Bearer " + mint_dev_token(i, secret=JWT_SECRET, issuer=ISSUER, email=e)))
        for i, e in zip(ids, emails, strict=True)
    ]


def run(*, quick: bool = False) -> None:
    seconds = QUICK_SECONDS if quick else SECONDS
    print(
        f"== quota_reserve: reserves/s with {THREADS} concurrent connections,"
        " one conditional UPDATE vs the plan's check-then-increment =="
    )
    results: list[Result] = []
    started = time.perf_counter()
    with throwaway_database() as url:
        with psycopg.connect(url) as admin:
            version_row = admin.execute("show server_version").fetchone()
        version = version_row[0] if version_row else "?"
        with override_settings(
            database_url=SecretStr(url),
            supabase_jwt_secret=SecretStr(JWT_SECRET),
            supabase_jwt_issuer=ISSUER,
            supabase_url=SUPABASE_URL,
            dev_mode=False,
        ) as settings:
            spread = make_users(url, THREADS)
            hot = make_users(url, 1)
            edge = make_users(url, EDGE_USERS)
            per_edge_user = THREADS // EDGE_USERS
            phases: list[tuple[str, list[User], int, int, float | None, int | None]] = [
                (f"spread: {THREADS} users, 1 thread each", spread, BIG_LIMIT, 0, seconds, None),
                (f"hot: 1 user, {THREADS} threads", hot * THREADS, BIG_LIMIT, 0, seconds, None),
                (
                    f"edge: {EDGE_USERS} users x {EDGE_LEFT} left, {per_edge_user} threads x {EDGE_ATTEMPTS}",
                    [u for u in edge for _ in range(per_edge_user)],
                    100,
                    100 - EDGE_LEFT,
                    None,
                    EDGE_ATTEMPTS,
                ),
            ]
            for phase, assignment, limit, used, phase_seconds, attempts in phases:
                for variant in VARIANTS:
                    results.append(
                        measure(
                            url,
                            settings,
                            phase,
                            variant,
                            assignment,
                            limit=limit,
                            used=used,
                            seconds=phase_seconds,
                            attempts=attempts,
                        )
                    )
    report(results, version, seconds, time.perf_counter() - started)


def report(results: list[Result], version: str, seconds: float, total: float) -> None:
    print(
        f"PostgreSQL {version}; {THREADS} threads, each its own connection, released by a barrier;"
        f" timed phases {seconds:g} s; whole run {total:.1f} s (database made, migrated and dropped)"
    )
    rows = []
    for r in results:
        summary = summarize(r.latencies)
        rows.append(
            [
                r.phase,
                r.variant,
                f"{len(r.latencies):,}",
                f"{len(r.latencies) / r.seconds:,.0f}",
                ms(summary.median),
                ms(summary.p95),
                f"{r.admitted:,}",
                f"{r.refused:,}",
                str(r.over_admitted),
            ]
        )
    headers = ("phase", "variant", "ops", "ops/s", "p50 ms", "p95 ms", "admitted", "refused", "OVER-ADMITTED")
    print(table(headers, rows, align="llrrrrrrr"))
    print(
        "per op: ours = user transaction (role, claims and the users-row check in one round trip) +"
        " reserve_quota + COMMIT, 3 round trips; naive = service transaction + SELECT + UPDATE + COMMIT,"
        " 4 round trips, no users-row check"
    )
    edge = {r.variant: r for r in results if r.phase.startswith("edge")}
    ours_over = sum(r.over_admitted for r in results if r.variant == "ours")
    print(
        f"edge: {EDGE_USERS * EDGE_LEFT} units left in all; ours admitted {edge['ours'].admitted},"
        f" naive {edge['naive'].admitted} ({edge['naive'].over_limit_rows} of {EDGE_USERS} rows ended over"
        " their limit)"
    )
    verdict = "PASS" if ours_over == 0 else "FAIL"
    print(f"goal: over-admissions of the conditional reserve = 0: {ours_over}  {verdict}")


if __name__ == "__main__":
    run()
