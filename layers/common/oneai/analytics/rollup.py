"""The analytics job (AnalyticsFunction, every 5 minutes): keeps the chatbots' daily rollups and their
visitors' questions up to date. Service work, on purpose: it reads and writes every workspace's rows.

Rollups. The visitor tables' triggers mark each (workspace, UTC day) a change touches (a message or a
conversation added, deleted or moved, a reply's timings written, a rating given or changed). Each batch
claims at most `batch_days` marks in a short transaction of its own, then recomputes those pairs' rows from
the raw rows and deletes its marks in a second one (`oneai.db.chatbot_analytics`). A recompute replaces
rows, never adds to them, and two runs recomputing the same pair follow each other (an advisory lock per
pair), so a re-run, two runs at once, a late row, a deleted conversation or a changed rating never count
anything twice or leave a stale figure once the job has run after them. Work per run is bounded: batches
stop when `max_days` pairs were recomputed or the time budget (the quota sweep's) runs short; what is left
stays marked for the next run. A run that dies leaves its claim, taken again after `lease_seconds`.

Questions. Each visitor conversation's first question (its first visitor message that is not blank, at
most `MAX_QUESTION_CHARS` characters kept) is embedded (OpenRouter's /embeddings, the knowledge base's
model; offline the fake OpenRouter's local embedding) and joins the cluster of the most similar cluster
leader of its workspace if the cosine similarity reaches `analytics_question_similarity`, else leads a new
cluster. At most `question_batch` a run, oldest first. Embedding failures are logged by type (never the text)
and retried by the next run; the rollups are done either way. Without an OpenRouter key (and OpenRouter's own
address) no call is made: the run says `questions_skipped`.
"""

from __future__ import annotations

import asyncio
import re
import time
import uuid
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any, Final

from oneai.config import Settings
from oneai.db import chatbot_analytics as repo
from oneai.db.connection import Database
from oneai.logging import logger
from oneai.quota.sweep import TimeBudget, TimeLeft

DEFAULT_BATCH_DAYS: Final = 20
DEFAULT_MAX_DAYS: Final = 5_000
DEFAULT_QUESTION_BATCH: Final = 200
DEFAULT_LEASE_SECONDS: Final = 600  # twice the function's timeout
DEFAULT_SAFETY_MARGIN: Final = 10.0
OPENROUTER_API: Final = Settings.model_fields["openrouter_base_url"].default
MAX_QUESTION_CHARS: Final = 500
_SPACES = re.compile(r"\s+")

Embedder = Callable[[Sequence[str]], list[list[float]]]


@dataclass(frozen=True, slots=True)
class RollupReport:
    days_recomputed: int
    rows_written: int
    batches: int
    # marks (workspace, day) still waiting when the run ended (0 unless it stopped early or rows kept coming)
    days_remaining: int
    questions_added: int
    questions_failed: bool
    # no OpenRouter key and OpenRouter's own address: an embeddings call could only fail, so none is made
    questions_skipped: bool
    stopped_early: bool
    seconds: float

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def question_text(content: str) -> str:
    """The question as kept and embedded: whitespace collapsed, at most MAX_QUESTION_CHARS characters."""
    return _SPACES.sub(" ", content).strip()[:MAX_QUESTION_CHARS]


def openrouter_embedder(settings: Settings) -> Embedder:
    """Embeddings through OpenRouter with the knowledge base's model (imported when first used)."""

    def embed(texts: Sequence[str]) -> list[list[float]]:
        from oneai.openrouter import OpenRouterClient, OpenRouterEmbeddings

        async def run() -> list[list[float]]:
            async with OpenRouterClient(settings) as client:
                return (await OpenRouterEmbeddings(client).embed(list(texts))).vectors

        return asyncio.run(run())

    return embed


def can_embed(settings: Settings) -> bool:
    """An embeddings call can succeed: a key, or another address than OpenRouter's (the offline stand-in of
    `make dev` and the tests answers without one)."""
    key = settings.openrouter_api_key
    has_key = key is not None and bool(key.get_secret_value())
    return has_key or settings.openrouter_base_url.rstrip("/") != OPENROUTER_API.rstrip("/")


