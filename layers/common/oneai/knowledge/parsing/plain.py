"""TXT (paragraphs) and Markdown (paragraphs under their headings; code fences kept whole)."""

from __future__ import annotations

import re

from oneai.knowledge.parsing._model import Block, DocumentKind, DocumentUnreadableError, ParsedDocument
from oneai.knowledge.parsing._paragraphs import paragraphs
from oneai.knowledge.parsing._text import decode_text

_ATX_HEADING = re.compile(r"^ {0,3}(#{1,6})[ \t]+(.*?)[ \t#]*$")
_SETEXT_UNDERLINE = re.compile(r"^ {0,3}(=+|-+)[ \t]*$")
_FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})")
NO_TEXT = "the file has no text"


def parse_txt(data: bytes) -> ParsedDocument:
    blocks = tuple(Block(kind="paragraph", text=part) for part in paragraphs(decode_text(data)))
    if not blocks:
        raise DocumentUnreadableError(NO_TEXT)
    return ParsedDocument(kind=DocumentKind.TXT, blocks=blocks)


def parse_markdown(data: bytes) -> ParsedDocument:
    blocks: list[Block] = []
    path: list[tuple[int, str]] = []
    pending: list[str] = []
    fence: str | None = None

    def section() -> tuple[str, ...]:
        return tuple(title for _, title in path)

    def flush() -> None:
        blocks.extend(
            Block(kind="paragraph", text=part, section=section()) for part in paragraphs("\n".join(pending))
        )
        pending.clear()

    def heading(level: int, title: str) -> None:
        flush()
        while path and path[-1][0] >= level:
            path.pop()
        path.append((level, title))
        blocks.append(Block(kind="heading", text=title, section=section()))

    for line in decode_text(data).split("\n"):
        if fence is not None:
            pending.append(line)
            if line.strip().startswith(fence):
                fence = None
            continue
        if fence_match := _FENCE.match(line):
            fence = fence_match.group(1)[:3]
            pending.append(line)
            continue
        if atx := _ATX_HEADING.match(line):
            if atx.group(2):
                heading(len(atx.group(1)), atx.group(2).strip())
            continue
        underline = _SETEXT_UNDERLINE.match(line)
        if underline and pending and pending[-1].strip() and _only_paragraph_line(pending):
            heading(1 if underline.group(1)[0] == "=" else 2, pending.pop().strip())
            continue
        pending.append(line)
    flush()
    if not blocks:
        raise DocumentUnreadableError(NO_TEXT)
    title = next((block.text for block in blocks if block.kind == "heading"), None)
    return ParsedDocument(kind=DocumentKind.MARKDOWN, blocks=tuple(blocks), title=title)


def _only_paragraph_line(pending: list[str]) -> bool:
    """A setext underline makes a heading of a one-line paragraph only (else `---` is a rule)."""
    return len(pending) == 1 or not pending[-2].strip()
