"""Razorpay API calls, through the official SDK (`razorpay` 2.0.1), typed, with one error type.

One `razorpay.Client` per container (`get_razorpay_client()`, rebuilt only when the settings are swapped),
authenticated with `RAZORPAY_KEY_ID` / `RAZORPAY_KEY_SECRET` against `RAZORPAY_API_BASE_URL`. Its
`requests.Session` keeps the connection to Razorpay open across warm invocations.

- Every call passes `timeout=RAZORPAY_TIMEOUT_SECONDS`: the SDK has no default and would wait forever.
- The SDK's own retry stays off: a create or a cancel that timed out may have happened at Razorpay, so
  repeating it blindly could make a second subscription; the caller decides.
- Every failure is an `UpstreamError` (502, `UPSTREAM_ERROR`) with a generic message and
  `details={"provider": "razorpay", "operation": ..., "reason": ...}`: the SDK's errors
  (`BadRequestError`, `GatewayError`, `ServerError`), `requests`' timeouts and connection errors, and
  bodies that are not what the API documents. Never the key, never the raw body. A refusal
  (`BAD_REQUEST_ERROR`, e.g. a plan change Razorpay does not allow) is the subclass
  `RazorpayRefusedError`, so a caller may handle it on purpose.
- Without a key id and secret, `get_razorpay_client()` raises `UnavailableError` (503, "Billing is not
  configured").
- The SDK (and `requests` under it, about 65 ms of a cold start) is imported when the first client is
  built, not with this module: most invocations of the functions that import it never call Razorpay.

    client = get_razorpay_client()
    subscription = client.create_subscription("plan_x", total_count=120, notes={"user_id": "..."})
"""

from __future__ import annotations

import copy
import hashlib
import hmac
import threading
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Final, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, field_validator
from pydantic import ValidationError as PydanticValidationError

from oneai.config import Settings, get_settings
from oneai.errors import UnavailableError, UpstreamError
from oneai.logging import logger
from oneai.observability import trace_calls

if TYPE_CHECKING:
    import requests

PROVIDER: Final = "razorpay"
UPSTREAM_MESSAGE: Final = "The payment provider failed"
NOT_CONFIGURED_MESSAGE: Final = "Billing is not configured"
# Razorpay's page size for invoices is 10 by default, 100 at most.
MAX_INVOICES_PER_SUBSCRIPTION: Final = 100
_MAX_LOGGED_DESCRIPTION: Final = 200

ScheduleChangeAt = Literal["now", "cycle_end"]
Reason = Literal["refused", "gateway_error", "server_error", "timeout", "connection", "unexpected_response"]

T = TypeVar("T", bound=BaseModel)


class RazorpayRefusedError(UpstreamError):
    """Razorpay answered `BAD_REQUEST_ERROR`: it refused the request (still a 502 to our caller unless
    handled: the request was ours, not the user's)."""


def _notes(value: object) -> object:
    # Razorpay sends `notes` as [] when empty and as an object otherwise.
    return {} if value == [] or value is None else value


