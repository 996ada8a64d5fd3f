"""How fast the offline embedding is (the stand-in for OpenRouter's embeddings under `make dev` and the
tests), so it is never what limits ingest: chunks of about 500 tokens (375 words, about 2,400 characters)
cut from this repository's own English docs.

Measured on one core, in process: `offline_embedding` per chunk, first with empty feature caches (the
first document of a container) and then warm (the caches filled by earlier chunks, as in a real ingest),
and on chunks of made-up words where nothing is ever cached (every word, pair and trigram hashed: the
worst case). Then the whole path an ingest takes offline:
`OpenRouterEmbeddings.embed` over a real socket to the fake OpenRouter, batches of 64 (JSON both ways,
the vectors checked). Goal: well above 200 chunks/s for the in-process embedding.
"""

from __future__ import annotations

import asyncio
import random
import time
from pathlib import Path

from pydantic import SecretStr

from bench._report import table
from local.fake_openrouter import FakeOpenRouter
from oneai.config import Settings
from oneai.knowledge import offline_embedding as module
from oneai.knowledge.offline_embedding import offline_embedding
from oneai.openrouter import OpenRouterClient, OpenRouterEmbeddings

WORDS_PER_CHUNK = 375  # about 500 tokens of English
ROOT = Path(__file__).resolve().parents[1]


def _chunks(limit: int) -> list[str]:
    words: list[str] = []
    for path in [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]:
        words.extend(path.read_text(encoding="utf-8").split())
    chunks = [" ".join(words[i : i + WORDS_PER_CHUNK]) for i in range(0, len(words), WORDS_PER_CHUNK)]
    chunks = [chunk for chunk in chunks if len(chunk.split()) == WORDS_PER_CHUNK]
    return (chunks * (limit // max(1, len(chunks)) + 1))[:limit]


def _new_words(count: int) -> list[str]:
    """Chunks of made-up words, none seen before: every feature hashed (the embedding's worst case)."""
    rng = random.Random(24)
    letters = "abcdefghijklmnopqrstuvwxyz"
    return [
        " ".join("".join(rng.choices(letters, k=rng.randint(3, 9))) for _ in range(WORDS_PER_CHUNK))
        for _ in range(count)
    ]


def _clear_caches() -> None:
    module._SLOT_CACHE.clear()
    module._TRIGRAM_CACHE.clear()


def _rate(chunks: list[str]) -> float:
    started = time.perf_counter()
    for chunk in chunks:
        offline_embedding(chunk)
    return len(chunks) / (time.perf_counter() - started)


async def _through_the_fake(chunks: list[str]) -> float:
    with FakeOpenRouter(delay=0.0) as fake:
        settings = Settings(openrouter_api_key=SecretStr("sk-or-bench"), openrouter_base_url=fake.base_url)
        async with OpenRouterClient(settings) as client:
            service = OpenRouterEmbeddings(client, batch_size=64)
            await service.embed(chunks[:8])  # connection and caches warm
            started = time.perf_counter()
            result = await service.embed(chunks)
            elapsed = time.perf_counter() - started
    assert len(result.vectors) == len(chunks)
    return len(chunks) / elapsed


def run(quick: bool = False) -> None:
    count = 100 if quick else 600
    chunks = _chunks(count)
    average_chars = sum(len(c) for c in chunks) // len(chunks)
    distinct = len(set(chunks))
    repeats = 1 if quick else 3
    cold = 0.0
    for _ in range(repeats):  # each distinct chunk once, caches starting empty (best of the repeats)
        _clear_caches()
        cold = max(cold, _rate(chunks[:distinct]))
    warm = max(_rate(chunks) for _ in range(repeats))
    _clear_caches()
    unseen = _rate(_new_words(50 if quick else 200))
    socket = asyncio.run(_through_the_fake(chunks[: 128 if quick else 512]))
    print(
        f"Offline embedding: {len(chunks)} chunks of {WORDS_PER_CHUNK} words (~{average_chars} characters, "
        f"~500 tokens), {distinct} distinct, one core"
    )
    rows = [
        ["offline_embedding, caches empty at start", f"{cold:,.0f}"],
        ["offline_embedding, caches warm", f"{warm:,.0f}"],
        ["offline_embedding, every word new (made-up words)", f"{unseen:,.0f}"],
        ["OpenRouterEmbeddings -> fake OpenRouter (socket, batches of 64)", f"{socket:,.0f}"],
    ]
    print(table(["", "chunks/s"], rows))
