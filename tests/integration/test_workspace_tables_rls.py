"""A workspace's rows are reached only through a membership, in the policies themselves.

- Every table of `public` with a `workspace_id` is under RLS, unreadable by `anon`, and every policy that
  lets `authenticated` reach its rows names the membership (`oneai_private.workspaces_with_role`) or the
  caller's own rows (`auth.uid()`), or narrows further (a restrictive policy).
- The chatbot platform's visitor and analytics tables (the widget's visitors, conversations, messages and
  daily counts, the analytics rollups and questions), each holding a row of one workspace, read as a user
  of no workspace: nothing; as a viewer: the counts and figures, none of the visitors' words; as an
  editor: everything; and nothing of them is written by a member's own statement.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from uuid import UUID

import psycopg
import pytest

from oneai.db.connection import Database
from oneai.db.knowledge import vector_literal
from oneai.knowledge.offline_embedding import offline_embedding
from tests.conftest import AppUser
from tests.integration.test_workspaces_rls import team

pytestmark = pytest.mark.integration

# The tables read here, and the lowest role that reads each (the visitors' words are the editors').
READERS: dict[str, str] = {
    "widget_visitors": "editor",
    "visitor_conversations": "editor",
    "visitor_messages": "editor",
    "widget_message_counts": "viewer",
    "chatbot_daily_analytics": "viewer",
    "chatbot_questions": "editor",
}

CATALOGUE = """
select t.relname as table_name, t.relrowsecurity as rls,
       has_table_privilege('anon', t.oid, 'select') as anon_reads,
       coalesce(array_agg(p.polname order by p.polname) filter (
         where p.polname is not null and p.polpermissive
           and ('authenticated'::regrole = any (p.polroles) or 0::oid = any (p.polroles))
           and coalesce(pg_get_expr(p.polqual, p.polrelid), '') !~ 'workspaces_with_role|auth\\.uid\\(\\)'
           and coalesce(pg_get_expr(p.polwithcheck, p.polrelid), '') !~ 'workspaces_with_role|auth\\.uid\\(\\)'
       ), '{}') as unguarded
from pg_class t
join pg_namespace n on n.oid = t.relnamespace
left join pg_policy p on p.polrelid = t.oid
where n.nspname = 'public' and t.relkind = 'r'
  and exists (select 1 from pg_attribute a where a.attrelid = t.oid and a.attname = 'workspace_id' and not a.attisdropped)
group by t.relname, t.relrowsecurity, t.oid
order by 1"""


def test_every_workspace_table_is_reached_through_a_membership_in_its_policies(database_url: str) -> None:
    with psycopg.connect(database_url) as conn:
        rows = conn.execute(CATALOGUE).fetchall()
    tables = {name for name, *_ in rows}
    assert set(READERS) <= tables and len(tables) >= 20
    assert [
        (name, rls, anon, unguarded) for name, rls, anon, unguarded in rows if not rls or anon or unguarded
    ] == []


def seed_visitor_rows(db: Database, workspace: UUID) -> None:
    """One row of each table of READERS in `workspace`, written by the service (as the widget and the
    analytics job write them)."""
    question = "Can I return a gift without the receipt?"
    with db.service_transaction() as conn:
        chatbot = conn.execute(
            "insert into public.chatbots (workspace_id, name, model, status) values (%s, 'Help', "
            "'openai/gpt-4o-mini', 'active') returning id",
            (workspace,),
        ).fetchone()
        assert chatbot is not None
        bot = chatbot["id"]
        visitor_id = "visitor-" + uuid.uuid4().hex
        visitor = conn.execute(
            "insert into public.widget_visitors (workspace_id, chatbot_id, visitor_id, page_url)"
            " values (%s, %s, %s, 'https://shop.example/help') returning id",
            (workspace, bot, visitor_id),
        ).fetchone()
        assert visitor is not None
        conversation = conn.execute(
            "insert into public.visitor_conversations (workspace_id, chatbot_id, visitor_ref, visitor_id, message_count)"
            " values (%s, %s, %s, %s, 1) returning id, started_at",
            (workspace, bot, visitor["id"], visitor_id),
        ).fetchone()
        assert conversation is not None
        conn.execute(
            "insert into public.visitor_messages (conversation_id, workspace_id, role, content, sequence_number)"
            " values (%s, %s, 'user', %s, 1)",
            (conversation["id"], workspace, question),
        )
        conn.execute(
            "insert into public.widget_message_counts (chatbot_id, day, workspace_id, used)"
            " values (%s, current_date, %s, 1)",
            (bot, workspace),
        )
        conn.execute(
            "insert into public.chatbot_daily_analytics (workspace_id, chatbot_id, day, messages, conversations)"
            " values (%s, %s, current_date, 1, 1)",
            (workspace, bot),
        )
        conn.execute(
            "insert into public.chatbot_questions (conversation_id, workspace_id, chatbot_id, started_at, question,"
            " embedding, cluster_id) values (%s, %s, %s, %s, %s, %s::extensions.vector, %s)",
            (
                conversation["id"], workspace, bot, conversation["started_at"], question,
                vector_literal(offline_embedding(question)), conversation["id"],
            ),
        )  # fmt: skip


def visible(db: Database, user: AppUser, workspace: UUID) -> dict[str, int]:
    """How many of the workspace's rows of each table `user`'s own statements read."""
    with db.user_transaction(user.principal) as conn:
        return {
            table: conn.execute(
                f"select count(*) as n from public.{table} where workspace_id = %s",  # noqa: S608 - the names above
                (workspace,),
            ).fetchone()["n"]  # type: ignore[index]
            for table in READERS
        }


def test_a_stranger_reads_none_of_the_visitor_and_analytics_rows_and_a_viewer_none_of_the_visitors_words(
    db: Database, make_user: Callable[..., AppUser]
) -> None:
    owner, editor, viewer, stranger = make_user(), make_user(), make_user(), make_user()
    workspace = team(db, owner, {editor.id: "editor", viewer.id: "viewer"})
    team(db, stranger)  # a member of a workspace of their own, not of this one
    seed_visitor_rows(db, workspace)

    assert visible(db, stranger, workspace) == dict.fromkeys(READERS, 0)
    assert visible(db, viewer, workspace) == {table: int(role == "viewer") for table, role in READERS.items()}
    assert visible(db, editor, workspace) == dict.fromkeys(READERS, 1)
    assert visible(db, owner, workspace) == dict.fromkeys(READERS, 1)

    # nor does a member's own statement write them (the service does: the public chat, the analytics job)
    for user in (stranger, viewer, editor):
        for table in ("widget_message_counts", "chatbot_daily_analytics", "chatbot_questions", "visitor_messages"):
            with pytest.raises(psycopg.errors.InsufficientPrivilege), db.user_transaction(user.principal) as conn:
                conn.execute(f"delete from public.{table} where workspace_id = %s", (workspace,))  # noqa: S608
    assert visible(db, owner, workspace) == dict.fromkeys(READERS, 1)
