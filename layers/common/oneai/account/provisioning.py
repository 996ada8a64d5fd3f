"""User provisioning: the one service that brings a new user into the product.

On Supabase the user is created at sign-up by the `auth.users` trigger (the users row, the free quotas
and the personal workspace with its owner's membership, in Supabase's own transaction); locally (`make
dev`, dev mode) `provision_dev_user` creates the `auth.users` row of an unknown token's `sub` on its first
request, and the same trigger does the rest in that transaction.
Either way the product learns of the new user at their first authenticated request, after which
`welcome_new_user` grants the welcome credits (`oneai.credits`) and announces the welcome
(`oneai.notifications.welcome`).

The connection runs these as hooks (`Database(provision_user=..., on_new_user=...)`, wired by
`oneai.database`), so the data layer does not import this service.
"""

from __future__ import annotations

from uuid import UUID

from oneai.db import users as users_db
from oneai.db.connection import Database
from oneai.db.scope import Caller
from oneai.notifications.welcome import announce_new_user


def provision_dev_user(db: Database, caller: Caller) -> None:
    """Dev mode: create the user of a verified token whose `sub` the database does not know yet."""
    app_metadata = caller.claims.get("app_metadata") or {"provider": "email"}
    user_metadata = caller.claims.get("user_metadata") or {}
    with db.service_transaction() as conn:
        users_db.create_auth_user(conn, caller.user_id, caller.email, app_metadata, user_metadata)


def welcome_new_user(db: Database, user_id: UUID) -> bool:
    """After a new user's first request committed: the welcome credits of their personal workspace
    (ONEAI_WELCOME_CREDITS, once), then publish `UserCreated` (best effort, never raises)."""
    from oneai.credits.service import grant_welcome  # the credits service is not needed before this

    grant_welcome(db, user_id)
    return announce_new_user(db, user_id)
