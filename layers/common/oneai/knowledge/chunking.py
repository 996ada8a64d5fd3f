"""Parsed blocks to chunks of about `target_tokens` (cl100k_base), for embedding and citation.

Prose: a chunk holds one section (its heading path) of one page: a new heading or a new PDF page starts a
new chunk, so a chunk's `page` is exact and its `section` true. Inside that, paragraphs are packed whole
while they fit; a longer paragraph is cut at sentences, a longer sentence at the whitespace nearest its
middle (halving until each piece fits). The next chunk of the same section and page starts with the last
sentences of the previous one, up to `overlap_tokens`. Headings with nothing under them yet (a title then
a subtitle) are carried to the top of the next chunk of the same page instead of standing alone.

CSV: whole rows under the header line, repeated at the top of every chunk; no overlap (a repeated row
would be counted twice by whoever reads the answers). A row that alone cannot fit is cut like prose.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass

from pydantic import BaseModel, ConfigDict, Field, model_validator

from oneai.knowledge.parsing import Block, ParsedDocument
from oneai.knowledge.tokens import count_tokens


class ChunkingSettings(BaseModel):
    """Per workspace; the defaults are the issue's: about 500 tokens, about 10 % overlap."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    # the embedding model takes at most 8,191 tokens; below 64 a chunk carries too little meaning
    target_tokens: int = Field(default=500, ge=64, le=8000)
    overlap_tokens: int = Field(default=50, ge=0, le=2000)

    @model_validator(mode="after")
    def _overlap_below_half(self) -> ChunkingSettings:
        if self.overlap_tokens * 2 > self.target_tokens:
            raise ValueError("overlap_tokens must be at most half of target_tokens")
        return self


class Chunk(BaseModel):
    model_config = ConfigDict(frozen=True)

    index: int
    text: str
    page: int | None
    section: tuple[str, ...]
    tokens: int


DEFAULT_SETTINGS = ChunkingSettings()


@dataclass(frozen=True, slots=True)
class _Piece:
    text: str
    tokens: int
    # what joins it to the piece before it in the same chunk
    joiner: str


_SENTENCE_END = re.compile(r"(?<=[.!?。！？])(\s+)|(\n)")
_JOINER_TOKENS = 1
# English runs about 4 characters a token: windows of that many characters rarely need halving again
_WINDOW_CHARS_PER_TOKEN = 4
_WINDOWS_FROM = 16


def chunk_document(document: ParsedDocument, settings: ChunkingSettings = DEFAULT_SETTINGS) -> list[Chunk]:
    if document.csv_header is not None:
        texts = _csv_chunks(document.csv_header, [block.text for block in document.blocks], settings)
        return [
            Chunk(index=i, text=text, page=None, section=(), tokens=count_tokens(text))
            for i, text in enumerate(texts)
        ]
    chunks: list[Chunk] = []
    for page, section, pieces in _segments(document.blocks, settings):
        for text in _pack(pieces, settings):
            chunks.append(
                Chunk(index=len(chunks), text=text, page=page, section=section, tokens=count_tokens(text))
            )
    return chunks


def _segments(
    blocks: tuple[Block, ...], settings: ChunkingSettings
) -> Iterator[tuple[int | None, tuple[str, ...], list[_Piece]]]:
    """Runs of blocks on one page under one heading path, as pieces that each fit in a chunk."""
    carried: list[_Piece] = []  # headings waiting for their content
    current: list[_Piece] = []
    key: tuple[int | None, tuple[str, ...]] | None = None
    has_content = False
    for block in blocks:
        block_key = (block.page, block.section)
        if block_key != key:
            if key is not None:
                if has_content:
                    yield key[0], key[1], current
                    carried = []
                elif block.page == key[0]:
                    carried = current
                else:  # headings alone at the end of a page stay on their page
                    yield key[0], key[1], current
                    carried = []
            key, current, has_content = block_key, list(carried), False
        joiner = "\n\n" if current else ""
        for i, piece in enumerate(_fit_block(block.text, settings.target_tokens)):
            current.append(_Piece(piece.text, piece.tokens, joiner if i == 0 else piece.joiner))
        has_content = has_content or block.kind != "heading"
    if key is not None and current:
        yield key[0], key[1], current


def _fit_block(text: str, budget: int) -> list[_Piece]:
    tokens = count_tokens(text)
    if tokens <= budget:
        return [_Piece(text, tokens, "")]
    pieces: list[_Piece] = []
    parts = _SENTENCE_END.split(text)
    # split() with two groups yields text, space-group, newline-group, text, ...
    joiner = ""
    for i in range(0, len(parts), 3):
        sentence = parts[i]
        if sentence and sentence.strip():
            for j, fitted in enumerate(_halve_until_fits(sentence.strip(), budget)):
                pieces.append(_Piece(fitted.text, fitted.tokens, joiner if j == 0 else fitted.joiner))
        if i + 2 < len(parts):
            joiner = "\n" if parts[i + 2] or "\n" in (parts[i + 1] or "") else " "
    return pieces


