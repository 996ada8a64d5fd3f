"""The offline embedding: deterministic, 1536 unit-length dimensions, lexically meaningful, any input."""

from __future__ import annotations

import math
import subprocess
import sys
import time
from pathlib import Path

import pytest

from oneai.knowledge.offline_embedding import (
    EMBEDDING_DIMENSIONS,
    MAX_CHARS,
    cosine,
    offline_embedding,
    offline_embeddings,
)
from oneai.openrouter.embeddings import plan_batches

LAYER = Path(__file__).resolve().parents[2] / "layers" / "common"
REFUND = "Refunds are issued within 14 days of the returned parcel reaching our warehouse."
REFUND_PARAPHRASE = "A refund is issued within 14 days once the returned parcel reaches the warehouse."
BOARD = "The quarterly board meeting approved the new office lease in Berlin."
SHIPPING = "Orders ship from Mumbai by courier; international delivery takes five to eight working days."


def norm(vector: list[float]) -> float:
    return math.sqrt(sum(x * x for x in vector))


def test_dimension_and_unit_norm() -> None:
    for text in (REFUND, "x", "Ünïcödé – 日本語のテキスト", "a " * 10_000):
        vector = offline_embedding(text)
        assert len(vector) == EMBEDDING_DIMENSIONS == 1536
        assert norm(vector) == pytest.approx(1.0, abs=1e-9)
        assert all(math.isfinite(x) for x in vector)


def test_deterministic_within_and_across_processes() -> None:
    assert offline_embedding(REFUND) == offline_embedding(REFUND)
    # Another interpreter with another hash seed: the same numbers (nothing depends on Python's hash()).
    code = (
        "from oneai.knowledge.offline_embedding import offline_embedding as e; "
        f"print(repr(sum(e({REFUND!r})[:50])))"
    )
    other = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        env={"PYTHONHASHSEED": "12345", "PYTHONPATH": str(LAYER)},
    )
    assert float(other.stdout) == sum(offline_embedding(REFUND)[:50])


def test_paraphrase_is_closer_than_unrelated_text_by_a_clear_margin() -> None:
    close = cosine(offline_embedding(REFUND), offline_embedding(REFUND_PARAPHRASE))
    far = cosine(offline_embedding(REFUND), offline_embedding(BOARD))
    assert close > 0.4
    assert abs(far) < 0.1
    assert close - far > 0.3


def test_a_question_finds_its_passage_first() -> None:
    passages = [BOARD, SHIPPING, REFUND]
    vectors = offline_embeddings(passages)
    for question, expected in (
        ("how many days until my refund is issued?", REFUND),
        ("how long does international delivery take", SHIPPING),
        ("who approved the Berlin office lease", BOARD),
    ):
        query = offline_embedding(question)
        ranked = sorted(zip(passages, vectors, strict=True), key=lambda pv: -cosine(query, pv[1]))
        assert ranked[0][0] == expected, question


def test_case_and_unicode_forms_do_not_matter() -> None:
    assert offline_embedding("CAFÉ Menu") == offline_embedding("café menu")
    assert offline_embedding("ﬁle") == offline_embedding("file")  # NFKC folds the ligature


def test_word_forms_share_trigrams() -> None:
    similar = cosine(offline_embedding("invoice"), offline_embedding("invoices"))
    different = cosine(offline_embedding("invoice"), offline_embedding("tractor"))
    assert similar > 0.3 > abs(different)


@pytest.mark.parametrize("text", ["", "   ", "\x00", "\x00\x00 \x00", "!!!", "\ud800 lone surrogate"])
def test_texts_without_words_still_get_a_unit_vector(text: str) -> None:
    vector = offline_embedding(text)
    assert len(vector) == EMBEDDING_DIMENSIONS
    assert norm(vector) == pytest.approx(1.0)


def test_nul_bytes_inside_words_are_separators() -> None:
    assert cosine(offline_embedding("refund\x00policy"), offline_embedding("refund policy")) > 0.9


def test_huge_input_is_cut_at_max_chars_and_stays_fast() -> None:
    huge = "warehouse refund " * (5 * 1024 * 1024 // 17)  # about 5 MB
    started = time.perf_counter()
    vector = offline_embedding(huge)
    assert time.perf_counter() - started < 2.0
    assert vector == offline_embedding(huge[:MAX_CHARS])
    assert norm(vector) == pytest.approx(1.0)


def test_other_dimensions_on_request() -> None:
    assert len(offline_embedding(REFUND, 256)) == 256
    with pytest.raises(ValueError, match="positive"):
        offline_embedding(REFUND, 0)


def test_batches_respect_count_and_characters() -> None:
    texts = ["a" * 10] * 7
    assert plan_batches(texts, max_count=3, max_chars=1000) == [range(0, 3), range(3, 6), range(6, 7)]
    assert plan_batches(texts, max_count=100, max_chars=25) == [range(0, 2), range(2, 4), range(4, 6), range(6, 7)]
    # A text longer than the character budget goes alone; nothing is lost or reordered.
    mixed = ["a" * 5, "b" * 50, "c" * 5, "d" * 5]
    assert plan_batches(mixed, max_count=10, max_chars=20) == [range(0, 1), range(1, 2), range(2, 4)]
    assert plan_batches([], max_count=3, max_chars=10) == []
