"""The container's database: one `oneai.db.connection.Database` per Lambda container, wired to the user
provisioning service (`oneai.account.provisioning`: the dev user's row, the welcome). It lives above the
data layer so that `oneai.db` imports nothing of the domain."""

from __future__ import annotations

from oneai.account.provisioning import provision_dev_user, welcome_new_user
from oneai.config import get_settings
from oneai.db.connection import Database

_database: Database | None = None


def get_database() -> Database:
    """The container's database, rebuilt if the settings were swapped (tests)."""
    global _database
    settings = get_settings()
    if _database is None or _database.settings is not settings:
        if _database is not None:
            _database.close()
        _database = Database(
            settings,
            provision_user=provision_dev_user if settings.dev_mode else None,
            on_new_user=welcome_new_user,
        )
    return _database


def close_database() -> None:
    """Close and forget the container's database (after a SnapStart restore its sockets are stale)."""
    global _database
    database, _database = _database, None
    if database is not None:
        database.close()
