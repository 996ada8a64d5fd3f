"""The pieces of a chatbot reply's payer that need no database (oneai.chatbots.payment): which upstream
answers mean the key was refused, what a client at a key's endpoint sends, and the estimate's terms."""

from __future__ import annotations

import uuid
from decimal import Decimal

import httpx
import pytest
from pydantic import SecretStr

from oneai.chatbots import payment
from oneai.config import get_settings
from oneai.openrouter.client import OpenRouterClient
from oneai.provider_keys.service import UsableKey

SECRET = "sk-unit-key-never-shown-5678"


def usable(provider: str, base_url: str = "https://api.example.test/v1") -> UsableKey:
    return UsableKey(
        key_id=uuid.uuid4(),
        workspace_id=uuid.uuid4(),
        provider=provider,
        name="Prod",
        base_url=base_url,
        upstream_model="gpt-4o-mini" if provider != "openrouter" else "openai/gpt-4o-mini",
        monthly_limit=None,
        spent_this_month=Decimal(0),
        within_limit=True,
        key=SecretStr(SECRET),
    )


@pytest.mark.parametrize(
    ("provider", "status", "expected"),
    [
        ("openai", 401, True),
        ("openai", 403, True),
        ("openrouter", 401, True),
        ("openrouter", 403, False),
        ("custom", 500, False),
        ("anthropic", None, False),
    ],
)
def test_a_refusal_is_a_401_or_a_providers_own_403(provider: str, status: int | None, expected: bool) -> None:
    assert payment.refused(provider, status) is expected


def test_a_keyed_client_calls_the_keys_endpoint_with_the_key_and_no_openrouter_fields() -> None:
    platform = OpenRouterClient(get_settings())
    key = usable("openai")
    client = payment.KeyedClient(platform, key, httpx.AsyncClient())
    assert client.base_url == "https://api.example.test/v1"
    headers = client.headers()
    assert headers["Authorization"] == f"Bearer {SECRET}"
    body = client.chat_body(
        "gpt-4o-mini", [{"role": "user", "content": "hi"}], stream=True, fallback_models=["x/y"]
    )
    assert "models" not in body and "usage" not in body and body["stream_options"] == {"include_usage": True}
    assert SECRET not in repr(client) and SECRET not in repr(key)
    assert SECRET not in client.sanitize(f"bad key {SECRET}")


def test_an_openrouter_key_keeps_openrouters_fields() -> None:
    client = payment.KeyedClient(OpenRouterClient(get_settings()), usable("openrouter"), httpx.AsyncClient())
    body = client.chat_body(
        "openai/gpt-4o-mini", [{"role": "user", "content": "hi"}], stream=True, fallback_models=["x/y"]
    )
    assert body["models"] == ["openai/gpt-4o-mini", "x/y"] and body["usage"] == {"include": True}
