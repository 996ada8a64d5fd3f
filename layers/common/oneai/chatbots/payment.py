"""Who pays for a chatbot's reply (issue 26 items 3 and 5; API.md "Provider keys (bring your own)",
"Credits"): the workspace's own provider key for the model, else the platform's OpenRouter account paid
from the workspace's credits. One place for every kind of chatbot turn (a member's, a widget visitor's).

The payer is decided by the turn's prepare call, in its one round trip
(supabase/migrations/20261128020000_reply_payment.sql): with a usable key (active, within its
`monthly_limit`) it answers the key's id and nothing is reserved; without one it reserves the reply's
estimated maximum cost from the credits, or refuses the whole turn (402 INSUFFICIENT_CREDITS: nothing is
written). `credits_terms` is what the prepare call needs for the estimate (the offered models' prices as
the catalog lists them, the rate, the markup).

A keyed reply: `open_key` opens the key (the service reads its sealed bytes) right after the prepare;
`KeyedClient` calls the model at the key's endpoint with the key (a `custom` endpoint only through the
outbound guard: connected to the checked address, no redirects). A provider's 401/403 (`refused`) marks the key
invalid (`key_refused`) and answers 424 PROVIDER_KEY_REFUSED naming the key (the customer's key, not a
platform failure: a 4xx, outside the 5xx and upstream-failure metrics); the message unit is refunded. A
provider's answer that the key's account has no funds or quota left (`KeyedClient.error_from_response` makes
it a 402, `out_of_funds`) is the same 424 with `reason` "no_funds" (`key_out_of_funds`); the key is not
marked invalid (it is valid, and funds come back), so the next reply tries it again.

A reply paid from credits is settled in the finish call's transaction (the real cost: OpenRouter's USD
cost x ONEAI_USD_INR_RATE x ONEAI_CREDITS_MARKUP), refunded when the model failed before its first token
or the chatbot answered with its fixed message, and its low-balance crossing announced after the commit.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from decimal import Decimal
from typing import Any, Final
from uuid import UUID

import httpx

from oneai.chat.offered_models import OFFERED_MODELS
from oneai.config import Settings
from oneai.credits import service as credits
from oneai.db.connection import Database
from oneai.errors import ProviderKeyRefusedError, UnavailableError
from oneai.events import get_publisher
from oneai.logging import logger
from oneai.openrouter.client import OpenRouterClient
from oneai.openrouter.errors import AuthenticationError, InsufficientCreditsError, OpenRouterError
from oneai.outbound import check_url_async, guarded_async_client
from oneai.provider_keys import service as provider_keys
from oneai.provider_keys.service import UsableKey
from oneai.provider_keys.upstream import (
    auth_headers,
    google_refuses_key,
    key_has_no_funds,
    no_funds_message,
    refused_message,
)

# Tokens allowed for each of a chatbot's `top_k` passages in the estimate (chunks are about 500 tokens,
# oneai.knowledge.chunking; the block's framing adds a little).
PASSAGE_TOKENS: Final = 600


def refused(provider: str, status: int | None) -> bool:
    """Whether an upstream status means the provider refused the key: 401, or 403 from a provider's own
    endpoint (OpenRouter answers 403 for moderation, which says nothing about the key). Google's 400
    API_KEY_INVALID comes here as 401 (`KeyedClient.error_from_response`)."""
    return status == 401 or (status == 403 and provider != "openrouter")


def out_of_funds(status: int | None) -> bool:
    """Whether an upstream status of a keyed reply means the key's account has no funds or quota left: 402
    (OpenRouter's insufficient credits, an `insufficient_quota` code in a stream, and every provider's own
    way of saying it, made a 402 by `KeyedClient.error_from_response`)."""
    return status == 402


def credits_terms(settings: Settings, client: OpenRouterClient) -> dict[str, Any]:
    """What the prepare call needs to estimate and reserve a reply paid from credits: the prices of the
    models a chatbot may use as the catalog lists them now (never waiting for OpenRouter: a model not
    listed yet reserves ONEAI_CREDITS_MIN_RESERVE), the rate, the markup."""
    prices: dict[str, list[str]] = {}
    for offered in OFFERED_MODELS:
        model = client.known_model(offered.model_id)
        if model is not None:
            prompt, completion = model.pricing.prompt, model.pricing.completion
            prices[offered.model_id] = [str(_price(prompt)), str(_price(completion))]
    return {
        "prices": prices,
        "rate": str(settings.usd_inr_rate),
        "markup": str(settings.credits_markup),
        "min_reserve": str(settings.credits_min_reserve),
        "passage_tokens": PASSAGE_TOKENS,
    }


def _price(value: Decimal | None) -> Decimal:
    return max(value or Decimal(0), Decimal(0))  # router models list -1


def reservation_of(workspace_id: UUID, value: Mapping[str, Any] | None) -> credits.Reservation | None:
    """The prepare call's credits hold (None: no hold: a plain turn, or a reply a key pays)."""
    if value is None:
        return None
    return credits.Reservation(
        id=UUID(str(value["reservation_id"])),
        workspace_id=workspace_id,
        amount=Decimal(str(value["amount"])),
        balance=Decimal(str(value["balance"])),
        available=Decimal(str(value["available"])),
    )


