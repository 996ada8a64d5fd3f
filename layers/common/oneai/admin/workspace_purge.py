"""Purging soft-deleted workspaces (API.md "Workspaces and teams": restorable for 30 days, then purged):
run by the quota-reset sweep, the product's scheduled cleanup.

Each batch is one short service transaction: it locks up to `batch_size` workspaces deleted more than
`PURGE_AFTER_DAYS` ago (`FOR UPDATE SKIP LOCKED`: two sweeps take disjoint batches; a restore that comes
later waits for the lock, then finds nothing to restore), runs the purge steps for each, and deletes the
rows. Deleting a workspace deletes everything in it by `on delete cascade` (members, invitations, and the
rows of every platform table, which reference their workspace so). Idempotent: a purged workspace is gone,
a run with nothing due deletes nothing, and a failed batch rolls back whole and is retried by the next run.

`PURGE_STEPS` is the hook for what a workspace holds outside its rows (the files of its documents in S3;
their vectors are rows, gone with the cascade): each step gets the batch's transaction, while the rows still exist (to
read which objects to delete) and the workspace is locked, and must succeed when run again.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import partial
from typing import Final
from uuid import UUID

from oneai.attachments.storage import get_object_store
from oneai.billing.batches import DEFAULT_SAFETY_MARGIN, AfterCommit, run_in_batches
from oneai.config import get_settings
from oneai.db import workspace_admin as repo
from oneai.db.connection import Connection, Database
from oneai.knowledge.documents import workspace_prefix
from oneai.logging import logger
from oneai.quota.sweep import TimeLeft

PurgeStep = Callable[[Connection, UUID], None]


def delete_document_files(conn: Connection, workspace_id: UUID) -> None:
    """The files of the workspace's documents: every S3 object under `knowledge/<workspace_id>/` (by
    prefix, so a file whose row is already gone goes too). A failure (503) rolls the batch back."""
    del conn  # found by prefix, not through the rows
    if not get_settings().attachments_bucket:
        return  # no bucket configured: nothing can have been stored
    deleted = get_object_store().delete_prefix(workspace_prefix(workspace_id))
    logger.info("workspace document files deleted", extra={"workspace_id": str(workspace_id), "objects": deleted})


PURGE_STEPS: Final[tuple[PurgeStep, ...]] = (delete_document_files,)
DEFAULT_PURGE_BATCH: Final = 20


def _log_purged(workspace_id: UUID) -> None:
    logger.info("deleted workspace purged", extra={"workspace_id": str(workspace_id)})


def _purge_batch(conn: Connection, batch_size: int, steps: Sequence[PurgeStep]) -> tuple[int, list[AfterCommit]]:
    due = repo.lock_purgeable_workspaces(conn, batch_size)
    for workspace_id in due:
        for step in steps:
            step(conn, workspace_id)
    purged = repo.delete_workspaces(conn, due) if due else []
    return len(due), [partial(_log_purged, workspace_id) for workspace_id in purged]


def purge_deleted_workspaces(
    db: Database,
    *,
    batch_size: int = DEFAULT_PURGE_BATCH,
    steps: Sequence[PurgeStep] = PURGE_STEPS,
    time_left: TimeLeft | None = None,
    safety_margin: float = DEFAULT_SAFETY_MARGIN,
) -> int:
    """Purge every workspace deleted more than 30 days ago; returns how many this call purged."""
    return run_in_batches(
        db,
        partial(_purge_batch, steps=steps),
        batch_size=batch_size,
        time_left=time_left,
        safety_margin=safety_margin,
    )
