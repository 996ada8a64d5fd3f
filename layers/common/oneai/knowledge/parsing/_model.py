"""What a parsed document is made of, the one error a parser raises, and the limits it works under."""

from __future__ import annotations

import re
from enum import StrEnum
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

MIB = 1024 * 1024


class DocumentKind(StrEnum):
    PDF = "pdf"
    DOCX = "docx"
    TXT = "txt"
    MARKDOWN = "markdown"
    HTML = "html"
    CSV = "csv"


class DocumentUnreadableError(Exception):
    """The file cannot be read as the document it claims to be; `reason` is said to the user as it is."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class Block(BaseModel):
    """One unit of text in reading order: a heading, a paragraph, a table or (CSV) one row."""

    model_config = ConfigDict(frozen=True)

    kind: Literal["heading", "paragraph", "table", "row"]
    text: str
    page: int | None = None
    section: tuple[str, ...] = ()


class ParsedDocument(BaseModel):
    model_config = ConfigDict(frozen=True)

    kind: DocumentKind
    blocks: tuple[Block, ...]
    pages: int | None = None
    title: str | None = None
    # CSV: the header line, written again at the top of every chunk
    csv_header: str | None = None
    warnings: tuple[str, ...] = ()


class ParsingLimits(BaseModel):
    """Bounds on the work one document may cause: the file, what it unpacks to, its pages and time."""

    model_config = ConfigDict(frozen=True)

    max_bytes: int = Field(default=20 * MIB, gt=0)
    # DOCX (a ZIP): checked from the central directory before anything is read, and again while reading
    max_zip_members: int = Field(default=2000, gt=0)
    max_unzipped_bytes: int = Field(default=100 * MIB, gt=0)
    max_pdf_pages: int = Field(default=2000, gt=0)
    # wall time for text extraction, checked between pages
    max_seconds: float = Field(default=120.0, gt=0)
    # CSV: one row (all its fields) and its width
    max_row_chars: int = Field(default=64 * 1024, gt=0)
    max_columns: int = Field(default=1000, gt=0)


# PostgreSQL text cannot hold NUL; lone surrogates (from odd PDF fonts) cannot be encoded as UTF-8
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")


def clean_text(text: str) -> str:
    """Text safe to store: NUL dropped, lone surrogates replaced, line ends normalized."""
    if "\r" in text:
        text = text.replace("\r\n", "\n").replace("\r", "\n")
    return _UNSTORABLE.sub(lambda m: "" if m.group() == "\x00" else "\ufffd", text)
