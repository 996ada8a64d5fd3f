"""The inbox in a real PostgreSQL (issue 28 item 1), through the service as the routes call it: who may
read and triage a chatbot's visitor conversations (the workspace's editors and above; a viewer is 403, a
non-member 404, and the search function gives a non-member nothing), the list's filters, full-text search
and cursor, the triage, the bulk delete that leaves other workspaces' conversations alone, the stats, and
the export's three formats, small (the body) and large (in parts to the object store)."""

from __future__ import annotations

import csv
import io
import json
import uuid
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from pydantic import ValidationError as PydanticValidationError

from oneai.chatbots.models import StatsQuery
from oneai.db.connection import Database
from oneai.errors import ForbiddenError, NotFoundError, ValidationError
from oneai.inbox import service
from oneai.inbox.models import InboxQuery, InboxUpdate
from tests.conftest import AppUser
from tests.inbox_support import add_chatbot, seed_visitor_conversation
from tests.integration.test_workspaces_rls import team

DAY = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)


class PartsStore:
    """An object store that keeps the parts it is given (a fake, no network): what was uploaded, in order."""

    def __init__(self) -> None:
        self.parts: list[bytes] = []
        self.finished: list[str] = []
        self.aborted: list[str] = []

    def start_upload(self, key: str, *, media_type: str, attached: bool) -> str:
        assert not attached
        return "upload-1"

    def upload_part(self, key: str, upload_id: str, number: int, body: bytes) -> dict[str, Any]:
        assert number == len(self.parts) + 1
        self.parts.append(body)
        return {"PartNumber": number, "ETag": f"etag-{number}"}

    def finish_upload(self, key: str, upload_id: str, parts: list[dict[str, Any]]) -> None:
        assert [p["PartNumber"] for p in parts] == list(range(1, len(self.parts) + 1))
        self.finished.append(key)

    def abort_upload(self, key: str, upload_id: str) -> None:
        self.aborted.append(key)

    def presigned_get(
        self, key: str, *, media_type: str, filename: str, expires_in: int, download: bool = False
    ) -> str:
        return f"https://bucket.example/{key}?expires={expires_in}&download={download}"


def q(**fields: Any) -> InboxQuery:
    return InboxQuery.model_validate(fields)


@pytest.fixture
def inbox(db: Database, database_url: str, make_user: Callable[..., AppUser]) -> dict[str, Any]:
    owner, editor, viewer, stranger = make_user(), make_user(), make_user(), make_user()
    workspace = team(db, owner, {editor.id: "editor", viewer.id: "viewer"})
    chatbot = add_chatbot(database_url, workspace)
    refund = seed_visitor_conversation(
        database_url, chatbot, workspace,
        [("user", "Can I get a refund for my order?"), ("assistant", "Yes, refunds are possible within 30 days.")],
        started_at=DAY, rating=5, sources=[{"chunk_id": "c1", "document_id": "d1", "filename": "refunds.txt",
                                            "page": 1, "chunk_index": 0, "score": 0.8}],
    )  # fmt: skip
    shipping = seed_visitor_conversation(
        database_url, chatbot, workspace,
        [("user", "Where is my parcel?"), ("assistant", "Shipping takes three days."), ("user", "=1+1 thanks")],
        started_at=DAY + timedelta(days=1), status="resolved", rating=2,
    )  # fmt: skip
    hello = seed_visitor_conversation(
        database_url, chatbot, workspace, [("user", "hello")], started_at=DAY + timedelta(days=2)
    )
    return {
        "owner": owner, "editor": editor, "viewer": viewer, "stranger": stranger, "workspace": workspace,
        "chatbot": chatbot, "refund": refund, "shipping": shipping, "hello": hello,
    }  # fmt: skip


