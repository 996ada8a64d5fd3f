"""Apply `supabase/migrations` in order, once each.

Applied versions are recorded in `supabase_migrations.schema_migrations`, the table the Supabase CLI
uses, so this runner and `supabase db push` agree about what a database has. An advisory lock makes
concurrent runs wait for each other; every migration runs in its own transaction.

    python -m oneai.db.migrate                      # DATABASE_URL from the environment
    python -m oneai.db.migrate --local-shim         # plain PostgreSQL only: add the auth shim first

This runner only applies migrations. What must run after them (the user guide's search index) is the
deploy step's: `python -m oneai.deploy` runs this, then that (`oneai.deploy.after_migrations`).
"""

from __future__ import annotations

import argparse
import os
import re
import sys
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import psycopg

MIGRATION_FILE = re.compile(r"^(?P<version>\d+)_(?P<name>[A-Za-z0-9_\-]+)\.sql$")
MIGRATIONS_LOCK_KEY = 0x0A1_0001  # any constant shared by every runner of this project

CREATE_HISTORY = """
create schema if not exists supabase_migrations;
create table if not exists supabase_migrations.schema_migrations (
  version text primary key,
  statements text[],
  name text
);
"""


@dataclass(frozen=True, slots=True)
class Migration:
    version: str
    name: str
    sql: str


def default_migrations_dir() -> Path:
    configured = os.environ.get("ONEAI_MIGRATIONS_DIR")
    if configured:
        return Path(configured)
    # The repository root, wherever the command is run from inside it.
    for folder in (Path.cwd(), *Path.cwd().parents, *Path(__file__).resolve().parents):
        candidate = folder / "supabase" / "migrations"
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError("supabase/migrations not found; pass --dir")


def discover(directory: Path) -> list[Migration]:
    migrations = []
    for path in sorted(directory.glob("*.sql")):
        match = MIGRATION_FILE.match(path.name)
        if match is None:
            raise ValueError(f"migration file name must be <version>_<name>.sql: {path.name}")
        migrations.append(Migration(match["version"], match["name"], path.read_text(encoding="utf-8")))
    versions = [m.version for m in migrations]
    if len(set(versions)) != len(versions):
        raise ValueError("two migrations share a version")
    return sorted(migrations, key=lambda m: int(m.version))


def local_shim_sql() -> str:
    return resources.files("oneai.db").joinpath("sql/local_auth_shim.sql").read_text(encoding="utf-8")


def migrate(database_url: str, *, local_shim: bool = False, directory: Path | None = None) -> list[str]:
    """Apply pending migrations; returns the versions applied by this call."""
    pending_source = discover(directory or default_migrations_dir())
    applied_now: list[str] = []
    with psycopg.connect(database_url, autocommit=True, prepare_threshold=None) as conn:
        conn.execute("select pg_advisory_lock(%s)", (MIGRATIONS_LOCK_KEY,))
        try:
            if local_shim:
                with conn.transaction():
                    conn.execute(local_shim_sql())
            with conn.transaction():
                conn.execute(CREATE_HISTORY)
            done = {row[0] for row in conn.execute("select version from supabase_migrations.schema_migrations")}
            for migration in pending_source:
                if migration.version in done:
                    continue
                with conn.transaction():
                    conn.execute(migration.sql)
                    conn.execute(
                        "insert into supabase_migrations.schema_migrations (version, name, statements)"
                        " values (%s, %s, %s)",
                        (migration.version, migration.name, [migration.sql]),
                    )
                applied_now.append(migration.version)
        finally:
            conn.execute("select pg_advisory_unlock(%s)", (MIGRATIONS_LOCK_KEY,))
    return applied_now


def run(argv: list[str] | None, *, prog: str, description: str) -> argparse.Namespace:
    """The command line: apply the pending migrations and say which; returns the parsed arguments."""
    parser = argparse.ArgumentParser(prog=prog, description=description)
    parser.add_argument("--database-url", default=os.environ.get("DATABASE_URL"))
    parser.add_argument("--dir", type=Path, default=None, help="migrations folder (default: supabase/migrations)")
    parser.add_argument(
        "--local-shim", action="store_true", help="plain PostgreSQL only: create the auth schema/roles shim"
    )
    args = parser.parse_args(argv)
    if not args.database_url:
        parser.error("DATABASE_URL is not set and --database-url was not given")
    applied = migrate(args.database_url, local_shim=args.local_shim, directory=args.dir)
    print(f"applied {len(applied)} migration(s)" + (f": {', '.join(applied)}" if applied else ""), flush=True)
    return args


def main(argv: list[str] | None = None) -> int:
    run(argv, prog="python -m oneai.db.migrate", description=__doc__.split("\n\n")[0])
    return 0


if __name__ == "__main__":
    sys.exit(main())
