"""`GET /workspaces/{id}/analytics`: the workspace's (or one chatbot's) figures over a range of UTC days, added
up from the daily rollups the analytics job keeps (`oneai.analytics.rollup`), as the caller (a member of the
workspace, viewer and up; everyone else 404, and the rollups' policies show them nothing either). A range
reads one row per chatbot and day, whatever the number of messages. CSV with `Accept: text/csv`.
"""

from __future__ import annotations

import csv
import io
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

from oneai.analytics.models import (
    TOP_QUESTIONS,
    Analytics,
    AnalyticsQuery,
    ChatbotAnalytics,
    DayMessages,
    ResponseTime,
    Satisfaction,
    TopQuestion,
)
from oneai.analytics.percentiles import Histogram
from oneai.db import chatbot_analytics as repo
from oneai.db.connection import Connection
from oneai.errors import NotFoundError
from oneai.workspaces.models import at_least
from oneai.workspaces.service import require_role

SCORES = ("1", "2", "3", "4", "5")


@dataclass(slots=True)
class _Totals:
    """One chatbot's (or the whole range's) sums."""

    messages: int = 0
    conversations: int = 0
    conversation_messages: int = 0
    rated: int = 0
    by_score: list[int] = field(default_factory=lambda: [0] * 5)
    ttft: Histogram = field(default_factory=Histogram)
    total: Histogram = field(default_factory=Histogram)

    def add(self, row: repo.DailyRow) -> None:
        self.messages += row.messages
        self.conversations += row.conversations
        self.conversation_messages += row.conversation_messages
        self.rated += row.rated
        self.by_score = [a + b for a, b in zip(self.by_score, row.by_score, strict=True)]

    def add_histogram(self, row: repo.HistogramRow) -> None:
        (self.ttft if row.kind == "ttft" else self.total).add(row.buckets, row.counts)

    @property
    def avg_messages(self) -> float | None:
        return round(self.conversation_messages / self.conversations, 2) if self.conversations else None

    def response_time(self) -> ResponseTime:
        return ResponseTime(
            replies=self.ttft.total,
            ttft_p50_ms=self.ttft.percentile(0.5),
            ttft_p95_ms=self.ttft.percentile(0.95),
            p50_ms=self.total.percentile(0.5),
            p95_ms=self.total.percentile(0.95),
        )

    def satisfaction(self) -> Satisfaction:
        scored = sum(score * n for score, n in enumerate(self.by_score, start=1))
        return Satisfaction(
            average=round(scored / self.rated, 2) if self.rated else None,
            rated=self.rated,
            by_score=dict(zip(SCORES, self.by_score, strict=True)),
        )


def analytics(conn: Connection, workspace_id: UUID, query: AnalyticsQuery) -> Analytics:
    member = require_role(conn, workspace_id, "viewer")
    if query.chatbot_id is not None and not repo.chatbot_in_workspace(conn, query.chatbot_id, workspace_id):
        raise NotFoundError("Chatbot not found")
    first, last = query.first_day, query.last_day
    rows = repo.daily_rows(conn, workspace_id, first, last, query.chatbot_id)
    overall = _Totals()
    per_chatbot: dict[UUID, _Totals] = defaultdict(_Totals)
    per_day: dict[object, int] = defaultdict(int)
    computed_at: datetime | None = None
    for row in rows:
        overall.add(row)
        per_chatbot[row.chatbot_id].add(row)
        per_day[row.day] += row.messages
        computed_at = row.computed_at if computed_at is None else max(computed_at, row.computed_at)
    for histogram in repo.histograms(conn, workspace_id, first, last, query.chatbot_id):
        overall.add_histogram(histogram)
        per_chatbot[histogram.chatbot_id].add_histogram(histogram)
    names = repo.chatbot_names(conn, workspace_id, list(per_chatbot)) if per_chatbot else {}
    # Visitors' words are the editors' (as the inbox): a viewer gets the figures, not the questions.
    questions = (
        repo.top_questions(conn, workspace_id, first, last, query.chatbot_id, limit=TOP_QUESTIONS)
        if at_least(member.role, "editor")
        else None
    )
    days = [first + timedelta(days=n) for n in range((last - first).days + 1)]
    by_chatbot = [
        ChatbotAnalytics(
            chatbot_id=chatbot_id,
            name=names.get(chatbot_id, ""),
            messages=totals.messages,
            conversations=totals.conversations,
            avg_messages_per_conversation=totals.avg_messages,
            response_time=totals.response_time(),
            satisfaction=totals.satisfaction(),
        )
        for chatbot_id, totals in sorted(
            per_chatbot.items(), key=lambda item: (-item[1].messages, names.get(item[0], ""), str(item[0]))
        )
    ]
    return Analytics(
        from_=first,
        to=last,
        chatbot_id=query.chatbot_id,
        messages_by_day=[DayMessages(date=day, messages=per_day.get(day, 0)) for day in days],
        messages=overall.messages,
        conversations=overall.conversations,
        avg_messages_per_conversation=overall.avg_messages,
        response_time=overall.response_time(),
        satisfaction=overall.satisfaction(),
        top_questions=None
        if questions is None
        else [TopQuestion(question=q.question, count=q.count) for q in questions],
        by_chatbot=by_chatbot,
        computed_at=computed_at,
    )


def _cell(value: object) -> object:
    """A text a spreadsheet would run as a formula (`=`, `+`, `-`, `@`) gets a leading `'`."""
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@"):
        return f"'{value}"
    return "" if value is None else value


def _section(writer: Any, header: Iterable[str], rows: Iterable[Iterable[object]]) -> None:
    writer.writerow(list(header))
    for row in rows:
        writer.writerow([_cell(v) for v in row])
    writer.writerow([])


def analytics_csv(report: Analytics) -> str:
    """The report as CSV sections, each a header row and its rows, separated by an empty line: the summary
    (metric, value), messages per day, per chatbot, top questions."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    rt, sat = report.response_time, report.satisfaction
    summary: list[tuple[str, object]] = [
        ("from", report.from_.isoformat()),
        ("to", report.to.isoformat()),
        ("chatbot_id", str(report.chatbot_id) if report.chatbot_id else "all"),
        ("messages", report.messages),
        ("conversations", report.conversations),
        ("avg_messages_per_conversation", report.avg_messages_per_conversation),
        ("replies", rt.replies),
        ("ttft_p50_ms", rt.ttft_p50_ms),
        ("ttft_p95_ms", rt.ttft_p95_ms),
        ("p50_ms", rt.p50_ms),
        ("p95_ms", rt.p95_ms),
        ("satisfaction_average", sat.average),
        ("rated", sat.rated),
        *((f"score_{score}", n) for score, n in sat.by_score.items()),
    ]
    _section(writer, ("metric", "value"), summary)
    _section(writer, ("date", "messages"), ((d.date.isoformat(), d.messages) for d in report.messages_by_day))
    _section(
        writer,
        ("chatbot_id", "name", "messages", "conversations", "avg_messages_per_conversation", "ttft_p50_ms",
         "ttft_p95_ms", "p50_ms", "p95_ms", "satisfaction_average", "rated"),
        (
            (str(c.chatbot_id), c.name, c.messages, c.conversations, c.avg_messages_per_conversation,
             c.response_time.ttft_p50_ms, c.response_time.ttft_p95_ms, c.response_time.p50_ms,
             c.response_time.p95_ms, c.satisfaction.average, c.satisfaction.rated)
            for c in report.by_chatbot
        ),
    )  # fmt: skip
    if report.top_questions is not None:
        _section(writer, ("question", "count"), ((q.question, q.count) for q in report.top_questions))
    return buffer.getvalue()