def test_editors_list_viewers_are_refused_and_strangers_find_nothing(db: Database, inbox: dict[str, Any]) -> None:
    for member in (inbox["owner"], inbox["editor"]):
        with db.user_transaction(member.principal) as conn:
            page = service.list_conversations(conn, inbox["chatbot"], q())
        assert [i.id for i in page.items] == [inbox["hello"], inbox["shipping"], inbox["refund"]]
        refund = page.items[2]
        assert refund.messages == 2 and refund.rating == 5 and refund.status == "open"
        assert refund.visitor.page_url == "https://shop.example/help" and refund.visitor.locale == "en-GB"
        assert "source_hash" not in refund.visitor.model_dump()
    with pytest.raises(ForbiddenError), db.user_transaction(inbox["viewer"].principal) as conn:
        service.list_conversations(conn, inbox["chatbot"], q())
    with pytest.raises(ForbiddenError), db.user_transaction(inbox["viewer"].principal) as conn:
        service.get_conversation(conn, inbox["refund"])
    for call in (
        lambda conn: service.list_conversations(conn, inbox["chatbot"], q(q="refund")),
        lambda conn: service.get_conversation(conn, inbox["refund"]),
        lambda conn: service.update_conversation(conn, inbox["refund"], InboxUpdate(status="archived")),
        lambda conn: service.delete_conversation(conn, inbox["refund"]),
        lambda conn: service.bulk_delete(conn, inbox["chatbot"], [inbox["refund"]]),
        lambda conn: service.export_conversations(conn, inbox["chatbot"], "json", None, PartsStore),
    ):
        with pytest.raises(NotFoundError), db.user_transaction(inbox["stranger"].principal) as conn:
            call(conn)
    # the search function itself, called by a non-member or a viewer, answers nothing
    for outsider in (inbox["stranger"], inbox["viewer"]):
        with db.user_transaction(outsider.principal) as conn:
            rows = conn.execute(
                "select * from public.inbox_conversations(%s, null, null, null, null, 'refund', null, null, 10)",
                (inbox["chatbot"],),
            ).fetchall()
        assert rows == []


def test_search_finds_a_word_of_the_messages_and_says_where(db: Database, inbox: dict[str, Any]) -> None:
    with db.user_transaction(inbox["editor"].principal) as conn:
        found = service.list_conversations(conn, inbox["chatbot"], q(q="refunds"))
        parcel = service.list_conversations(conn, inbox["chatbot"], q(q="parcel"))
        nothing = service.list_conversations(conn, inbox["chatbot"], q(q="zanzibar"))
        detail = service.get_conversation(conn, inbox["refund"])
    assert [i.id for i in found.items] == [inbox["refund"]]
    match = found.items[0].match
    assert match is not None and match.message_id == detail.messages[1].id  # "refunds" is in the reply
    assert "refunds are possible" in match.snippet
    assert [i.id for i in parcel.items] == [inbox["shipping"]]
    assert parcel.items[0].match is not None and "parcel" in parcel.items[0].match.snippet
    assert nothing.items == []


def test_filters_and_the_cursor(db: Database, inbox: dict[str, Any]) -> None:
    with db.user_transaction(inbox["editor"].principal) as conn:
        resolved = service.list_conversations(conn, inbox["chatbot"], q(status="resolved"))
        five = service.list_conversations(conn, inbox["chatbot"], q(rating=5))
        ranged = service.list_conversations(
            conn, inbox["chatbot"], q(**{"from": "2026-11-21", "to": "2026-11-22T12:00:00Z"})
        )
        first = service.list_conversations(conn, inbox["chatbot"], q(limit=2))
        assert first.next_cursor is not None
        second = service.list_conversations(conn, inbox["chatbot"], q(limit=2, cursor=first.next_cursor))
    assert [i.id for i in resolved.items] == [inbox["shipping"]]
    assert [i.id for i in five.items] == [inbox["refund"]]
    assert [i.id for i in ranged.items] == [inbox["hello"], inbox["shipping"]]
    assert [i.id for i in first.items + second.items] == [inbox["hello"], inbox["shipping"], inbox["refund"]]
    assert second.next_cursor is None
    with pytest.raises(PydanticValidationError):
        q(rating=6)
    with pytest.raises(PydanticValidationError):
        q(**{"from": "2026-11-22", "to": "2026-11-21"})


