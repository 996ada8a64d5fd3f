"""Data layer of usage records, read back as grouped sums (`/user/usage`) under the caller's RLS. They are
written inside the chat turn's finish call (`oneai_private.finish_chat_turn`) and, for `/v1`, by
`oneai.db.api_keys.record_api_usage`."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Literal

from psycopg.rows import class_row
from pydantic import BaseModel

from oneai.db.connection import Connection

# --- usage statistics (`GET /user/usage`): one grouped query per grouping, over the caller's records ----
# RLS already narrows the rows to the caller; the explicit `user_id` filter makes the (user_id, created_at)
# index the plan. `messages` counts records: one per reply. A chatbot's replies are their workspace's cost
# (`workspace_id` set), not the member's: they are not in the member's usage.
_USAGE_SUMS = """
  count(*)::bigint as messages,
  coalesce(sum(prompt_tokens), 0)::bigint as prompt_tokens,
  coalesce(sum(completion_tokens), 0)::bigint as completion_tokens,
  coalesce(sum(total_tokens), 0)::bigint as total_tokens,
  coalesce(sum(cost), 0) as cost"""
_USAGE_RANGE = """
from public.usage_records
where user_id = (select auth.uid()) and created_at >= %(start)s and created_at < %(end)s
  and workspace_id is null"""

USAGE_BY_MODEL = f"""
select model_id as "group",{_USAGE_SUMS}{_USAGE_RANGE}
group by model_id
order by model_id"""

# Days are UTC days, whatever the session's time zone.
USAGE_BY_DAY = f"""
select to_char((created_at at time zone 'UTC')::date, 'YYYY-MM-DD') as "group",{_USAGE_SUMS}{_USAGE_RANGE}
group by (created_at at time zone 'UTC')::date
order by (created_at at time zone 'UTC')::date"""

# Per API key id (`/v1` usage); replies of the web chat, made without a key, are the group `web`.
USAGE_BY_API_KEY = f"""
select coalesce(api_key_id::text, 'web') as "group",{_USAGE_SUMS}{_USAGE_RANGE}
group by api_key_id
order by api_key_id nulls first"""

_USAGE_QUERIES = {"model": USAGE_BY_MODEL, "day": USAGE_BY_DAY, "api_key": USAGE_BY_API_KEY}


class UsageSums(BaseModel):
    """One group of the caller's usage records: a model id, a UTC day (`YYYY-MM-DD`) or an API key id."""

    group: str
    messages: int
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int
    cost: Decimal


def usage_sums(
    conn: Connection, *, group_by: Literal["model", "day", "api_key"], start: datetime, end: datetime
) -> list[UsageSums]:
    """The caller's usage in [start, end), grouped and ordered by model id, UTC day or API key, in one
    query."""
    with conn.cursor(row_factory=class_row(UsageSums)) as cur:
        return cur.execute(_USAGE_QUERIES[group_by], {"start": start, "end": end}).fetchall()
