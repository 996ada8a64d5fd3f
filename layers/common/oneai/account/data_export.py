"""`GET /user/export`: everything the product holds about the caller, as one JSON download, read in the
caller's transaction (under Row Level Security, as that user).

Sections: `profile` (with preferences), `conversations` (each with every message revision, current
branch or not: `is_latest` marks the current ones), `share_links` (with their snapshots), `quotas`,
`usage` (the usage records, money as decimal strings), `subscriptions` (with what Razorpay told us and
the notes we sent), `subscription_history`, and `invoices`: empty, because invoices are not stored here
(Razorpay holds them; `GET /subscription/invoices` lists them), `api_keys` (name, prefix and times,
never the key or its hash), `sent_notifications` (which emails were sent: kind, occasion, status,
times), `workspaces` (those the caller is a member of; `owned` when the caller is the owner whose tier
sets their limits) and `workspace_memberships` (the caller's own: workspace, role, since when). Times are
ISO 8601 UTC with `Z`.
"""

from __future__ import annotations

import json
from collections import defaultdict
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, Final
from uuid import UUID

from oneai.conversations.models import Export
from oneai.db import account_data as repo
from oneai.db.connection import Connection
from oneai.money import plain_decimal
from oneai.timestamps import iso_z

EXPORT_FORMAT_VERSION: Final = 1


def _plain(value: Any) -> Any:
    """A row value as JSON: times in UTC with `Z`, money and other decimals as strings, ids as strings."""
    if isinstance(value, datetime):
        return iso_z(value)
    if isinstance(value, Decimal):
        return plain_decimal(value)
    if isinstance(value, UUID):
        return str(value)
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def account_export(conn: Connection, *, now: datetime | None = None) -> dict[str, Any]:
    """The caller's data as one JSON-ready document (user transaction)."""
    sections = {name: [_plain(row) for row in rows] for name, rows in repo.export_rows(conn).items()}
    messages_of: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for message in sections["messages"]:
        messages_of[message["conversation_id"]].append(message)
    conversations = [
        {**conversation, "messages": messages_of.get(conversation["id"], [])}
        for conversation in sections["conversations"]
    ]
    profiles = sections["profile"]
    return {
        "format_version": EXPORT_FORMAT_VERSION,
        "exported_at": _plain(now or datetime.now(UTC)),
        "profile": profiles[0] if profiles else None,
        "conversations": conversations,
        "attachments": sections["attachments"],
        "share_links": sections["share_links"],
        "quotas": sections["quotas"],
        "usage": sections["usage"],
        "subscriptions": sections["subscriptions"],
        "subscription_history": sections["subscription_history"],
        "invoices": [],
        "api_keys": sections["api_keys"],
        "sent_notifications": sections["sent_notifications"],
        "workspaces": sections["workspaces"],
        "workspace_memberships": sections["workspace_memberships"],
    }


def account_export_file(conn: Connection, user_id: UUID) -> Export:
    """The download: `oneai-export-<user id>-<UTC date>.json`."""
    now = datetime.now(UTC)
    document = account_export(conn, now=now)
    body = json.dumps(document, ensure_ascii=False, indent=2).encode("utf-8")
    return Export(filename=f"oneai-export-{user_id}-{now:%Y%m%d}.json", media_type="application/json", body=body)