class _RazorpayEntity(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


class RazorpaySubscription(_RazorpayEntity):
    """The fields of Razorpay's subscription entity that OneAI reads (times are Unix seconds)."""

    id: str = Field(min_length=1)
    plan_id: str
    status: str
    notes: dict[str, Any] = Field(default_factory=dict)
    short_url: str | None = None
    customer_id: str | None = None
    total_count: int | None = None
    paid_count: int | None = None
    current_start: int | None = None
    current_end: int | None = None
    charge_at: int | None = None
    start_at: int | None = None
    end_at: int | None = None
    ended_at: int | None = None
    created_at: int | None = None
    has_scheduled_changes: bool = False
    change_scheduled_at: int | None = None

    @field_validator("notes", mode="before")
    @classmethod
    def _empty_notes(cls, value: object) -> object:
        return _notes(value)


class RazorpayInvoice(_RazorpayEntity):
    """The fields of Razorpay's invoice entity that OneAI reads (amounts in the currency's smallest unit)."""

    id: str = Field(min_length=1)
    amount: int
    currency: str
    status: str
    subscription_id: str | None = None
    issued_at: int | None = None
    paid_at: int | None = None
    short_url: str | None = None
    created_at: int | None = None


class RazorpayOrder(_RazorpayEntity):
    """The fields of Razorpay's order entity that OneAI reads (amounts in paise)."""

    id: str = Field(min_length=1)
    amount: int
    currency: str
    status: str
    receipt: str | None = None
    amount_paid: int | None = None
    notes: dict[str, Any] = Field(default_factory=dict)
    created_at: int | None = None

    @field_validator("notes", mode="before")
    @classmethod
    def _empty_notes(cls, value: object) -> object:
        return _notes(value)


class _Collection(_RazorpayEntity):
    items: list[RazorpayInvoice]


def from_epoch(seconds: int | None) -> datetime | None:
    """Razorpay's Unix seconds as an aware UTC datetime."""
    return None if seconds is None else datetime.fromtimestamp(seconds, tz=UTC)


def checkout_signature(key_secret: str, payment_id: str, subscription_id: str) -> str:
    """What Razorpay Checkout returns as `razorpay_signature` for a subscription payment: HMAC-SHA256 of
    `payment_id|subscription_id`, keyed with the API key secret, in hex."""
    message = f"{payment_id}|{subscription_id}".encode()
    return hmac.new(key_secret.encode(), message, hashlib.sha256).hexdigest()


class RazorpayClient:
    """A thin typed wrapper over one `razorpay.Client`."""

    def __init__(
        self,
        *,
        key_id: str,
        key_secret: str,
        base_url: str,
        timeout_seconds: float,
        session: requests.Session | None = None,
    ) -> None:
        import razorpay
        import requests

        trace_calls("requests")
        self._key_secret = key_secret
        self._timeout = timeout_seconds
        self.key_id = key_id
        self._sdk = razorpay.Client(
            session=session or requests.Session(), auth=(key_id, key_secret), base_url=base_url.rstrip("/")
        )
        self._sdk.enable_retry(False)

    def bounded(self, timeout_seconds: float) -> RazorpayClient:
        """This client (the same connection) with each call limited to `timeout_seconds` at most: for calls
        made where a caller waits on a deadline of its own (a webhook answers Razorpay within 5 s)."""
        limited = copy.copy(self)
        limited._timeout = min(self._timeout, timeout_seconds)
        return limited

    def __repr__(self) -> str:  # never the secret
        return f"RazorpayClient(key_id={self.key_id!r}, base_url={self._sdk.base_url!r})"

    # -- subscriptions ----------------------------------------------------------------------------

    def create_subscription(
        self,
        plan_id: str,
        *,
        total_count: int,
        notes: Mapping[str, str],
        customer_notify: bool = True,
        start_at: int | None = None,
    ) -> RazorpaySubscription:
        """A new subscription in status `created`; Checkout authenticates it. `start_at` (Unix seconds)
        defers the first charge."""
        data: dict[str, Any] = {
            "plan_id": plan_id,
            "total_count": total_count,
            "customer_notify": customer_notify,
            "notes": dict(notes),
        }
        if start_at is not None:
            data["start_at"] = start_at
        return self._call(
            "create_subscription",
            RazorpaySubscription,
            lambda: self._sdk.subscription.create(data, **self._opts()),
        )

    def fetch_subscription(self, subscription_id: str) -> RazorpaySubscription:
        return self._call(
            "fetch_subscription",
            RazorpaySubscription,
            lambda: self._sdk.subscription.fetch(subscription_id, {}, **self._opts()),
        )

    def cancel_subscription(self, subscription_id: str, *, at_cycle_end: bool) -> RazorpaySubscription:
        """Cancel now (the answer says `cancelled`) or at the end of the current cycle (the answer keeps
        the current status; Razorpay cancels it when the cycle ends)."""
        data = {"cancel_at_cycle_end": 1 if at_cycle_end else 0}
        return self._call(
            "cancel_subscription",
            RazorpaySubscription,
            lambda: self._sdk.subscription.cancel(subscription_id, data, **self._opts()),
        )

    def edit_subscription(
        self, subscription_id: str, *, plan_id: str, schedule_change_at: ScheduleChangeAt
    ) -> RazorpaySubscription:
        """Change the plan (Razorpay's "update a subscription", the SDK's `edit`). Razorpay refuses it
        (`RazorpayRefusedError`) for some payment methods; see `oneai.billing.service.update_subscription`."""
        data = {"plan_id": plan_id, "schedule_change_at": schedule_change_at}
        return self._call(
            "edit_subscription",
            RazorpaySubscription,
            lambda: self._sdk.subscription.edit(subscription_id, data, **self._opts()),
        )

    def subscription_invoices(self, subscription_id: str) -> list[RazorpayInvoice]:
        """The invoices of one subscription (the newest 100), as Razorpay lists them."""
        query = {"subscription_id": subscription_id, "count": MAX_INVOICES_PER_SUBSCRIPTION}
        collection = self._call(
            "subscription_invoices", _Collection, lambda: self._sdk.invoice.all(query, **self._opts())
        )
        return collection.items

    # -- orders (workspace credits) -----------------------------------------------------------------

    def create_order(
        self, *, amount_paise: int, currency: str, receipt: str, notes: Mapping[str, str]
    ) -> RazorpayOrder:
        """A new order (status `created`) that Checkout takes the payment of; `receipt` is ours (<= 40 chars)."""
        data: dict[str, Any] = {
            "amount": amount_paise,
            "currency": currency,
            "receipt": receipt[:40],
            "notes": dict(notes),
        }
        return self._call("create_order", RazorpayOrder, lambda: self._sdk.order.create(data, **self._opts()))

    # -- Checkout ---------------------------------------------------------------------------------

    def verify_checkout_signature(self, payment_id: str, subscription_id: str, signature: str) -> bool:
        """Whether `signature` is Checkout's signature of `payment_id|subscription_id` (constant time).
        Pass the subscription id you stored, not the one the browser sent back."""
        expected = checkout_signature(self._key_secret, payment_id, subscription_id)
        return hmac.compare_digest(expected.encode(), signature.encode("utf-8", "replace"))

    # -- plumbing ---------------------------------------------------------------------------------

    def _opts(self) -> dict[str, Any]:
        return {"timeout": self._timeout}

    def _call(self, operation: str, shape: type[T], request: Callable[[], Any]) -> T:
        import razorpay.errors  # loaded by __init__ already
        import requests

        try:
            body = request()
        except razorpay.errors.BadRequestError as exc:
            raise _upstream(operation, "refused", exc, RazorpayRefusedError) from None
        except razorpay.errors.GatewayError as exc:
            raise _upstream(operation, "gateway_error", exc) from None
        except razorpay.errors.ServerError as exc:
            raise _upstream(operation, "server_error", exc) from None
        except requests.Timeout as exc:  # before ConnectionError: ConnectTimeout is both
            raise _upstream(operation, "timeout", exc) from None
        except requests.ConnectionError as exc:
            raise _upstream(operation, "connection", exc) from None
        except (requests.RequestException, ValueError) as exc:  # e.g. a body that is not JSON
            raise _upstream(operation, "unexpected_response", exc) from None
        try:
            return shape.model_validate(body)
        except PydanticValidationError as exc:
            raise _upstream(operation, "unexpected_response", exc) from None


def _upstream(
    operation: str, reason: Reason, exc: BaseException, error_type: type[UpstreamError] = UpstreamError
) -> UpstreamError:
    extra: dict[str, Any] = {"provider": PROVIDER, "operation": operation, "reason": reason}
    extra["error_type"] = type(exc).__name__
    import razorpay.errors  # loaded by the client that failed

    if isinstance(
        exc, razorpay.errors.BadRequestError | razorpay.errors.GatewayError | razorpay.errors.ServerError
    ):
        # Razorpay's own `description` (e.g. "Authentication failed"): no key, no body.
        extra["razorpay_description"] = str(exc)[:_MAX_LOGGED_DESCRIPTION]
    logger.warning("razorpay call failed", extra=extra)
    return error_type(UPSTREAM_MESSAGE, details={"provider": PROVIDER, "operation": operation, "reason": reason})


_client: RazorpayClient | None = None
_client_settings: Settings | None = None
_client_lock = threading.Lock()


def build_razorpay_client(settings: Settings) -> RazorpayClient:
    """A client for these settings; 503 when the key id or secret is missing."""
    key_secret = settings.razorpay_key_secret.get_secret_value() if settings.razorpay_key_secret else ""
    if not settings.razorpay_key_id or not key_secret:
        raise UnavailableError(NOT_CONFIGURED_MESSAGE, details={"provider": PROVIDER})
    return RazorpayClient(
        key_id=settings.razorpay_key_id,
        key_secret=key_secret,
        base_url=settings.razorpay_api_base_url,
        timeout_seconds=settings.razorpay_timeout_seconds,
    )


def get_razorpay_client() -> RazorpayClient:
    """The container's client, built on first use and kept for warm invocations (rebuilt if the settings
    were swapped, as in tests)."""
    global _client, _client_settings
    settings = get_settings()
    with _client_lock:
        if _client is None or _client_settings is not settings:
            _client = build_razorpay_client(settings)
            _client_settings = settings
        return _client
