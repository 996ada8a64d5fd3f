"""HTML with the standard library's parser: the page's main text, without navigation, chrome and code.

Left out with all they hold: script, style, template, noscript, svg, iframe, form and its controls, nav,
header, footer, aside, and the head. When the page marks its content (`<main>`, `<article>`, or
role="main"), only that is kept. Headings h1-h6 become section titles; block elements end paragraphs;
table cells are joined by " | ", one line per row.
"""

from __future__ import annotations

from html.parser import HTMLParser

from oneai.knowledge.parsing._model import Block, DocumentKind, DocumentUnreadableError, ParsedDocument, clean_text
from oneai.knowledge.parsing._paragraphs import paragraphs
from oneai.knowledge.parsing._text import decode_text

_SKIPPED = frozenset(
    {
        "script", "style", "template", "noscript", "svg", "math", "iframe", "object", "canvas",
        "form", "button", "select", "textarea", "nav", "header", "footer", "aside", "head", "title", "dialog",
    }
)  # fmt: skip
_MAIN = frozenset({"main", "article"})
_HEADINGS = {"h1": 1, "h2": 2, "h3": 3, "h4": 4, "h5": 5, "h6": 6}
_BLOCK = frozenset(
    {
        "p", "div", "section", "li", "ul", "ol", "dl", "dt", "dd", "blockquote", "pre", "table",
        "tr", "br", "hr", "figure", "figcaption", "address", "details", "summary", "body", "main", "article",
    }
)  # fmt: skip
_VOID = frozenset(
    {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "param", "source", "track", "wbr"}
)
_ROLES_SKIPPED = frozenset({"navigation", "banner", "contentinfo", "complementary", "search", "dialog"})


class _MainText(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.stack: list[tuple[str, bool, bool]] = []  # (tag, skipping, in main) per open element
        self.open_count: dict[str, int] = {}  # per tag: is it open? in constant time, however deep the nesting
        self.blocks: list[tuple[bool, Block]] = []  # with "inside the main content"
        self.buffer: list[str] = []
        self.heading: int | None = None
        self.path: list[tuple[int, str]] = []
        self.title_parts: list[str] | None = None
        self.title: str | None = None
        self.saw_main = False

    @property
    def skipping(self) -> bool:
        return bool(self.stack) and self.stack[-1][1]

    @property
    def in_main(self) -> bool:
        return bool(self.stack) and self.stack[-1][2]

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "title" and self.title is None:
            self.title_parts = []
        if tag in _VOID:
            if tag == "br" and not self.skipping:
                self.buffer.append("\n")
            return
        role = (dict(attrs).get("role") or "").lower()
        skipping = self.skipping or tag in _SKIPPED or role in _ROLES_SKIPPED
        in_main = self.in_main or tag in _MAIN or role == "main"
        if in_main and not skipping:
            self.saw_main = True
        if tag in ("td", "th"):
            self.buffer.append(" | ")
        elif tag in _BLOCK or tag in _HEADINGS:
            self._flush()
        if tag in _HEADINGS and not skipping:
            self.heading = _HEADINGS[tag]
        self.stack.append((tag, skipping, in_main))
        self.open_count[tag] = self.open_count.get(tag, 0) + 1

    def handle_endtag(self, tag: str) -> None:
        if tag == "title" and self.title_parts is not None:
            self.title = clean_text(" ".join("".join(self.title_parts).split())) or None
            self.title_parts = None
        if tag in _VOID or not self.open_count.get(tag):
            return
        # close it and anything left open inside it (HTML in the wild leaves tags open)
        while self.stack:
            open_tag, _, _ = self.stack[-1]
            if tag in _HEADINGS and open_tag == tag:
                self._flush_heading()
            elif open_tag in _BLOCK:
                self._flush()
            self.stack.pop()
            self.open_count[open_tag] -= 1
            if open_tag == tag:
                break

    def handle_data(self, data: str) -> None:
        if self.title_parts is not None:
            self.title_parts.append(data)
        if not self.skipping:
            self.buffer.append(data)

    def parse_marked_section(self, i: int, report: bool = True) -> int:
        # the standard parser asserts on an unknown `<![keyword`; a damaged page loses that tag only
        try:
            return super().parse_marked_section(i, report)
        except AssertionError:
            end = self.rawdata.find(">", i)
            return -1 if end == -1 else end + 1

    def close(self) -> None:
        super().close()
        self._flush()

    def _section(self) -> tuple[str, ...]:
        return tuple(title for _, title in self.path)

    def _flush_heading(self) -> None:
        text = " ".join("".join(self.buffer).split())
        self.buffer = []
        level, self.heading = self.heading, None
        if not text or level is None:
            return
        while self.path and self.path[-1][0] >= level:
            self.path.pop()
        self.path.append((level, text))
        self.blocks.append((self.in_main, Block(kind="heading", text=clean_text(text), section=self._section())))

    def _flush(self) -> None:
        if self.heading is not None:
            self._flush_heading()
            return
        text = clean_text("".join(self.buffer))
        self.buffer = []
        for part in paragraphs(text):
            self.blocks.append((self.in_main, Block(kind="paragraph", text=part, section=self._section())))


def parse_html(data: bytes) -> ParsedDocument:
    parser = _MainText()
    parser.feed(decode_text(data))
    parser.close()
    main = [block for in_main, block in parser.blocks if in_main]
    blocks = main if parser.saw_main and main else [block for _, block in parser.blocks]
    if not blocks:
        raise DocumentUnreadableError("the page has no readable text (only navigation, scripts or forms)")
    return ParsedDocument(kind=DocumentKind.HTML, blocks=tuple(blocks), title=parser.title)
