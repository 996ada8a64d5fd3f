"""Quota warnings: each of 80/90/100 % is announced once per reset window, also when reserves race,
and lands on EventBridge as one event (moto)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import anyio
import psycopg
import pytest
from pydantic import SecretStr

from local.fake_openrouter import FakeOpenRouter
from oneai import api_keys
from oneai.chat.completions import CompletionRequest
from oneai.chat.entry import start_completion
from oneai.config import Settings, override_settings
from oneai.db.connection import Database
from oneai.errors import QuotaExceededError
from oneai.events import EventPublisher
from oneai.openrouter.client import OpenRouterClient
from oneai.quota import service as quota
from oneai.quota.warnings import announce_warnings
from tests.aws_support import Received, captured_events

BUS = "oneai-test-bus"


def set_quota(database_url: str, user_id: Any, *, used: int, limit: int, key: str = "small_messages") -> None:
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(
            "update public.usage_quotas set used_count = %s, quota_limit = %s, warning_level = 0"
            " where user_id = %s and quota_key = %s",
            (used, limit, user_id, key),
        )


def reserve(db: Database, user: Any, units: int = 1) -> quota.Reservation:
    with db.user_transaction(user.principal) as conn:
        return quota.reserve(conn, "small_messages", units)


def test_each_threshold_is_crossed_once_per_window(db: Database, make_user: Any, database_url: str) -> None:
    user = make_user()
    set_quota(database_url, user.id, used=6, limit=10)
    # GIVEN 6 of 10 used, WHEN reserving one at a time THEN 80, 90 and 100 % are each crossed once
    crossed = [reserve(db, user).warnings_crossed for _ in range(4)]
    assert crossed == [(), (80,), (90,), (100,)]
    with pytest.raises(QuotaExceededError):
        reserve(db, user)
    # WHEN a new window starts THEN the thresholds can be crossed again
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(
            "update public.usage_quotas set next_reset_at = now() - interval '1 second'"
            " where user_id = %s and quota_key = 'small_messages'",
            (user.id,),
        )
    assert reserve(db, user).warnings_crossed == ()
    assert reserve(db, user, units=7).warnings_crossed == (80,)


def test_a_jump_over_several_thresholds_reports_each(db: Database, make_user: Any, database_url: str) -> None:
    user = make_user()
    set_quota(database_url, user.id, used=7, limit=10)
    assert reserve(db, user, units=3).warnings_crossed == (80, 90, 100)


@pytest.fixture
def eventbridge(monkeypatch: pytest.MonkeyPatch) -> Iterator[Received]:
    """A moto EventBridge bus whose oneai.quota events are read back."""
    with captured_events(monkeypatch, bus=BUS, source="oneai.quota") as received:
        yield received


def test_twenty_concurrent_reserves_crossing_a_threshold_publish_exactly_one_event(
    settings_with_db: Any, make_user: Any, database_url: str, eventbridge: Any
) -> None:
    user = make_user()
    set_quota(database_url, user.id, used=65, limit=100)  # 20 more reserves cross 80 % only
    publisher = EventPublisher(BUS)
    barrier = threading.Barrier(20)
    published: list[int] = []

    def one() -> None:
        database = Database(settings_with_db)
        try:
            with database.user_transaction(user.principal) as conn:
                barrier.wait(timeout=10)
                reservation = quota.reserve(conn, "small_messages")
            published.append(announce_warnings(publisher, user.id, reservation))
        finally:
            database.close()

    threads = [threading.Thread(target=one) for _ in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sum(published) == 1
    events = eventbridge()
    assert len(events) == 1
    event = events[0]
    assert (event["source"], event["detail-type"]) == ("oneai.quota", "QuotaWarning")
    assert event["detail"]["user_id"] == str(user.id)
    assert (event["detail"]["threshold"], event["detail"]["limit"], event["detail"]["quota_key"]) == (
        80, 100, "small_messages",
    )  # fmt: skip
    assert 80 <= event["detail"]["used"] <= 85 and event["detail"]["resets_at"].endswith("Z")


def test_without_a_bus_nothing_is_sent_and_nothing_fails(make_user: Any, db: Database, database_url: str) -> None:
    user = make_user()
    set_quota(database_url, user.id, used=7, limit=10)
    reservation = reserve(db, user)
    assert reservation.warnings_crossed == (80,)
    with override_settings(event_bus_name=None):
        assert announce_warnings(EventPublisher(None), user.id, reservation) == 0


def test_an_unreachable_eventbridge_does_not_break_the_request(
    make_user: Any, db: Database, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    user = make_user()
    set_quota(database_url, user.id, used=7, limit=10)
    reservation = reserve(db, user)
    monkeypatch.setenv("AWS_DEFAULT_REGION", "ap-south-1")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_ENDPOINT_URL_EVENTBRIDGE", "http://127.0.0.1:1")  # nothing listens there
    assert announce_warnings(EventPublisher(BUS), user.id, reservation) == 0


def test_a_v1_completion_that_crosses_a_threshold_announces_it(
    settings_with_db: Any, make_user: Any, database_url: str, eventbridge: Any
) -> None:
    """`/v1` reserves from the same quota, so crossing 80 % there sends the warning a chat turn would send
    (it used to claim the threshold and announce nothing: the warning was lost for the window)."""
    user = make_user()
    set_quota(database_url, user.id, used=7, limit=10)
    db = Database(settings_with_db)
    with db.user_transaction(user.principal) as conn:
        key = api_keys.create_key(conn, api_keys.ApiKeyCreate(name="ci"))
    principal = api_keys.authenticate_api_key(db, f"Bearer {key.key}")
    request = CompletionRequest(model="openai/gpt-4o-mini", messages=[{"role": "user", "content": "Hi"}])

    async def complete() -> dict[str, Any]:
        with FakeOpenRouter(delay=0.0) as fake, override_settings(event_bus_name=BUS):
            async with OpenRouterClient(
                Settings(openrouter_api_key=SecretStr("sk-or-test"), openrouter_base_url=fake.base_url)
            ) as client:
                relay = await start_completion(db, client, principal, request)
                return await relay.complete()

    try:
        answer = anyio.run(complete)
    finally:
        db.close()
    assert answer["choices"][0]["message"]["content"]
    events = eventbridge()
    assert [(e["detail-type"], e["detail"]["threshold"], e["detail"]["used"]) for e in events] == [
        ("QuotaWarning", 80, 8)
    ]
