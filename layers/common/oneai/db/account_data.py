"""Data layer of account erasure (`DELETE /user`) and export (`GET /user/export`).

- The export reads as the caller (user transaction): Row Level Security narrows every statement to the
  caller's rows, and each statement names `auth.uid()` as well.
- The erasure runs as the service role, on purpose: `oneai_private.erase_user` (migration
  20261122030000) keeps the usage records without the user id, then deletes the auth user, which deletes
  `public.users` and, by `on delete cascade`, every row that references it (so a table added later with
  such a foreign key, like api_keys, is erased with no change here).
"""

from __future__ import annotations

from typing import Any, Final
from uuid import UUID

from psycopg.rows import class_row, dict_row

from oneai.db.connection import Connection
from oneai.db.subscriptions import SUBSCRIPTION_COLUMNS, SubscriptionRow

# Every subscription Razorpay could still charge or that could still be paid: cancelled first.
UNENDED_STATUSES: Final = ("created", "authenticated", "active", "pending", "halted", "paused")

UNENDED_SUBSCRIPTIONS_OF = f"""
select {SUBSCRIPTION_COLUMNS}
from public.subscriptions
where user_id = %(user_id)s and status = any(%(statuses)s::text[])
order by created_at, id"""

ERASE_USER = "select oneai_private.erase_user(%(user_id)s) as erased"

# How many rows of each kind an erasure deletes (usage records are kept without the user: not counted).
ROWS_OF_USER = """
select (select count(*) from public.conversations where user_id = %(user_id)s) as conversations,
       (select count(*) from public.chat_messages where user_id = %(user_id)s) as messages,
       (select count(*) from public.share_links where user_id = %(user_id)s) as share_links,
       (select count(*) from public.api_keys where user_id = %(user_id)s) as api_keys,
       (select count(*) from public.subscriptions where user_id = %(user_id)s) as subscriptions"""

# --- the export, as the caller -------------------------------------------------------------------------
EXPORT_QUERIES: Final[dict[str, str]] = {
    "profile": """
select id, email, name, picture_url, provider_type, subscription_tier, subscription_status, preferences,
       suspended_at, created_at, updated_at
from public.users where id = (select auth.uid())""",
    "conversations": """
select id, title, created_at, updated_at, last_message_at, metadata
from public.conversations where user_id = (select auth.uid()) order by created_at, id""",
    # Every revision of every message, current branch or not (is_latest says which are current).
    "messages": """
select id, conversation_id, role, content, model_id, tokens_used, sequence_number, parent_message_id,
       original_message_id, revision_number, revision_type, is_latest, status, selected_at, metadata, created_at
from public.chat_messages where user_id = (select auth.uid())
order by conversation_id, sequence_number, revision_number, created_at, id""",
    # Attachments: what describes them (the files themselves are behind their `url`s while they exist).
    "attachments": """
select id, conversation_id, message_id, filename, media_type, size, status, created_at
from public.attachments where user_id = (select auth.uid()) order by created_at, id""",
    "share_links": """
select id, conversation_id, token, snapshot, created_at, revoked_at
from public.share_links where user_id = (select auth.uid()) order by created_at, id""",
    "quotas": """
select quota_key, used_count, quota_limit, reset_frequency, last_reset_at, next_reset_at, created_at, updated_at
from public.usage_quotas where user_id = (select auth.uid()) order by quota_key""",
    "usage": """
select id, conversation_id, message_id, quota_key, requested_model, model_id, prompt_tokens, completion_tokens,
       total_tokens, cost, status, created_at
from public.usage_records where user_id = (select auth.uid()) order by created_at, id""",
    "subscriptions": """
select id, plan_id, tier, status, payment_provider, provider_subscription_id, provider_customer_id,
       current_period_start, current_period_end, paid_until, grace_until, cancel_at_period_end, canceled_at,
       replaces_subscription_id, created_at, updated_at, metadata
from public.subscriptions where user_id = (select auth.uid()) order by created_at, id""",
    "subscription_history": """
select id, subscription_id, old_tier, new_tier, change_reason, changed_at, metadata
from public.subscription_history where user_id = (select auth.uid()) order by changed_at, id""",
    # The key's hash is never read back (the column is not even granted to users).
    "api_keys": """
select id, name, prefix, created_at, last_used_at, expires_at, revoked_at
from public.api_keys where user_id = (select auth.uid()) order by created_at, id""",
    # The workspaces the caller is a member of, and the caller's own memberships (the other members' rows
    # are theirs, not the caller's).
    "workspaces": """
select w.id, w.name, w.slug, w.industry, w.settings, w.personal, w.owner_id = (select auth.uid()) as owned,
       w.created_at, w.updated_at, w.deleted_at, w.suspended_at
from public.workspaces w
where w.id in (select m.workspace_id from public.workspace_members m where m.user_id = (select auth.uid()))
order by w.created_at, w.id""",
    "workspace_memberships": """
select workspace_id, role, created_at, updated_at
from public.workspace_members where user_id = (select auth.uid()) order by created_at, workspace_id""",
    "sent_notifications": """
select kind, occasion, status, claimed_at, sent_at
from public.sent_notifications where user_id = (select auth.uid()) order by claimed_at, kind, occasion""",
}


def unended_subscriptions_of(conn: Connection, user_id: UUID) -> list[SubscriptionRow]:
    """The user's subscriptions that have not ended (service transaction)."""
    with conn.cursor(row_factory=class_row(SubscriptionRow)) as cur:
        return cur.execute(
            UNENDED_SUBSCRIPTIONS_OF, {"user_id": user_id, "statuses": list(UNENDED_STATUSES)}
        ).fetchall()


def rows_of_user(conn: Connection, user_id: UUID) -> dict[str, int]:
    """Counts of the user's rows by kind (service transaction), for the erasure's audit entry."""
    with conn.cursor(row_factory=dict_row) as cur:
        row = cur.execute(ROWS_OF_USER, {"user_id": user_id}).fetchone()
    return {name: int(count) for name, count in (row or {}).items()}


def erase_user(conn: Connection, user_id: UUID) -> bool:
    """Erase the account's rows (service transaction); False when there was no auth user left (a retry)."""
    row = conn.execute(ERASE_USER, {"user_id": user_id}).fetchone()
    return bool(row and row["erased"])


def export_rows(conn: Connection) -> dict[str, list[dict[str, Any]]]:
    """Every section of the caller's export, as rows (user transaction)."""
    sections: dict[str, list[dict[str, Any]]] = {}
    with conn.cursor(row_factory=dict_row) as cur:
        for name, query in EXPORT_QUERIES.items():
            sections[name] = cur.execute(query).fetchall()
    return sections
