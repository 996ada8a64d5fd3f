"""The analytics over HTTP through the local server (issue 28 item 2): a chatbot's visitor conversations
(seeded with SQL, as the widget's chat writes them), the analytics job run once, then
`GET /workspaces/{id}/analytics` as a viewer answers the figures computed directly from the rows, as JSON and
as the CSV report, and the owner the top questions too (visitors' words are for editors and up); a stranger is
404, another workspace's chatbot 404, a bad range 422."""

from __future__ import annotations

import csv
import io
from datetime import UTC, date, datetime, timedelta
from typing import Any

import httpx
import pytest

from oneai.analytics import rollup
from oneai.config import get_settings
from oneai.db.connection import Database
from oneai.knowledge.offline_embedding import offline_embeddings
from tests.conftest import create_user
from tests.e2e.test_documents_http import add_member, personal_workspace
from tests.e2e.test_inbox_http import make_chatbot
from tests.integration.test_analytics import expected_from_rows, seed_conversation, within_bound

pytestmark = pytest.mark.e2e

FIRST = date(2026, 9, 14)


def at(day: date, hour: int, minute: int = 0) -> datetime:
    return datetime(day.year, day.month, day.day, hour, minute, tzinfo=UTC)


def csv_sections(text: str) -> list[list[list[str]]]:
    """The report's sections: each a header row and its rows, separated by an empty row."""
    sections: list[list[list[str]]] = [[]]
    for row in csv.reader(io.StringIO(text)):
        if row:
            sections[-1].append(row)
        elif sections[-1]:
            sections.append([])
    return [s for s in sections if s]


