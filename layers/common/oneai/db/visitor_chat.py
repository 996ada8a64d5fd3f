"""Data layer of the widget's public chat (migration 20261129010000_visitor_chat.sql): a visitor's turn
prepared, finished and refunded, each ONE call as the service, and the chatbot's knowledge search as the
service (the statement names the chatbot: only its ready documents are read).

A refusal of the prepare or finish call (SQLSTATE OAI01) rolls its transaction back and is raised as
`VisitorTurnRefused`, whose `detail` says why (`oneai.widget.chat` maps it to the API error).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import date
from typing import Any
from uuid import UUID

import psycopg
from psycopg.types.json import Jsonb

from oneai.db.connection import Connection

PREPARE = "select oneai_private.visitor_prepare_turn(%s) as result"
FINISH = "select oneai_private.visitor_finish_turn(%s) as result"
REFUND = "select oneai_private.visitor_refund_turn(%s, %s, %s, %s) as result"


class VisitorTurnRefused(Exception):
    def __init__(self, detail: dict[str, Any]) -> None:
        super().__init__(str(detail.get("code")))
        self.detail = detail


def _call(conn: Connection, statement: str, argument: dict[str, Any]) -> dict[str, Any]:
    try:
        row = conn.execute(statement, (Jsonb(argument),)).fetchone()
    except psycopg.Error as exc:
        if exc.sqlstate == "OAI01" and exc.diag.message_detail:
            raise VisitorTurnRefused(json.loads(exc.diag.message_detail)) from None
        raise
    if row is None:  # pragma: no cover - a function call answers one row
        raise RuntimeError("the visitor turn call answered no row")
    return dict(row["result"])


def prepare(conn: Connection, turn: dict[str, Any]) -> dict[str, Any]:
    return _call(conn, PREPARE, turn)


def finish(conn: Connection, reply: dict[str, Any]) -> dict[str, Any]:
    return _call(conn, FINISH, reply)


def refund(conn: Connection, chatbot_id: UUID, day: date, *, unit: bool, reservation_id: UUID | None) -> None:
    conn.execute(REFUND, (chatbot_id, day, unit, reservation_id))


def read(conn: Connection, statements: Sequence[tuple[str, Mapping[str, Any]]]) -> list[dict[str, Any]]:
    """The statements in order (settings first), the last one's rows (the knowledge search's batch)."""
    rows: list[dict[str, Any]] = []
    for query, params in statements:
        cursor = conn.execute(query, dict(params))
        rows = [dict(row) for row in cursor.fetchall()] if cursor.description is not None else []
    return rows
