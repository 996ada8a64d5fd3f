"""The erasure's `on_erased` hook (what `DELETE /admin/users/{id}` writes its audit entry with) runs inside
the erasure's last transaction: what it writes commits with the erasure, and when it fails, nothing of the
erasure commits either."""

from __future__ import annotations

import uuid

import psycopg
import pytest

from oneai.account.erasure import ErasureReport, erase_account
from oneai.billing.razorpay_client import RazorpayClient
from oneai.db.connection import Connection, Database
from tests.conftest import create_user


def no_razorpay() -> RazorpayClient:
    raise AssertionError("a user without a subscription needs no Razorpay call")


def user_rows(database_url: str, user_id: uuid.UUID) -> tuple[int, int]:
    with psycopg.connect(database_url) as conn:
        row = conn.execute(
            "select (select count(*) from auth.users where id = %(id)s),"
            " (select count(*) from public.conversations where user_id = %(id)s)",
            {"id": user_id},
        ).fetchone()
    assert row is not None
    return int(row[0]), int(row[1])


def add_conversations(database_url: str, user_id: uuid.UUID, count: int) -> None:
    with psycopg.connect(database_url, autocommit=True) as conn:
        for n in range(count):
            conn.execute("insert into public.conversations (user_id, title) values (%s, %s)", (user_id, f"c{n}"))


def test_the_hook_sees_the_counts_and_writes_in_the_erasures_transaction(db: Database, database_url: str) -> None:
    user = create_user(database_url)
    add_conversations(database_url, user.id, 2)
    seen: list[ErasureReport] = []

    def hook(conn: Connection, report: ErasureReport) -> None:
        seen.append(report)
        # the rows are already gone inside this transaction
        row = conn.execute("select count(*) as n from auth.users where id = %s", (user.id,)).fetchone()
        assert row is not None and row["n"] == 0

    report = erase_account(db, user.id, razorpay=no_razorpay, on_erased=hook)

    assert seen == [report]
    assert report.erased and report.subscriptions_cancelled == 0
    assert report.rows_erased["conversations"] == 2 and report.rows_erased["api_keys"] == 0
    assert user_rows(database_url, user.id) == (0, 0)


def test_a_failing_hook_rolls_the_erasure_back(db: Database, database_url: str) -> None:
    user = create_user(database_url)
    add_conversations(database_url, user.id, 1)

    def failing(conn: Connection, report: ErasureReport) -> None:
        raise RuntimeError("the audit entry could not be written")

    with pytest.raises(RuntimeError):
        erase_account(db, user.id, razorpay=no_razorpay, on_erased=failing)

    assert user_rows(database_url, user.id) == (1, 1)
    # and a retry without the failure finishes the job
    assert erase_account(db, user.id, razorpay=no_razorpay).erased
    assert user_rows(database_url, user.id) == (0, 0)


def test_without_a_hook_nothing_is_counted(db: Database, database_url: str) -> None:
    user = create_user(database_url)
    report = erase_account(db, user.id, razorpay=no_razorpay)
    assert report.erased and dict(report.rows_erased) == {}