def open_key(db: Database, workspace_id: UUID, key_id: UUID, model_id: str) -> UsableKey | None:
    """The key the prepare call chose, opened for this reply (a service transaction: the sealed bytes are
    the service's). None when it is no longer the key for the model (deleted, refused or over its limit
    in between)."""
    with db.service_transaction() as conn:
        key = provider_keys.key_for(conn, db.settings, workspace_id, model_id)
    if key is None or key.key_id != key_id or not key.within_limit:
        return None
    return key


def key_gone() -> UnavailableError:
    """The key the prepare call chose could not be used (it changed in between): the turn is refunded."""
    return UnavailableError("The workspace's provider key changed while the reply started; try again")


def key_refused(db: Database, key: UsableKey) -> ProviderKeyRefusedError:
    """The provider refused the key: it is marked invalid; the error names it."""
    message = refused_message(key.name, key.provider)
    try:
        with db.service_transaction() as conn:
            # only if the key is still the one refused (not replaced while this reply was in flight)
            provider_keys.mark_invalid(conn, key.key_id, message, if_updated_at=key.updated_at)
    except Exception as exc:  # the answer is the same; the next reply finds the key refused again
        logger.warning("provider key not marked invalid", extra={"error_type": type(exc).__name__})
    logger.info("provider key refused", extra={"provider_key_id": str(key.key_id), "provider": key.provider})
    return _key_error(key, "refused", f"{message}. Update the key or remove it to use credits.")


def _key_error(key: UsableKey, reason: str, what: str) -> ProviderKeyRefusedError:
    """The 424 of a reply the workspace's key could not make, naming the key (`details.reason`: why)."""
    return ProviderKeyRefusedError(
        f"The reply could not be made: {what}",
        details={"provider_key_id": str(key.key_id), "provider": key.provider, "name": key.name, "reason": reason},
    )


def key_url_refused(key: UsableKey, reason: str) -> ProviderKeyRefusedError:
    """A `custom` key's base_url the outbound guard refuses at the call (its host now resolves to an
    address that is not public): the workspace's configuration, not a platform failure, so the key's 424
    naming it (`reason` "url_refused"), never the address. The key is not marked invalid: the provider did
    not refuse it, and the host's DNS may be mended."""
    logger.info("provider key base_url refused", extra={"provider_key_id": str(key.key_id)})
    return _key_error(
        key,
        "url_refused",
        f"the base_url of the key '{key.name}' is refused ({reason}). Point the key at a public address, or "
        "remove it to use credits.",
    )


def key_out_of_funds(key: UsableKey) -> ProviderKeyRefusedError:
    """The provider accepted the key but its account has no funds or quota left: the error names the key.
    The key is NOT marked invalid (it is valid; funds come back): the next reply tries it again and gets
    the same answer until the account is topped up or the key removed."""
    logger.info("provider key has no funds", extra={"provider_key_id": str(key.key_id), "provider": key.provider})
    return _key_error(
        key,
        "no_funds",
        f"{no_funds_message(key.name, key.provider)}. Top up the account at {key.provider}, or remove the key "
        "to use credits.",
    )


def refund_credits(db: Database, reservation: credits.Reservation, principal: Any) -> None:
    """The hold back whole (the model failed before its first token, or the fixed message answered)."""
    with db.user_transaction(principal) as conn:
        credits.refund(conn, reservation.id)


