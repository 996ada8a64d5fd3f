"""The chatbots' analytics in a real PostgreSQL (issue 28 item 2): the rollup job (oneai.analytics.rollup) over
visitor conversations seeded with SQL, and the route's service as the workspaces function calls it. What a
user would notice: the figures of a seeded period are those computed directly from the rows (percentiles
within the documented bound); a second run, or two runs at once, change nothing; a late message, a changed
rating or a deleted conversation shows after the next run; a stranger gets 404 and reads no rollup row; the
top questions group paraphrases and keep unrelated questions apart; the workspace's messages_30d counts."""

from __future__ import annotations

import math
import random
import threading
import uuid
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from pydantic import ValidationError as PydanticValidationError

from oneai.analytics import rollup, service
from oneai.analytics.models import AnalyticsQuery
from oneai.analytics.percentiles import RELATIVE_ERROR, bucket_of
from oneai.config import get_settings
from oneai.db.connection import Database
from oneai.errors import NotFoundError
from oneai.knowledge.offline_embedding import offline_embeddings
from oneai.pagination import PageRequest
from oneai.workspaces import service as workspaces
from tests.conftest import AppUser, create_user
from tests.inbox_support import add_chatbot
from tests.integration.test_workspaces_rls import team

pytestmark = pytest.mark.integration

FIRST = date(2026, 10, 5)
DAYS = 6
LAST = FIRST + timedelta(days=DAYS - 1)


def at(day: date, hour: int = 0, minute: int = 0, second: int = 0) -> datetime:
    return datetime(day.year, day.month, day.day, hour, minute, second, tzinfo=UTC)


def seed_conversation(
    db: Database,
    workspace: uuid.UUID,
    chatbot: uuid.UUID,
    started_at: datetime,
    messages: list[tuple[str, str, float, int | None, int | None]],
    *,
    rating: int | None = None,
) -> uuid.UUID:
    """One conversation and its messages: (role, content, seconds after the start, ttft_ms, total_ms)."""
    with db.service_transaction() as conn:
        row = conn.execute(
            "insert into public.visitor_conversations (workspace_id, chatbot_id, visitor_id, rating, rated_at,"
            " started_at) values (%s, %s, %s, %s, case when %s::smallint is null then null else %s end, %s)"
            " returning id",
            (workspace, chatbot, uuid.uuid4().hex, rating, rating, started_at, started_at),
        ).fetchone()
        assert row is not None
        for number, (role, content, after, ttft, total) in enumerate(messages, start=1):
            conn.execute(
                "insert into public.visitor_messages (conversation_id, workspace_id, role, content, sequence_number,"
                " ttft_ms, total_ms, created_at) values (%s, %s, %s, %s, %s, %s, %s, %s)",
                (row["id"], workspace, role, content, number, ttft, total, started_at + timedelta(seconds=after)),
            )
    return uuid.UUID(str(row["id"]))


def run_job(db: Database, **options: Any) -> rollup.RollupReport:
    """The job until nothing is left to do (the shared test database holds other tests' rows too)."""
    report = rollup.run(db, get_settings(), embed=offline_embeddings, **options)
    while rollup.add_questions(db, get_settings(), offline_embeddings):
        pass
    return report


def read(db: Database, user: AppUser, workspace: uuid.UUID, **query: Any) -> Any:
    with db.user_transaction(user.principal) as conn:
        return service.analytics(conn, workspace, AnalyticsQuery.model_validate(query))


def nearest_rank(values: list[int], p: float) -> int:
    ordered = sorted(values)
    return ordered[max(1, math.ceil(p * len(ordered))) - 1]


def within_bound(estimate: int | None, exact: int) -> bool:
    return estimate is not None and abs(estimate - exact) <= RELATIVE_ERROR * exact + 0.5


