"""Process-level tuning for Lambda containers, and what a SnapStart restore must not reuse."""

from __future__ import annotations

import gc
from collections.abc import Callable
from typing import Any

Hook = tuple[Callable[..., Any], tuple[Any, ...], dict[str, Any]]


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


def run_after_restore_hooks() -> int:
    """Run the registered after-restore hooks as the managed runtime does after a restore: in the order
    of registration. For a process the runtime does not run (the chat app, served by uvicorn under the
    Lambda Web Adapter, which calls this through its after-restore HTTP hook). Returns how many ran."""
    hooks = list(_after_restore_registry())
    for hook, args, kwargs in hooks:
        hook(*args, **kwargs)
    return len(hooks)


def _after_restore_registry() -> list[Hook]:
    try:
        from snapshot_restore_py import get_after_restore  # type: ignore[import-untyped,import-not-found,unused-ignore]
    except ImportError:  # outside the Lambda runtime (make dev): this module's own list
        return _local_after_restore
    registry: list[Hook] = get_after_restore()
    return registry


def _register_after_restore(hook: Callable[..., Any]) -> None:
    registry = _after_restore_registry()
    if any(registered is hook for registered, _, _ in registry):
        return
    try:
        from snapshot_restore_py import register_after_restore  # type: ignore[import-untyped,import-not-found,unused-ignore]
    except ImportError:
        registry.append((hook, (), {}))
    else:
        register_after_restore(hook)


_local_after_restore: list[Hook] = []
