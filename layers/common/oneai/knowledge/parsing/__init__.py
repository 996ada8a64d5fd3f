"""Uploaded files to text blocks: `parse_document` sniffs the bytes, checks them against the declared type
and reads PDF, DOCX, TXT, Markdown, HTML or CSV within `ParsingLimits`. Every failure is one
`DocumentUnreadableError` whose `reason` is told to the user as it is (the document's `error`)."""

from __future__ import annotations

from oneai.knowledge.parsing._model import (
    Block,
    DocumentKind,
    DocumentUnreadableError,
    ParsedDocument,
    ParsingLimits,
)
from oneai.knowledge.parsing._sniff import DOCX_MEDIA_TYPE, check_content, declared_kind

__all__ = [
    "DOCX_MEDIA_TYPE",
    "Block",
    "DocumentKind",
    "DocumentUnreadableError",
    "ParsedDocument",
    "ParsingLimits",
    "parse_document",
]

DEFAULT_LIMITS = ParsingLimits()


def parse_document(
    data: bytes, media_type: str, filename: str, limits: ParsingLimits = DEFAULT_LIMITS
) -> ParsedDocument:
    if not data:
        raise DocumentUnreadableError("the file is empty")
    if len(data) > limits.max_bytes:
        raise DocumentUnreadableError(f"the file is over the {_size(limits.max_bytes)} limit")
    kind = declared_kind(media_type, filename)
    check_content(kind, data)
    try:
        return _parse(kind, data, limits)
    except (MemoryError, RecursionError) as error:
        # a pathological file (deep nesting, a huge structure) fails alone, never the worker
        raise DocumentUnreadableError("the file is too complex to read") from error


def _parse(kind: DocumentKind, data: bytes, limits: ParsingLimits) -> ParsedDocument:
    # each format's module is imported when a file of it arrives (pypdf's import is the heavy one)
    if kind is DocumentKind.PDF:
        from oneai.knowledge.parsing.pdf import parse_pdf

        return parse_pdf(data, limits)
    if kind is DocumentKind.DOCX:
        from oneai.knowledge.parsing.docx import parse_docx

        return parse_docx(data, limits)
    if kind is DocumentKind.HTML:
        from oneai.knowledge.parsing.html import parse_html

        return parse_html(data)
    if kind is DocumentKind.CSV:
        from oneai.knowledge.parsing.csv import parse_csv

        return parse_csv(data, limits)
    from oneai.knowledge.parsing.plain import parse_markdown, parse_txt

    return parse_markdown(data) if kind is DocumentKind.MARKDOWN else parse_txt(data)


def _size(limit: int) -> str:
    mib = limit / (1024 * 1024)
    return f"{mib:g} MiB" if mib >= 1 else f"{limit:,} bytes"
