"""A fake Razorpay API over a real socket (tests and `make dev` without Razorpay keys), answering with the
mock bodies of Razorpay's own Python SDK test suite (`tests/fixtures/razorpay/sdk_mocks/`).

Routes (what `oneai.billing.razorpay_client` calls through the SDK):
- `POST /v1/subscriptions`: create. The answer is `fake_subscription.json` with a fresh `sub_...` id,
  the request's `plan_id`, `notes`, `total_count`, `customer_notify` (and `start_at`), status `created`,
  no period yet, and a `short_url`, as the real API answers a create.
- `GET /v1/subscriptions/{id}`: fetch (the seeded `sub_8kip7ybbcOyc9J` of the mocks, or one created here).
- `POST /v1/subscriptions/{id}/cancel`: `cancel_at_cycle_end` 0 cancels now (status `cancelled`,
  `ended_at`), 1 keeps an authenticated/active/pending subscription as it is until its cycle ends.
- `PATCH /v1/subscriptions/{id}`: edit (`plan_id`, `schedule_change_at` now|cycle_end), only for an
  `authenticated` or `active` subscription, like the real API.
- `GET /v1/invoices?subscription_id=...&count=...`: `invoice_collection.json`'s items, marked with the
  subscription id (an unknown subscription has none; `set_invoices()` replaces them).
- `POST /v1/orders`, `GET /v1/orders/{id}`: Razorpay's order entity (workspace credits); `pay_order(id)`
  is the customer paying it at Checkout, `order_webhook_body("payment.captured" | "order.paid", ...)` the
  body Razorpay posts then (the published `payment.captured` sample carrying this fake's payment).
What Razorpay does on its own, for tests: `complete_checkout(id)` (the customer finished Checkout: the
subscription is `authenticated` and, unless it starts later, charged at once: `active` with its first
period paid) and `webhook_body(event, id)` (Razorpay's published sample body of that event carrying the
subscription as this fake holds it now), to be signed and posted like Razorpay posts them.
Errors have Razorpay's shape, `{"error": {"code": "BAD_REQUEST_ERROR", "description", "source", "step",
"reason", "metadata"}}`; an unknown id is a 400, a wrong key a 401 (HTTP Basic auth is checked).

Tests script the next requests: `fake.script(Delay(2.0))` holds the next answer (the client times out),
`fake.script(Status(500))`, `fake.script(Status(400), method="PATCH")` (only for that method). Every
request is recorded (method, path, query, headers, JSON body).

    with FakeRazorpay() as fake:   # uvicorn in a background thread on 127.0.0.1:<free port>
        ... RAZORPAY_API_BASE_URL=fake.base_url, RAZORPAY_KEY_ID=fake.key_id, RAZORPAY_KEY_SECRET=fake.key_secret

The fixtures are the repository's own copy, `tests/fixtures/razorpay/` (byte for byte, see its README).
`python -m local.fake_razorpay --port 8090` serves it alone.
"""

from __future__ import annotations

import argparse
import base64
import binascii
import copy
import json
import secrets
import string
import threading
import time
from collections import deque
from collections.abc import Awaitable, Callable, Iterable, Mapping, MutableMapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final
from urllib.parse import parse_qs

import anyio
import uvicorn

from local.threaded_server import FakeUpstream, ThreadedServer

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

REPO_ROOT: Final = Path(__file__).resolve().parent.parent
# Razorpay's sample bodies and SDK mocks, kept in the repository byte for byte (signatures are over bytes).
FIXTURES_DIR: Final = REPO_ROOT / "tests" / "fixtures" / "razorpay"
# Dev only: the key pair `make dev` gives the billing function when it serves this fake.
DEV_KEY_ID: Final = "rzp_test_oneai_dev"
DEV_KEY_SECRET: Final = "oneai-dev-razorpay-secret"  # noqa: S105 - a documented dev value
DEV_PLAN_IDS: Final = "pro=plan_dev_pro,enterprise=plan_dev_enterprise"

