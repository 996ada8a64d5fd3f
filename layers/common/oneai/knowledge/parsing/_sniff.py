"""Which format a file claims to be (its media type and name) and whether its bytes agree."""

from __future__ import annotations

from pathlib import PurePath

from oneai.knowledge.parsing._model import DocumentKind, DocumentUnreadableError

DOCX_MEDIA_TYPE = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"

_BY_MEDIA_TYPE = {
    "application/pdf": DocumentKind.PDF,
    DOCX_MEDIA_TYPE: DocumentKind.DOCX,
    "text/plain": DocumentKind.TXT,
    "text/markdown": DocumentKind.MARKDOWN,
    "text/x-markdown": DocumentKind.MARKDOWN,
    "text/html": DocumentKind.HTML,
    "application/xhtml+xml": DocumentKind.HTML,
    "text/csv": DocumentKind.CSV,
}
_BY_EXTENSION = {
    ".pdf": DocumentKind.PDF,
    ".docx": DocumentKind.DOCX,
    ".txt": DocumentKind.TXT,
    ".text": DocumentKind.TXT,
    ".md": DocumentKind.MARKDOWN,
    ".markdown": DocumentKind.MARKDOWN,
    ".html": DocumentKind.HTML,
    ".htm": DocumentKind.HTML,
    ".csv": DocumentKind.CSV,
}
# What browsers and operating systems send when they do not know better: the extension decides.
_GENERIC_MEDIA_TYPES = frozenset({"", "application/octet-stream", "binary/octet-stream"})
# Declared types that are loose but honest: plain text for any text format, Excel's CSV on Windows.
_ALSO_ACCEPTED = {
    DocumentKind.MARKDOWN: frozenset({"text/plain"}),
    DocumentKind.CSV: frozenset({"text/plain", "application/vnd.ms-excel", "application/csv"}),
    DocumentKind.HTML: frozenset({"text/plain"}),
}
_TEXT_KINDS = frozenset({DocumentKind.TXT, DocumentKind.MARKDOWN, DocumentKind.HTML, DocumentKind.CSV})

# Magic bytes of binary formats, so a binary file never passes as text (name: the reason given).
_OLE = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"
_BINARY_MAGIC = (
    (b"%PDF-", "a PDF"),
    (b"PK\x03\x04", "a ZIP archive (such as a DOCX)"),
    (_OLE, "an Office document in the old binary format, or an encrypted one"),
    (b"\x89PNG\r\n\x1a\n", "a PNG image"),
    (b"\xff\xd8\xff", "a JPEG image"),
    (b"GIF8", "a GIF image"),
    (b"\x1f\x8b", "a gzip archive"),
    (b"\x7fELF", "a program"),
)
_LABEL = {
    DocumentKind.PDF: "a PDF",
    DocumentKind.DOCX: "a DOCX",
    DocumentKind.TXT: "a text file",
    DocumentKind.MARKDOWN: "a Markdown file",
    DocumentKind.HTML: "an HTML page",
    DocumentKind.CSV: "a CSV file",
}


def declared_kind(media_type: str, filename: str) -> DocumentKind:
    """The format the upload claims; a name and a type that claim different formats are refused."""
    base_type = media_type.split(";", 1)[0].strip().lower()
    by_type = _BY_MEDIA_TYPE.get(base_type)
    suffix = PurePath(filename).suffix.lower()
    by_name = _BY_EXTENSION.get(suffix)
    # a name without an extension leaves it to the type; an extension we do not read is refused whatever the type
    if by_name is None and (by_type is None or suffix):
        raise DocumentUnreadableError(
            "this file type is not supported: upload a PDF, DOCX, TXT, Markdown, HTML or CSV file"
        )
    if by_name is None:
        assert by_type is not None
        return by_type
    if by_type is None:
        if base_type in _GENERIC_MEDIA_TYPES or base_type in _ALSO_ACCEPTED.get(by_name, ()):
            return by_name
        raise DocumentUnreadableError(f"the file's name says {_LABEL[by_name]} but its type is {base_type}")
    if by_type is by_name or base_type in _ALSO_ACCEPTED.get(by_name, ()):
        return by_name
    raise DocumentUnreadableError(f"the file's name says {_LABEL[by_name]} but its type says {_LABEL[by_type]}")


def check_content(kind: DocumentKind, data: bytes) -> None:
    """The bytes must be what the upload claims: a PDF starts with its header, a DOCX is a ZIP, text is not binary."""
    head = data[:1024]
    if kind is DocumentKind.PDF:
        if b"%PDF-" not in head:
            raise DocumentUnreadableError(_mismatch(kind, data))
    elif kind is DocumentKind.DOCX:
        if data.startswith(_OLE):
            raise DocumentUnreadableError(
                "the file is encrypted or in the old Word 97-2003 format: save it as an unprotected .docx"
            )
        if not data.startswith(b"PK\x03\x04"):
            raise DocumentUnreadableError(_mismatch(kind, data))
    elif kind in _TEXT_KINDS:
        found = _binary_format(data)
        if found is not None:
            raise DocumentUnreadableError(f"the file is {found}, not {_LABEL[kind]} as its name and type say")


def _binary_format(data: bytes) -> str | None:
    for magic, name in _BINARY_MAGIC:
        if data.startswith(magic):
            return name
    return None


def _mismatch(kind: DocumentKind, data: bytes) -> str:
    found = _binary_format(data)
    name = _LABEL[kind].split(" ", 1)[1]
    return f"the file is not a valid {name}" + (f": it is {found}" if found is not None else "")
