"""An embedded PostgreSQL (the `pgserver` package) for `make dev` and tests when DATABASE_URL is unset."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_DATA_DIR = REPO_ROOT / ".oneai" / "pgdata"


def import_pgserver() -> Any:
    """`pgserver`, without the warning platformdirs prints at its import when XDG_RUNTIME_DIR is unset
    (most containers and CI): pgserver only keeps a lock file there, and the fallback directory
    (/run/user/<uid> or the temporary directory) serves as well, so the warning would only alarm."""
    from platformdirs import RuntimeDirWarning

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeDirWarning)
        import pgserver
    return pgserver


def start_embedded_postgres(data_dir: Path = DEFAULT_DATA_DIR) -> tuple[str, Any]:
    """Start (or reuse) the server in `data_dir`; returns its admin URL and the server handle.

    The handle must be kept alive: pgserver stops the server when the last handle is dropped.
    """
    pgserver = import_pgserver()
    data_dir.mkdir(parents=True, exist_ok=True)
    server = pgserver.get_server(str(data_dir), cleanup_mode="stop")
    return server.get_uri(), server