def announce(settlement: credits.Settlement | None) -> None:
    """After the finish call committed: the low-balance event of a settle that crossed the threshold."""
    credits.announce_low_balance(get_publisher(), None if settlement is None else settlement.low_balance)


class KeyedClient(OpenRouterClient):
    """The model called at a workspace key's endpoint with that key, for one reply (`aclose` after it).
    OpenRouter's request fields (`usage.include`, fallback `models`) go only to an `openrouter` key's
    endpoint; a provider's own endpoint is asked for the usage the OpenAI way (`stream_options`)."""

    def __init__(self, platform: OpenRouterClient, key: UsableKey, http: httpx.AsyncClient) -> None:
        super().__init__(platform.settings, http=http, retry=platform.retry, timeouts=platform.timeouts)
        self._key = key
        self._owns_http = True  # made for this reply: closed with it
        self.base_url = key.base_url.rstrip("/")

    def __repr__(self) -> str:
        return f"KeyedClient(provider={self._key.provider!r}, key_id={self._key.key_id})"

    def _secrets(self) -> tuple[str, ...]:
        return (self._key.key.get_secret_value(), *super()._secrets())

    def headers(self, *, accept: str = "application/json") -> dict[str, str]:
        headers = super().headers(accept=accept)
        headers.pop("Authorization", None)
        return headers | auth_headers(self._key.provider, self._key.key)

    def http_client(self) -> httpx.AsyncClient:
        assert self._http is not None
        return self._http

    async def error_from_response(self, response: httpx.Response) -> OpenRouterError:
        """As OpenRouter's, except that Google's 400 for a key it does not accept (API_KEY_INVALID) is the
        refusal it means (`AuthenticationError`, 401), so the key is marked invalid and named; and that a
        provider's answer that the key's account has no funds or quota left (OpenAI's 429
        `insufficient_quota`, Anthropic's 400 "credit balance is too low", Google's 429 for depleted
        prepayment: `key_has_no_funds`) is a 402 (`InsufficientCreditsError`), never retried, named."""
        error = await super().error_from_response(response)
        try:
            body = response.content
        except httpx.ResponseNotRead:  # the body did not come in time: the error as it is
            return error
        if google_refuses_key(self._key.provider, response.status_code, body):
            return AuthenticationError("google refused the key (400 API_KEY_INVALID)", status=401)
        if key_has_no_funds(self._key.provider, response.status_code, body):
            return InsufficientCreditsError(
                f"{self._key.provider} answered {response.status_code}: the key's account has no funds", status=402
            )
        return error

    def chat_body(
        self,
        model: str,
        messages: Sequence[Mapping[str, object]],
        *,
        stream: bool,
        fallback_models: Sequence[str] = (),
        max_tokens: int | None = None,
        user: str | None = None,
        extra: Mapping[str, Any] | None = None,
        modalities: Sequence[str] = (),
    ) -> dict[str, Any]:
        direct = self._key.provider != "openrouter"
        body = super().chat_body(
            model,
            messages,
            stream=stream,
            fallback_models=() if direct else fallback_models,
            max_tokens=max_tokens,
            user=user,
            extra=extra,
            modalities=modalities,
        )
        if direct and stream:
            body.pop("usage", None)
            body["stream_options"] = {"include_usage": True}
        return body


async def keyed_client(settings: Settings, key: UsableKey, platform: OpenRouterClient) -> KeyedClient:
    """A client for one reply at `key`'s endpoint; a `custom` one through the outbound guard (checked now,
    connected to the checked address, no redirects: a refused address is `key_url_refused`'s 424)."""
    timeout = httpx.Timeout(platform.timeouts.request, connect=platform.timeouts.connect)
    if key.guarded:
        from oneai.outbound import UnsafeUrlError

        try:
            checked = await check_url_async(key.base_url, allow_loopback=settings.allow_loopback_urls)
        except UnsafeUrlError as exc:
            raise key_url_refused(key, exc.reason) from None
        http = guarded_async_client(checked, timeout=timeout)
    else:
        http = httpx.AsyncClient(timeout=timeout, follow_redirects=False, trust_env=False)
    return KeyedClient(platform, key, http)