def test_triage_is_validated_and_kept(db: Database, inbox: dict[str, Any]) -> None:
    with db.user_transaction(inbox["editor"].principal) as conn:
        changed = service.update_conversation(
            conn,
            inbox["refund"],
            InboxUpdate(notes="Refunded by hand", tags=["billing", "vip", "billing"], status="resolved"),
        )
    assert (changed.notes, changed.tags, changed.status) == ("Refunded by hand", ["billing", "vip"], "resolved")
    assert changed.rating is not None and changed.rating.score == 5 and changed.rating.comment == "thanks"
    assert changed.messages[1].sources[0].filename == "refunds.txt"
    with db.user_transaction(inbox["editor"].principal) as conn:
        tagged = service.list_conversations(conn, inbox["chatbot"], q(status="resolved"))
    assert {i.id for i in tagged.items} == {inbox["refund"], inbox["shipping"]}
    for bad in (
        {"tags": [f"t{i}" for i in range(21)]},
        {"tags": ["x" * 51]},
        {"notes": "n" * 5001},
        {"status": "closed"},
        {"status": None},
        {"tags": None},
        {"rating": 5},
    ):
        with pytest.raises(PydanticValidationError):
            InboxUpdate.model_validate(bad)


def test_bulk_delete_takes_only_this_chatbots_conversations(
    db: Database, database_url: str, inbox: dict[str, Any], make_user: Callable[..., AppUser]
) -> None:
    other_owner = make_user()
    other_workspace = team(db, other_owner)
    other_chatbot = add_chatbot(database_url, other_workspace)
    theirs = seed_visitor_conversation(database_url, other_chatbot, other_workspace, [("user", "refund please")])
    second_bot = add_chatbot(database_url, inbox["workspace"], "Sales")
    sibling = seed_visitor_conversation(database_url, second_bot, inbox["workspace"], [("user", "price?")])
    with db.user_transaction(inbox["editor"].principal) as conn:
        answer = service.bulk_delete(
            conn, inbox["chatbot"], [inbox["refund"], inbox["hello"], theirs, sibling, uuid.uuid4()]
        )
    assert answer.deleted == 2
    with db.service_transaction() as conn:
        left = {r["id"] for r in conn.execute("select id from public.visitor_conversations")}
        gone_messages = conn.execute(
            "select count(*) as n from public.visitor_messages where conversation_id = %s", (inbox["refund"],)
        ).fetchone()
    assert {theirs, sibling, inbox["shipping"]} <= left and not {inbox["refund"], inbox["hello"]} & left
    assert gone_messages == {"n": 0}
    with db.user_transaction(inbox["editor"].principal) as conn:
        service.delete_conversation(conn, inbox["shipping"])
    with pytest.raises(NotFoundError), db.user_transaction(inbox["editor"].principal) as conn:
        service.get_conversation(conn, inbox["shipping"])


def test_stats_per_day(db: Database, inbox: dict[str, Any]) -> None:
    query = StatsQuery.model_validate({"from": "2026-11-19", "to": "2026-11-22"})
    with db.user_transaction(inbox["editor"].principal) as conn:
        stats = service.stats(conn, inbox["chatbot"], query)
    assert (stats.total, stats.avg_messages, stats.avg_rating) == (3, 2.0, 3.5)
    by_day = [(d.date, d.conversations, d.messages, d.avg_rating) for d in stats.by_day]
    assert by_day == [
        (date(2026, 11, 19), 0, 0, None),
        (date(2026, 11, 20), 1, 2, 5.0),
        (date(2026, 11, 21), 1, 3, 2.0),
        (date(2026, 11, 22), 1, 1, None),
    ]