ROWS_BY_DAY = """
select (m.created_at at time zone 'UTC')::date as day, count(*)::int as n
from public.visitor_messages m join public.visitor_conversations vc on vc.id = m.conversation_id
where vc.workspace_id = %(w)s and vc.chatbot_id is not null and (%(c)s::uuid is null or vc.chatbot_id = %(c)s)
  and m.created_at >= %(first)s::date::timestamp at time zone 'UTC'
  and m.created_at < (%(last)s::date + 1)::timestamp at time zone 'UTC'
group by 1 order by 1"""
ROWS_STARTED = """
select count(*)::int as conversations,
  coalesce(sum((select count(*) from public.visitor_messages m where m.conversation_id = vc.id)), 0)::int as messages,
  count(vc.rating)::int as rated, avg(vc.rating)::float8 as average,
  array[count(*) filter (where vc.rating = 1), count(*) filter (where vc.rating = 2),
        count(*) filter (where vc.rating = 3), count(*) filter (where vc.rating = 4),
        count(*) filter (where vc.rating = 5)]::int[] as by_score
from public.visitor_conversations vc
where vc.workspace_id = %(w)s and vc.chatbot_id is not null and (%(c)s::uuid is null or vc.chatbot_id = %(c)s)
  and vc.started_at >= %(first)s::date::timestamp at time zone 'UTC'
  and vc.started_at < (%(last)s::date + 1)::timestamp at time zone 'UTC'"""
ROWS_REPLIES = """
from public.visitor_messages m join public.visitor_conversations vc on vc.id = m.conversation_id
where vc.workspace_id = %(w)s and vc.chatbot_id is not null and (%(c)s::uuid is null or vc.chatbot_id = %(c)s)
  and m.created_at >= %(first)s::date::timestamp at time zone 'UTC'
  and m.created_at < (%(last)s::date + 1)::timestamp at time zone 'UTC'
  and m.role = 'assistant' and m.ttft_ms is not null"""
ROWS_TIMINGS = "select m.ttft_ms, m.total_ms" + ROWS_REPLIES
ROWS_PERCENTILES = (
    """
select percentile_disc(0.5) within group (order by m.ttft_ms) as ttft_p50,
       percentile_disc(0.95) within group (order by m.ttft_ms) as ttft_p95,
       percentile_disc(0.5) within group (order by m.total_ms) as p50,
       percentile_disc(0.95) within group (order by m.total_ms) as p95"""
    + ROWS_REPLIES
)


def expected_from_rows(
    db: Database, workspace: uuid.UUID, first: date, last: date, chatbot: uuid.UUID | None = None
) -> dict[str, Any]:
    """The same figures, computed directly from the raw rows with SQL."""
    params = {"w": workspace, "first": first, "last": last, "c": chatbot}
    with db.service_transaction() as conn:
        by_day = conn.execute(ROWS_BY_DAY, params).fetchall()
        started = conn.execute(ROWS_STARTED, params).fetchone()
        timings = conn.execute(ROWS_TIMINGS, params).fetchall()
        exact = conn.execute(ROWS_PERCENTILES, params).fetchone()
    assert started is not None and exact is not None
    counts = {r["day"]: r["n"] for r in by_day}
    days = [first + timedelta(days=n) for n in range((last - first).days + 1)]
    return {
        "messages_by_day": [{"date": d, "messages": counts.get(d, 0)} for d in days],
        "conversations": started["conversations"],
        "avg": round(started["messages"] / started["conversations"], 2) if started["conversations"] else None,
        "rated": started["rated"],
        "average": round(started["average"], 2) if started["average"] is not None else None,
        "by_score": dict(zip("12345", started["by_score"], strict=True)),
        "replies": len(timings),
        "exact": dict(exact),
        "ttft": [t["ttft_ms"] for t in timings],
        "total": [t["total_ms"] for t in timings],
    }


def assert_matches_rows(report: Any, expected: dict[str, Any]) -> None:
    answer = report.model_dump()
    assert answer["messages_by_day"] == expected["messages_by_day"]
    assert answer["messages"] == sum(d["messages"] for d in expected["messages_by_day"])
    assert answer["conversations"] == expected["conversations"]
    assert answer["avg_messages_per_conversation"] == expected["avg"]
    satisfaction = answer["satisfaction"]
    assert (satisfaction["rated"], satisfaction["average"], satisfaction["by_score"]) == (
        expected["rated"],
        expected["average"],
        expected["by_score"],
    )
    times = answer["response_time"]
    assert times["replies"] == expected["replies"]
    exact = expected["exact"]
    # the database's percentile_disc is the nearest-rank percentile the bound is stated for
    assert exact["ttft_p50"] == nearest_rank(expected["ttft"], 0.5)
    assert exact["p95"] == nearest_rank(expected["total"], 0.95)
    for key, exact_key in (
        ("ttft_p50_ms", "ttft_p50"),
        ("ttft_p95_ms", "ttft_p95"),
        ("p50_ms", "p50"),
        ("p95_ms", "p95"),
    ):
        assert within_bound(times[key], exact[exact_key]), (key, times[key], exact[exact_key])


