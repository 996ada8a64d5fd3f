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


def refused_message(name: str, provider: str) -> str:
    """What a caller is told when the provider refuses a workspace's key (401/403): the key by its name."""
    return f"the key '{name}' was refused by {provider}"


@dataclass(frozen=True, slots=True)
class KeyCheck:
    """A key's test: `ok` with the model ids listed, else `refused` (401/403: the key is bad) or not, and
    a plain `error` for the customer."""

    ok: bool
    models: list[str] | None = None
    error: str | None = None
    refused: bool = False


def _client(settings: Settings, provider: str, base: str, key: SecretStr) -> httpx.Client:
    trace_calls("httpx")  # X-Ray records the call's URL and status, never its headers
    timeout = httpx.Timeout(settings.provider_key_test_timeout_seconds)
    headers = auth_headers(provider, key)
    if provider == "custom":
        checked = check_url(base, allow_loopback=settings.allow_loopback_urls)
        return guarded_client(checked, timeout=timeout, headers=headers)
    return httpx.Client(base_url=base, timeout=timeout, headers=headers, follow_redirects=False, trust_env=False)


def _model_ids(payload: Any) -> list[str] | None:
    data = payload.get("data") if isinstance(payload, dict) else None
    if not isinstance(data, list):
        return None
    ids = [str(item["id"]) for item in data if isinstance(item, dict) and isinstance(item.get("id"), str)]
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


def try_key(settings: Settings, *, provider: str, name: str, base_url: str | None, key: SecretStr) -> KeyCheck:
    """One cheap call with the key: `GET {base}/models`. Never raises for what the provider or the network
    does; the outcome says it in the customer's terms."""
    response = _get_models(settings, provider, provider_base_url(settings, provider, base_url), key)
    if isinstance(response, KeyCheck):
        return response
    if response.status_code in (401, 403):
        return KeyCheck(ok=False, error=refused_message(name, provider), refused=True)
    if response.is_redirect:
        return KeyCheck(ok=False, error=f"{provider} answered with a redirect, which is not followed")
    if response.status_code != 200:
        return KeyCheck(ok=False, error=f"{provider} answered HTTP {response.status_code}")
    try:
        models = _model_ids(response.json())
    except ValueError:
        models = None
    if models is None:
        return KeyCheck(ok=False, error=f"{provider} did not answer with a list of models")
    return KeyCheck(ok=True, models=models)