EDITABLE_STATUSES: Final = ("authenticated", "active")
CYCLE_END_CANCELLABLE: Final = ("authenticated", "active", "pending")
ENDED_STATUSES: Final = ("cancelled", "completed", "expired")
_ID_ALPHABET: Final = string.ascii_letters + string.digits
_STOP_POLL_SECONDS: Final = 0.05
_MONTH_SECONDS: Final = 30 * 24 * 3600
# The published sample (docs_webhooks/) a webhook body is built from, when not `<event>.json`.
WEBHOOK_SAMPLES: Final = {
    "subscription.activated": "subscription.activated__immediate_start_date_upfront_amount_both",
}


def load_fixture(relative: str) -> Any:
    path = FIXTURES_DIR / relative
    if not path.is_file():
        raise FileNotFoundError(f"Razorpay fixture {relative} not found under {FIXTURES_DIR}")
    return json.loads(path.read_text(encoding="utf-8"))


def new_id(prefix: str) -> str:
    """A Razorpay-looking id: `sub_` and 14 letters and digits."""
    return prefix + "".join(secrets.choice(_ID_ALPHABET) for _ in range(14))


def error_body(description: str, code: str = "BAD_REQUEST_ERROR") -> dict[str, Any]:
    return {
        "error": {
            "code": code,
            "description": description,
            "source": "NA",
            "step": "NA",
            "reason": "NA",
            "metadata": {},
        }
    }


def _default_error(status: int) -> dict[str, Any]:
    if status == 502:
        return error_body("Gateway error", "GATEWAY_ERROR")
    if status >= 500:
        return error_body(
            "The server encountered an error. The incident has been reported to admins.", "SERVER_ERROR"
        )
    return error_body("The request is invalid")


# ---------------------------------------------------------------------------------------------------
# Scripted faults


@dataclass(frozen=True)
class Delay:
    """Hold the answer this long (then answer normally: the work is done even if the client gave up)."""

    seconds: float


@dataclass(frozen=True)
class Status:
    """Answer with this status and body (default: a Razorpay error of the matching code) and do nothing."""

    status: int
    body: Mapping[str, Any] | str | None = None


Fault = Delay | Status


@dataclass
class RecordedRequest:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: Any
    fault: str | None = None
    status: int | None = None


@dataclass
class FakeRazorpayState:
    key_id: str
    key_secret: str
    subscription_template: dict[str, Any]
    invoice_template: list[dict[str, Any]]
    subscriptions: dict[str, dict[str, Any]] = field(default_factory=dict)
    invoices: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    orders: dict[str, dict[str, Any]] = field(default_factory=dict)
    payments: dict[str, dict[str, Any]] = field(default_factory=dict)
    refunds: dict[str, dict[str, Any]] = field(default_factory=dict)
    faults: deque[tuple[str | None, Fault]] = field(default_factory=deque)
    requests: list[RecordedRequest] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    stopping: threading.Event = field(default_factory=threading.Event)

    @classmethod
    def from_fixtures(cls, key_id: str, key_secret: str) -> FakeRazorpayState:
        subscription = load_fixture("sdk_mocks/fake_subscription.json")
        collection = load_fixture("sdk_mocks/invoice_collection.json")
        state = cls(
            key_id=key_id,
            key_secret=key_secret,
            subscription_template=subscription,
            invoice_template=list(collection["items"]),
        )
        state.seed()
        return state

    def seed(self) -> None:
        """The mocks' own subscription, fetchable as the SDK's tests fetch it."""
        template = copy.deepcopy(self.subscription_template)
        self.subscriptions = {template["id"]: template}
        self.invoices = {}
        self.orders = {}
        self.payments = {}

    def next_fault(self, method: str) -> Fault | None:
        with self.lock:
            for index, (for_method, fault) in enumerate(self.faults):
                if for_method is None or for_method == method:
                    del self.faults[index]
                    return fault
            return None


# ---------------------------------------------------------------------------------------------------
# The ASGI app