def _halve_until_fits(text: str, budget: int) -> list[_Piece]:
    if len(text) > _WINDOWS_FROM * budget:
        # far too long (a whole book without a full stop): windows first, so the halving below stays shallow
        pieces = []
        for window, joiner in _windows(text, _WINDOW_CHARS_PER_TOKEN * budget):
            first, *rest = _halve_until_fits(window, budget)
            pieces.extend([_Piece(first.text, first.tokens, joiner), *rest])
        return pieces
    tokens = count_tokens(text)
    if tokens <= budget:
        return [_Piece(text, tokens, " ")]
    middle = len(text) // 2
    left_space, right_space = text.rfind(" ", 0, middle), text.find(" ", middle)
    candidates = [at for at in (left_space, right_space) if at > 0]
    if candidates:
        cut = min(candidates, key=lambda at: abs(at - middle))
        left, right, joiner = text[:cut], text[cut + 1 :], " "
    else:  # one endless word (base64, a URL): cut between characters
        left, right, joiner = text[:middle], text[middle:], ""
    pieces = _halve_until_fits(left, budget)
    first, *rest = _halve_until_fits(right, budget)
    return [*pieces, _Piece(first.text, first.tokens, joiner), *rest]


def _windows(text: str, size: int) -> Iterator[tuple[str, str]]:
    """Consecutive slices of about `size` characters, cut at a space where there is one near the end."""
    start, joiner = 0, " "
    while start < len(text):
        end = min(start + size, len(text))
        space = text.rfind(" ", start + size // 2, end) if end < len(text) else -1
        if space > start:
            yield text[start:space], joiner
            start, joiner = space + 1, " "
        else:
            yield text[start:end], joiner
            start, joiner = end, ""


def _pack(pieces: list[_Piece], settings: ChunkingSettings) -> Iterator[str]:
    """Pieces (each within the target) into chunks within the target, each after the previous one's tail."""
    current: list[_Piece] = []
    size = 0
    fresh = 0  # pieces of `current` not already sent in the previous chunk
    for piece in pieces:
        cost = piece.tokens + (_JOINER_TOKENS if current else 0)
        if current and size + cost > settings.target_tokens:
            yield _join(current)
            current = _tail(current, settings.overlap_tokens)
            size = sum(p.tokens + _JOINER_TOKENS for p in current)
            if size + piece.tokens + _JOINER_TOKENS > settings.target_tokens:
                current, size = [], 0
            fresh = 0
        current.append(piece if current else _Piece(piece.text, piece.tokens, ""))
        size += piece.tokens + (_JOINER_TOKENS if len(current) > 1 else 0)
        fresh += 1
    if current and fresh:
        yield _join(current)


def _tail(pieces: list[_Piece], overlap_tokens: int) -> list[_Piece]:
    """The end of a chunk that fits in the overlap, in whole sentences; never the whole chunk again."""
    tail: list[_Piece] = []
    room = overlap_tokens
    for piece in reversed(pieces[1:] if len(pieces) > 1 else []):
        if piece.tokens + _JOINER_TOKENS <= room:
            tail.insert(0, piece)
            room -= piece.tokens + _JOINER_TOKENS
            continue
        tail[:0] = _last_sentences(piece.text, room)
        break
    if len(pieces) == 1:
        tail = _last_sentences(pieces[0].text, room)
    if tail:
        tail[0] = _Piece(tail[0].text, tail[0].tokens, "")
    return tail


def _last_sentences(text: str, room: int) -> list[_Piece]:
    """The trailing sentences of a piece that fit in `room` tokens together (none if the last alone does not)."""
    parts = [part.strip() for part in _SENTENCE_END.split(text)[::3] if part and part.strip()]
    taken: list[_Piece] = []
    for sentence in reversed(parts[1:]):
        tokens = count_tokens(sentence)
        if tokens + _JOINER_TOKENS > room:
            break
        taken.insert(0, _Piece(sentence, tokens, " "))
        room -= tokens + _JOINER_TOKENS
    return taken


def _join(pieces: list[_Piece]) -> str:
    return "".join(piece.joiner + piece.text for piece in pieces)


def _csv_chunks(header: str, rows: list[str], settings: ChunkingSettings) -> list[str]:
    # a header too long to leave room for rows is cut to half the target (documented above)
    header_piece = _halve_until_fits(header, settings.target_tokens // 2)[0]
    budget = settings.target_tokens - header_piece.tokens - _JOINER_TOKENS
    chunks: list[str] = []
    current: list[str] = []
    size = 0
    for row in rows:
        row_tokens = count_tokens(row)
        if row_tokens > budget:
            if current:
                chunks.append("\n".join([header_piece.text, *current]))
                current, size = [], 0
            chunks.extend(f"{header_piece.text}\n{part.text}" for part in _halve_until_fits(row, budget))
            continue
        if current and size + row_tokens + _JOINER_TOKENS > budget:
            chunks.append("\n".join([header_piece.text, *current]))
            current, size = [], 0
        current.append(row)
        size += row_tokens + _JOINER_TOKENS
    if current:
        chunks.append("\n".join([header_piece.text, *current]))
    return chunks