@pytest.fixture
def owner(database_url: str) -> AppUser:
    return create_user(database_url)


@pytest.fixture
def workspace(db: Database, owner: AppUser) -> uuid.UUID:
    return team(db, owner)


@pytest.fixture
def chatbots(database_url: str, workspace: uuid.UUID) -> tuple[uuid.UUID, uuid.UUID]:
    return add_chatbot(database_url, workspace, "Support"), add_chatbot(database_url, workspace, "Sales")


def seed_period(
    db: Database, workspace: uuid.UUID, chatbots: tuple[uuid.UUID, ...], seed: int = 7
) -> list[uuid.UUID]:
    """Six days of conversations on two chatbots: 1-7 messages each, replies with lognormal timings (some
    without), ratings or none, some started just before midnight so their replies fall on the next day."""
    rng = random.Random(seed)
    ids = []
    for offset in range(DAYS):
        day = FIRST + timedelta(days=offset)
        for n in range(rng.randint(3, 9)):
            chatbot = chatbots[n % len(chatbots)]
            started = at(day, 23, 59, 30) if n == 0 else at(day, rng.randint(0, 22), rng.randint(0, 59))
            messages = []
            for k in range(rng.randint(1, 7)):
                role = "user" if k % 2 == 0 else "assistant"
                ttft = int(rng.lognormvariate(6.5, 0.8)) if role == "assistant" and rng.random() > 0.1 else None
                total = None if ttft is None else ttft + int(rng.lognormvariate(7.5, 0.7))
                messages.append((role, f"message {k} of {n}", 20.0 * k, ttft, total))
            rating = rng.choice([None, 1, 2, 3, 4, 5, 5])
            ids.append(seed_conversation(db, workspace, chatbot, started, messages, rating=rating))
    return ids


def test_the_figures_of_a_seeded_period_are_those_of_the_rows(
    db: Database, owner: AppUser, workspace: uuid.UUID, chatbots: tuple[uuid.UUID, uuid.UUID]
) -> None:
    seed_period(db, workspace, chatbots)
    run_job(db)

    report = read(
        db, owner, workspace, **{"from": FIRST.isoformat(), "to": (LAST + timedelta(days=1)).isoformat()}
    )
    assert_matches_rows(report, expected_from_rows(db, workspace, FIRST, LAST + timedelta(days=1)))
    assert report.messages_by_day[-1].messages > 0  # the replies after midnight of the last day
    # per chatbot, through the filter and in by_chatbot, the same
    for chatbot in chatbots:
        alone = read(
            db, owner, workspace, **{"from": FIRST.isoformat(), "to": LAST.isoformat(), "chatbot_id": chatbot}
        )
        assert_matches_rows(alone, expected_from_rows(db, workspace, FIRST, LAST, chatbot))
        assert [c.chatbot_id for c in alone.by_chatbot] == [chatbot]
    whole = read(db, owner, workspace, **{"from": FIRST.isoformat(), "to": LAST.isoformat()})
    assert {c.name for c in whole.by_chatbot} == {"Support", "Sales"}
    assert sum(c.messages for c in whole.by_chatbot) == whole.messages
    assert sum(c.conversations for c in whole.by_chatbot) == whole.conversations
    # a sub-range (a percentile of 2 days is not a mean of the days' percentiles) matches too
    middle = read(db, owner, workspace, **{"from": (FIRST + timedelta(days=2)).isoformat(),
                                           "to": (FIRST + timedelta(days=3)).isoformat()})  # fmt: skip
    assert_matches_rows(
        middle, expected_from_rows(db, workspace, FIRST + timedelta(days=2), FIRST + timedelta(days=3))
    )


def rollup_rows(db: Database, workspace: uuid.UUID) -> list[dict[str, Any]]:
    with db.service_transaction() as conn:
        return [
            {k: v for k, v in row.items() if k != "computed_at"}
            for row in conn.execute(
                "select * from public.chatbot_daily_analytics where workspace_id = %s order by day, chatbot_id",
                (workspace,),
            ).fetchall()
        ]


