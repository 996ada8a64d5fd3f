"""The guide's markdown pages: what the index takes from them, and the generated tier table that keeps the
quotas page equal to the tier configuration."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from oneai.guide.generated import expand_generated, main, render_tier_table, stale_pages
from oneai.guide.pages import load_pages, parse_page
from oneai.quota.tiers import QUOTA_KEYS, TIERS
from tests.conftest import REPO_ROOT

GUIDE_DIR = REPO_ROOT / "docs" / "guide"
QUOTAS_PAGE = "06-quotas-and-resets.md"


def test_the_committed_guide_matches_the_tier_configuration() -> None:
    # WHEN the generated blocks are rendered from oneai/quota/tiers.py THEN no committed page differs
    assert stale_pages(GUIDE_DIR, write=False) == []
    assert main(["--dir", str(GUIDE_DIR)]) == 0


def test_the_tier_table_shows_every_limit_and_price_of_the_configuration() -> None:
    table = render_tier_table()
    header, _, price_row, *quota_rows = table.splitlines()[:6]
    assert header == "| | Free | Pro | Enterprise |"
    assert price_row == "| Price | Free | $9.99 a month | Custom pricing |"
    for key, row in zip(QUOTA_KEYS, quota_rows, strict=True):
        cells = [cell.strip() for cell in row.strip("|").split("|")][1:]
        assert [int(cell.split()[0].replace(",", "")) for cell in cells] == [
            t.quotas[key].limit for t in TIERS.values()
        ]
    assert "on the 1st of every month at 00:00 UTC" in table
    assert "every 3 hours" in table


def test_a_page_that_drifted_from_the_configuration_is_caught_and_rewritten(tmp_path: Path) -> None:
    shutil.copy(GUIDE_DIR / QUOTAS_PAGE, tmp_path / QUOTAS_PAGE)
    page = tmp_path / QUOTAS_PAGE
    committed = page.read_text(encoding="utf-8")
    page.write_text(committed.replace("| 100 a month |", "| 150 a month |"), encoding="utf-8")

    assert main(["--dir", str(tmp_path)]) == 1
    assert main(["--dir", str(tmp_path), "--write"]) == 0
    assert page.read_text(encoding="utf-8") == committed


def test_the_index_takes_title_headings_and_plain_body_from_the_markdown() -> None:
    page = parse_page(
        "07-sample-page.md",
        "# Sample *page*\n\nRead [the guide](getting-started) and `code`.\n\n## First part\n\n"
        "| a | b |\n|---|---|\n| 1 | 2 |\n\n```sh\n# not a heading\ncurl x\n```\n\n### Deeper\n> quoted\n",
    )
    assert (page.slug, page.position, page.title) == ("sample-page", 7, "Sample page")
    assert page.headings == "First part\nDeeper"
    assert page.body.splitlines() == [
        "Read the guide and code .",
        "a b",
        "1 2",
        "# not a heading",
        "curl x",
        "quoted",
    ]
    assert page.text.startswith("Sample page.\nRead the guide")


def test_every_committed_page_has_a_title_and_a_distinct_slug() -> None:
    pages = load_pages(GUIDE_DIR)
    assert [p.position for p in pages] == list(range(1, 10))
    assert all(p.title and p.body for p in pages)
    # The generated block is filled in what the index stores.
    quotas = next(p for p in pages if p.slug == "quotas-and-resets")
    assert quotas.markdown == expand_generated(quotas.markdown)
    assert "Messages to fast models" in quotas.body


@pytest.mark.parametrize(
    ("name", "text", "message"),
    [
        ("getting-started.md", "# Title\n", "NN-slug.md"),
        ("01-Bad_Slug.md", "# Title\n", "NN-slug.md"),
        ("01-no-title.md", "Just text.\n", "starts with"),
        ("01-search.md", "# Search\n", "path of the docs API"),
        ("01-blocks.md", "# T\n<!-- generated:nope begin -->\n<!-- generated:nope end -->\n", "unknown"),
    ],
)
def test_a_malformed_page_stops_the_index_with_a_reason(name: str, text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_page(name, text)


def test_two_pages_with_one_slug_stop_the_index(tmp_path: Path) -> None:
    (tmp_path / "01-same.md").write_text("# One\n", encoding="utf-8")
    (tmp_path / "02-same.md").write_text("# Two\n", encoding="utf-8")
    with pytest.raises(ValueError, match="share a slug"):
        load_pages(tmp_path)
