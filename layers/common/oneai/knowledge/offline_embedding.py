"""The offline embedding: a deterministic stand-in for `openai/text-embedding-3-small` (1536 dimensions).

Used by the fake OpenRouter (`local/fake_openrouter.py`), which answers `POST /embeddings` with it when
`make dev` runs without an OpenRouter key and in the tests, so the knowledge base's search works offline
and its results make sense: texts that share words are close, unrelated texts are near orthogonal.

Feature hashing (no model, no numpy - the layer has none): the text is NFKC-normalised and case-folded, cut
into words (`\\w+`), common English function words dropped; the features are the words, the pairs of
neighbouring words and the character trigrams of each word (with `^`/`$` boundary marks, so "invoice" and
"invoices" share most of theirs). Each feature is hashed (CRC-32, seeded per feature kind, so nothing
depends on Python's per-process hash seed) to one of the dimensions with a sign taken from the hash (signed
hashing keeps collisions from adding up to a bias), weighted by sublinear term frequency `1 + ln(tf)`.
Each kind is scaled to a fixed share of the vector (words 0.5, pairs 0.3, trigrams 0.5 before the final
L2 normalisation) so that a long text's many trigrams do not drown its words.

Only the first `MAX_CHARS` characters count (the real model takes 8,192 tokens, about 32,000 characters;
a longer input is an upstream 400 there, a truncated embedding here). A text with no word at all (empty,
punctuation, NUL bytes) still gets a unit vector, from its stripped text, so the norm is always 1.
"""

from __future__ import annotations

import math
import re
import unicodedata
from collections import Counter
from collections.abc import Iterable
from itertools import chain, pairwise
from typing import cast
from zlib import crc32

__all__ = ["EMBEDDING_DIMENSIONS", "MAX_CHARS", "cosine", "offline_embedding", "offline_embeddings"]

EMBEDDING_DIMENSIONS = 1536
MAX_CHARS = 100_000

_WORD = re.compile(r"\w+")
# Seeds per feature kind: the same string as a word, a pair or a trigram lands on different dimensions.
_WORD_SEED, _PAIR_SEED, _TRIGRAM_SEED, _FALLBACK_SEED = 0x5EED0001, 0x5EED0002, 0x5EED0003, 0x5EED0004
_WORD_SHARE, _PAIR_SHARE, _TRIGRAM_SHARE = 0.5, 0.3, 0.5
# Function words carry no topic: two unrelated English texts would otherwise look alike through them.
_STOP_TEXT = (
    "a an and are as at be been but by can could did do does for from had has have he her his i if in into "
    "is it its me my no not of on or our she so than that the their them then there these they this those "
    "to too us was we were what when where which who will with would you your"
)
_STOP_WORDS = frozenset(_STOP_TEXT.split())
_SLOT_CACHE_MAX = 50_000  # per cache: a few tens of MB at most
_SLOT_CACHE: dict[tuple[int, int], dict[str, tuple[int, bool]]] = {}
_TRIGRAM_CACHE: dict[str, tuple[str, ...]] = {}


def _words(text: str) -> list[str]:
    normalised = unicodedata.normalize("NFKC", text[:MAX_CHARS]).casefold()
    return [word for word in _WORD.findall(normalised) if word not in _STOP_WORDS]


def _slots(features: list[str], seed: int, dimensions: int) -> list[tuple[int, bool]]:
    """(dimension, positive) of each feature, memoised: real text repeats its vocabulary, so most hashes of
    a chunk were already computed for an earlier one (the cache is dropped whole when it grows too big)."""
    cache = _SLOT_CACHE.setdefault((seed, dimensions), {})
    if len(cache) > _SLOT_CACHE_MAX:
        cache.clear()
    get = cache.get
    slots: list[tuple[int, bool] | None] = [get(feature) for feature in features]
    if None in slots:
        for position, feature in enumerate(features):
            if slots[position] is None:
                h = crc32(feature.encode("utf-8", "surrogatepass"), seed)
                slots[position] = cache[feature] = ((h >> 1) % dimensions, bool(h & 1))
    return cast("list[tuple[int, bool]]", slots)  # no None left


def _add(vector: list[float], counts: Counter[str], seed: int, share: float) -> None:
    """Add the features' signed, sublinearly weighted hashes, scaled so this kind's part has norm `share`
    (collisions aside)."""
    if not counts:
        return
    weights = [1.0 + math.log(tf) if tf > 1 else 1.0 for tf in counts.values()]
    scale = share / math.sqrt(sum(w * w for w in weights))
    for (index, positive), weight in zip(_slots(list(counts), seed, len(vector)), weights, strict=True):
        vector[index] += scale * weight if positive else -scale * weight


def _trigrams(word: str) -> tuple[str, ...]:
    found = _TRIGRAM_CACHE.get(word)
    if found is None:
        if len(_TRIGRAM_CACHE) > _SLOT_CACHE_MAX:
            _TRIGRAM_CACHE.clear()
        marked = "^" + word + "$"
        found = _TRIGRAM_CACHE[word] = tuple(marked[i : i + 3] for i in range(len(marked) - 2))
    return found


def offline_embedding(text: str, dimensions: int = EMBEDDING_DIMENSIONS) -> list[float]:
    """The L2-normalised offline embedding of `text` (deterministic across processes and machines)."""
    if dimensions < 1:
        raise ValueError("dimensions must be positive")
    vector = [0.0] * dimensions
    words = _words(text)
    if words:
        _add(vector, Counter(a + " " + b for a, b in pairwise(words)), _PAIR_SEED, _PAIR_SHARE)
        word_counts = Counter(words)
        trigrams = Counter(chain.from_iterable(map(_trigrams, words)))  # every occurrence of every word
        _add(vector, word_counts, _WORD_SEED, _WORD_SHARE)
        _add(vector, trigrams, _TRIGRAM_SEED, _TRIGRAM_SHARE)
    norm = math.sqrt(sum(x * x for x in vector))
    if norm == 0.0:  # no word (or the features cancelled out): one dimension chosen by the stripped text
        vector[crc32(text[:MAX_CHARS].strip().encode("utf-8", "surrogatepass"), _FALLBACK_SEED) % dimensions] = 1.0
        return vector
    return [x / norm for x in vector]


def offline_embeddings(texts: Iterable[str], dimensions: int = EMBEDDING_DIMENSIONS) -> list[list[float]]:
    return [offline_embedding(text, dimensions) for text in texts]


def cosine(a: list[float], b: list[float]) -> float:
    """Cosine similarity of two vectors of the same length (0.0 when either is zero)."""
    dot = sum(x * y for x, y in zip(a, b, strict=True))
    norms = math.sqrt(sum(x * x for x in a)) * math.sqrt(sum(y * y for y in b))
    return dot / norms if norms else 0.0