def test_a_small_export_is_the_body_in_each_format(db: Database, inbox: dict[str, Any]) -> None:
    store = PartsStore()
    with db.user_transaction(inbox["editor"].principal) as conn:
        as_json = service.export_conversations(conn, inbox["chatbot"], "json", None, lambda: store)
        as_csv = service.export_conversations(conn, inbox["chatbot"], "csv", [inbox["shipping"]], lambda: store)
        as_md = service.export_conversations(conn, inbox["chatbot"], "md", [inbox["refund"]], lambda: store)
    assert store.parts == []  # nothing went to the store
    assert as_json.body is not None and as_csv.body is not None and as_md.body is not None
    document = json.loads(as_json.body)
    assert list(document) == ["items"]
    assert [c["id"] for c in document["items"]] == [str(inbox[k]) for k in ("hello", "shipping", "refund")]
    refund = document["items"][2]
    assert refund["rating"]["score"] == 5 and refund["visitor"]["user_agent"] == "Mozilla/5.0 (test)"
    assert refund["messages"][1]["sources"][0]["filename"] == "refunds.txt"
    assert refund["messages"][0]["created_at"].endswith("Z") and refund["started_at"].endswith("Z")
    rows = list(csv.DictReader(io.StringIO(as_csv.body.decode())))
    assert [r["content"] for r in rows] == ["Where is my parcel?", "Shipping takes three days.", "'=1+1 thanks"]
    assert {r["conversation_id"] for r in rows} == {str(inbox["shipping"])}
    assert as_csv.media_type.startswith("text/csv") and as_csv.filename.endswith(".csv")
    markdown = as_md.body.decode()
    assert "Can I get a refund for my order?" in markdown and "Rating: 5/5" in markdown
    assert "Where is my parcel?" not in markdown


def test_a_large_export_goes_to_the_store_in_parts(db: Database, inbox: dict[str, Any]) -> None:
    store = PartsStore()
    with db.user_transaction(inbox["editor"].principal) as conn:
        rows = list(service.repo.export_rows(conn, inbox["chatbot"], None)) * 400
        sink = service.ExportSink(store=lambda: store, key="exports/k", media_type="application/json",
                                  part_bytes=64 * 1024, direct_bytes=32 * 1024)  # fmt: skip
        body = service.write_export(rows, "json", sink, title="t")
    assert body is None and store.finished == ["exports/k"]
    assert len(store.parts) > 3 and all(len(p) >= 64 * 1024 for p in store.parts[:-1])
    document = json.loads(b"".join(store.parts))
    assert len(document["items"]) == 1200


def test_an_export_that_fails_midway_aborts_its_upload(db: Database, inbox: dict[str, Any]) -> None:
    store = PartsStore()

    def rows() -> Any:
        with db.user_transaction(inbox["editor"].principal) as conn:
            one = next(iter(service.repo.export_rows(conn, inbox["chatbot"], None)))
        for _ in range(100):
            yield one
        raise RuntimeError("the connection dropped")

    sink = service.ExportSink(
        store=lambda: store, key="exports/k", media_type="text/csv", part_bytes=4096, direct_bytes=1024
    )
    with pytest.raises(RuntimeError):
        service.write_export(rows(), "csv", sink, title="t")
    assert store.aborted == ["exports/k"] and store.finished == []


def test_an_export_of_too_many_ids_or_not_uuids_is_refused() -> None:
    from chatbots.inbox_routes import _export_ids

    assert _export_ids(None) is None
    ids = [str(uuid.uuid4()) for _ in range(3)]
    assert _export_ids([f"{ids[0]},{ids[1]}", ids[2]]) == [uuid.UUID(i) for i in ids]
    with pytest.raises(ValidationError):
        _export_ids(["nope"])
    with pytest.raises(ValidationError):
        _export_ids([",".join(str(uuid.uuid4()) for _ in range(1001))])
