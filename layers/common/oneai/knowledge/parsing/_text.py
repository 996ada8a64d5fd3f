"""Bytes to text for the text formats (TXT, Markdown, HTML, CSV), with one documented policy.

A byte order mark decides (UTF-8, UTF-16 LE/BE); without one the bytes must be valid UTF-8, else they are
read as Windows-1252 (the commonest legacy encoding of office files in the West; its five undefined bytes
fall back to Latin-1, so decoding never fails). NUL bytes are dropped: a UTF-16 file without a BOM that is
mostly ASCII then still reads, and PostgreSQL text cannot hold them anyway. What remains must look like
text: a file mostly made of control characters is refused, not indexed as noise.
"""

from __future__ import annotations

import codecs

from oneai.knowledge.parsing._model import DocumentUnreadableError, clean_text

_BOMS = (
    (codecs.BOM_UTF8, "utf-8"),
    (codecs.BOM_UTF16_LE, "utf-16-le"),
    (codecs.BOM_UTF16_BE, "utf-16-be"),
)
_ALLOWED_CONTROLS = frozenset("\t\n\r\f\v")
_SAMPLE_CHARS = 8192
_MAX_CONTROL_SHARE = 0.1


def decode_text(data: bytes) -> str:
    for bom, encoding in _BOMS:
        if data.startswith(bom):
            text = data[len(bom) :].decode(encoding, errors="replace")
            break
    else:
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            text = _decode_cp1252(data)
    text = clean_text(text)
    _refuse_binary(text)
    return text


def _decode_cp1252(data: bytes) -> str:
    try:
        return data.decode("cp1252")
    except UnicodeDecodeError:
        return data.decode("cp1252", errors="oneai-latin1-fallback")


def _latin1_fallback(error: UnicodeError) -> tuple[str, int]:
    assert isinstance(error, UnicodeDecodeError)
    bad = error.object[error.start : error.end]
    return bytes(bad).decode("latin-1"), error.end


codecs.register_error("oneai-latin1-fallback", _latin1_fallback)


def _refuse_binary(text: str) -> None:
    sample = text[:_SAMPLE_CHARS]
    if not sample:
        return
    controls = sum(1 for ch in sample if ch < " " and ch not in _ALLOWED_CONTROLS)
    if controls > len(sample) * _MAX_CONTROL_SHARE:
        raise DocumentUnreadableError("the file does not look like text: it holds binary data")
