"""DOCX with the standard library: the ZIP checked against bombs before anything is read, then its XML.

Paragraphs in order, headings (by the style's name, so a German "Überschrift 1" counts too) as section
titles, tables as text (cells joined by " | ", one line per row). The archive's member count and declared
sizes are checked from the central directory first; every read is capped again while decompressing, since
the declared sizes can lie. XML with a DOCTYPE is refused (no entity expansion of any kind).
"""

from __future__ import annotations

import io
import re
import struct
import zipfile
import zlib
from xml.etree import ElementTree

from oneai.knowledge.parsing._model import (
    Block,
    DocumentKind,
    DocumentUnreadableError,
    ParsedDocument,
    ParsingLimits,
    clean_text,
)

_W = "{http://schemas.openxmlformats.org/wordprocessingml/2006/main}"
_DOCUMENT = "word/document.xml"
_STYLES = "word/styles.xml"
NOT_A_DOCX = "the file is not a valid DOCX"
_HEADING_NAME = re.compile(r"^(?:heading|überschrift|titre|título|titolo|kop)\s*([1-9])$", re.IGNORECASE)
_MAX_HEADING_LEVELS = 9
# what zipfile raises on a damaged archive (a bad header, an unknown method or version, a broken stream)
_ZIP_ERRORS = (
    zipfile.BadZipFile, zipfile.LargeZipFile, zlib.error, struct.error,
    ValueError, OSError, EOFError, NotImplementedError, RuntimeError,
)  # fmt: skip


def parse_docx(data: bytes, limits: ParsingLimits) -> ParsedDocument:
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
    except _ZIP_ERRORS as error:
        raise DocumentUnreadableError(NOT_A_DOCX) from error
    with archive:
        _check_archive(archive, limits)
        budget = [limits.max_unzipped_bytes]
        document = _read_xml(archive, _DOCUMENT, budget)
        if document is None:
            raise DocumentUnreadableError(f"{NOT_A_DOCX}: it has no document body (word/document.xml)")
        styles = _read_xml(archive, _STYLES, budget)
    heading_styles = _heading_styles(styles)
    body = document.find(f"{_W}body")
    if body is None:
        raise DocumentUnreadableError(f"{NOT_A_DOCX}: it has no document body")
    blocks = list(_blocks(body, heading_styles))
    title = next((block.text for block in blocks if block.kind == "heading"), None)
    return ParsedDocument(kind=DocumentKind.DOCX, blocks=tuple(blocks), title=title)


def _check_archive(archive: zipfile.ZipFile, limits: ParsingLimits) -> None:
    members = archive.infolist()
    if len(members) > limits.max_zip_members:
        raise DocumentUnreadableError(
            f"{NOT_A_DOCX}: it holds {len(members):,} files, over the limit of {limits.max_zip_members:,}"
        )
    if any(member.flag_bits & 0x1 for member in members):
        raise DocumentUnreadableError("the file is encrypted: remove its password and upload it again")
    declared = sum(member.file_size for member in members)
    if declared > limits.max_unzipped_bytes:
        raise DocumentUnreadableError(_too_big(limits))


def _too_big(limits: ParsingLimits) -> str:
    return (
        f"the DOCX unpacks to over {limits.max_unzipped_bytes // (1024 * 1024)} MiB: it is refused as a zip bomb"
    )


def _read_xml(archive: zipfile.ZipFile, name: str, budget: list[int]) -> ElementTree.Element | None:
    """One member, read in pieces and stopped as soon as the whole archive's budget is spent."""
    try:
        member = archive.getinfo(name)
    except KeyError:
        return None
    pieces = []
    try:
        with archive.open(member) as stream:
            while piece := stream.read(1024 * 1024):
                budget[0] -= len(piece)
                if budget[0] < 0:
                    raise DocumentUnreadableError(
                        "the DOCX unpacks to more than its limit: it is refused as a zip bomb"
                    )
                pieces.append(piece)
    except _ZIP_ERRORS as error:
        raise DocumentUnreadableError(f"{NOT_A_DOCX}: it is damaged") from error
    content = b"".join(pieces)
    # Word writes UTF-8 XML without a DOCTYPE; refusing any other (NUL bytes: UTF-16) keeps the check below whole
    if b"\x00" in content or b"<!DOCTYPE" in content or b"<!ENTITY" in content:
        raise DocumentUnreadableError(f"{NOT_A_DOCX}: its XML declares entities or is not UTF-8")
    try:
        return ElementTree.fromstring(content)  # noqa: S314 (no DOCTYPE, so no entities; see above)
    except ElementTree.ParseError as error:
        raise DocumentUnreadableError(f"{NOT_A_DOCX}: its XML is damaged") from error


