"""A throwaway PostgreSQL database for one benchmark run, made and dropped like the test suite's.

The server is `DATABASE_URL` (an admin URL) when set, otherwise an embedded server (pgserver) under
.oneai/bench-pgdata. The run creates `oneai_bench_<hex>` there, applies the local auth shim and every
migration, and drops the database at the end, whatever happened.
"""

from __future__ import annotations

import os
import uuid
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import psycopg
from psycopg import sql
from psycopg.conninfo import make_conninfo

from bench import REPO_ROOT
from oneai.db.migrate import migrate

BENCH_PGDATA = REPO_ROOT / ".oneai" / "bench-pgdata"


@contextmanager
def throwaway_database() -> Iterator[str]:
    """Yields the admin URL of a fresh, migrated database; drops it afterwards."""
    server: Any = None
    admin_url = os.environ.get("DATABASE_URL")
    if not admin_url:
        from local.embedded_pg import start_embedded_postgres

        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*XDG_RUNTIME_DIR")  # platformdirs, harmless here
            admin_url, server = start_embedded_postgres(BENCH_PGDATA)
    name = f"oneai_bench_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(admin_url, autocommit=True) as admin:
        admin.execute(sql.SQL("create database {}").format(sql.Identifier(name)))
    try:
        url = make_conninfo(admin_url, dbname=name)
        migrate(url, local_shim=True)
        yield url
    finally:
        with psycopg.connect(admin_url, autocommit=True) as admin:
            admin.execute(sql.SQL("drop database if exists {} with (force)").format(sql.Identifier(name)))
        # pgserver stops the embedded server when its last handle goes.
        del server