class FakeRazorpayApp:
    def __init__(self, state: FakeRazorpayState) -> None:
        self.state = state

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await _lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        method = str(scope.get("method", "GET")).upper()
        path = str(scope.get("path", "")).rstrip("/")
        query = {k: v[-1] for k, v in parse_qs(scope.get("query_string", b"").decode("latin-1")).items()}
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
        raw = await _read_body(receive)
        try:
            body: Any = json.loads(raw) if raw else None
        except ValueError:
            body = None
        fault = self.state.next_fault(method)
        record = RecordedRequest(method, path, query, headers, body, type(fault).__name__ if fault else None)
        with self.state.lock:
            self.state.requests.append(record)

        if isinstance(fault, Delay):
            await self._sleep(fault.seconds)
        payload: Any
        if not self._authorized(headers.get("authorization", "")):
            status, payload = 401, error_body("Authentication failed")
        elif isinstance(fault, Status):
            status, payload = fault.status, fault.body if fault.body is not None else _default_error(fault.status)
        else:
            with self.state.lock:
                status, payload = self._route(method, path, query, body)
        record.status = status
        await _send(send, status, payload)

    def _authorized(self, header: str) -> bool:
        scheme, _, encoded = header.partition(" ")
        if scheme.lower() != "basic":
            return False
        try:
            decoded = base64.b64decode(encoded, validate=True).decode()
        except (binascii.Error, UnicodeDecodeError):
            return False
        key_id, _, key_secret = decoded.partition(":")
        return secrets.compare_digest(key_id, self.state.key_id) and secrets.compare_digest(
            key_secret, self.state.key_secret
        )

    async def _sleep(self, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while (remaining := deadline - time.monotonic()) > 0:
            if self.state.stopping.is_set():  # the server stops: answer at once
                return
            await anyio.sleep(min(remaining, _STOP_POLL_SECONDS))

    # -- routing (under the state lock) -------------------------------------------------------------

    def _route(self, method: str, path: str, query: dict[str, str], body: Any) -> tuple[int, Any]:
        parts = path.strip("/").split("/")
        if parts[:2] == ["v1", "orders"]:
            return self._orders(method, parts, body)
        return self._route_subscriptions(method, parts, query, body)

    def _route_subscriptions(
        self, method: str, parts: list[str], query: dict[str, str], body: Any
    ) -> tuple[int, Any]:
        if parts[:2] == ["v1", "subscriptions"]:
            if len(parts) == 2 and method == "POST":
                return self._create(body)
            if len(parts) == 3 and method == "GET":
                return self._with_subscription(parts[2], lambda s: (200, s))
            if len(parts) == 3 and method == "PATCH":
                return self._with_subscription(parts[2], lambda s: self._edit(s, body))
            if len(parts) == 4 and parts[3] == "cancel" and method == "POST":
                return self._with_subscription(parts[2], lambda s: self._cancel(s, body))
        if parts == ["v1", "invoices"] and method == "GET":
            return self._invoices(query)
        return 400, error_body("The requested URL was not found on the server.")

    def _with_subscription(
        self, subscription_id: str, action: Callable[[dict[str, Any]], tuple[int, Any]]
    ) -> tuple[int, Any]:
        subscription = self.state.subscriptions.get(subscription_id)
        if subscription is None:
            return 400, error_body("The id provided does not exist")
        return action(subscription)

    def _create(self, body: Any) -> tuple[int, Any]:
        if not isinstance(body, dict) or not isinstance(body.get("plan_id"), str) or not body["plan_id"]:
            return 400, error_body("The plan id field is required.")
        total_count = body.get("total_count")
        if isinstance(total_count, bool) or not isinstance(total_count, int) or total_count < 1:
            return 400, error_body("The total count field is required.")
        now = int(time.time())
        start_at = body.get("start_at") if isinstance(body.get("start_at"), int) else None
        subscription = copy.deepcopy(self.state.subscription_template)
        subscription.update(
            {
                "id": new_id("sub_"),
                "plan_id": body["plan_id"],
                "notes": body.get("notes") or [],
                "total_count": total_count,
                "customer_notify": bool(body.get("customer_notify", True)),
                "status": "created",
                "created_at": now,
                "current_start": None,
                "current_end": None,
                "charge_at": start_at or now,
                "start_at": start_at or now,
                "end_at": (start_at or now) + total_count * _MONTH_SECONDS,
                "ended_at": None,
                "customer_id": None,
                "paid_count": 0,
                "auth_attempts": 0,
                "short_url": f"https://rzp.io/i/{new_id('')[:8]}",
                "has_scheduled_changes": False,
                "change_scheduled_at": None,
                "remaining_count": total_count,
            }
        )
        self.state.subscriptions[subscription["id"]] = subscription
        return 200, subscription

    def _orders(self, method: str, parts: list[str], body: Any) -> tuple[int, Any]:
        if len(parts) == 2 and method == "POST":
            return self._create_order(body)
        order = self.state.orders.get(parts[2]) if len(parts) == 3 and method == "GET" else None
        return (200, order) if order is not None else (400, error_body("The id provided does not exist"))

    def _create_order(self, body: Any) -> tuple[int, Any]:
        """Razorpay's order entity (https://razorpay.com/docs/api/orders/create/): `created`, nothing paid."""
        if not isinstance(body, dict):
            return 400, error_body("The amount field is required.")
        amount = body.get("amount")
        if isinstance(amount, bool) or not isinstance(amount, int) or amount < 100:
            return 400, error_body("The amount must be atleast INR 1.00.")
        if body.get("currency") != "INR":
            return 400, error_body("The currency field is required.")
        order = {
            "id": new_id("order_"),
            "entity": "order",
            "amount": amount,
            "amount_paid": 0,
            "amount_due": amount,
            "currency": "INR",
            "receipt": body.get("receipt"),
            "offer_id": None,
            "status": "created",
            "attempts": 0,
            "notes": body.get("notes") or [],
            "created_at": int(time.time()),
        }
        self.state.orders[order["id"]] = order
        return 200, order

    def _cancel(self, subscription: dict[str, Any], body: Any) -> tuple[int, Any]:
        status = subscription["status"]
        if status in ENDED_STATUSES:
            return 400, error_body(f"Subscription is not cancellable in {status} status.")
        at_cycle_end = isinstance(body, dict) and body.get("cancel_at_cycle_end") in (1, True, "1", "true")
        if not (at_cycle_end and status in CYCLE_END_CANCELLABLE):
            subscription.update({"status": "cancelled", "ended_at": int(time.time()), "charge_at": None})
        return 200, subscription

    def _edit(self, subscription: dict[str, Any], body: Any) -> tuple[int, Any]:
        status = subscription["status"]
        if status not in EDITABLE_STATUSES:
            return 400, error_body(f"Subscription can not be updated when it is in {status} state")
        if not isinstance(body, dict) or not isinstance(body.get("plan_id"), str) or not body["plan_id"]:
            return 400, error_body("The plan id field is required.")
        when = body.get("schedule_change_at", "now")
        if when == "now":
            subscription.update(
                {"plan_id": body["plan_id"], "has_scheduled_changes": False, "change_scheduled_at": None}
            )
        elif when == "cycle_end":
            at = subscription.get("current_end") or int(time.time()) + _MONTH_SECONDS
            subscription.update({"has_scheduled_changes": True, "change_scheduled_at": at})
        else:
            return 400, error_body("The selected schedule change at is invalid.")
        return 200, subscription

    def _invoices(self, query: dict[str, str]) -> tuple[int, Any]:
        subscription_id = query.get("subscription_id")
        if subscription_id is None:
            items = copy.deepcopy(self.state.invoice_template)
        elif subscription_id in self.state.invoices:
            items = copy.deepcopy(self.state.invoices[subscription_id])
        elif subscription_id in self.state.subscriptions:
            items = [
                {**item, "subscription_id": subscription_id} for item in copy.deepcopy(self.state.invoice_template)
            ]
        else:
            items = []
        count = query.get("count", "10")
        items = items[: int(count)] if count.isdigit() else items
        return 200, {"entity": "collection", "count": len(items), "items": items}


async def _send(send: Send, status: int, payload: Any) -> None:
    data = payload.encode() if isinstance(payload, str) else json.dumps(payload, ensure_ascii=False).encode()
    content_type = b"text/html" if isinstance(payload, str) else b"application/json"
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", content_type), (b"content-length", str(len(data)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": data, "more_body": False})


