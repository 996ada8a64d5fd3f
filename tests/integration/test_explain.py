"""The hot queries use their indexes, as the user runs them (under RLS), on tables big enough that the
planner has a real choice: no planner switches are turned off."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from pydantic import SecretStr

from oneai.auth import authenticate
from oneai.config import override_settings
from oneai.db.connection import Database
from oneai.db.conversations import CURRENT_BRANCH, LIST_CONVERSATIONS, SEARCH_CONVERSATIONS, SEARCH_HISTORY
from tests.conftest import own_database, seed_database, token_for

# 40 users x 100 conversations; one conversation of 3000 positions (every third one also has a retired
# revision), 10 messages in each of the others.
SEED = """
insert into auth.users (id, email)
select gen_random_uuid(), 'explain' || g || '@example.test' from generate_series(1, 40) g;

insert into public.conversations (user_id, title, updated_at)
select u.id, 'chat ' || g, now() - g * interval '1 minute'
from public.users u cross join generate_series(1, 100) g;

create temporary table target on commit drop as
select c.user_id, c.id as conversation_id from public.conversations c
join public.users u on u.id = c.user_id
where u.email = 'explain1@example.test' and c.title = 'chat 1';

-- the big conversation: the first revision of every position, every third one already retired
insert into public.chat_messages
  (conversation_id, user_id, role, content, model_id, sequence_number, is_latest, created_at)
select t.conversation_id, t.user_id, case when g % 2 = 1 then 'user' else 'assistant' end,
       'message ' || g || ' ' || md5(g::text) || case when g % 700 = 0 then ' zanzibar' else '' end,
       'openai/gpt-4o-mini', g, g % 3 <> 0, now() - (3000 - g) * interval '1 second'
from target t cross join generate_series(1, 3000) g;

-- their current revisions
insert into public.chat_messages
  (conversation_id, user_id, role, content, model_id, sequence_number, original_message_id, revision_number,
   revision_type, is_latest)
select m.conversation_id, m.user_id, m.role, 'edited ' || m.content, m.model_id, m.sequence_number, m.id, 1,
       case when m.role = 'user' then 'user_edit' else 'regeneration' end, true
from public.chat_messages m join target t on t.conversation_id = m.conversation_id
where not m.is_latest;

-- everybody else's (and the same user's other) conversations
insert into public.chat_messages (conversation_id, user_id, role, content, model_id, sequence_number, created_at)
select c.id, c.user_id, case when g % 2 = 1 then 'user' else 'assistant' end,
       'filler text ' || md5(c.id::text || g), 'openai/gpt-4o-mini', g, now() - random() * interval '30 days'
from public.conversations c cross join generate_series(1, 10) g
where c.id <> (select conversation_id from target);

select user_id, conversation_id from target;
"""


@pytest.fixture(scope="module")
def explain_database(admin_database_url: str) -> Iterator[tuple[str, uuid.UUID, uuid.UUID]]:
    """A database of its own (so that the statistics are ours alone), seeded in bulk and analyzed."""
    with own_database(admin_database_url, "explain") as url:
        user_id, conversation_id = seed_database(
            url,
            SEED,
            # what autovacuum does to a GIN index in a live system: move its pending list into the index
            "select gin_clean_pending_list('public.idx_chat_messages_search')",
            "analyze public.users, public.conversations, public.chat_messages",
        )
        yield url, user_id, conversation_id


@pytest.fixture
def explain(explain_database: tuple[str, uuid.UUID, uuid.UUID]) -> Iterator[Any]:
    """EXPLAIN (FORMAT JSON) of a query with its parameters, inside the target user's transaction."""
    url, user_id, _ = explain_database
    principal = authenticate(f"Bearer {token_for(user_id, 'explain1@example.test')}")
    with override_settings(database_url=SecretStr(url)) as settings:
        database = Database(settings)

        def run(query: str, params: dict[str, Any], *, as_service: bool = False) -> dict[str, Any]:
            scope = database.service_transaction() if as_service else database.user_transaction(principal)
            with scope as conn:
                row = conn.execute("explain (format json) " + query, params).fetchone()
            assert row is not None
            plan: dict[str, Any] = row["QUERY PLAN"][0]["Plan"]
            return plan

        yield run
        database.close()


def nodes(plan: dict[str, Any]) -> Iterator[dict[str, Any]]:
    yield plan
    for child in plan.get("Plans", []):
        yield from nodes(child)


def index_names(plan: dict[str, Any]) -> set[str]:
    return {node["Index Name"] for node in nodes(plan) if "Index Name" in node}


def scanned_tables_without_index(plan: dict[str, Any]) -> set[str]:
    return {node["Relation Name"] for node in nodes(plan) if node["Node Type"] == "Seq Scan"}


def test_the_seed_is_big_enough_to_matter(explain_database: tuple[str, uuid.UUID, uuid.UUID]) -> None:
    url, _, conversation_id = explain_database
    with psycopg.connect(url) as conn:
        row = conn.execute(
            "select count(*), count(*) filter (where conversation_id = %(c)s),"
            " count(*) filter (where conversation_id = %(c)s and not is_latest) from public.chat_messages",
            {"c": conversation_id},
        ).fetchone()
    assert row == (43_990, 4_000, 1_000)


