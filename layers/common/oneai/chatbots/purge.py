"""Purging deleted chatbots: run by the quota-reset sweep beside the workspaces' purge
(`oneai.admin.workspace_purge`), so a chatbot deleted with `DELETE /chatbots/{id}` is purged at the sweep's
next run.

Each batch is one short service transaction: it locks up to `batch_size` deleted chatbots (`FOR UPDATE SKIP
LOCKED`: two sweeps take disjoint batches) and, for each,
- its conversations, unless it was deleted with `keep_conversations` (their messages cascade; the S3
  objects of their attachments are deleted after the commit). Kept ones stay their users', filed under the
  workspace with no chatbot (the foreign key clears `chatbot_id`);
- its documents, unless deleted with `keep_documents`: through the documents' own deletion (the rows, their
  chunks by cascade, then their files in S3 after the commit), and only the documents no other chatbot
  keeps: a document linked to a live chatbot, or to another deleted chatbot that keeps its documents, stays;
- then the row (its links cascade; usage records keep their numbers and lose the chatbot id).
A failed batch rolls back whole and is retried by the next run; a file whose delete fails after the commit
is left for the workspace's purge (it deletes by prefix), and the log says so.
"""

from __future__ import annotations

from functools import partial
from typing import Final

from oneai.attachments import storage
from oneai.billing.batches import DEFAULT_SAFETY_MARGIN, AfterCommit, run_in_batches
from oneai.db import chatbots as repo
from oneai.db import documents as documents_repo
from oneai.db.connection import Connection, Database
from oneai.logging import logger
from oneai.quota.sweep import TimeLeft

DEFAULT_PURGE_BATCH: Final = 20


def _after_commit(chatbot: repo.PurgeableChatbot, attachment_keys: list[str], document_keys: list[str]) -> None:
    storage.delete_after_commit(attachment_keys, kind="attachments")
    storage.delete_after_commit(document_keys, kind="document files")
    logger.info(
        "deleted chatbot purged",
        extra={
            "chatbot_id": str(chatbot.id),
            "workspace_id": str(chatbot.workspace_id),
            "documents": len(document_keys),
        },
    )


def _purge_batch(conn: Connection, batch_size: int) -> tuple[int, list[AfterCommit]]:
    due = repo.lock_purgeable(conn, batch_size)
    actions: list[AfterCommit] = []
    for chatbot in due:
        attachment_keys = repo.delete_conversations(conn, chatbot.id) if chatbot.purge_conversations else []
        document_keys: list[str] = []
        if chatbot.purge_documents:
            ids = repo.documents_to_purge(conn, chatbot.id)
            if ids:
                document_keys = documents_repo.delete_documents(conn, chatbot.workspace_id, ids)
        if repo.delete_chatbot(conn, chatbot.id):
            actions.append(partial(_after_commit, chatbot, attachment_keys, document_keys))
    return len(due), actions


def purge_deleted_chatbots(
    db: Database,
    *,
    batch_size: int = DEFAULT_PURGE_BATCH,
    time_left: TimeLeft | None = None,
    safety_margin: float = DEFAULT_SAFETY_MARGIN,
) -> int:
    """Purge every deleted chatbot; returns how many this call purged."""
    return run_in_batches(
        db, _purge_batch, batch_size=batch_size, time_left=time_left, safety_margin=safety_margin
    )
