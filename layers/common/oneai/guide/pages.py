"""The user guide's markdown pages (`docs/guide/NN-slug.md`) read into what the search index stores.

A page's slug is its file name without the order prefix (`03-revisions-and-branches.md` ->
`revisions-and-branches`), its title the first `# ` heading, its headings the `##`/`###` lines, its body
the rest as plain words. Generated blocks are filled in before anything else (`oneai.guide.generated`),
so what is indexed always matches the configuration, even if a committed page were stale.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path

from oneai.guide.folder import default_guide_dir
from oneai.guide.generated import expand_generated

PAGE_FILE = re.compile(r"^(?P<position>\d{2,4})-(?P<slug>[a-z0-9]+(?:-[a-z0-9]+)*)\.md$")
_HEADING = re.compile(r"^(?P<level>#{1,6})\s+(?P<text>.+?)\s*#*\s*$")
_FENCE = re.compile(r"^\s*(```|~~~)")
_COMMENT = re.compile(r"<!--.*?-->", re.DOTALL)
_IMAGE_OR_LINK = re.compile(r"!?\[(?P<text>[^\]]*)\]\([^)]*\)")
_INLINE_MARKUP = re.compile(r"[*_`|]+|^\s*>+")  # emphasis, code, table bars, quote marks
_TABLE_RULE = re.compile(r"^\s*\|?\s*:?-{3,}.*$")
_SPACES = re.compile(r"[ \t]+")
# Part of every page's content hash: bump it when the parsing changes, so the next rebuild rewrites every page.
INDEX_FORMAT = 1
# Paths of the docs API itself that a page's slug would collide with.
RESERVED_SLUGS = frozenset({"search", "feedback", "openapi"})


@dataclass(frozen=True, slots=True)
class GuidePageSource:
    slug: str
    title: str
    position: int
    markdown: str
    headings: str
    body: str
    # Title, headings and body in reading order, for snippets.
    text: str

    @property
    def content_sha256(self) -> str:
        return hashlib.sha256(f"{INDEX_FORMAT}\n{self.title}\n{self.markdown}".encode()).hexdigest()


def _plain(line: str) -> str:
    line = _IMAGE_OR_LINK.sub(r"\g<text>", line)
    line = _INLINE_MARKUP.sub(" ", line)
    return _SPACES.sub(" ", line).strip()


def parse_page(file_name: str, markdown: str) -> GuidePageSource:
    match = PAGE_FILE.match(file_name)
    if match is None:
        raise ValueError(f"guide page file names are NN-slug.md: {file_name}")
    if match["slug"] in RESERVED_SLUGS:
        raise ValueError(f"{file_name}: the slug {match['slug']!r} is a path of the docs API")
    markdown = expand_generated(markdown)
    title: str | None = None
    headings: list[str] = []
    body: list[str] = []
    text: list[str] = []
    in_code = False
    for line in _COMMENT.sub("", markdown).splitlines():
        if _FENCE.match(line):
            in_code = not in_code
            continue
        heading = None if in_code else _HEADING.match(line)
        if heading is not None and len(heading["level"]) == 1 and title is None:
            title = _plain(heading["text"])
            text.append(title + ".")
        elif heading is not None:
            headings.append(_plain(heading["text"]))
            text.append(headings[-1] + ".")
        elif not _TABLE_RULE.match(line) and (plain := _plain(line)):
            body.append(plain)
            text.append(plain)
    if not title:
        raise ValueError(f"{file_name}: a guide page starts with a `# Title` line")
    return GuidePageSource(
        slug=match["slug"],
        title=title,
        position=int(match["position"]),
        markdown=markdown,
        headings="\n".join(headings),
        body="\n".join(body),
        text="\n".join(text),
    )


def load_pages(directory: Path | None = None) -> list[GuidePageSource]:
    """Every page of the guide, in order; two files with one slug or one position are an error."""
    folder = directory or default_guide_dir()
    pages = [parse_page(path.name, path.read_text(encoding="utf-8")) for path in sorted(folder.glob("*.md"))]
    slugs = [p.slug for p in pages]
    positions = [p.position for p in pages]
    if len(set(slugs)) != len(slugs) or len(set(positions)) != len(positions):
        raise ValueError("two guide pages share a slug or a position")
    return pages