def _heading_styles(styles: ElementTree.Element | None) -> dict[str, int]:
    """Style id → heading level (0 for the document title), read from the styles' names."""
    levels: dict[str, int] = {}
    if styles is None:
        return levels
    for style in styles.iter(f"{_W}style"):
        style_id = style.get(f"{_W}styleId")
        name_element = style.find(f"{_W}name")
        name = (name_element.get(f"{_W}val") if name_element is not None else None) or ""
        if not style_id:
            continue
        if name.strip().lower() == "title":
            levels[style_id] = 0
        elif match := _HEADING_NAME.match(name.strip()):
            levels[style_id] = int(match.group(1))
    return levels


def _blocks(body: ElementTree.Element, heading_styles: dict[str, int]) -> list[Block]:
    blocks: list[Block] = []
    path: list[tuple[int, str]] = []
    for element in body:
        if element.tag == f"{_W}p":
            text = _paragraph_text(element)
            if not text:
                continue
            level = _heading_level(element, heading_styles)
            if level is not None:
                while path and path[-1][0] >= level:
                    path.pop()
                path.append((level, text))
                blocks.append(Block(kind="heading", text=text, section=tuple(title for _, title in path)))
            else:
                blocks.append(Block(kind="paragraph", text=text, section=tuple(title for _, title in path)))
        elif element.tag == f"{_W}tbl":
            text = _table_text(element)
            if text:
                blocks.append(Block(kind="table", text=text, section=tuple(title for _, title in path)))
        elif element.tag == f"{_W}sdt":
            # a content control (a table of contents, a cover page): its paragraphs, in order
            content = element.find(f"{_W}sdtContent")
            if content is not None:
                blocks.extend(
                    block.model_copy(update={"section": block.section or tuple(title for _, title in path)})
                    for block in _blocks(content, heading_styles)
                )
    return blocks


def _heading_level(paragraph: ElementTree.Element, heading_styles: dict[str, int]) -> int | None:
    properties = paragraph.find(f"{_W}pPr")
    if properties is None:
        return None
    style = properties.find(f"{_W}pStyle")
    if style is not None and (style_id := style.get(f"{_W}val")) is not None:
        if style_id in heading_styles:
            return heading_styles[style_id]
        if match := re.fullmatch(r"Heading([1-9])", style_id):
            return int(match.group(1))
    outline = properties.find(f"{_W}outlineLvl")
    if outline is not None and (value := outline.get(f"{_W}val", "")).isdigit():
        level = int(value) + 1
        return level if level <= _MAX_HEADING_LEVELS else None
    return None


def _paragraph_text(paragraph: ElementTree.Element) -> str:
    parts: list[str] = []
    for node in paragraph.iter():
        if node.tag == f"{_W}t" and node.text:
            parts.append(node.text)
        elif node.tag == f"{_W}tab":
            parts.append("\t")
        elif node.tag in (f"{_W}br", f"{_W}cr"):
            parts.append("\n")
    return clean_text("".join(parts)).strip()


def _table_text(table: ElementTree.Element) -> str:
    lines = []
    for row in table.iter(f"{_W}tr"):
        cells = []
        for cell in row.findall(f"{_W}tc"):
            texts = [_paragraph_text(p) for p in cell.iter(f"{_W}p")]
            cells.append(" ".join(text for text in texts if text).replace("\n", " "))
        if any(cells):
            lines.append(" | ".join(cells))
    return "\n".join(lines)
