"""The pieces of provider keys that need no network: what a key may be (and that a refusal never quotes
it), which providers' keys may serve a model, where each provider's endpoint is, how a key travels, and
that no repr or error of these objects shows the key."""

from __future__ import annotations

from decimal import Decimal
from uuid import uuid4

import pydantic
import pytest
from pydantic import SecretStr

from oneai.config import get_settings, override_settings
from oneai.provider_keys.models import ProviderKeyCreate, ProviderKeyUpdate
from oneai.provider_keys.service import UsableKey, candidate_providers, spent_inr
from oneai.provider_keys.upstream import auth_headers, provider_base_url, refused_message

SECRET = "sk-proj-UnitSecretValue7h2k9Lq"


@pytest.mark.parametrize(
    "key",
    ["short", " " * 20, f"{SECRET} tail", f"{SECRET}\x00", f"{SECRET}\tx", f"{SECRET}é", "x" * 513, 12345678],
)
def test_a_bad_key_is_refused_without_quoting_it(key: object) -> None:
    with pytest.raises(pydantic.ValidationError) as caught:
        ProviderKeyCreate.model_validate({"provider": "openai", "name": "n", "key": key})
    assert [e["loc"] for e in caught.value.errors()] == [("key",)]
    text = str(caught.value) + repr(caught.value)
    assert SECRET not in text and "x" * 40 not in text


def test_a_good_key_is_a_secret_with_its_ends_trimmed() -> None:
    body = ProviderKeyCreate.model_validate(
        {"provider": "custom", "name": "  Local  ", "key": f"  {SECRET}\n", "base_url": "https://x.example/v1"}
    )
    assert body.key.get_secret_value() == SECRET and body.name == "Local"
    assert SECRET not in repr(body) and SECRET not in str(body) and SECRET not in body.model_dump_json()
    assert ProviderKeyCreate.model_validate({"provider": "openai", "name": "n", "key": "a" * 512}).key


def test_limits_are_rupees_with_at_most_two_decimals() -> None:
    def limit(value: object) -> Decimal | None:
        return ProviderKeyUpdate.model_validate({"monthly_limit": value}).monthly_limit

    assert (limit("1000.50"), limit(250), limit(None)) == (Decimal("1000.50"), Decimal(250), None)
    for bad in ("0", "-5", "1.234", 12.5, True, "abc"):
        with pytest.raises(pydantic.ValidationError):
            limit(bad)
    update = ProviderKeyUpdate.model_validate({"monthly_limit": None})
    assert update.model_fields_set == {"monthly_limit"}  # null removes the limit; absent leaves it


def test_which_providers_keys_may_serve_a_model() -> None:
    assert candidate_providers("openai/gpt-4o") == (["openai", "openrouter"], None)
    assert candidate_providers("anthropic/claude-3.5-haiku") == (["anthropic", "openrouter"], None)
    assert candidate_providers("google/gemini-2.0-flash") == (["google", "openrouter"], None)
    assert candidate_providers("meta-llama/llama-3.1-8b-instruct") == (["openrouter"], None)
    assert candidate_providers("openrouter/auto") == (["openrouter"], None)
    assert candidate_providers("custom/llama3") == (["custom"], "llama3")
    assert candidate_providers("custom/") == ([], None)


def test_endpoints_are_settings_and_a_custom_key_has_its_own() -> None:
    with override_settings(openai_base_url="http://127.0.0.1:1/openai"):
        settings = get_settings()
        assert provider_base_url(settings, "openai", None) == "http://127.0.0.1:1/openai"
        assert provider_base_url(settings, "openrouter", None) == settings.openrouter_base_url
        assert provider_base_url(settings, "custom", "https://llm.example/v1") == "https://llm.example/v1"
    defaults = get_settings()
    assert (defaults.anthropic_base_url, defaults.google_base_url) == (
        "https://api.anthropic.com/v1",
        "https://generativelanguage.googleapis.com/v1beta/openai",
    )
    with pytest.raises(ValueError):
        provider_base_url(defaults, "custom", None)


def test_how_a_key_travels_and_how_a_refusal_names_it() -> None:
    assert auth_headers("openai", SecretStr(SECRET)) == {"Authorization": f"Bearer {SECRET}"}
    anthropic = auth_headers("anthropic", SecretStr(SECRET))
    assert anthropic["x-api-key"] == SECRET and anthropic["anthropic-version"]
    assert refused_message("Main", "openai") == "the key 'Main' was refused by openai"


def test_an_opened_key_never_shows_in_a_repr() -> None:
    usable = UsableKey(
        key_id=uuid4(),
        workspace_id=uuid4(),
        provider="openai",
        name="Main",
        base_url="https://api.openai.com/v1",
        upstream_model="gpt-4o",
        monthly_limit=Decimal(100),
        spent_this_month=Decimal(0),
        within_limit=True,
        key=SecretStr(SECRET),
    )
    assert SECRET not in repr(usable) and SECRET not in str(usable)
    assert not usable.guarded


def test_spend_is_the_usd_cost_at_the_rate_without_markup() -> None:
    with override_settings(usd_inr_rate=Decimal(85), credits_markup=Decimal("1.5")):
        assert spent_inr(get_settings(), Decimal("0.0123")) == Decimal("1.05")
        assert spent_inr(get_settings(), Decimal(-1)) == Decimal("0.00")


def test_spend_rounds_half_paise_up_as_the_key_choice_in_sql_does() -> None:
    # oneai_private.reply_key_for compares round(spend x rate, 2) (PostgreSQL: half away from zero) with the
    # limit; key_for and the shown spend must agree, or a key over its limit there has room here (and the
    # reply finds its key "changed": 503) at a spend of x.xx5.
    with override_settings(usd_inr_rate=Decimal(1)):
        assert spent_inr(get_settings(), Decimal("9.985")) == Decimal("9.99")
        assert spent_inr(get_settings(), Decimal("9.975")) == Decimal("9.98")
        assert spent_inr(get_settings(), Decimal("9.98499999")) == Decimal("9.98")
