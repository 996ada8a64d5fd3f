"""The database step of a deploy: apply the migrations, then what needs the migrated schema.

    python -m oneai.deploy                 # DATABASE_URL from the environment; run it before `sam deploy`
    python -m oneai.deploy --local-shim    # plain PostgreSQL only: add the auth shim first

The migrator (`oneai.db.migrate`) only applies migrations; what runs after them is this step's
`after_migrations`: today the user guide's search index (`oneai.guide.index`), rebuilt from docs/guide
(idempotent: unchanged pages are not touched). `make dev` and the test fixtures call `after_migrations`
after their own `migrate`.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass

from oneai.db.migrate import run as run_migrations
from oneai.guide.index import IndexResult, index_guide


@dataclass(frozen=True, slots=True)
class AfterMigrations:
    guide: IndexResult


def after_migrations(database_url: str) -> AfterMigrations:
    """What every migrated database gets next, as the connecting role (which owns the tables)."""
    return AfterMigrations(guide=index_guide(database_url))


def main(argv: list[str] | None = None) -> int:
    args = run_migrations(argv, prog="python -m oneai.deploy", description=__doc__.split("\n\n")[0])
    guide = after_migrations(args.database_url).guide
    print(f"guide: {guide.pages} page(s), {guide.written} written, {guide.removed} removed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