async def _read_body(receive: Receive) -> bytes:
    parts: list[bytes] = []
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            break
        parts.append(message.get("body", b""))
        if not message.get("more_body", False):
            break
    return b"".join(parts)


async def _lifespan(receive: Receive, send: Send) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return


# ---------------------------------------------------------------------------------------------------
# The server in a background thread


class FakeRazorpay(FakeUpstream):
    """The fake served by uvicorn in a daemon thread on a real socket. Use as a context manager."""

    def __init__(
        self,
        *,
        key_id: str = DEV_KEY_ID,
        key_secret: str = DEV_KEY_SECRET,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        self.state = FakeRazorpayState.from_fixtures(key_id, key_secret)
        self.app = FakeRazorpayApp(self.state)
        self._host = host
        self._http = ThreadedServer(
            self.app, host=host, port=port, name="fake-razorpay", stopping=self.state.stopping
        )

    @property
    def key_id(self) -> str:
        return self.state.key_id

    @property
    def key_secret(self) -> str:
        return self.state.key_secret

    @property
    def base_url(self) -> str:
        """What RAZORPAY_API_BASE_URL takes (the SDK adds `/v1/...`)."""
        return f"http://{self._host}:{self.port}"

    # -- scripting and records ----------------------------------------------------------------------

    def script(self, *faults: Fault, method: str | None = None) -> None:
        """Queue faults for the next requests, one per request, in order; with `method`, only for
        requests of that HTTP method."""
        with self.state.lock:
            self.state.faults.extend((method.upper() if method else None, fault) for fault in faults)

    def reset(self) -> None:
        """Forget scripts, records and subscriptions (between tests sharing one server)."""
        with self.state.lock:
            self.state.faults.clear()
            self.state.requests.clear()
            self.state.seed()

    def subscription(self, subscription_id: str) -> dict[str, Any]:
        with self.state.lock:
            return copy.deepcopy(self.state.subscriptions[subscription_id])

    def update_subscription(self, subscription_id: str, **fields: Any) -> None:
        """Change a subscription as Razorpay would on its own (e.g. `status="active"` after Checkout)."""
        with self.state.lock:
            self.state.subscriptions[subscription_id].update(fields)

    def complete_checkout(self, subscription_id: str, *, now: int | None = None) -> dict[str, Any]:
        """The customer completed Checkout: `authenticated` (a card or mandate on file, a customer), and
        when the subscription starts now (no later `start_at`), its first period charged: `active`."""
        moment = now if now is not None else int(time.time())
        with self.state.lock:
            subscription = self.state.subscriptions[subscription_id]
            if subscription["status"] != "created":
                raise ValueError(f"{subscription_id} is {subscription['status']}, not awaiting Checkout")
            subscription.update(
                status="authenticated", customer_id=subscription.get("customer_id") or new_id("cust_")
            )
            if (subscription.get("start_at") or moment) <= moment:
                paid = int(subscription.get("paid_count") or 0) + 1
                subscription.update(
                    status="active",
                    current_start=moment,
                    current_end=moment + _MONTH_SECONDS,
                    charge_at=moment + _MONTH_SECONDS,
                    paid_count=paid,
                    remaining_count=max(int(subscription.get("total_count") or paid) - paid, 0),
                )
            return copy.deepcopy(subscription)

    def webhook_body(self, event: str, subscription_id: str, *, created_at: int | None = None) -> bytes:
        """Razorpay's published body of `event` with this fake's subscription entity as it is now: the
        exact bytes to sign and post (UTF-8, like Razorpay sends them)."""
        document = load_fixture(f"docs_webhooks/{WEBHOOK_SAMPLES.get(event, event)}.json")
        document["created_at"] = created_at if created_at is not None else int(time.time())
        document["payload"]["subscription"]["entity"] = self.subscription(subscription_id)
        return json.dumps(document, ensure_ascii=False).encode("utf-8")

    def order(self, order_id: str) -> dict[str, Any]:
        with self.state.lock:
            return copy.deepcopy(self.state.orders[order_id])

    def pay_order(self, order_id: str, *, amount: int | None = None, now: int | None = None) -> dict[str, Any]:
        """The customer paid the order at Checkout (auto-capture): a captured payment of its amount (or of
        `amount`), the order `paid`. Returns the payment entity."""
        moment = now if now is not None else int(time.time())
        with self.state.lock:
            order = self.state.orders[order_id]
            sample = load_fixture("docs_webhooks/payment.captured__card.json")["payload"]["payment"]["entity"]
            paid = amount if amount is not None else order["amount"]
            payment = {
                **sample,
                "id": new_id("pay_"),
                "order_id": order_id,
                "amount": paid,
                "currency": order["currency"],
                "status": "captured",
                "captured": True,
                "notes": order["notes"],
                "created_at": moment,
            }
            order.update(status="paid", amount_paid=paid, amount_due=0, attempts=order["attempts"] + 1)
            self.state.payments[payment["id"]] = payment
            return copy.deepcopy(payment)

    def order_webhook_body(
        self, event: str, order_id: str, payment_id: str, *, created_at: int | None = None
    ) -> bytes:
        """The body Razorpay posts for `payment.captured` (the payment) or `order.paid` (the payment and
        the order), as this fake holds them now: the exact bytes to sign and post."""
        with self.state.lock:
            payment = copy.deepcopy(self.state.payments[payment_id])
            order = copy.deepcopy(self.state.orders[order_id])
        document = load_fixture("docs_webhooks/payment.captured__card.json")
        document["event"] = event
        document["created_at"] = created_at if created_at is not None else int(time.time())
        document["payload"] = {"payment": {"entity": payment}}
        document["contains"] = ["payment"]
        if event == "order.paid":
            document["payload"]["order"] = {"entity": order}
            document["contains"] = ["payment", "order"]
        return json.dumps(document, ensure_ascii=False).encode("utf-8")

    def refund_payment(
        self, payment_id: str, *, amount: int | None = None, now: int | None = None
    ) -> dict[str, Any]:
        """The merchant refunded `amount` paise of a captured payment (all of what is left by default), as
        Razorpay's dashboard does: a processed refund. Returns the refund entity."""
        moment = now if now is not None else int(time.time())
        with self.state.lock:
            payment = self.state.payments[payment_id]
            left = payment["amount"] - int(payment.get("amount_refunded") or 0)
            refunded = amount if amount is not None else left
            refund = {
                "id": new_id("rfnd_"),
                "entity": "refund",
                "amount": refunded,
                "currency": payment["currency"],
                "payment_id": payment_id,
                "notes": [],
                "receipt": None,
                "acquirer_data": {"arn": None},
                "created_at": moment,
                "batch_id": None,
                "status": "processed",
                "speed_processed": "normal",
                "speed_requested": "normal",
            }
            payment["amount_refunded"] = int(payment.get("amount_refunded") or 0) + refunded
            payment["refund_status"] = "full" if payment["amount_refunded"] >= payment["amount"] else "partial"
            if payment["refund_status"] == "full":
                payment["status"] = "refunded"
            self.state.refunds[refund["id"]] = refund
            return copy.deepcopy(refund)

    def refund_webhook_body(self, refund_id: str, *, created_at: int | None = None) -> bytes:
        """The body Razorpay posts for `refund.processed` (the refund and its payment, as this fake holds them
        now): the exact bytes to sign and post."""
        with self.state.lock:
            refund = copy.deepcopy(self.state.refunds[refund_id])
            payment = copy.deepcopy(self.state.payments[refund["payment_id"]])
        document = load_fixture("docs_webhooks/payment.captured__card.json")
        document["event"] = "refund.processed"
        document["created_at"] = created_at if created_at is not None else int(time.time())
        document["payload"] = {"refund": {"entity": refund}, "payment": {"entity": payment}}
        document["contains"] = ["refund", "payment"]
        return json.dumps(document, ensure_ascii=False).encode("utf-8")

    def set_invoices(self, subscription_id: str, items: Iterable[Mapping[str, Any]]) -> None:
        with self.state.lock:
            self.state.invoices[subscription_id] = [dict(item) for item in items]

    @property
    def requests(self) -> list[RecordedRequest]:
        with self.state.lock:
            return list(self.state.requests)

    def requests_to(self, method: str, path_part: str = "") -> list[RecordedRequest]:
        return [r for r in self.requests if r.method == method.upper() and path_part in r.path]

    @property
    def pending_faults(self) -> int:
        with self.state.lock:
            return len(self.state.faults)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="A fake Razorpay API (the SDK's mock bodies) on a local port.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8090)
    args = parser.parse_args(argv)
    state = FakeRazorpayState.from_fixtures(DEV_KEY_ID, DEV_KEY_SECRET)
    print(
        f"Fake Razorpay on http://{args.host}:{args.port} (RAZORPAY_API_BASE_URL);"
        f" RAZORPAY_KEY_ID={DEV_KEY_ID} RAZORPAY_KEY_SECRET={DEV_KEY_SECRET}"
    )
    uvicorn.run(FakeRazorpayApp(state), host=args.host, port=args.port, log_level="info", lifespan="off")


if __name__ == "__main__":
    main()