def test_running_again_or_twice_at_once_counts_nothing_twice(
    db: Database, settings_with_db: Any, workspace: uuid.UUID, chatbots: tuple[uuid.UUID, uuid.UUID]
) -> None:
    seed_period(db, workspace, chatbots, seed=11)
    run_job(db)
    once = rollup_rows(db, workspace)
    assert once and sum(r["messages"] for r in once) > 0

    # every day of the workspace marked again, and two runs at once, one pair per batch
    with db.service_transaction() as conn:
        conn.execute(
            "insert into oneai_private.analytics_dirty_days (workspace_id, day)"
            " select %s, d::date from generate_series(%s::date, %s::date, interval '1 day') d"
            " on conflict (workspace_id, day) where claimed_at is null do nothing",
            (workspace, FIRST, LAST + timedelta(days=1)),
        )
    databases = [Database(settings_with_db) for _ in range(2)]
    reports: list[tuple[int, int, int, bool]] = []
    barrier = threading.Barrier(2)

    def worker(database: Database) -> None:
        barrier.wait()
        reports.append(rollup.refresh_rollups(database, batch_days=1))

    threads = [threading.Thread(target=worker, args=(d,)) for d in databases]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for database in databases:
        database.close()
    assert sum(r[0] for r in reports) >= DAYS + 1  # the pairs were shared out, each done once at least
    assert rollup_rows(db, workspace) == once
    with db.service_transaction() as conn:
        left = conn.execute(
            "select count(*) as n from oneai_private.analytics_dirty_days where workspace_id = %s", (workspace,)
        ).fetchone()
    assert left is not None and left["n"] == 0
    # and a plain re-run finds nothing of this workspace to do
    run_job(db)
    assert rollup_rows(db, workspace) == once


def test_late_rows_changed_ratings_and_deleted_conversations_show_after_the_next_run(
    db: Database, owner: AppUser, workspace: uuid.UUID, chatbots: tuple[uuid.UUID, uuid.UUID]
) -> None:
    support, _ = chatbots
    kept = seed_conversation(db, workspace, support, at(FIRST, 10), [("user", "hi", 0, None, None)], rating=2)
    gone = seed_conversation(
        db, workspace, support, at(FIRST + timedelta(days=1), 10),
        [("user", "hello", 0, None, None), ("assistant", "hi!", 1, 300, 900)], rating=5,
    )  # fmt: skip
    run_job(db)
    query = {"from": FIRST.isoformat(), "to": (FIRST + timedelta(days=2)).isoformat()}
    before = read(db, owner, workspace, **query)
    assert [d.messages for d in before.messages_by_day] == [1, 2, 0]
    assert before.satisfaction.by_score == {"1": 0, "2": 1, "3": 0, "4": 0, "5": 1}

    # a late reply, written now for the first day; the first rating changed; the second conversation deleted
    with db.service_transaction() as conn:
        conn.execute(
            "insert into public.visitor_messages (conversation_id, workspace_id, role, content, sequence_number,"
            " ttft_ms, total_ms, created_at) values (%s, %s, 'assistant', 'sorry for the wait', 2, 4000, 9000, %s)",
            (kept, workspace, at(FIRST, 10, 5)),
        )
        conn.execute("update public.visitor_conversations set rating = 4, rated_at = now() where id = %s", (kept,))
        conn.execute("delete from public.visitor_conversations where id = %s", (gone,))
    # the rollups change when the job runs (a deleted conversation's question goes with it at once)
    stale = read(db, owner, workspace, **query).model_dump(exclude={"top_questions"})
    assert stale == before.model_dump(exclude={"top_questions"})

    run_job(db)
    after = read(db, owner, workspace, **query)
    assert [d.messages for d in after.messages_by_day] == [2, 0, 0]
    assert after.conversations == 1 and after.avg_messages_per_conversation == 2.0
    assert after.satisfaction.model_dump() == {
        "average": 4.0, "rated": 1, "by_score": {"1": 0, "2": 0, "3": 0, "4": 1, "5": 0},
    }  # fmt: skip
    assert after.response_time.replies == 1 and within_bound(after.response_time.ttft_p50_ms, 4000)
    assert within_bound(after.response_time.p95_ms, 9000)
    # the emptied day has no rollup row left
    assert {r["day"] for r in rollup_rows(db, workspace)} == {FIRST}


