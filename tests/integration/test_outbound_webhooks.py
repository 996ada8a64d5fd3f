"""Outbound webhooks at the service level (issue 28 item 3), real PostgreSQL, real HTTP to a receiver on
loopback, moto's KMS: the endpoint is admins' and owners' (403 below, 404 to strangers; the sealed secret
unreadable by any user), its URL guarded at save time and at send time; deliveries are one per event and
endpoint whatever the repeats; a 410 disables the endpoint; a failing receiver is retried with a growing
backoff and given up after a day (a fake clock); a hanging receiver is cut at the timeout; a redirect is a
failed attempt and its target gets nothing."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from itertools import pairwise
from typing import Any
from uuid import UUID

import pytest

from oneai.config import get_settings, override_settings
from oneai.db.connection import Database
from oneai.errors import ForbiddenError, NotFoundError, ValidationError
from oneai.outbound_webhooks import service
from oneai.outbound_webhooks.delivery import GONE_REASON, Deliverer
from oneai.outbound_webhooks.events import WebhookEvent, payload
from oneai.outbound_webhooks.models import WebhookEndpointSave
from oneai.outbound_webhooks.queue import set_local_webhook_sink
from tests.aws_support import moto_kms_key
from tests.conftest import AppUser
from tests.integration.test_workspaces_rls import team
from tests.webhook_receiver import Answer, WebhookReceiver, verify_standard_webhook

pytestmark = pytest.mark.integration

ALIAS = "alias/oneai-test-webhooks"


@pytest.fixture(autouse=True)
def kms(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    with moto_kms_key(
        monkeypatch,
        ALIAS,
        allow_loopback_urls=True,
        webhook_timeout_seconds=1.0,
        webhook_retry_base_seconds=30.0,
    ):
        yield


@pytest.fixture
def queued() -> Iterator[list[tuple[dict[str, Any], float]]]:
    """The retry messages the deliverer sends (instead of a queue)."""
    messages: list[tuple[dict[str, Any], float]] = []
    set_local_webhook_sink(lambda message, delay: messages.append((message, delay)))
    yield messages
    set_local_webhook_sink(None)


@pytest.fixture
def people(make_user: Any, db: Database) -> dict[str, Any]:
    owner, admin, editor, viewer, stranger = (make_user() for _ in range(5))
    workspace = team(db, owner, {admin.id: "admin", editor.id: "editor", viewer.id: "viewer"})
    return {
        "owner": owner,
        "admin": admin,
        "editor": editor,
        "viewer": viewer,
        "stranger": stranger,
        "ws": workspace,
    }


def save(db: Database, user: AppUser, workspace_id: UUID, url: str, events: list[str] | None = None) -> Any:
    body = WebhookEndpointSave.model_validate({"url": url, "events": events or ["document.processed"]})
    with db.user_transaction(user.principal) as conn:
        return service.save_endpoint(conn, get_settings(), workspace_id, body)


def processed(workspace_id: UUID, event_id: str | None = None) -> WebhookEvent:
    data = {"workspace_id": str(workspace_id), "document_id": str(uuid.uuid4()), "filename": "a.md"}
    return WebhookEvent(
        event_id or str(uuid.uuid4()),
        workspace_id,
        "document.processed",
        payload("document.processed", datetime.now(UTC), data),
    )


def delivery_rows(db: Database, workspace_id: UUID) -> list[dict[str, Any]]:
    with db.service_transaction() as conn:
        return list(
            conn.execute(
                "select * from public.webhook_deliveries where workspace_id = %s order by created_at",
                (workspace_id,),
            ).fetchall()
        )


def attempt_rows(db: Database, delivery_id: UUID) -> list[dict[str, Any]]:
    with db.service_transaction() as conn:
        return list(
            conn.execute(
                "select * from public.webhook_attempts where delivery_id = %s order by number", (delivery_id,)
            ).fetchall()
        )


def test_the_endpoint_is_admins_the_secret_shown_once_and_unreadable(db: Database, people: dict[str, Any]) -> None:
    ws = people["ws"]
    with WebhookReceiver() as receiver:
        endpoint, created = save(db, people["admin"], ws, receiver.url)
        assert created and endpoint.secret is not None and endpoint.secret.startswith("whsec_")
        again, created_again = save(db, people["owner"], ws, receiver.url, ["credits.low", "document.failed"])
        assert not created_again and again.secret is None and again.events == ["credits.low", "document.failed"]
    with db.user_transaction(people["admin"].principal) as conn:
        shown = service.get_endpoint(conn, ws)
        assert "secret" not in shown.model_dump()
        with pytest.raises(Exception, match="permission denied"):
            conn.execute("select sealed_secret from public.webhook_endpoints")
    for role in ("editor", "viewer"):
        with db.user_transaction(people[role].principal) as conn, pytest.raises(ForbiddenError):
            service.get_endpoint(conn, ws)
        with db.user_transaction(people[role].principal) as conn:
            assert conn.execute("select id from public.webhook_endpoints").fetchall() == []
    with db.user_transaction(people["stranger"].principal) as conn, pytest.raises(NotFoundError):
        service.get_endpoint(conn, ws)
    with db.user_transaction(people["admin"].principal) as conn:
        rotated = service.rotate_secret(conn, ws)
    assert rotated.secret is not None and rotated.secret != endpoint.secret


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("http://10.0.0.7/hooks", "not a public address (private)"),
        ("https://169.254.169.254/latest", "link-local"),
        ("ftp://example.com/x", "https"),
    ],
)
def test_a_url_the_guard_refuses_is_a_422_on_url(
    db: Database, people: dict[str, Any], url: str, reason: str
) -> None:
    with pytest.raises(ValidationError) as refused:
        save(db, people["owner"], people["ws"], url)
    (error,) = refused.value.details["errors"]
    assert error["field"] == "url" and reason in error["message"]


def test_deliveries_are_one_per_event_and_endpoint_and_signed(
    db: Database, people: dict[str, Any], queued: list[Any]
) -> None:
    ws = people["ws"]
    with WebhookReceiver() as receiver:
        endpoint, _ = save(db, people["owner"], ws, receiver.url)
        deliverer = Deliverer(db, get_settings())
        event = processed(ws)
        first = deliverer.deliver_event(event)
        repeat = deliverer.deliver_event(event)  # SQS delivered the event twice
        assert len(first) == 1 and repeat == []
        (request,) = receiver.wait_for(1)
    verify_standard_webhook(endpoint.secret, request.headers, request.body)
    assert json.loads(request.body)["type"] == "document.processed"
    (row,) = delivery_rows(db, ws)
    assert row["status"] == "succeeded" and row["attempts"] == 1
    assert request.headers["webhook-id"] == f"msg_{row['id'].hex}"
    (attempt,) = attempt_rows(db, row["id"])
    assert attempt["status_code"] == 200 and attempt["response_excerpt"] == "ok" and attempt["error"] is None
    assert queued == []


def test_an_event_the_endpoint_did_not_choose_makes_no_delivery(db: Database, people: dict[str, Any]) -> None:
    ws = people["ws"]
    with WebhookReceiver() as receiver:
        save(db, people["owner"], ws, receiver.url, ["credits.low"])
        assert Deliverer(db, get_settings()).deliver_event(processed(ws)) == []
        assert receiver.received == []


def test_a_410_disables_the_endpoint_and_no_more_is_delivered(
    db: Database, people: dict[str, Any], queued: list[Any]
) -> None:
    ws = people["ws"]
    with WebhookReceiver(default=Answer(status=410, body=b"gone")) as receiver:
        save(db, people["owner"], ws, receiver.url)
        deliverer = Deliverer(db, get_settings())
        deliverer.deliver_event(processed(ws))
        assert deliverer.deliver_event(processed(ws)) == []
        assert len(receiver.received) == 1
    (row,) = delivery_rows(db, ws)
    assert row["status"] == "failed" and queued == []
    with db.user_transaction(people["owner"].principal) as conn:
        endpoint = service.get_endpoint(conn, ws)
    assert endpoint.status == "disabled" and endpoint.disabled_reason == GONE_REASON
    # saving it again enables it
    with WebhookReceiver() as receiver:
        again, _ = save(db, people["owner"], ws, receiver.url)
        assert again.status == "enabled" and again.disabled_reason is None


def test_a_failing_receiver_is_retried_with_growing_waits_then_failed_after_a_day(
    db: Database, people: dict[str, Any], queued: list[tuple[dict[str, Any], float]]
) -> None:
    ws = people["ws"]
    clock = [datetime.now(UTC) + timedelta(seconds=1)]
    with WebhookReceiver(default=Answer(status=500, body=b"oops")) as receiver:
        save(db, people["owner"], ws, receiver.url)
        deliverer = Deliverer(db, get_settings(), clock=lambda: clock[0])
        (delivery_id,) = deliverer.deliver_event(processed(ws))
        waits: list[float] = []
        while queued:
            message, delay = queued.pop(0)
            waits.append(delay)
            clock[0] += timedelta(seconds=delay)  # the queue hands the message back after its delay
            deliverer.attempt(UUID(message["delivery_id"]), message["attempt"])
        sent = len(receiver.received)
    (row,) = delivery_rows(db, ws)
    attempts = attempt_rows(db, delivery_id)
    assert row["status"] == "failed" and row["attempts"] == len(attempts) == sent
    assert 10 <= sent <= 20
    # SQS delays at most 900 s: the longer waits came back in hops, each at most 900 s
    assert max(waits) <= 900 and len(waits) > sent
    gaps = [(b["attempted_at"] - a["attempted_at"]).total_seconds() for a, b in pairwise(attempts)]
    assert gaps[0] >= 30 and all(later > earlier for earlier, later in pairwise(gaps) if later < 10800)
    assert attempts[-1]["attempted_at"] - row["created_at"] <= timedelta(days=1)
    assert all(a["status_code"] == 500 and a["error"] == "answered 500" for a in attempts)


def test_a_repeated_retry_message_makes_no_second_attempt(
    db: Database, people: dict[str, Any], queued: list[tuple[dict[str, Any], float]]
) -> None:
    ws = people["ws"]
    with WebhookReceiver(script=[Answer(status=503)]) as receiver:
        save(db, people["owner"], ws, receiver.url)
        clock = [datetime.now(UTC) + timedelta(hours=1)]
        deliverer = Deliverer(db, get_settings(), clock=lambda: clock[0])
        (delivery_id,) = deliverer.deliver_event(processed(ws))
        ((message, _delay),) = queued
        clock[0] += timedelta(minutes=5)
        assert deliverer.attempt(delivery_id, message["attempt"]) == "succeeded"
        assert deliverer.attempt(delivery_id, message["attempt"]) is None
        assert len(receiver.received) == 2


def test_a_hanging_receiver_is_cut_at_the_timeout_and_retried(
    db: Database, people: dict[str, Any], queued: list[Any]
) -> None:
    ws = people["ws"]
    with WebhookReceiver(script=[Answer(hang_seconds=3)]) as receiver:
        save(db, people["owner"], ws, receiver.url)
        (delivery_id,) = Deliverer(db, get_settings()).deliver_event(processed(ws))
    (attempt,) = attempt_rows(db, delivery_id)
    assert attempt["error"] == "no answer within 1 s" and attempt["status_code"] is None
    assert 900 <= attempt["duration_ms"] < 2500
    assert len(queued) == 1 and delivery_rows(db, ws)[0]["status"] == "pending"


def test_a_redirect_is_a_failed_attempt_and_its_target_gets_nothing(
    db: Database, people: dict[str, Any], queued: list[Any]
) -> None:
    ws = people["ws"]
    with WebhookReceiver() as target, WebhookReceiver(default=Answer(status=302, headers={"location": ""})) as hop:
        hop.default.headers["location"] = target.url
        save(db, people["owner"], ws, hop.url)
        (delivery_id,) = Deliverer(db, get_settings()).deliver_event(processed(ws))
        assert len(hop.received) == 1 and target.received == []
    (attempt,) = attempt_rows(db, delivery_id)
    assert attempt["status_code"] == 302 and "redirects are not followed" in attempt["error"]


def test_a_url_that_is_no_longer_public_fails_the_attempt_at_send_time(
    db: Database, people: dict[str, Any], queued: list[Any]
) -> None:
    ws = people["ws"]
    with WebhookReceiver() as receiver:
        # saved while loopback was allowed; `localhost` now resolves to an address that is not public
        save(db, people["owner"], ws, receiver.url.replace("127.0.0.1", "localhost"))
        with override_settings(allow_loopback_urls=False):
            (delivery_id,) = Deliverer(db, get_settings()).deliver_event(processed(ws))
        assert receiver.received == []
    (attempt,) = attempt_rows(db, delivery_id)
    assert attempt["status_code"] is None and attempt["error"].startswith("the URL was refused")
    assert "not public" in attempt["error"] or "https" in attempt["error"]
    assert len(queued) == 1  # retried: the host may be public again


def test_the_deliveries_list_shows_attempts_newest_first_with_a_cursor(
    db: Database, people: dict[str, Any], queued: list[Any]
) -> None:
    ws = people["ws"]
    with WebhookReceiver(script=[Answer(status=500)]) as receiver:
        save(db, people["owner"], ws, receiver.url)
        deliverer = Deliverer(db, get_settings())
        first = deliverer.deliver_event(processed(ws))
        second = deliverer.deliver_event(processed(ws))
    with db.user_transaction(people["admin"].principal) as conn:
        page = service.list_deliveries(conn, ws, status=None, limit=1, cursor=None)
        assert [d.id for d in page.items] == second and page.next_cursor
        rest = service.list_deliveries(conn, ws, status=None, limit=1, cursor=page.next_cursor)
        assert [d.id for d in rest.items] == first and rest.next_cursor is None
        assert rest.items[0].attempts[0].status_code == 500 and rest.items[0].status == "pending"
        pending = service.list_deliveries(conn, ws, status="succeeded", limit=10, cursor=None)
        assert [d.id for d in pending.items] == second
    with db.user_transaction(people["viewer"].principal) as conn, pytest.raises(ForbiddenError):
        service.list_deliveries(conn, ws, status=None, limit=10, cursor=None)


def test_a_deleted_workspace_gets_no_deliveries(db: Database, people: dict[str, Any]) -> None:
    ws = people["ws"]
    with WebhookReceiver() as receiver:
        save(db, people["owner"], ws, receiver.url)
        with db.service_transaction() as conn:
            conn.execute("update public.workspaces set deleted_at = now() where id = %s", (ws,))
        assert Deliverer(db, get_settings()).deliver_event(processed(ws)) == []
        assert receiver.received == []
