"""Shared fixtures: one fresh, migrated PostgreSQL database per test run, test settings, users.

PostgreSQL is `DATABASE_URL` (an admin URL; the run creates and drops its own database there) or,
when unset, an embedded server (pgserver) under .oneai/test-pgdata.
"""

from __future__ import annotations

import os
import sys
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg.conninfo import conninfo_to_dict, make_conninfo
from pydantic import SecretStr

REPO_ROOT = Path(__file__).resolve().parent.parent
# Every function package is importable by its unique name, as in Lambda.
for function_dir in sorted((REPO_ROOT / "functions").iterdir()):
    if function_dir.is_dir() and str(function_dir) not in sys.path:
        sys.path.insert(0, str(function_dir))

from oneai.auth import Principal, authenticate, mint_dev_token  # noqa: E402
from oneai.config import override_settings  # noqa: E402
from oneai.db.connection import Database  # noqa: E402
from oneai.db.migrate import migrate  # noqa: E402
from oneai.deploy import after_migrations  # noqa: E402

TEST_JWT_SECRET = "test-jwt-secret-for-the-oneai-test-suite-000"
TEST_SUPABASE_URL = "http://127.0.0.1:54321"
TEST_ISSUER = f"{TEST_SUPABASE_URL}/auth/v1"


@pytest.fixture(scope="session")
def admin_database_url() -> Iterator[str]:
    configured = os.environ.get("DATABASE_URL")
    if configured:
        yield configured
        return
    from local.embedded_pg import start_embedded_postgres

    url, server = start_embedded_postgres(REPO_ROOT / ".oneai" / "test-pgdata")
    yield url
    del server


def create_test_database(admin_url: str) -> str:
    """A database made for a run on the server of `admin_url` (an admin URL), with the local auth shim
    (roles, `auth` schema) and every migration applied; returns its URL."""
    name = f"oneai_test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(admin_url, autocommit=True) as admin:
        admin.execute(f'create database "{name}"')
    url = make_conninfo(admin_url, dbname=name)
    migrate(url, local_shim=True)
    after_migrations(url)  # the deploy step's work after the migrations (the user guide's search index)
    return url


def drop_test_database(admin_url: str, url: str) -> None:
    name = conninfo_to_dict(url)["dbname"]
    with psycopg.connect(admin_url, autocommit=True) as admin:
        admin.execute(f'drop database if exists "{name}" with (force)')


@contextmanager
def own_database(admin_url: str, prefix: str) -> Iterator[str]:
    """A migrated database of a test's own on the run's server (its rows and planner statistics are its
    alone), dropped after; its URL."""
    name = f"oneai_{prefix}_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(admin_url, autocommit=True) as admin:
        admin.execute(f'create database "{name}"')
    url = make_conninfo(admin_url, dbname=name)
    try:
        migrate(url, local_shim=True)
        yield url
    finally:
        drop_test_database(admin_url, url)


def seed_database(url: str, seed: str, *maintenance: str) -> tuple[Any, ...]:
    """Run the statements of `seed` in one transaction (the last a select) and commit, then each statement
    of `maintenance` on its own (what autovacuum would have done: `analyze`, a GIN pending-list clean);
    the last select's row."""
    with psycopg.connect(url) as conn:
        cursor = conn.execute(seed)
        while cursor.nextset():
            pass
        row = cursor.fetchone()
        conn.commit()
        conn.autocommit = True
        for statement in maintenance:
            conn.execute(statement)
    assert row is not None, "the seed ends with a select"
    return tuple(row)


@pytest.fixture(scope="session")
def database_url(admin_database_url: str) -> Iterator[str]:
    """A database made for this run, with the local auth shim and every migration applied."""
    url = create_test_database(admin_database_url)
    yield url
    drop_test_database(admin_database_url, url)


@pytest.fixture(scope="session")
def pgvector08_database_url() -> Iterator[str]:
    """The same, on a second server: pgserver's PostgreSQL with pgvector 0.8.0 (Supabase's version; the
    embedded server has 0.6.2), built by tests/pgvector08.py (`make test` builds it first; built here if
    missing), started for the run and stopped at its end."""
    from tests import pgvector08

    pgvector08.ensure_built()
    with pgvector08.running_server() as admin_url:
        url = create_test_database(admin_url)
        with psycopg.connect(url) as conn:
            row = conn.execute("select extversion from pg_extension where extname = 'vector'").fetchone()
        assert row == (pgvector08.VERSION,), f"pgvector {pgvector08.VERSION} expected on the second server: {row}"
        yield url
        drop_test_database(admin_url, url)


@pytest.fixture(scope="session", autouse=True)
def test_settings(request: pytest.FixtureRequest) -> Iterator[None]:
    """Settings for the whole run: HS256 test secret, no dev provisioning, loopback outbound URLs allowed
    (as under `make dev`), and the run's database when a test needs one (unit tests never start PostgreSQL)."""
    changes: dict[str, Any] = {
        "supabase_url": TEST_SUPABASE_URL,
        "supabase_jwt_issuer": TEST_ISSUER,
        "supabase_jwt_secret": SecretStr(TEST_JWT_SECRET),
        "dev_mode": False,
        "share_url_base": "https://oneai.test/shared",
        # The stand-ins that play customers' endpoints (a custom provider, webhooks) are on 127.0.0.1.
        "allow_loopback_urls": True,
    }
    with override_settings(**changes):
        yield


@pytest.fixture
def settings_with_db(database_url: str) -> Iterator[Any]:
    with override_settings(database_url=SecretStr(database_url)) as settings:
        yield settings


@pytest.fixture
def db(settings_with_db: Any) -> Iterator[Database]:
    database = Database(settings_with_db)
    yield database
    database.close()


@dataclass(frozen=True)
class AppUser:
    principal: Principal
    token: str

    @property
    def id(self) -> uuid.UUID:
        return self.principal.user_id

    @property
    def headers(self) -> dict[str, str]:
        return {"authorization": f"Bearer {self.token}"}


def token_for(user_id: uuid.UUID, email: str | None = None, **kwargs: Any) -> str:
    return mint_dev_token(user_id, secret=TEST_JWT_SECRET, issuer=TEST_ISSUER, email=email, **kwargs)


def create_user(database_url: str, *, email: str | None = None, suspended: bool = False) -> AppUser:
    """A user as Supabase makes one: an auth.users row; the trigger adds users + free quotas."""
    user_id = uuid.uuid4()
    email = email or f"{user_id.hex[:10]}@example.test"
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("insert into auth.users (id, email) values (%s, %s)", (user_id, email))
        if suspended:
            conn.execute("update public.users set suspended_at = now() where id = %s", (user_id,))
    token = token_for(user_id, email)
    return AppUser(principal=authenticate(f"Bearer {token}"), token=token)


@pytest.fixture
def make_user(database_url: str, settings_with_db: Any) -> Any:
    def make(**kwargs: Any) -> AppUser:
        return create_user(database_url, **kwargs)

    return make