def test_members_read_the_analytics_and_nobody_else_does(
    db: Database, database_url: str, owner: AppUser, workspace: uuid.UUID, chatbots: tuple[uuid.UUID, uuid.UUID]
) -> None:
    viewer, stranger = create_user(database_url), create_user(database_url)
    with db.service_transaction() as conn:
        conn.execute(
            "insert into public.workspace_members (workspace_id, user_id, role) values (%s, %s, 'viewer')",
            (workspace, viewer.id),
        )
    seed_conversation(
        db, workspace, chatbots[0], at(FIRST, 9), [("user", "How do I reset my password?", 0, None, None)]
    )
    run_job(db)
    query = {"from": FIRST.isoformat(), "to": FIRST.isoformat()}
    assert read(db, viewer, workspace, **query).messages == 1
    # the questions are visitors' words: the editors' (as the inbox), not the viewer's, in the policy too
    assert read(db, viewer, workspace, **query).top_questions is None
    assert read(db, owner, workspace, **query).top_questions[0].question == "How do I reset my password?"
    with db.user_transaction(viewer.principal) as conn:
        seen = conn.execute(
            "select (select count(*) from public.chatbot_daily_analytics where workspace_id = %s) as rollups,"
            " (select count(*) from public.chatbot_questions where workspace_id = %s) as questions",
            (workspace, workspace),
        ).fetchone()
    assert seen is not None and (seen["rollups"], seen["questions"]) == (1, 0)
    with pytest.raises(NotFoundError):
        read(db, stranger, workspace, **query)
    # the stranger's own statements read no rollup row, no question of it
    with db.user_transaction(stranger.principal) as conn:
        seen = conn.execute(
            "select (select count(*) from public.chatbot_daily_analytics where workspace_id = %s) as rollups,"
            " (select count(*) from public.chatbot_questions where workspace_id = %s) as questions",
            (workspace, workspace),
        ).fetchone()
    assert seen is not None and (seen["rollups"], seen["questions"]) == (0, 0)
    # a chatbot of another workspace is not found either
    other = add_chatbot(database_url, team(db, stranger))
    with pytest.raises(NotFoundError):
        read(db, owner, workspace, **{**query, "chatbot_id": other})


@pytest.mark.parametrize(
    "query",
    [
        {"from": "2026-10-05", "to": "2026-10-04"},
        {"from": "2025-01-01", "to": "2026-01-02"},
        {"from": "05/10/2026"},
        {"to": "2026-10-05T10:00:00Z"},
        {"chatbot_id": "not-an-id"},
    ],
    ids=["to-before-from", "over-366-days", "not-iso", "a-time", "bad-chatbot-id"],
)
def test_bad_ranges_are_refused(query: dict[str, str]) -> None:
    with pytest.raises(PydanticValidationError):
        AnalyticsQuery.model_validate(query)


def test_a_range_of_366_days_and_the_default_of_30_are_accepted() -> None:
    assert AnalyticsQuery.model_validate({"from": "2025-01-01", "to": "2026-01-01"}).first_day == date(2025, 1, 1)
    default = AnalyticsQuery.model_validate({})
    assert (default.last_day - default.first_day).days == 29 and default.last_day == datetime.now(UTC).date()