def test_the_analytics_of_a_seeded_period_as_json_and_csv(
    client: httpx.Client, database_url: str, db: Database
) -> None:
    owner, viewer, stranger = (create_user(database_url) for _ in range(3))
    workspace = personal_workspace(database_url, owner)
    add_member(database_url, workspace, viewer, "viewer")
    chatbot = make_chatbot(client, owner, workspace)
    conversations: list[tuple[int, int, list[tuple[str, str, float, int | None, int | None]], int | None]] = [
        (0, 9, [("user", "How do I reset my password?", 0, None, None), ("assistant", "Use the link.", 3, 420, 1800)], 5),
        (0, 14, [("user", "How can I reset my password", 0, None, None), ("assistant", "Like this.", 2, 610, 2400),
                 ("user", "Thanks", 60, None, None)], 4),
        (1, 10, [("user", "Do you ship to Canada?", 0, None, None), ("assistant", "Yes.", 1, 380, 900)], None),
        (2, 23, [("user", "Can I get a refund for my order?", 0, None, None),
                 ("assistant", "Within 30 days.", 3700, 2900, 7100)], 2),
    ]  # fmt: skip
    for day, hour, messages, rating in conversations:
        seed_conversation(db, workspace, chatbot, at(FIRST + timedelta(days=day), hour), messages, rating=rating)
    rollup.run(db, get_settings(), embed=offline_embeddings)
    while rollup.add_questions(db, get_settings(), offline_embeddings):
        pass
    base = f"/workspaces/{workspace}/analytics"
    last = FIRST + timedelta(days=3)
    params = {"from": FIRST.isoformat(), "to": last.isoformat()}

    answered = client.get(base, params=params, headers=viewer.headers)
    assert answered.status_code == 200, answered.text
    body: dict[str, Any] = answered.json()
    expected = expected_from_rows(db, workspace, FIRST, last)
    assert body["messages_by_day"] == [
        {"date": d["date"].isoformat(), "messages": d["messages"]} for d in expected["messages_by_day"]
    ]
    assert [d["messages"] for d in body["messages_by_day"]] == [5, 2, 1, 1]  # the last reply after midnight
    assert (body["from"], body["to"], body["messages"], body["conversations"]) == (
        FIRST.isoformat(),
        last.isoformat(),
        9,
        4,
    )
    assert body["avg_messages_per_conversation"] == expected["avg"] == 2.25
    assert body["satisfaction"] == {
        "average": expected["average"], "rated": 3, "by_score": {"1": 0, "2": 1, "3": 0, "4": 1, "5": 1},
    }  # fmt: skip
    times = body["response_time"]
    assert times["replies"] == 4
    for key, exact in (("ttft_p50_ms", 420), ("ttft_p95_ms", 2900), ("p50_ms", 1800), ("p95_ms", 7100)):
        assert within_bound(times[key], exact), (key, times[key])
    # the questions are visitors' words: not the viewer's to read (as the inbox), the owner's
    assert body["top_questions"] is None
    owners = client.get(base, params=params, headers=owner.headers).json()
    assert owners["top_questions"] == [
        {"question": "How do I reset my password?", "count": 2},
        {"question": "Can I get a refund for my order?", "count": 1},
        {"question": "Do you ship to Canada?", "count": 1},
    ]
    assert {k: v for k, v in owners.items() if k != "top_questions"} == {
        k: v for k, v in body.items() if k != "top_questions"
    }
    [mine] = body["by_chatbot"]
    assert (mine["chatbot_id"], mine["name"], mine["messages"], mine["conversations"]) == (
        chatbot,
        "Shop help",
        9,
        4,
    )
    assert body["computed_at"].endswith("Z")
    # the chatbot's filter, and the workspace's stats from the same rollups (this period is not the last 30 days)
    alone = client.get(base, params={**params, "chatbot_id": chatbot}, headers=viewer.headers).json()
    assert alone["messages"] == 9 and alone["chatbot_id"] == chatbot

    # the CSV report: the summary, the days, the chatbots, the top questions
    report = client.get(base, params=params, headers={**owner.headers, "accept": "text/csv"})
    assert report.status_code == 200, report.text
    assert report.headers["content-type"] == "text/csv; charset=utf-8"
    assert report.headers["content-disposition"] == (
        f'attachment; filename="analytics-{workspace}-{FIRST.isoformat()}-{last.isoformat()}.csv"'
    )
    summary, days, chatbots, questions = csv_sections(report.text)
    figures = dict(summary[1:])
    assert summary[0] == ["metric", "value"]
    assert (figures["messages"], figures["conversations"], figures["avg_messages_per_conversation"]) == (
        "9",
        "4",
        "2.25",
    )
    assert (figures["score_5"], figures["rated"], figures["ttft_p50_ms"]) == ("1", "3", str(times["ttft_p50_ms"]))
    assert days == [["date", "messages"], *([d["date"], str(d["messages"])] for d in body["messages_by_day"])]
    assert chatbots[0][:4] == ["chatbot_id", "name", "messages", "conversations"]
    assert chatbots[1][:4] == [chatbot, "Shop help", "9", "4"]
    assert questions == [
        ["question", "count"],
        ["How do I reset my password?", "2"],
        ["Can I get a refund for my order?", "1"],
        ["Do you ship to Canada?", "1"],
    ]
    viewers_report = client.get(base, params=params, headers={**viewer.headers, "accept": "text/csv"})
    assert csv_sections(viewers_report.text) == [summary, days, chatbots]  # no questions section

    # a stranger: 404, as JSON or CSV; another workspace's chatbot: 404
    for accept in ("application/json", "text/csv"):
        refused = client.get(base, params=params, headers={**stranger.headers, "accept": accept})
        assert refused.status_code == 404 and refused.json()["error"]["code"] == "NOT_FOUND", refused.text
    elsewhere = make_chatbot(client, stranger, personal_workspace(database_url, stranger))
    other = client.get(base, params={**params, "chatbot_id": elsewhere}, headers=owner.headers)
    assert other.status_code == 404, other.text


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"from": "2026-09-14", "to": "2026-09-13"}, "to"),
        ({"from": "2025-09-13", "to": "2026-09-14"}, "to"),
        ({"from": "14/09/2026"}, "from"),
        ({"to": "2026-09-14T10:00:00Z"}, "to"),
        ({"chatbot_id": "nope"}, "chatbot_id"),
    ],
    ids=["to-before-from", "367-days", "not-iso", "a-time", "bad-chatbot-id"],
)
def test_a_bad_range_is_422(client: httpx.Client, database_url: str, params: dict[str, str], field: str) -> None:
    owner = create_user(database_url)
    workspace = personal_workspace(database_url, owner)
    answered = client.get(f"/workspaces/{workspace}/analytics", params=params, headers=owner.headers)
    assert answered.status_code == 422, answered.text
    error = answered.json()["error"]
    assert error["code"] == "VALIDATION_ERROR"
    assert field in {e["field"] for e in error["details"]["errors"]}, error


def test_the_default_range_is_the_last_30_days_with_zeros(client: httpx.Client, database_url: str) -> None:
    owner = create_user(database_url)
    workspace = personal_workspace(database_url, owner)
    answered = client.get(f"/workspaces/{workspace}/analytics", headers=owner.headers)
    assert answered.status_code == 200, answered.text
    body = answered.json()
    today = datetime.now(UTC).date()
    assert (body["from"], body["to"]) == ((today - timedelta(days=29)).isoformat(), today.isoformat())
    assert len(body["messages_by_day"]) == 30 and body["messages"] == body["conversations"] == 0
    assert body["avg_messages_per_conversation"] is None and body["response_time"]["p50_ms"] is None
    assert body["satisfaction"] == {"average": None, "rated": 0, "by_score": {s: 0 for s in "12345"}}
    assert body["top_questions"] == body["by_chatbot"] == [] and body["computed_at"] is None
