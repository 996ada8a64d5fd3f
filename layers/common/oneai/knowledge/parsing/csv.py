"""CSV: the header and whole rows, read row by row with the standard library, each row bounded in size.

The delimiter is sniffed from the first lines (comma, semicolon, tab or pipe). A row longer than
`max_row_chars` or wider than `max_columns` fails the file with its row number: one giant line is a broken
export, not a document. The csv module's own field limit (128 KiB) stays as a second bound.
"""

from __future__ import annotations

import csv
import io

from oneai.knowledge.parsing._model import (
    Block,
    DocumentKind,
    DocumentUnreadableError,
    ParsedDocument,
    ParsingLimits,
)
from oneai.knowledge.parsing._text import decode_text

_DELIMITERS = ",;\t|"
_SNIFF_LINES = 20
_SNIFF_CHARS = 16 * 1024


def parse_csv(data: bytes, limits: ParsingLimits) -> ParsedDocument:
    text = decode_text(data)
    _refuse_giant_lines(text, limits)
    dialect_delimiter = _delimiter(text)
    reader = csv.reader(io.StringIO(text), delimiter=dialect_delimiter)
    header: list[str] | None = None
    blocks: list[Block] = []
    try:
        for row in reader:
            if len(row) > limits.max_columns:
                raise DocumentUnreadableError(
                    f"row {reader.line_num} of the CSV has {len(row):,} columns, over the limit of {limits.max_columns:,}"
                )
            if sum(len(field) for field in row) > limits.max_row_chars:
                raise DocumentUnreadableError(
                    f"row {reader.line_num} of the CSV is longer than {limits.max_row_chars:,} characters"
                )
            if not any(field.strip() for field in row):
                continue
            if header is None:
                header = row
                continue
            blocks.append(Block(kind="row", text=_line(row, dialect_delimiter)))
    except csv.Error as error:
        raise DocumentUnreadableError(f"the CSV is damaged at line {reader.line_num}: {error}") from error
    if header is None:
        raise DocumentUnreadableError("the file has no text")
    if not blocks:
        raise DocumentUnreadableError("the CSV has a header but no rows")
    return ParsedDocument(kind=DocumentKind.CSV, blocks=tuple(blocks), csv_header=_line(header, dialect_delimiter))


def _refuse_giant_lines(text: str, limits: ParsingLimits) -> None:
    """Before the csv module splits one giant line into millions of fields (memory), refuse it by its length."""
    # a row's fields plus its delimiters and quotes: twice the characters of its fields is a generous bound
    longest_allowed = 2 * limits.max_row_chars
    start = 0
    line = 1
    while start < len(text):
        end = text.find("\n", start)
        if end == -1:
            end = len(text)
        if end - start > longest_allowed:
            raise DocumentUnreadableError(
                f"line {line:,} of the CSV is longer than {longest_allowed:,} characters"
            )
        start = end + 1
        line += 1


def _delimiter(text: str) -> str:
    sample = "\n".join(text[:_SNIFF_CHARS].split("\n")[:_SNIFF_LINES])
    try:
        return csv.Sniffer().sniff(sample, delimiters=_DELIMITERS).delimiter
    except csv.Error:
        return ","


def _line(row: list[str], delimiter: str) -> str:
    out = io.StringIO()
    csv.writer(out, delimiter=delimiter, lineterminator="").writerow(field.strip() for field in row)
    return out.getvalue()
