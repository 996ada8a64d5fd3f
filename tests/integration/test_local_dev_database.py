"""What `make dev` does with its embedded PostgreSQL besides serving the API: it starts it without
platformdirs' RuntimeDirWarning (XDG_RUNTIME_DIR is unset in most containers, and the warning read like an
error to a newcomer), and with ONEAI_PG_TCP_PORT it puts a TCP port in front of its Unix socket, the
database a `sam local invoke` container can reach."""

from __future__ import annotations

import os

import psycopg
from psycopg.conninfo import conninfo_to_dict

from local.__main__ import expose_database_over_tcp
from local.dev_process import free_port
from tests.local_support import run_python


def test_starting_the_embedded_server_prints_no_runtime_dir_warning(admin_database_url: str) -> None:
    environ = {name: value for name, value in os.environ.items() if name != "XDG_RUNTIME_DIR"}
    started = run_python(
        "-W",
        "default",
        "-c",
        "from local.embedded_pg import start_embedded_postgres, REPO_ROOT;"
        "print(start_embedded_postgres(REPO_ROOT / '.oneai' / 'test-pgdata')[0])",
        environ=environ,
    )
    assert started.stdout.startswith("postgresql://")
    assert "Warning" not in started.stderr, started.stderr
    assert "XDG_RUNTIME_DIR" not in started.stderr


def test_the_tcp_port_reaches_the_same_database(database_url: str) -> None:
    port = free_port()
    url, proxy = expose_database_over_tcp(database_url, port)
    try:
        assert url.startswith("postgresql://") and f"@127.0.0.1:{port}/" in url
        with psycopg.connect(url, connect_timeout=10) as conn:
            row = conn.execute("select current_database()").fetchone()
        assert row == (conninfo_to_dict(database_url)["dbname"],)
    finally:
        proxy.stop()
