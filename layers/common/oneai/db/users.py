"""Data layer of the caller's own users row (under RLS a user sees only their own)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any
from uuid import UUID

from psycopg.rows import class_row
from psycopg.types.json import Jsonb
from pydantic import BaseModel

from oneai.db.connection import Connection
from oneai.errors import UnauthorizedError
from oneai.quota.tiers import TierName

CALLER_TIER = "select subscription_tier from public.users where id = auth.uid()"


def caller_tier(conn: Connection) -> str:
    row = conn.execute(CALLER_TIER).fetchone()
    if row is None:
        raise UnauthorizedError("Unknown user")
    return str(row["subscription_tier"])


# --- the caller's profile (`/user/profile`, `/user/quota`) ----------------------------------------------
PROFILE_COLUMNS = "id, email, name, picture_url, preferences, subscription_tier, subscription_status, created_at"
CALLER_PROFILE = f"select {PROFILE_COLUMNS} from public.users where id = (select auth.uid())"
# Sets only what the `authenticated` role may update (name, picture_url, preferences). Preferences merge
# inside the statement, so two concurrent PATCHes of different keys both land: `preferences` keys replace
# the stored ones, `remove` keys go, and `replace_preferences` starts from an empty object.
UPDATE_CALLER_PROFILE = f"""
update public.users set
  name = case when %(set_name)s then %(name)s else name end,
  picture_url = case when %(set_picture_url)s then %(picture_url)s else picture_url end,
  preferences = case when %(set_preferences)s
    then ((case when %(replace_preferences)s then '{{}}'::jsonb else preferences end) || %(preferences)s)
         - %(remove)s::text[]
    else preferences end
where id = (select auth.uid())
returning {PROFILE_COLUMNS}"""


class UserProfileRow(BaseModel):
    id: UUID
    email: str | None
    name: str | None
    picture_url: str | None
    preferences: dict[str, Any]
    subscription_tier: TierName
    subscription_status: str
    created_at: datetime


def caller_profile(conn: Connection) -> UserProfileRow:
    with conn.cursor(row_factory=class_row(UserProfileRow)) as cur:
        row = cur.execute(CALLER_PROFILE).fetchone()
    if row is None:
        raise UnauthorizedError("Unknown user")
    return row


def update_caller_profile(
    conn: Connection,
    *,
    changes: dict[str, Any],
    preferences: dict[str, Any] | None = None,
    remove_preferences: Sequence[str] = (),
    replace_preferences: bool = False,
) -> UserProfileRow:
    """Set the `changes` given (`name`, `picture_url`; None clears) and merge `preferences` in (None: keep)."""
    params = {
        "set_name": "name" in changes,
        "name": changes.get("name"),
        "set_picture_url": "picture_url" in changes,
        "picture_url": changes.get("picture_url"),
        "set_preferences": preferences is not None or bool(remove_preferences) or replace_preferences,
        "replace_preferences": replace_preferences,
        "preferences": Jsonb(preferences or {}),
        "remove": list(remove_preferences),
    }
    with conn.cursor(row_factory=class_row(UserProfileRow)) as cur:
        row = cur.execute(UPDATE_CALLER_PROFILE, params).fetchone()
    if row is None:
        raise UnauthorizedError("Unknown user")
    return row


# --- provisioning (`oneai.account.provisioning`) -----------------------------------------------------------
# Dev mode: the auth.users row Supabase would create at sign-up. Its trigger creates the users row, the
# free quotas and the personal workspace in the same transaction, as on Supabase.
CREATE_AUTH_USER = """
insert into auth.users (id, email, raw_app_meta_data, raw_user_meta_data)
values (%(id)s, %(email)s, %(app_metadata)s, %(user_metadata)s)
on conflict (id) do nothing"""


def create_auth_user(
    conn: Connection, user_id: UUID, email: str | None, app_metadata: object, user_metadata: object
) -> None:
    conn.execute(
        CREATE_AUTH_USER,
        {
            "id": user_id,
            "email": email,
            "app_metadata": Jsonb(app_metadata),
            "user_metadata": Jsonb(user_metadata),
        },
    )