def refresh_rollups(
    db: Database,
    *,
    batch_days: int = DEFAULT_BATCH_DAYS,
    max_days: int = DEFAULT_MAX_DAYS,
    lease_seconds: int = DEFAULT_LEASE_SECONDS,
    budget: TimeBudget | None = None,
) -> tuple[int, int, int, bool]:
    """Recompute marked (workspace, day) pairs until none is left, `max_days` are done or time runs short:
    (pairs recomputed, rows written, batches, stopped early)."""
    if batch_days < 1 or max_days < 1:
        raise ValueError("batch_days and max_days must be at least 1")
    budget = budget or TimeBudget(None, 0.0)
    days = rows = batches = 0
    while True:
        if days >= max_days or not budget.allows_another_batch():
            return days, rows, batches, True
        started = time.monotonic()
        claim = uuid.uuid4()
        with db.service_transaction() as conn:
            keys = repo.claim_dirty_days(
                conn, claim, limit=min(batch_days, max_days - days), lease_seconds=lease_seconds
            )
        if not keys:
            return days, rows, batches, False
        with db.service_transaction() as conn:
            rows += repo.recompute_days(conn, keys)
            repo.release_claim(conn, claim)
        days += len(keys)
        batches += 1
        budget.record_batch(time.monotonic() - started)


def add_questions(
    db: Database, settings: Settings, embed: Embedder, *, limit: int = DEFAULT_QUESTION_BATCH
) -> int:
    """Embed and cluster up to `limit` conversations' first questions; the number added."""
    with db.service_transaction() as conn:
        pending = repo.pending_questions(conn, limit=limit)
    if not pending:
        return 0
    texts = [question_text(p.content) for p in pending]
    vectors = embed(texts)  # outside any transaction: no connection is held while the provider answers
    by_workspace: dict[uuid.UUID, list[int]] = defaultdict(list)
    for index, question in enumerate(pending):
        by_workspace[question.workspace_id].append(index)
    added = 0
    threshold = settings.analytics_question_similarity
    with db.service_transaction() as conn:
        for workspace_id in sorted(by_workspace, key=str):  # one order: two runs cannot deadlock
            repo.lock_workspace_questions(conn, workspace_id)
            for index in by_workspace[workspace_id]:
                leader = repo.nearest_leader(conn, workspace_id, vectors[index])
                cluster = leader.cluster_id if leader is not None and leader.similarity >= threshold else None
                added += repo.insert_question(conn, pending[index], texts[index], vectors[index], cluster)
    return added


def run(
    db: Database,
    settings: Settings,
    *,
    embed: Embedder | None = None,
    time_left: TimeLeft | None = None,
    batch_days: int = DEFAULT_BATCH_DAYS,
    max_days: int = DEFAULT_MAX_DAYS,
    question_batch: int = DEFAULT_QUESTION_BATCH,
    lease_seconds: int = DEFAULT_LEASE_SECONDS,
    safety_margin: float = DEFAULT_SAFETY_MARGIN,
) -> RollupReport:
    """One run of the job: the rollups first, then one batch of questions if time is left."""
    started = time.monotonic()
    budget = TimeBudget(time_left, safety_margin)
    days, rows, batches, stopped_early = refresh_rollups(
        db, batch_days=batch_days, max_days=max_days, lease_seconds=lease_seconds, budget=budget
    )
    added, failed = 0, False
    skipped = embed is None and not can_embed(settings)
    if skipped:
        logger.warning("analytics questions not embedded: no OpenRouter key")
    elif budget.allows_another_batch():
        try:
            added = add_questions(db, settings, embed or openrouter_embedder(settings), limit=question_batch)
        except Exception as exc:  # the type only: a provider's message could echo a question
            failed = True
            logger.warning("analytics questions not embedded", extra={"error_type": type(exc).__name__})
    with db.service_transaction() as conn:
        remaining = repo.count_dirty(conn)
    return RollupReport(
        days_recomputed=days,
        rows_written=rows,
        batches=batches,
        days_remaining=remaining,
        questions_added=added,
        questions_failed=failed,
        questions_skipped=skipped,
        stopped_early=stopped_early,
        seconds=round(time.monotonic() - started, 3),
    )
