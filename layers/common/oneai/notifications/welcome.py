"""The welcome occasion. On Supabase a `public.users` row is created by the `auth.users` trigger at sign-up,
inside Supabase's own transaction, where this code cannot publish anything. So the product learns of a new
user at the user's first authenticated request: the request's user check (`Database.user_transaction`,
the same round trip) also reads whether `welcome_announced_at` is still null; after that request's
transaction commits, `UserCreated` is published and, once the bus accepted it, the column is set. If the bus
is down the next request tries again; two racing first requests may both publish, and the notifications
function's claim sends one welcome. Users who existed before this column were marked as announced."""

from __future__ import annotations

from typing import TYPE_CHECKING
from uuid import UUID

from oneai.db import notifications as repo
from oneai.events import EventPublisher, get_publisher
from oneai.logging import logger
from oneai.notifications.occasions import ACCOUNT_SOURCE, USER_CREATED

if TYPE_CHECKING:
    from oneai.db.connection import Database


def announce_new_user(db: Database, user_id: UUID, publisher: EventPublisher | None = None) -> bool:
    """Publish `UserCreated` once the bus takes it, then mark the user announced; never raises."""
    try:
        if not (publisher or get_publisher()).publish(ACCOUNT_SOURCE, USER_CREATED, {"user_id": str(user_id)}):
            return False
        with db.service_transaction() as conn:
            repo.mark_welcome_announced(conn, user_id)
        return True
    except Exception as exc:  # best effort: the user's request must not fail for a welcome email
        logger.warning("UserCreated not announced", extra={"error_type": type(exc).__name__})
        return False
