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

Then how well the correction limits (`service.CORRECT_ONE_EDIT_FROM`, `CORRECT_TWO_EDITS_FROM`) and three
others do, on the real guide: the share of generated one-edit typos of the guide's words (a letter left
out, doubled, changed, two neighbours swapped) corrected back to that word, and the share of real words
the guide does not use (from the repository's other documentation) that are "corrected" all the same.
"""

from __future__ import annotations

import random
import re
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
from oneai.db import guide as guide_db
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


# (one edit from, two edits from) letters; the first is the service's.
POLICIES = [(service.CORRECT_ONE_EDIT_FROM, service.CORRECT_TWO_EDITS_FROM), (4, 8), (5, 8), (6, 10)]
TYPOS = 1500
QUICK_TYPOS = 200
# Every one-edit typo of every vocabulary word of 5 letters or more that is not itself a word of the guide
# (in any form), a fixed sample of them.
GENERATED_TYPOS = """
select distinct on (t.typo) t.typo, v.word
from public.guide_vocabulary v,
     generate_series(1, char_length(v.word)) as i,
     lateral (values
       (left(v.word, i - 1) || substr(v.word, i + 1)),
       (left(v.word, i) || substr(v.word, i, 1) || substr(v.word, i + 1)),
       (left(v.word, i - 1) || case when substr(v.word, i, 1) = 'x' then 'y' else 'x' end || substr(v.word, i + 1)),
       (left(v.word, i - 1) || substr(v.word, i + 1, 1) || substr(v.word, i, 1) || substr(v.word, i + 2))
     ) as t(typo)
where char_length(v.word) >= 5 and t.typo <> v.word
  and ts_lexize('english_stem'::regdictionary, t.typo) <> '{}'
  and not exists (select 1 from public.guide_vocabulary g
                  where g.lexeme = (ts_lexize('english_stem'::regdictionary, t.typo))[1])
order by t.typo, md5(v.word)"""
# The given words that the guide does not hold in any form (stop words left out).
WORDS_NOT_IN_GUIDE = """
select w from unnest(%(words)s::text[]) as w
where ts_lexize('english_stem'::regdictionary, w) <> '{}'
  and not exists (select 1 from public.guide_vocabulary g
                  where g.lexeme = (ts_lexize('english_stem'::regdictionary, w))[1])
order by w"""


def _documentation_words() -> list[str]:
    """Words of 4 letters or more of the README and docs/ (the guide itself left out)."""
    files = [REPO_ROOT / "README.md", *(p for p in (REPO_ROOT / "docs").rglob("*.md") if "guide" not in p.parts)]
    words = {w.lower() for f in files for w in re.findall(r"[A-Za-z]{4,}", f.read_text(encoding="utf-8"))}
    return sorted(words)


def _correction_quality(db: Database, sample: int) -> list[list[str]]:
    with db.anon_transaction() as conn:
        typos = [(r["typo"], r["word"]) for r in conn.execute(GENERATED_TYPOS)]
        real = [r["w"] for r in conn.execute(WORDS_NOT_IN_GUIDE, {"words": _documentation_words()})]
    typos = random.Random(22).sample(typos, min(sample, len(typos)))
    real = random.Random(22).sample(real, min(sample, len(real)))
    rows = []
    for one_edit_from, two_edits_from in POLICIES:
        limits = {"one_edit_from": one_edit_from, "two_edits_from": two_edits_from}

        def corrected(word: str, limits: dict[str, int] = limits) -> str | None:
            with db.anon_transaction() as conn:
                answer = guide_db.search_pages(
                    conn, word, offset=0, limit=1, min_title_similarity=service.MIN_TITLE_SIMILARITY, **limits
                )
            return answer.corrected_query

        fixed = sum(corrected(typo) == word for typo, word in typos)
        changed = sum(corrected(word) is not None for word in real)
        label = f"1 edit from {one_edit_from} letters, 2 from {two_edits_from}"
        if (one_edit_from, two_edits_from) == POLICIES[0]:
            label += " (the service's)"
        rows.append(
            [
                label,
                f"{fixed}/{len(typos)} = {fixed / len(typos):.0%}",
                f"{changed}/{len(real)} = {changed / len(real):.0%}",
            ]
        )
    return rows


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
            quality = _correction_quality(db, QUICK_TYPOS if quick else TYPOS)
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
    print("misspelt words corrected, on the guide (typos: generated one-edit typos of its words; real words:")
    print("words of README.md and docs/ that the guide does not use)")
    print(table(["limits", "typos corrected to the word", "real words changed"], quality))
