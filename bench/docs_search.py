"""Searching the user guide, as `GET /docs/search` does it, against reading one page by its slug.

Data: the real guide (docs/guide, 9 pages), then the same guide copied 25 times under other slugs (225
pages), to see how each search path grows with the guide. Measured inside `Database.anon_transaction`
(role `anon` under RLS, as the public route runs), interleaved per repetition after a warm-up:
- baseline: `service.get_page` (one primary-key read, the cheapest request of the same function);
- search, every word matches (`websearch_to_tsquery`, `ts_rank`, `ts_headline`);
- search, the any-word fallback (a question with words no page holds);
- search, misspelt words corrected against the guide's vocabulary, then the same question typed right
  (the difference is what the correction costs);
- search, the title-trigram fallback (typos too short to correct: full text finds nothing);
- search, nothing matches (correction finds no word, and every stage runs and finds nothing).
Every search runs the per-word correction step; only the misspelt cases find something to correct.
"""

from __future__ import annotations

import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from pydantic import SecretStr

from bench import REPO_ROOT
from bench._db import throwaway_database
from bench._report import SUMMARY_HEADERS, Summary, ms, summarize, summary_row, table
from oneai.config import override_settings
from oneai.db.connection import Database
from oneai.guide import service
from oneai.guide.index import index_guide
from oneai.guide.models import SearchQuery

GUIDE_DIR = REPO_ROOT / "docs" / "guide"
COPIES = 25
REPETITIONS = 60
QUICK_REPETITIONS = 15
WARMUP = 5
CASES: dict[str, str] = {
    "every word matches": "when does my quota reset",
    "any-word fallback": "edit a message I already sent",
    "misspelt words corrected": "how do I cancel my subscirption invocie",
    "the same typed right": "how do I cancel my subscription invoice",
    "title-trigram fallback": "plns and bling",
    "nothing matches": "xylophone zebra",
}


def _measure(db: Database, repetitions: int) -> dict[str, Summary]:
    def page() -> None:
        with db.anon_transaction() as conn:
            service.get_page(conn, "getting-started")

    def searcher(q: str) -> Callable[[], None]:
        def run() -> None:
            with db.anon_transaction() as conn:
                service.search(conn, SearchQuery(q=q))

        return run

    calls: dict[str, Callable[[], None]] = {"baseline: read one page": page}
    calls.update({f"search, {label}": searcher(q) for label, q in CASES.items()})
    samples: dict[str, list[float]] = {name: [] for name in calls}
    for round_ in range(WARMUP + repetitions):
        for name, call in calls.items():
            started = time.perf_counter()
            call()
            if round_ >= WARMUP:
                samples[name].append(time.perf_counter() - started)
    return {name: summarize(values) for name, values in samples.items()}


def _copied_guide(folder: Path) -> Path:
    """The guide and COPIES more of each page, each copy with its own slug and position."""
    for path in sorted(GUIDE_DIR.glob("*.md")):
        shutil.copy(path, folder / path.name)
        number, _, slug = path.name.partition("-")
        for copy in range(1, COPIES + 1):
            position = copy * 10 + int(number)
            (folder / f"{position:02d}-{slug[:-3]}-copy-{copy}.md").write_text(
                path.read_text(encoding="utf-8"), encoding="utf-8"
            )
    return folder


def run(*, quick: bool = False) -> None:
    repetitions = QUICK_REPETITIONS if quick else REPETITIONS
    print("== docs_search: GET /docs/search against a page read, on the real guide and a 25x larger one ==")
    results: dict[str, dict[str, Summary]] = {}
    with throwaway_database() as url, override_settings(database_url=SecretStr(url)) as settings:
        db = Database(settings)
        try:
            pages = index_guide(url, GUIDE_DIR).pages
            results[f"{pages} pages (the guide)"] = _measure(db, repetitions)
            with tempfile.TemporaryDirectory() as folder:
                pages = index_guide(url, _copied_guide(Path(folder))).pages
            results[f"{pages} pages"] = _measure(db, repetitions)
        finally:
            db.close()
    print(f"{repetitions} repetitions after {WARMUP} warm-up, interleaved, one anon transaction each")
    rows: list[list[str]] = []
    for size, summaries in results.items():
        baseline = summaries["baseline: read one page"].median
        rows.append([size, "", "", "", ""])
        for name, summary in summaries.items():
            rows.append([*summary_row(f"  {name}", summary), f"{summary.median / baseline:.1f}x"])
    print(table([*SUMMARY_HEADERS, "vs page read"], rows))
    worst = max(s.median for summaries in results.values() for s in summaries.values())
    print(f"slowest median search: {ms(worst)} ms")