def test_top_questions_group_paraphrases_and_keep_unrelated_questions_apart(
    db: Database, owner: AppUser, workspace: uuid.UUID, chatbots: tuple[uuid.UUID, uuid.UUID]
) -> None:
    support, sales = chatbots
    asked = [
        (support, "How do I reset my password?"),
        (support, "How can I reset my password"),
        (sales, "I forgot my password, how do I reset it?"),
        (support, "Can I get a refund for my order?"),
        (sales, "How do I get a refund for my order?"),
        (support, "Do you ship to Canada?"),
    ]
    for n, (chatbot, text) in enumerate(asked):
        seed_conversation(
            db, workspace, chatbot, at(FIRST, 8, n),
            [("assistant", "Hi! How can I help?", 0, 100, 200), ("user", "  ", 1, None, None),
             ("user", text, 2, None, None), ("user", "thanks", 3, None, None)],
        )  # fmt: skip
    run_job(db)
    query = {"from": FIRST.isoformat(), "to": FIRST.isoformat()}
    top = [q.model_dump() for q in read(db, owner, workspace, **query).top_questions]
    assert top == [
        {"question": "How do I reset my password?", "count": 3},
        {"question": "Can I get a refund for my order?", "count": 2},
        {"question": "Do you ship to Canada?", "count": 1},
    ]
    # one chatbot's: the clusters are the workspace's, the counts that chatbot's
    only_sales = read(db, owner, workspace, **{**query, "chatbot_id": sales}).top_questions
    assert [q.model_dump() for q in only_sales] == [  # a tie is in the questions' order
        {"question": "Can I get a refund for my order?", "count": 1},
        {"question": "How do I reset my password?", "count": 1},
    ]
    # a question asked later joins its cluster; outside the range nothing counts
    seed_conversation(
        db, workspace, support, at(FIRST + timedelta(days=1), 9), [("user", "Reset password", 0, None, None)]
    )
    run_job(db)
    two_days = {"from": FIRST.isoformat(), "to": (FIRST + timedelta(days=1)).isoformat()}
    assert read(db, owner, workspace, **two_days).top_questions[0].model_dump() == {
        "question": "How do I reset my password?", "count": 4,
    }  # fmt: skip
    assert read(db, owner, workspace, **{"from": "2026-09-01", "to": "2026-09-30"}).top_questions == []


def test_a_failing_embedding_service_leaves_the_questions_for_the_next_run(
    db: Database, owner: AppUser, workspace: uuid.UUID, chatbots: tuple[uuid.UUID, uuid.UUID]
) -> None:
    seed_conversation(db, workspace, chatbots[0], at(FIRST, 9), [("user", "Where is my parcel?", 0, None, None)])

    def failing(texts: Any) -> list[list[float]]:
        raise ConnectionError("provider down")

    report = rollup.run(db, get_settings(), embed=failing)
    assert report.questions_failed and report.questions_added == 0
    query = {"from": FIRST.isoformat(), "to": FIRST.isoformat()}
    assert read(db, owner, workspace, **query).messages == 1  # the rollups were done
    assert read(db, owner, workspace, **query).top_questions == []
    run_job(db)
    assert [q.question for q in read(db, owner, workspace, **query).top_questions] == ["Where is my parcel?"]


def test_a_run_is_bounded_and_the_rest_waits_for_the_next(
    db: Database, owner: AppUser, workspace: uuid.UUID, chatbots: tuple[uuid.UUID, uuid.UUID]
) -> None:
    run_job(db)  # nothing else pending
    for offset in range(4):
        seed_conversation(
            db, workspace, chatbots[0], at(FIRST + timedelta(days=offset), 9), [("user", "hi", 0, None, None)]
        )
    report = rollup.run(db, get_settings(), embed=offline_embeddings, max_days=2, batch_days=1)
    assert (report.days_recomputed, report.batches, report.stopped_early) == (2, 2, True)
    assert report.days_remaining >= 2
    partial = read(
        db, owner, workspace, **{"from": FIRST.isoformat(), "to": (FIRST + timedelta(days=3)).isoformat()}
    )
    assert partial.conversations == 2
    # no time left: nothing is claimed
    nothing = rollup.run(db, get_settings(), embed=offline_embeddings, time_left=lambda: 1.0)
    assert (nothing.days_recomputed, nothing.stopped_early) == (0, True)
    run_job(db)
    assert (
        read(
            db, owner, workspace, **{"from": FIRST.isoformat(), "to": (FIRST + timedelta(days=3)).isoformat()}
        ).conversations
        == 4
    )


def test_the_workspace_stats_count_the_messages_of_the_last_30_days(
    db: Database, owner: AppUser, workspace: uuid.UUID, chatbots: tuple[uuid.UUID, uuid.UUID]
) -> None:
    today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    for days_ago, count in ((0, 2), (29, 3), (30, 5)):
        seed_conversation(
            db, workspace, chatbots[days_ago % 2], today - timedelta(days=days_ago),
            [("user" if k % 2 == 0 else "assistant", "x", k, None, None) for k in range(count)],
        )  # fmt: skip

    def messages_30d() -> int:
        with db.user_transaction(owner.principal) as conn:
            listed = workspaces.list_workspaces(conn, PageRequest(limit=50, cursor=None))
            detail = workspaces.get_workspace(conn, get_settings(), workspace)
        [mine] = [w for w in listed.items if w.id == workspace]
        assert mine.stats.messages_30d == detail.stats.messages_30d
        return detail.stats.messages_30d

    assert messages_30d() == 0  # before the job
    run_job(db)
    assert messages_30d() == 5  # today's 2 and 29 days ago's 3; 30 days ago is out