@pytest.mark.parametrize(("after_seq", "limit"), [(0, None), (0, 51), (2_400, 51)])
def test_the_current_branch_is_one_scan_of_the_latest_messages_index(
    explain: Any, explain_database: tuple[str, uuid.UUID, uuid.UUID], after_seq: int, limit: int | None
) -> None:
    _, _, conversation_id = explain_database
    plan = explain(CURRENT_BRANCH, {"conversation_id": conversation_id, "after_seq": after_seq, "limit": limit})
    assert "idx_chat_messages_latest_seq" in index_names(plan), plan
    assert scanned_tables_without_index(plan) == set(), plan


# The search as a plain query under RLS: what the function replaces (the baseline of the test below).
SEARCH_UNDER_RLS = """
select m.id from public.chat_messages m
where m.search_vector @@ websearch_to_tsquery('simple', %(query)s) and m.is_latest
order by m.created_at desc, m.id desc limit %(limit)s"""


def test_history_search_with_a_query_uses_the_full_text_index(
    explain_database: tuple[str, uuid.UUID, uuid.UUID],
) -> None:
    url, user_id, _ = explain_database
    principal = authenticate(f"Bearer {token_for(user_id, 'explain1@example.test')}")
    params = {
        "query": "zanzibar", "model": None, "from": None, "to": None,
        "after_created": None, "after_id": None, "limit": 21,
    }  # fmt: skip
    with override_settings(database_url=SecretStr(url)) as settings:
        database = Database(settings)
        try:
            with database.user_transaction(principal) as conn:

                def pages_and_ids(query: str) -> tuple[int, list[Any]]:
                    conn.execute(query, params)  # warm: catalog reads of a first call are not the point
                    row = conn.execute("explain (analyze, buffers, format json) " + query, params).fetchone()
                    assert row is not None
                    top = row["QUERY PLAN"][0]["Plan"]
                    pages = top["Shared Hit Blocks"] + top["Shared Read Blocks"]
                    found = [r["id" if "id" in r else "message_id"] for r in conn.execute(query, params)]
                    return pages, found

                # GIVEN the search as a plain query under RLS: `@@` is not leakproof, so it may only run
                # after the policy filter and the GIN index is never used (every message of the user is read)
                naive_pages, naive_ids = pages_and_ids(SEARCH_UNDER_RLS)
                # WHEN the user searches through the API's query (the search function)
                pages, ids = pages_and_ids(SEARCH_HISTORY)
        finally:
            database.close()
    # THEN the same messages come back, and only the index's few pages are read
    assert ids == naive_ids and len(ids) == 4
    assert naive_pages > 500, naive_pages
    assert pages * 10 < naive_pages, (pages, naive_pages)  # measured: ~30 against ~1200


def test_the_conversation_list_uses_the_activity_index(
    explain: Any, explain_database: tuple[str, uuid.UUID, uuid.UUID]
) -> None:
    _, user_id, _ = explain_database
    params = {"user_id": user_id, "pattern": None, "after_updated": None, "after_id": None, "limit": 21}
    plan = explain(LIST_CONVERSATIONS, params)
    assert "idx_conversations_user_activity" in index_names(plan), plan
    assert scanned_tables_without_index(plan) == set(), plan
    assert not any(node["Node Type"] == "Sort" for node in nodes(plan)), plan


# Members' conversation search (issue 28 item 2) as a plain query under RLS: the baseline of the test below.
CONVERSATION_SEARCH_UNDER_RLS = """
select c.id from public.conversations c
where c.title ilike %(pattern)s escape '\\'
   or exists (select 1 from public.chat_messages m
              where m.conversation_id = c.id and m.is_latest
                and m.search_vector @@ websearch_to_tsquery('simple', %(query)s))
order by c.updated_at desc, c.id desc limit %(limit)s"""


def test_conversation_search_over_message_text_uses_the_full_text_index(
    explain_database: tuple[str, uuid.UUID, uuid.UUID],
) -> None:
    url, user_id, conversation_id = explain_database
    principal = authenticate(f"Bearer {token_for(user_id, 'explain1@example.test')}")
    params = {"pattern": "%zanzibar%", "query": "zanzibar", "after_updated": None, "after_id": None, "limit": 21}
    with override_settings(database_url=SecretStr(url)) as settings:
        database = Database(settings)
        try:
            with database.user_transaction(principal) as conn:

                def pages_and_ids(query: str) -> tuple[int, list[Any]]:
                    conn.execute(query, params)  # warm
                    row = conn.execute("explain (analyze, buffers, format json) " + query, params).fetchone()
                    assert row is not None
                    top = row["QUERY PLAN"][0]["Plan"]
                    return top["Shared Hit Blocks"] + top["Shared Read Blocks"], [
                        r["id"] for r in conn.execute(query, params)
                    ]

                # GIVEN the search as a plain query under RLS (`@@` runs after the policy: no GIN index)
                naive_pages, naive_ids = pages_and_ids(CONVERSATION_SEARCH_UNDER_RLS)
                # WHEN the user searches their conversations through the API's query (the function)
                pages, ids = pages_and_ids(SEARCH_CONVERSATIONS)
        finally:
            database.close()
    # THEN the same conversation is found, reading a small part of the pages
    assert ids == naive_ids == [conversation_id]
    assert pages * 5 < naive_pages, (pages, naive_pages)
    # measured: 63 pages against 1824
