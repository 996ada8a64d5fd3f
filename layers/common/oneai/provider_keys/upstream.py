"""Calls made with a workspace's provider key: where each provider's OpenAI-compatible API is, and the key's
test (`GET {base}/models` with the key as a bearer token).

A `custom` key's `base_url` is the customer's choice: it is called only through the outbound guard
(`oneai.outbound`: checked again at every call, connected to the checked address, redirects not followed).
The other providers' endpoints are settings (`openrouter_base_url`, `openai_base_url`, `anthropic_base_url`,
`google_base_url`), the operator's choice, called with a plain client that follows no redirect either.

The key travels only in the Authorization header (Anthropic also takes it as `x-api-key`); no error raised
here or logged carries it, the response body, or the address a host resolved to.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any, Final

import httpx
from pydantic import SecretStr

from oneai.config import Settings
from oneai.logging import logger
from oneai.observability import trace_calls
from oneai.outbound import UnsafeUrlError, check_url, guarded_client

ANTHROPIC_VERSION: Final = "2023-06-01"
MAX_MODELS: Final = 500


def provider_base_url(settings: Settings, provider: str, base_url: str | None) -> str:
    """The OpenAI-compatible API base of `provider` (a `custom` key's own `base_url`)."""
    if provider == "custom":
        if not base_url:
            raise ValueError("a custom key has a base_url")
        return base_url
    return {
        "openrouter": settings.openrouter_base_url,
        "openai": settings.openai_base_url,
        "anthropic": settings.anthropic_base_url,
        "google": settings.google_base_url,
    }[provider]


def auth_headers(provider: str, key: SecretStr) -> dict[str, str]:
    """The headers that carry `key` to `provider`."""
    value = key.get_secret_value()
    headers = {"Authorization": f"Bearer {value}"}
    if provider == "anthropic":
        headers |= {"x-api-key": value, "anthropic-version": ANTHROPIC_VERSION}
    return headers


# Google's endpoints (its OpenAI-compatible one included) answer a key they do not accept with 400
# INVALID_ARGUMENT, reason API_KEY_INVALID ("API key not valid. Please pass a valid API key."), not 401.
_GOOGLE_BAD_KEY: Final = (b"API_KEY_INVALID", b"API key not valid")


def google_refuses_key(provider: str, status: int, body: bytes) -> bool:
    """Whether a `google` key's call was answered with Google's 400 for a key it does not accept."""
    return provider == "google" and status == 400 and any(marker in body for marker in _GOOGLE_BAD_KEY)


def refused_message(name: str, provider: str) -> str:
    """What a caller is told when the provider refuses a workspace's key (401/403): the key by its name."""
    return f"the key '{name}' was refused by {provider}"


def no_funds_message(name: str, provider: str) -> str:
    """What a caller is told when the key is accepted but its account at the provider cannot pay: the key
    by its name."""
    return f"the account of the key '{name}' at {provider} has no funds or quota left"


# How each provider says that a key it accepts belongs to an account that cannot pay (never a rate limit):
# - any endpoint's 402 Payment Required: OpenRouter's "Insufficient credits" (the account's balance or the
#   key's own credit limit), Anthropic's `billing_error`, Google's prepay answer where it sends 402;
# - OpenAI's 429 whose error `code` or `type` is `insufficient_quota` ("You exceeded your current quota,
#   please check your plan and billing details"; its plain rate limit is a 429 with `rate_limit_exceeded`);
#   OpenAI-compatible proxies (a `custom` key) pass the same code on;
# - Anthropic's 400 (its OpenAI-compatible endpoint keeps the status and the message) "Your credit balance
#   is too low to access the Anthropic API";
# - Google's 429 RESOURCE_EXHAUSTED only when it is about billing, not about pace: "Your prepayment credits
#   are depleted" (the billing account's prepay balance: waiting does not help), or a quota whose limit is 0
#   (the project's plan has no quota at all for the model: waiting does not help either). Every other 429 of
#   Google, including its per-minute and per-day quotas, which say "You exceeded your current quota, please
#   check your plan and billing details" as well, is a rate limit that passes with time and stays one.
_OPENAI_NO_FUNDS_CODES: Final = frozenset({"insufficient_quota"})
_ANTHROPIC_NO_FUNDS: Final = "credit balance is too low"
_GOOGLE_PREPAY_DEPLETED: Final = "prepayment credits are depleted"
_GOOGLE_ZERO_QUOTA: Final = re.compile(r"\blimit: 0(?![\d.])")


def _error_object(body: bytes) -> dict[str, Any]:
    """The `error` object of an error body: OpenAI's and OpenRouter's `{"error": {...}}`, Google's list of
    one such object; empty when the body is not one."""
    try:
        payload = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return {}
    if isinstance(payload, list) and payload:
        payload = payload[0]
    error = payload.get("error") if isinstance(payload, dict) else None
    return error if isinstance(error, dict) else {}


def key_has_no_funds(provider: str, status: int, body: bytes) -> bool:
    """Whether a call with a workspace's key was answered that the key's account at the provider has no
    funds or quota left (the key itself is accepted). Reads only the status and the error's code, type,
    status and message; nothing of the body is kept."""
    if status == 402:
        return True
    error = _error_object(body)
    message = error.get("message")
    text = message.lower() if isinstance(message, str) else ""
    marks = (error.get("code"), error.get("type"))
    if status == 429 and any(isinstance(mark, str) and mark in _OPENAI_NO_FUNDS_CODES for mark in marks):
        return True
    if provider == "anthropic" and status == 400:
        return _ANTHROPIC_NO_FUNDS in text
    if provider == "google" and status == 429:
        return _GOOGLE_PREPAY_DEPLETED in text or _GOOGLE_ZERO_QUOTA.search(text) is not None
    return False


@dataclass(frozen=True, slots=True)
class KeyCheck:
    """A key's test: `ok` with the model ids listed, else `refused` (401/403: the key is bad), `no_funds`
    (the key is accepted, its account cannot pay) or neither, and a plain `error` for the customer."""

    ok: bool
    models: list[str] | None = None
    error: str | None = None
    refused: bool = False
    no_funds: bool = False

    @property
    def reason(self) -> str | None:
        """`refused`, `no_funds`, or None (ok, or another failure)."""
        return "refused" if self.refused else "no_funds" if self.no_funds else None


def _client(settings: Settings, provider: str, base: str, key: SecretStr) -> httpx.Client:
    trace_calls("httpx")  # X-Ray records the call's URL and status, never its headers
    timeout = httpx.Timeout(settings.provider_key_test_timeout_seconds)
    headers = auth_headers(provider, key)
    if provider == "custom":
        checked = check_url(base, allow_loopback=settings.allow_loopback_urls)
        return guarded_client(checked, timeout=timeout, headers=headers)
    return httpx.Client(base_url=base, timeout=timeout, headers=headers, follow_redirects=False, trust_env=False)


def _model_ids(payload: Any, key: SecretStr) -> list[str] | None:
    """The model ids listed, at most MAX_MODELS; an id that quotes the key (an endpoint echoing what it was
    sent) is left out: the key is never answered."""
    data = payload.get("data") if isinstance(payload, dict) else None
    if not isinstance(data, list):
        return None
    secret = key.get_secret_value()
    ids = [
        item["id"]
        for item in data
        if isinstance(item, dict) and isinstance(item.get("id"), str) and secret not in item["id"]
    ]
    return ids[:MAX_MODELS]


def _get_models(settings: Settings, provider: str, base: str, key: SecretStr) -> httpx.Response | KeyCheck:
    try:
        with _client(settings, provider, base, key) as client:
            return client.get("models")
    except UnsafeUrlError as exc:
        return KeyCheck(ok=False, error=f"the base_url is refused: {exc.reason}")
    except httpx.TimeoutException:
        return KeyCheck(ok=False, error=f"{provider} did not answer in time")
    except httpx.HTTPError as exc:
        logger.info("provider key test failed", extra={"provider": provider, "error_type": type(exc).__name__})
        return KeyCheck(ok=False, error=f"{provider} could not be reached")


def _refusal(provider: str, name: str, response: httpx.Response) -> KeyCheck | None:
    """The provider refused the key (401/403, Google's 400 API_KEY_INVALID), or accepted it for an account
    with no funds or quota left; None: neither."""
    status, body = response.status_code, response.content
    if status in (401, 403) or google_refuses_key(provider, status, body):
        return KeyCheck(ok=False, error=refused_message(name, provider), refused=True)
    if key_has_no_funds(provider, status, body):
        return KeyCheck(ok=False, error=no_funds_message(name, provider), no_funds=True)
    return None


def try_key(settings: Settings, *, provider: str, name: str, base_url: str | None, key: SecretStr) -> KeyCheck:
    """One cheap call with the key: `GET {base}/models`. Never raises for what the provider or the network
    does; the outcome says it in the customer's terms."""
    response = _get_models(settings, provider, provider_base_url(settings, provider, base_url), key)
    if isinstance(response, KeyCheck):
        return response
    refusal = _refusal(provider, name, response)
    if refusal is not None:
        return refusal
    if response.is_redirect:
        return KeyCheck(ok=False, error=f"{provider} answered with a redirect, which is not followed")
    if response.status_code != 200:
        return KeyCheck(ok=False, error=f"{provider} answered HTTP {response.status_code}")
    try:
        models = _model_ids(response.json(), key)
    except ValueError:
        models = None
    if models is None:
        return KeyCheck(ok=False, error=f"{provider} did not answer with a list of models")
    return KeyCheck(ok=True, models=models)
