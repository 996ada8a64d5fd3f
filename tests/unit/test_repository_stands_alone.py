"""The repository carries what it reads and documents itself: no code, test, benchmark or make target
reaches for a folder beside it, and every link of the README and docs/ leads somewhere that exists."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from tests.conftest import REPO_ROOT

DOCS = REPO_ROOT / "docs"
API_DOCS = DOCS / "api"
GUIDE_DIR = DOCS / "guide"
MARKDOWN_LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")
# A folder beside the repository, however it is spelled (".." + "/shared", parent / "shared", ...).
OUTSIDE = re.compile(r"""\.\./shared|parent\s*/\s*["']shared["']|/work/""")
CODE_SUFFIXES = {".py", ".sh", ".mjs", ".js", ".toml", ".cfg", ".ini", ".txt", ".yaml", ".yml", ".json"}


def tracked_files() -> list[Path]:
    listed = subprocess.run(
        ["git", "ls-files", "-z"], cwd=REPO_ROOT, capture_output=True, check=True, timeout=30
    ).stdout.decode()
    return [REPO_ROOT / name for name in listed.split("\0") if name]


def readers() -> list[Path]:
    """Everything that runs under make dev, make test, .ci/run or make bench."""
    return [
        path
        for path in tracked_files()
        if path.is_file()
        and (path.suffix in CODE_SUFFIXES or path.name == "Makefile" or path.parent.name == ".ci")
        and "fixtures" not in path.relative_to(REPO_ROOT).parts
    ]


def github_anchor(heading: str) -> str:
    """The anchor GitHub gives a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def anchors_of(page: Path) -> set[str]:
    text = page.read_text(encoding="utf-8")
    text = re.sub(r"```.*?```", "", text, flags=re.DOTALL)
    return {github_anchor(m.group(1)) for m in re.finditer(r"^#{1,6}\s+(.+)$", text, re.MULTILINE)}


def markdown_pages() -> list[Path]:
    return sorted(path for path in tracked_files() if path.suffix == ".md" and path.is_file())


def test_nothing_reads_outside_the_repository() -> None:
    offenders = [
        f"{path.relative_to(REPO_ROOT)}:{number}: {line.strip()}"
        for path in readers()
        if path != Path(__file__)
        for number, line in enumerate(path.read_text(encoding="utf-8", errors="replace").splitlines(), 1)
        if OUTSIDE.search(line)
    ]
    assert offenders == []


def test_the_razorpay_fixtures_are_in_the_repository() -> None:
    from local.fake_razorpay import FIXTURES_DIR, load_fixture

    assert FIXTURES_DIR.is_relative_to(REPO_ROOT)
    assert (FIXTURES_DIR / "README.md").is_file()
    for folder in ("api_responses", "docs_webhooks", "sdk_mocks"):
        assert sorted((FIXTURES_DIR / folder).glob("*.json")), f"no Razorpay samples in {folder}/"
    assert load_fixture("sdk_mocks/fake_subscription.json")["entity"] == "subscription"


@pytest.mark.parametrize("page", markdown_pages(), ids=lambda p: str(p.relative_to(REPO_ROOT)))
def test_every_link_of_the_documentation_leads_somewhere(page: Path) -> None:
    broken = []
    for target in MARKDOWN_LINK.findall(page.read_text(encoding="utf-8")):
        if re.match(r"^[a-z]+:", target):  # https:, mailto: ...
            continue
        path_part, _, anchor = target.partition("#")
        destination = (page.parent / path_part).resolve() if path_part else page
        if page.parent == GUIDE_DIR and path_part and not destination.exists():
            # The user guide links its pages by slug, as the docs API serves them (`03-slug.md` is `slug`).
            destination = next(GUIDE_DIR.glob(f"[0-9]*-{path_part}.md"), destination)
        if not destination.exists():
            broken.append(f"{target}: no such file")
        elif anchor and destination.suffix == ".md" and anchor not in anchors_of(destination):
            broken.append(f"{target}: no such heading")
    assert broken == []


def test_the_api_index_lists_every_page_of_the_api() -> None:
    index = (API_DOCS / "index.md").read_text(encoding="utf-8")
    linked = {target.partition("#")[0] for target in MARKDOWN_LINK.findall(index)}
    pages = {page.name for page in API_DOCS.glob("*.md") if page.name != "index.md"}
    assert pages, "docs/api/ has no pages"
    assert pages - linked == set(), "pages of docs/api/ missing from the list of areas in index.md"


def test_the_readme_sends_readers_to_the_repository_s_own_documents() -> None:
    readme = (REPO_ROOT / "README.md").read_text(encoding="utf-8")
    assert "docs/api/index.md" in readme and "docs/architecture.md" in readme
    for missing in ("DESIGN.md", "API.md"):
        assert missing not in readme, f"README names {missing}, which the repository does not have"
