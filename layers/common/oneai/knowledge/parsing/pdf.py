"""PDF: the text layer of each page with pypdf, page numbers kept; scanned, encrypted and endless files refused."""

from __future__ import annotations

import io
import time
import zlib
from typing import TYPE_CHECKING

from oneai.knowledge.parsing._model import (
    Block,
    DocumentKind,
    DocumentUnreadableError,
    ParsedDocument,
    ParsingLimits,
    clean_text,
)
from oneai.knowledge.parsing._paragraphs import paragraphs

if TYPE_CHECKING:
    from pypdf import PdfReader

NO_TEXT_LAYER = "this PDF has no text layer: it looks scanned (run OCR on it, then upload it again)"
TOO_COMPLEX = "the PDF is too large or complex to read"
# Fewer letters than this in the whole file: nothing worth indexing (a scanned file with a stamped page number).
_MIN_TEXT_CHARS = 16


def parse_pdf(data: bytes, limits: ParsingLimits) -> ParsedDocument:
    from pypdf import PdfReader  # only the ingest worker reads PDFs; its import is the heavy one
    from pypdf.errors import LimitReachedError, PyPdfError

    started = time.monotonic()
    try:
        reader = PdfReader(io.BytesIO(data), strict=False)
        if reader.is_encrypted and not _opens_without_password(reader):
            raise DocumentUnreadableError("the file is encrypted: remove its password and upload it again")
        declared_pages = _declared_page_count(reader)
        if declared_pages > limits.max_pdf_pages:
            raise DocumentUnreadableError(
                f"the PDF has {declared_pages:,} pages, over the limit of {limits.max_pdf_pages:,}"
            )
        blocks: list[Block] = []
        page_count = 0
        for number, page in enumerate(reader.pages, start=1):
            if number > limits.max_pdf_pages:
                raise DocumentUnreadableError(f"the PDF has over {limits.max_pdf_pages:,} pages")
            if time.monotonic() - started > limits.max_seconds:
                raise DocumentUnreadableError(
                    f"reading the PDF took over {limits.max_seconds:.0f} s (at page {number}): it is too complex"
                )
            page_count = number
            text = clean_text(page.extract_text() or "")
            blocks.extend(Block(kind="paragraph", text=part, page=number) for part in paragraphs(text))
        title = _title(reader)
    except DocumentUnreadableError:
        raise
    except LimitReachedError as error:
        # pypdf's own bounds (array sizes, decompressed stream lengths) were reached
        raise DocumentUnreadableError(TOO_COMPLEX) from error
    except (
        PyPdfError,
        zlib.error,
        ValueError,
        KeyError,
        TypeError,
        AttributeError,
        IndexError,
        RecursionError,
    ) as error:
        # pypdf meets broken files with these; the reason a person can act on is the same for all of them
        raise DocumentUnreadableError("the file is not a valid PDF (it is damaged or incomplete)") from error
    if sum(len(block.text) for block in blocks) < _MIN_TEXT_CHARS:
        raise DocumentUnreadableError(NO_TEXT_LAYER)
    return ParsedDocument(kind=DocumentKind.PDF, blocks=tuple(blocks), pages=page_count, title=title)


def _opens_without_password(reader: PdfReader) -> bool:
    """An owner password alone (printing/copying restrictions) still lets anyone read the text."""
    from pypdf import PasswordType
    from pypdf.errors import DependencyError

    try:
        return reader.decrypt("") != PasswordType.NOT_DECRYPTED
    except (DependencyError, NotImplementedError, ValueError):
        return False


def _declared_page_count(reader: PdfReader) -> int:
    """The page tree's /Count, read without walking the tree (a file may claim a million pages)."""
    try:
        count = reader.trailer["/Root"]["/Pages"]["/Count"]  # type: ignore[index]
        return int(count)
    except (KeyError, TypeError, ValueError):
        return 0


def _title(reader: PdfReader) -> str | None:
    try:
        metadata = reader.metadata
        title = metadata.title if metadata is not None else None
    except Exception:  # a damaged info dictionary costs the title only
        return None
    return clean_text(str(title)).strip() or None if title else None
