"""Rebuild the guide's search index from `docs/guide/*.md`, idempotently.

Run after the migrations (the deploy step `python -m oneai.deploy` does it through
`oneai.deploy.after_migrations`; so do `make dev` and the test fixtures):

    python -m oneai.guide.index                    # DATABASE_URL from the environment

The pages' markdown is stored in the database, and the docs function reads only the database: the
markdown files need not ship with the function. A page whose content is unchanged is not touched, so its
`updated_at` stays; a page removed from the folder leaves the index (its feedback stays).
"""

from __future__ import annotations

import argparse
import os
import sys
from dataclasses import dataclass
from pathlib import Path

import psycopg
from psycopg.rows import dict_row

from oneai.db.guide import PageWrite, replace_pages
from oneai.guide.pages import GuidePageSource, load_pages


@dataclass(frozen=True, slots=True)
class IndexResult:
    pages: int
    written: int
    removed: int


def _write(page: GuidePageSource) -> PageWrite:
    return PageWrite(
        slug=page.slug,
        title=page.title,
        position=page.position,
        markdown=page.markdown,
        headings=page.headings,
        body=page.body,
        plain_text=page.text,
        content_sha256=page.content_sha256,
    )


def index_guide(database_url: str, directory: Path | None = None) -> IndexResult:
    """One transaction: the index holds exactly the guide's pages afterwards (as the connecting role, which
    owns the tables: this is a deploy step, like the migrations)."""
    pages = load_pages(directory)
    with psycopg.connect(database_url, prepare_threshold=None, row_factory=dict_row) as conn:
        written, removed = replace_pages(conn, [_write(p) for p in pages])
    return IndexResult(pages=len(pages), written=written, removed=removed)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m oneai.guide.index", description=__doc__.split("\n\n")[0])
    parser.add_argument("--database-url", default=os.environ.get("DATABASE_URL"))
    parser.add_argument("--dir", type=Path, default=None, help="the guide folder (default: docs/guide)")
    args = parser.parse_args(argv)
    if not args.database_url:
        parser.error("DATABASE_URL is not set and --database-url was not given")
    result = index_guide(args.database_url, args.dir)
    print(f"guide: {result.pages} page(s), {result.written} written, {result.removed} removed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
