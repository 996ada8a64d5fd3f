"""API keys against the real database: only a hash stored, RLS between users, the lookup of a request's
key (revoked, expired, wrong secret), `last_used_at` at most once a minute, usage tagged with the key."""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import psycopg
import pytest

from oneai import api_keys
from oneai.account.models import UsageQuery
from oneai.account.service import usage_report
from oneai.db import api_keys as key_rows
from oneai.db.connection import Database
from oneai.errors import ConflictError, NotFoundError, UnauthorizedError
from tests.conftest import AppUser

pytestmark = pytest.mark.integration


def create(
    db: Database, user: AppUser, name: str = "ci", expires_at: datetime | None = None
) -> api_keys.ApiKeyCreated:
    with db.user_transaction(user.principal) as conn:
        return api_keys.create_key(conn, api_keys.ApiKeyCreate(name=name, expires_at=expires_at))


def test_given_a_new_key_then_only_its_hash_is_stored_and_users_cannot_read_the_hash(
    db: Database, database_url: str, make_user: Callable[..., AppUser]
) -> None:
    user = make_user()
    created = create(db, user)
    assert created.key.startswith("oneai_sk_") and len(created.key) == len("oneai_sk_") + 54
    assert created.key.startswith(created.prefix) and len(created.prefix) == len("oneai_sk_") + 12
    with psycopg.connect(database_url, autocommit=True) as conn:
        row = conn.execute(
            "select to_jsonb(k) as k, secret_hash from public.api_keys k where id = %s", (created.id,)
        ).fetchone()
    assert row is not None
    assert bytes(row[1]) == hashlib.sha256(created.key.encode()).digest()
    assert created.key not in str(row[0])  # the key itself is nowhere in the row
    with pytest.raises(psycopg.errors.InsufficientPrivilege), db.user_transaction(user.principal) as conn:
        conn.execute("select secret_hash from public.api_keys")


def test_given_two_users_then_each_sees_and_revokes_only_their_own_keys(
    db: Database, make_user: Callable[..., AppUser]
) -> None:
    alice, bob = make_user(), make_user()
    alices = create(db, alice, "alice's")
    create(db, bob, "bob's")
    with db.user_transaction(bob.principal) as conn:
        assert [k.name for k in api_keys.list_keys(conn).items] == ["bob's"]
        with pytest.raises(NotFoundError):
            api_keys.revoke_key(conn, alices.id)
    principal = api_keys.authenticate_api_key(db, f"Bearer {alices.key}")
    assert (principal.user_id, principal.api_key_id) == (alice.id, alices.id)


@pytest.mark.parametrize("spoil", ["revoked", "expired", "wrong secret", "unknown prefix", "malformed"])
def test_given_a_key_that_must_not_work_then_it_is_401(
    db: Database, database_url: str, make_user: Callable[..., AppUser], spoil: str
) -> None:
    created = create(db, make_user())
    key = created.key
    if spoil == "revoked":
        with db.user_transaction(api_keys.authenticate_api_key(db, f"Bearer {key}")) as conn:
            api_keys.revoke_key(conn, created.id)
    elif spoil == "expired":
        with psycopg.connect(database_url, autocommit=True) as conn:
            conn.execute(
                "update public.api_keys set expires_at = now() - interval '1 second' where id = %s", (created.id,)
            )
    elif spoil == "wrong secret":
        key = key[:-1] + ("A" if key[-1] != "A" else "B")
    elif spoil == "unknown prefix":
        key = "oneai_sk_" + "Z" * 54
    else:
        key = key + "!"
    with pytest.raises(UnauthorizedError):
        api_keys.authenticate_api_key(db, f"Bearer {key}")


def test_given_a_key_with_an_expiry_then_it_works_until_then(
    db: Database, make_user: Callable[..., AppUser]
) -> None:
    user = make_user()
    created = create(db, user, expires_at=datetime.now(UTC) + timedelta(hours=1))
    assert api_keys.authenticate_api_key(db, f"Bearer {created.key}").user_id == user.id
    with pytest.raises(ValueError, match="future"):
        api_keys.ApiKeyCreate(name="late", expires_at=datetime.now(UTC) - timedelta(seconds=1))


def last_used(database_url: str, key_id: object) -> datetime | None:
    with psycopg.connect(database_url, autocommit=True) as conn:
        row = conn.execute("select last_used_at from public.api_keys where id = %s", (key_id,)).fetchone()
    assert row is not None
    return row[0]  # type: ignore[no-any-return]


def test_given_requests_with_a_key_then_last_used_at_is_written_at_most_once_a_minute(
    db: Database, database_url: str, make_user: Callable[..., AppUser]
) -> None:
    created = create(db, make_user())
    assert last_used(database_url, created.id) is None
    principal = api_keys.authenticate_api_key(db, f"Bearer {created.key}")
    with db.user_transaction(principal):
        pass
    first = last_used(database_url, created.id)
    assert first is not None
    with db.user_transaction(dataclasses.replace(principal)):
        pass
    assert last_used(database_url, created.id) == first  # within the minute: not written again
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(
            "update public.api_keys set last_used_at = now() - interval '2 minutes' where id = %s", (created.id,)
        )
    with db.user_transaction(principal):
        pass
    later = last_used(database_url, created.id)
    assert later is not None and later > first - timedelta(minutes=1)


def test_given_the_cap_of_live_keys_then_one_more_is_a_conflict(
    db: Database, make_user: Callable[..., AppUser]
) -> None:
    user = make_user()
    for number in range(api_keys.MAX_LIVE_KEYS):
        create(db, user, f"key {number}")
    with pytest.raises(ConflictError):
        create(db, user, "one too many")


def test_given_usage_made_with_keys_then_the_report_groups_it_by_key_and_other_keys_are_refused(
    db: Database, make_user: Callable[..., AppUser]
) -> None:
    alice, bob = make_user(), make_user()
    first, second = create(db, alice, "first"), create(db, alice, "second")
    bobs = create(db, bob, "bob's")
    with db.user_transaction(alice.principal) as conn:
        for key, tokens in ((first, 10), (first, 5), (second, 1)):
            key_rows.record_api_usage(
                conn,
                api_key_id=key.id,
                quota_key="small_messages",
                requested_model="openai/gpt-4o-mini",
                model_id="openai/gpt-4o-mini",
                generation_id=None,
                prompt_tokens=tokens,
                completion_tokens=1,
                cost=Decimal("0.001"),
                status="complete",
            )
        report = usage_report(conn, UsageQuery.model_validate({"group_by": "api_key"}))
    by_key = {row.group: (row.messages, row.prompt_tokens) for row in report.items}
    assert by_key == {str(first.id): (2, 15), str(second.id): (1, 1)}
    with pytest.raises(psycopg.errors.NoDataFound), db.user_transaction(alice.principal) as conn:
        key_rows.record_api_usage(
            conn,
            api_key_id=bobs.id,
            quota_key="small_messages",
            requested_model="x",
            model_id="x",
            generation_id=None,
            prompt_tokens=1,
            completion_tokens=1,
            cost=Decimal(0),
            status="complete",
        )
