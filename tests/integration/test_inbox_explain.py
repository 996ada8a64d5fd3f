"""The inbox's search uses the visitor messages' full-text (GIN) index, as an editor runs it (under RLS),
on a chatbot with 5,000 conversations and 20,000 messages: the search function reads a small part of the
pages a plain query under the policies reads (there `@@`, not leakproof, runs after the policy's filter)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from pydantic import SecretStr

from oneai.auth import authenticate
from oneai.config import override_settings
from oneai.db.connection import Database
from oneai.db.inbox import LIST
from tests.conftest import own_database, seed_database, token_for

SEED = """
insert into auth.users (id, email) values (gen_random_uuid(), 'inbox-explain@example.test');
insert into public.workspaces (name, slug, owner_id)
  select 'Shop', 'shop-' || substr(md5(random()::text), 1, 8), id from public.users
  where email = 'inbox-explain@example.test';
insert into public.workspace_members (workspace_id, user_id, role)
  select w.id, w.owner_id, 'owner' from public.workspaces w where not w.personal
  on conflict do nothing;
insert into public.chatbots (workspace_id, name, model, status)
  select id, 'Help', 'openai/gpt-4o-mini', 'active' from public.workspaces where not personal;

insert into public.visitor_conversations (workspace_id, chatbot_id, visitor_id, started_at)
select b.workspace_id, b.id, 'visitor-' || lpad(g::text, 10, '0'), now() - g * interval '1 minute'
from public.chatbots b cross join generate_series(1, 5000) g;

insert into public.visitor_messages (conversation_id, workspace_id, role, content, sequence_number)
select vc.id, vc.workspace_id, case when g % 2 = 1 then 'user' else 'assistant' end,
       'question about the order ' || md5(vc.id::text || g)
         || case when g = 3 and vc.visitor_id in ('visitor-0000000100', 'visitor-0000002500', 'visitor-0000004900')
                 then ' zanzibar' else '' end,
       g
from public.visitor_conversations vc cross join generate_series(1, 4) g;

select u.id as user_id, b.id as chatbot_id from public.users u, public.chatbots b
where u.email = 'inbox-explain@example.test';
"""

# The search as a plain query under the policies: the baseline.
SEARCH_UNDER_RLS = """
select vc.id from public.visitor_conversations vc
where vc.chatbot_id = %(chatbot_id)s
  and exists (select 1 from public.visitor_messages m
              where m.conversation_id = vc.id and m.search_vector @@ websearch_to_tsquery('simple', %(query)s))
order by vc.started_at desc, vc.id desc limit %(limit)s"""


@pytest.fixture(scope="module")
def inbox_database(admin_database_url: str) -> Iterator[tuple[str, uuid.UUID, uuid.UUID]]:
    with own_database(admin_database_url, "inbox_explain") as url:
        user_id, chatbot_id = seed_database(
            url,
            SEED,
            "select gin_clean_pending_list('public.idx_visitor_messages_search')",
            "analyze public.visitor_conversations, public.visitor_messages, public.workspace_members",
        )
        yield url, user_id, chatbot_id


def test_the_inbox_search_uses_the_full_text_index(inbox_database: tuple[str, uuid.UUID, uuid.UUID]) -> None:
    url, user_id, chatbot_id = inbox_database
    principal = authenticate(f"Bearer {token_for(user_id, 'inbox-explain@example.test')}")
    params: dict[str, Any] = {
        "chatbot_id": chatbot_id, "from": None, "to": None, "status": None, "rating": None, "query": "zanzibar",
        "after_started": None, "after_id": None, "limit": 21,
    }  # fmt: skip
    with override_settings(database_url=SecretStr(url)) as settings:
        database = Database(settings)
        try:
            with database.user_transaction(principal) as conn:

                def pages_and_ids(query: str) -> tuple[int, list[Any]]:
                    conn.execute(query, params)  # warm
                    row = conn.execute("explain (analyze, buffers, format json) " + query, params).fetchone()
                    assert row is not None
                    top = row["QUERY PLAN"][0]["Plan"]
                    found = [r["id"] for r in conn.execute(query, params)]
                    return top["Shared Hit Blocks"] + top["Shared Read Blocks"], found

                # GIVEN the search as a plain query under the visitor tables' policies
                naive_pages, naive_ids = pages_and_ids(SEARCH_UNDER_RLS)
                # WHEN an editor searches the inbox through the API's query (the function)
                pages, ids = pages_and_ids(LIST)
        finally:
            database.close()
    # THEN the same three conversations, newest first, reading a small part of the pages
    assert ids == naive_ids and len(ids) == 3
    assert pages * 5 < naive_pages, (pages, naive_pages)  # measured: 60 against 701