def test_the_databases_buckets_are_the_applications(db: Database) -> None:
    values = [0, 1, 2, 3, 7, 50, 51, 99, 100, 101, 999, 1000, 1001, 4321, 65_535, 600_000, 2_000_000_000]
    with db.service_transaction() as conn:
        rows = conn.execute(
            "select v, oneai_private.latency_bucket(v) as b from unnest(%s::int[]) v", (values,)
        ).fetchall()
    assert {r["v"]: r["b"] for r in rows} == {v: bucket_of(v) for v in values}
    # and every whole millisecond up to 200 s
    with db.service_transaction() as conn:
        every = conn.execute(
            "select array_agg(oneai_private.latency_bucket(v) order by v) as b from generate_series(0, 200000) v"
        ).fetchone()
    assert every is not None and every["b"] == [bucket_of(v) for v in range(200_001)]


def test_without_an_openrouter_key_no_embedding_is_attempted(db: Database) -> None:
    from oneai.config import override_settings

    with override_settings(openrouter_api_key=None, openrouter_base_url="https://openrouter.ai/api/v1"):
        settings = get_settings()
        assert not rollup.can_embed(settings)
        report = rollup.run(db, settings)
    assert (report.questions_skipped, report.questions_failed, report.questions_added) == (True, False, 0)
    with override_settings(openrouter_api_key=None, openrouter_base_url="http://127.0.0.1:9/api/v1"):
        assert rollup.can_embed(get_settings())  # the offline stand-in answers without a key


def test_a_change_during_a_recompute_waits_for_the_next_batch_and_a_dead_runs_claim_is_taken_again(
    db: Database, owner: AppUser, workspace: uuid.UUID, chatbots: tuple[uuid.UUID, uuid.UUID]
) -> None:
    from oneai.db import chatbot_analytics as repo

    run_job(db)
    conversation = seed_conversation(db, workspace, chatbots[0], at(FIRST, 9), [("user", "hi", 0, None, None)])
    query = {"from": FIRST.isoformat(), "to": FIRST.isoformat()}
    # a run claims the day...
    claim = uuid.uuid4()
    with db.service_transaction() as conn:
        claimed = repo.claim_dirty_days(conn, claim, limit=1000, lease_seconds=600)
    keys = [k for k in claimed if k.workspace_id == workspace]
    assert [k.day for k in keys] == [FIRST]
    # ...a reply lands on it before the recompute...
    with db.service_transaction() as conn:
        conn.execute(
            "insert into public.visitor_messages (conversation_id, workspace_id, role, content, sequence_number,"
            " created_at) values (%s, %s, 'assistant', 'hello', 2, %s)",
            (conversation, workspace, at(FIRST, 9, 1)),
        )
    # ...the recompute (reading what it reads) and the release of its claim leave the new mark
    with db.service_transaction() as conn:
        repo.recompute_days(conn, claimed)
        repo.release_claim(conn, claim)
        marks = conn.execute(
            "select count(*) as n from oneai_private.analytics_dirty_days where workspace_id = %s and claimed_at is null",
            (workspace,),
        ).fetchone()
    assert marks is not None and marks["n"] == 1
    run_job(db)
    assert read(db, owner, workspace, **query).messages == 2

    # a run that claimed the day and died: its claim is taken again once the lease is over
    with db.service_transaction() as conn:
        conn.execute(
            "update public.visitor_conversations set rating = 5, rated_at = now() where id = %s", (conversation,)
        )
        repo.claim_dirty_days(conn, uuid.uuid4(), limit=1000, lease_seconds=600)  # and never released
    run_job(db)
    assert read(db, owner, workspace, **query).satisfaction.rated == 0  # still claimed by the dead run
    with db.service_transaction() as conn:
        conn.execute(
            "update oneai_private.analytics_dirty_days set claimed_at = now() - interval '11 minutes'"
            " where workspace_id = %s",
            (workspace,),
        )
    run_job(db)
    assert read(db, owner, workspace, **query).satisfaction.rated == 1
