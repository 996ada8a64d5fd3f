"""The migration runner on fresh databases: order, history, idempotence, concurrency, failures, the CLI,
and the local auth shim's refusal to touch a Supabase database."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import threading
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg.conninfo import make_conninfo

from oneai.db.migrate import default_migrations_dir, discover, local_shim_sql, migrate

REPO_ROOT = Path(__file__).resolve().parents[2]
HISTORY = "select version, name from supabase_migrations.schema_migrations order by version::numeric"


@pytest.fixture
def new_database(admin_database_url: str) -> Iterator[Callable[[], str]]:
    """Makes empty databases `oneai_mig_<hex>`; drops them all afterwards."""
    names: list[str] = []

    def make() -> str:
        name = f"oneai_mig_{uuid.uuid4().hex[:12]}"
        with psycopg.connect(admin_database_url, autocommit=True) as admin:
            admin.execute(f'create database "{name}"')
        names.append(name)
        return make_conninfo(admin_database_url, dbname=name)

    yield make
    with psycopg.connect(admin_database_url, autocommit=True) as admin:
        for name in names:
            admin.execute(f'drop database if exists "{name}" with (force)')


def write_migrations(folder: Path, files: dict[str, str]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name, body in files.items():
        (folder / name).write_text(body, encoding="utf-8")
    return folder


def history(url: str) -> list[tuple[str, str]]:
    with psycopg.connect(url) as conn:
        return [(v, n) for v, n in conn.execute(HISTORY).fetchall()]


def schema_fingerprint(url: str) -> list[Any]:
    """What an operator would diff: tables, columns, indexes, policies, functions, triggers, history."""
    queries = [
        "select table_schema, table_name, column_name, data_type, column_default from information_schema.columns"
        " where table_schema in ('public', 'auth', 'supabase_migrations') order by 1, 2, 3",
        "select schemaname, indexname, indexdef from pg_indexes where schemaname in ('public', 'auth') order by 1, 2",
        "select tablename, policyname, cmd, roles::text, qual, with_check from pg_policies order by 1, 2",
        "select p.oid::regprocedure::text, md5(p.prosrc) from pg_proc p join pg_namespace n on n.oid = p.pronamespace"
        " where n.nspname in ('public', 'auth') order by 1",
        "select tgname, tgrelid::regclass::text from pg_trigger where not tgisinternal order by 1",
        "select relname, relacl::text from pg_class c join pg_namespace n on n.oid = c.relnamespace"
        " where n.nspname = 'public' order by 1",
        "select count(*) from public.tier_quota_limits",
        "select version, name, statements from supabase_migrations.schema_migrations order by version",
    ]
    with psycopg.connect(url) as conn:
        return [conn.execute(q).fetchall() for q in queries]


def test_all_migrations_apply_in_order_and_are_recorded(new_database: Callable[[], str], tmp_path: Path) -> None:
    # GIVEN a folder whose versions sort differently as text and as numbers, and a stray README
    folder = write_migrations(
        tmp_path / "m",
        {
            "2_create_log.sql": "create table public.log (seq serial primary key, step text not null);"
            " insert into public.log (step) values ('two');",
            "10_add_column.sql": "alter table public.log add column extra int;"
            " insert into public.log (step) values ('ten');",
            "9_second.sql": "insert into public.log (step) values ('nine');",
            "README.md": "not a migration",
        },
    )
    url = new_database()
    # WHEN the runner applies them
    applied = migrate(url, directory=folder)
    # THEN they ran in numeric order, each once, and the history names them like the Supabase CLI does
    assert applied == ["2", "9", "10"]
    with psycopg.connect(url) as conn:
        assert [r[0] for r in conn.execute("select step from public.log order by seq")] == ["two", "nine", "ten"]
    assert history(url) == [("2", "create_log"), ("9", "second"), ("10", "add_column")]


def test_the_projects_migrations_apply_on_plain_postgres_and_a_second_run_changes_nothing(
    new_database: Callable[[], str],
) -> None:
    url = new_database()
    expected = [(m.version, m.name) for m in discover(default_migrations_dir())]
    assert expected, "supabase/migrations holds the schema"
    # WHEN the project's migrations are applied with the local shim
    assert migrate(url, local_shim=True) == [v for v, _ in expected]
    assert history(url) == expected
    before = schema_fingerprint(url)
    # THEN a second run applies nothing and leaves the schema exactly as it was
    assert migrate(url, local_shim=True) == []
    assert schema_fingerprint(url) == before


def test_two_concurrent_runs_both_succeed_and_apply_each_migration_once(
    new_database: Callable[[], str],
) -> None:
    url = new_database()
    expected = [m.version for m in discover(default_migrations_dir())]
    start = threading.Barrier(2)
    results: list[list[str]] = []
    errors: list[BaseException] = []

    def run() -> None:
        try:
            start.wait(timeout=10)
            results.append(migrate(url, local_shim=True))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=run) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    # THEN both runs succeed; one applied everything, the other found nothing left to do
    assert errors == []
    assert sorted(results, key=len) == [[], expected]
    assert [v for v, _ in history(url)] == expected


def test_a_failing_migration_keeps_earlier_ones_and_leaves_no_trace_of_itself(
    new_database: Callable[[], str], tmp_path: Path
) -> None:
    folder = write_migrations(
        tmp_path / "m",
        {
            "1_first.sql": "create table public.first_table (id int primary key); insert into public.first_table values (1);",
            "2_broken.sql": "create table public.half_done (id int);"
            " insert into public.first_table values (2);"
            " select 1 / 0;",
        },
    )
    url = new_database()
    # WHEN the second migration fails halfway
    with pytest.raises(psycopg.errors.DivisionByZero):
        migrate(url, directory=folder)
    # THEN the first is applied and recorded, and nothing of the broken one exists
    assert history(url) == [("1", "first")]
    with psycopg.connect(url) as conn:
        assert conn.execute("select to_regclass('public.half_done')").fetchone() == (None,)
        assert conn.execute("select array_agg(id) from public.first_table").fetchone() == ([1],)
    # AND once the file is fixed, the next run (not blocked by the failed one) applies exactly that one
    (folder / "2_broken.sql").write_text("create table public.half_done (id int);", encoding="utf-8")
    assert migrate(url, directory=folder) == ["2"]
    assert history(url) == [("1", "first"), ("2", "broken")]


@pytest.mark.parametrize("bad_name", ["create_users.sql", "1-create.sql", "1_create users.sql", "v1_x.sql"])
def test_badly_named_files_are_refused_before_anything_runs(
    new_database: Callable[[], str], tmp_path: Path, bad_name: str
) -> None:
    folder = write_migrations(
        tmp_path / "m", {"1_ok.sql": "create table public.ok (id int);", bad_name: "select 1;"}
    )
    url = new_database()
    with pytest.raises(ValueError, match=re.escape("<version>_<name>.sql")):
        migrate(url, directory=folder)
    with psycopg.connect(url) as conn:
        assert conn.execute(
            "select to_regnamespace('supabase_migrations'), to_regclass('public.ok')"
        ).fetchone() == (
            None,
            None,
        )


def test_duplicate_versions_are_refused(tmp_path: Path) -> None:
    folder = write_migrations(tmp_path / "m", {"1_a.sql": "select 1;", "1_b.sql": "select 1;"})
    with pytest.raises(ValueError, match="share a version"):
        discover(folder)


def test_the_local_shim_refuses_a_supabase_database(new_database: Callable[[], str]) -> None:
    """Roles are cluster-wide and other test runs may share this server: the `supabase_admin` role is
    created inside a transaction that is rolled back, so no other session ever sees it."""
    url = new_database()
    with psycopg.connect(url) as conn:
        assert conn.execute("select count(*) from pg_roles where rolname = 'supabase_admin'").fetchone() == (0,)
        conn.execute("create role supabase_admin nologin")
        with pytest.raises(psycopg.errors.RaiseException, match="refusing to apply the local auth shim"):
            conn.execute(local_shim_sql())
        conn.rollback()
        # the refusal came first: no auth schema was created
        assert conn.execute("select to_regnamespace('auth')").fetchone() == (None,)
        assert conn.execute("select count(*) from pg_roles where rolname = 'supabase_admin'").fetchone() == (0,)


def run_module(module: str, *args: str) -> subprocess.CompletedProcess[str]:
    """`python -m <module> <args>` from the repository, without DATABASE_URL in its environment."""
    env = {**os.environ, "PYTHONPATH": "layers/common"}
    env.pop("DATABASE_URL", None)
    command = [sys.executable, "-m", module, *args]
    return subprocess.run(command, cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=60, check=False)


def test_the_deploy_command_migrates_then_indexes_the_guide(new_database: Callable[[], str]) -> None:
    url = new_database()
    count = len(discover(default_migrations_dir()))
    first = run_module("oneai.deploy", "--database-url", url, "--local-shim")
    assert first.returncode == 0, first.stderr
    assert first.stdout.startswith(f"applied {count} migration(s)")
    second = run_module("oneai.deploy", "--database-url", url, "--local-shim")
    # AND the user guide's index is rebuilt after the migrations, changing nothing the second time
    assert first.stdout.strip().endswith("guide: 9 page(s), 9 written, 0 removed")
    assert (second.returncode, second.stdout.strip()) == (
        0,
        "applied 0 migration(s)\nguide: 9 page(s), 0 written, 0 removed",
    )
    # AND without any database URL it says so instead of guessing
    missing = run_module("oneai.deploy")
    assert missing.returncode == 2
    assert "DATABASE_URL" in missing.stderr


def test_the_migrate_command_only_applies_migrations(new_database: Callable[[], str]) -> None:
    url = new_database()
    versions = [migration.version for migration in discover(default_migrations_dir())]
    done = run_module("oneai.db.migrate", "--database-url", url, "--local-shim")
    assert (done.returncode, done.stdout.strip()) == (
        0,
        f"applied {len(versions)} migration(s): {', '.join(versions)}",
    )
    # AND what runs after the migrations is the deploy step's: the guide's index is still empty
    with psycopg.connect(url) as conn:
        assert conn.execute("select count(*) from public.guide_pages").fetchone() == (0,)
    missing = run_module("oneai.db.migrate")
    assert missing.returncode == 2
    assert "DATABASE_URL" in missing.stderr
