"""chunk_document: sizes and overlap in cl100k_base tokens, exact PDF pages, sections, CSV headers repeated."""

from __future__ import annotations

import random
import time
from itertools import pairwise

import pytest
from pydantic import ValidationError

from oneai.knowledge.chunking import Chunk, ChunkingSettings, chunk_document
from oneai.knowledge.parsing import parse_document
from oneai.knowledge.tokens import count_tokens, encoding
from tests.knowledge_files import make_csv, make_pdf


def sentences(label: str, count: int) -> str:
    return " ".join(
        f"{label} sentence number {n} tells a small fact about the topic {label}." for n in range(count)
    )


def markdown(sections: dict[str, int]) -> bytes:
    parts = ["# Handbook"]
    for title, paragraphs in sections.items():
        parts.append(f"## {title}")
        parts.extend(sentences(f"{title}-{p}", 6) for p in range(paragraphs))
    return "\n\n".join(parts).encode()


def chunks_of(
    data: bytes, media_type: str, filename: str, settings: ChunkingSettings | None = None
) -> list[Chunk]:
    document = parse_document(data, media_type, filename)
    return chunk_document(document) if settings is None else chunk_document(document, settings)


def test_token_counts_are_cl100k_base_the_embedding_models_encoding() -> None:
    # the tokens tiktoken gives for this text with cl100k_base (OpenAI's cookbook example)
    assert encoding().encode_ordinary("tiktoken is great!") == [83, 1609, 5963, 374, 2294, 0]


def test_chunks_stay_within_the_target_and_count_their_tokens_exactly() -> None:
    chunks = chunks_of(markdown({"Leave": 30, "Pay": 25}), "text/markdown", "handbook.md")

    assert len(chunks) > 5
    assert [chunk.index for chunk in chunks] == list(range(len(chunks)))
    for chunk in chunks:
        assert chunk.tokens == count_tokens(chunk.text)
        assert chunk.tokens <= 500
    # packed, not one paragraph a chunk: most are near the target
    assert sum(chunk.tokens for chunk in chunks) / len(chunks) > 350


def test_consecutive_chunks_of_a_section_overlap_by_at_most_the_overlap() -> None:
    settings = ChunkingSettings(target_tokens=200, overlap_tokens=40)
    chunks = [
        c
        for c in chunks_of(markdown({"Leave": 20}), "text/markdown", "h.md", settings)
        if c.section[-1] == "Leave"
    ]

    assert len(chunks) > 3
    for before, after in pairwise(chunks):
        shared = _shared_edge(before.text, after.text)
        assert shared, "the next chunk starts with the end of the one before"
        assert 0 < count_tokens(shared) <= 40
        assert after.text[len(shared) :].strip(), "and goes on with new text"


def _shared_edge(before: str, after: str) -> str:
    for start in range(len(before)):
        if after.startswith(before[start:].lstrip()) and before[start:].strip():
            return before[start:].lstrip()
    return ""


def test_without_overlap_the_chunks_hold_every_word_once() -> None:
    settings = ChunkingSettings(target_tokens=120, overlap_tokens=0)
    data = markdown({"Leave": 12})
    chunks = chunks_of(data, "text/markdown", "h.md", settings)

    words = " ".join(chunk.text for chunk in chunks).split()
    assert sorted(words) == sorted(data.decode().replace("#", "").split())


def test_a_chunk_belongs_to_one_section_and_headings_lead_their_text() -> None:
    chunks = chunks_of(markdown({"Leave": 1, "Pay": 1}), "text/markdown", "h.md")

    assert [(chunk.section, chunk.text.split("\n")[0]) for chunk in chunks] == [
        (("Handbook", "Leave"), "Handbook"),
        (("Handbook", "Pay"), "Pay"),
    ]
    assert "Pay-0" not in chunks[0].text


def test_a_pdf_chunk_never_spans_two_pages_and_its_page_is_exact() -> None:
    pages = [sentences(f"page{n}", 40).replace(". ", ".\n") for n in range(1, 5)]
    chunks = chunks_of(make_pdf(pages), "application/pdf", "book.pdf")

    assert {chunk.page for chunk in chunks} == {1, 2, 3, 4}
    for chunk in chunks:
        labels = {word.strip(".") for word in chunk.text.split() if word.startswith("page")}
        assert labels == {f"page{chunk.page}"}
        assert chunk.tokens <= 500
    assert len([chunk for chunk in chunks if chunk.page == 1]) > 1, "a long page gives several chunks"


def test_csv_chunks_are_whole_rows_under_the_header_repeated() -> None:
    data = make_csv(300)
    rows = data.decode().strip().split("\n")[1:]
    chunks = chunks_of(data, "text/csv", "stock.csv", ChunkingSettings(target_tokens=300, overlap_tokens=0))

    assert len(chunks) > 3
    seen: list[str] = []
    for chunk in chunks:
        header, *chunk_rows = chunk.text.split("\n")
        assert header == "sku,name,price,description"
        assert chunk.page is None
        assert chunk.tokens <= 300
        seen.extend(chunk_rows)
    assert seen == rows


def test_a_csv_row_too_long_for_one_chunk_is_cut_under_the_header() -> None:
    long_row = "1," + " ".join(f"word{n}" for n in range(2000))
    chunks = chunks_of(f"id,notes\n{long_row}\n2,short\n".encode(), "text/csv", "notes.csv")

    assert all(chunk.text.startswith("id,notes\n") and chunk.tokens <= 500 for chunk in chunks)
    assert chunks[-1].text == "id,notes\n2,short"


def test_an_endless_word_is_cut_to_fit() -> None:
    blob = "QUJD" * 20000
    chunks = chunks_of(
        blob.encode(), "text/plain", "blob.txt", ChunkingSettings(target_tokens=200, overlap_tokens=0)
    )

    assert "".join(chunk.text for chunk in chunks) == blob
    assert all(chunk.tokens <= 200 for chunk in chunks)


@pytest.mark.parametrize(
    "settings",
    [
        {"target_tokens": 32, "overlap_tokens": 0},
        {"target_tokens": 9000, "overlap_tokens": 0},
        {"target_tokens": 500, "overlap_tokens": 300},
        {"target_tokens": 500, "overlap_tokens": -1},
        {"target_tokens": 500, "overlap_tokens": 50, "unknown": 1},
    ],
)
def test_settings_out_of_bounds_are_refused(settings: dict[str, int]) -> None:
    with pytest.raises(ValidationError):
        ChunkingSettings.model_validate(settings)


def test_the_default_settings_are_500_tokens_with_ten_percent_overlap() -> None:
    assert ChunkingSettings() == ChunkingSettings(target_tokens=500, overlap_tokens=50)


def test_a_long_text_without_sentence_ends_is_chunked_in_linear_time() -> None:
    generator = random.Random(3)
    words = [
        "".join(generator.choice("abcdefghijklmnop") for _ in range(generator.randint(2, 9))) for _ in range(2000)
    ]
    text = " ".join(generator.choice(words) for _ in range(300_000))

    started = time.monotonic()
    chunks = chunks_of(text.encode(), "text/plain", "one-paragraph.txt")

    assert time.monotonic() - started < 6
    assert all(chunk.tokens <= 500 for chunk in chunks)
    assert " ".join(chunk.text for chunk in chunks[:3]).split()[:5] == text.split()[:5]
