"""Process-level tuning for Lambda containers, and what a SnapStart restore must not reuse."""

from __future__ import annotations

import gc


def freeze_startup_objects() -> None:
    """Call once at the end of a handler module's import (the end of the function's init).

    Everything imported at cold start (FastAPI, pydantic, psycopg, ...) lives as long as the container.
    Freezing moves those objects out of the collector's generations, so the full collections that a
    large response triggers (thousands of rows) no longer walk them every time.

    It also registers `forget_pre_snapshot_state` with the runtime's SnapStart hooks (the
    `snapshot_restore_py` library the Python managed runtimes include), so a function published with
    SnapStart never serves a request with a connection or a secret from before its snapshot.
    """
    gc.freeze()
    _register_after_restore(forget_pre_snapshot_state)


def forget_pre_snapshot_state() -> None:
    """After a SnapStart restore: close the database connections the snapshot may hold (their sockets
    belong to another machine's session) and forget the settings, so the first request reads the
    secrets again. Everything built from the settings (database, API clients, token verifier) is
    rebuilt because the settings object changes."""
    from oneai.config import reset_settings
    from oneai.database import close_database

    close_database()
    reset_settings()


def _register_after_restore(hook: object) -> None:
    try:
        from snapshot_restore_py import register_after_restore  # type: ignore[import-untyped,import-not-found,unused-ignore]
    except ImportError:  # outside the Lambda runtime: there is no snapshot to restore from
        return
    if not _registered:
        register_after_restore(hook)
        _registered.append(hook)


_registered: list[object] = []
