"""How each provider says that a workspace key it accepts belongs to an account with no funds or quota left
(oneai.provider_keys.upstream.key_has_no_funds), as its real error bodies say it, and what a keyed reply
makes of it (oneai.chatbots.payment): a 402 that is not retried, answered as 424 PROVIDER_KEY_REFUSED with
reason "no_funds" naming the key; a plain rate limit stays a rate limit."""

from __future__ import annotations

import json
from typing import Any

import anyio
import httpx
import pytest

from oneai.chatbots import payment
from oneai.config import get_settings
from oneai.errors import ProviderKeyRefusedError
from oneai.openrouter.client import OpenRouterClient
from oneai.openrouter.errors import AuthenticationError, InsufficientCreditsError, RateLimitError
from oneai.provider_keys.upstream import key_has_no_funds
from tests.unit.test_reply_payment_unit import SECRET, usable

# OpenRouter: the account's balance (or the key's own credit limit) cannot pay.
OPENROUTER_402 = {
    "error": {"code": 402, "message": "Insufficient credits. Add more using https://openrouter.ai/credits"}
}
OPENROUTER_402_AFFORD = {
    "error": {
        "code": 402,
        "message": "This request requires more credits, or fewer max_tokens. You requested up to 4096 tokens, "
        "but can only afford 1200. To increase, visit https://openrouter.ai/settings/credits",
    }
}
# OpenAI: the account's quota (prepaid credits, billing) is used up; a 429, like its rate limit.
OPENAI_NO_QUOTA = {
    "error": {
        "message": "You exceeded your current quota, please check your plan and billing details. For more "
        "information on this error, read the docs: https://platform.openai.com/docs/guides/error-codes/api-errors.",
        "type": "insufficient_quota",
        "param": None,
        "code": "insufficient_quota",
    }
}
OPENAI_RATE_LIMIT = {
    "error": {
        "message": "Rate limit reached for gpt-4o-mini in organization org-abc on requests per min (RPM): "
        "Limit 3, Used 3, Requested 1. Please try again in 20s.",
        "type": "requests",
        "param": None,
        "code": "rate_limit_exceeded",
    }
}
# Anthropic: a 400 (its OpenAI-compatible endpoint keeps OpenAI's `{"error": {...}}` shape; its own API
# wraps the same object in `{"type": "error", ...}`).
ANTHROPIC_LOW_BALANCE = {
    "type": "error",
    "error": {
        "type": "invalid_request_error",
        "message": "Your credit balance is too low to access the Anthropic API. Please go to Plans & Billing "
        "to upgrade or purchase credits.",
    },
}
ANTHROPIC_OTHER_400 = {"error": {"type": "invalid_request_error", "message": "max_tokens: Field required"}}
ANTHROPIC_RATE_LIMIT = {"error": {"type": "rate_limit_error", "message": "Number of request tokens has exceeded"}}
# Google (its OpenAI-compatible endpoint answers a list of one error object): the prepay balance is used up,
# or the project's plan has no quota at all for the model; its per-minute and per-day quotas, which say
# "check your plan and billing details" too, pass with time.
GOOGLE_PREPAY_DEPLETED = [
    {
        "error": {
            "code": 429,
            "message": "Your prepayment credits are depleted. Please go to AI Studio at "
            "https://ai.studio/projects to manage your project and billing.",
            "status": "RESOURCE_EXHAUSTED",
        }
    }
]


def google_quota(limit: int, metric: str = "generate_content_free_tier_requests") -> list[dict[str, Any]]:
    message = (
        "You exceeded your current quota, please check your plan and billing details. For more information on "
        "this error, head to: https://ai.google.dev/gemini-api/docs/rate-limits.\n* Quota exceeded for metric: "
        f"generativelanguage.googleapis.com/{metric}, limit: {limit}, model: gemini-2.5-pro\nPlease retry in 46s."
    )
    return [{"error": {"code": 429, "message": message, "status": "RESOURCE_EXHAUSTED"}}]


def body(payload: Any) -> bytes:
    return json.dumps(payload).encode()


@pytest.mark.parametrize(
    ("provider", "status", "payload", "expected"),
    [
        ("openrouter", 402, OPENROUTER_402, True),
        ("openrouter", 402, OPENROUTER_402_AFFORD, True),
        ("custom", 402, {"detail": "Payment Required"}, True),  # 402 is Payment Required wherever it comes from
        ("openai", 429, OPENAI_NO_QUOTA, True),
        ("custom", 429, OPENAI_NO_QUOTA, True),  # an OpenAI-compatible proxy passing OpenAI's code on
        ("openai", 429, OPENAI_RATE_LIMIT, False),
        ("openai", 429, {"error": {"message": "slow down", "code": ["insufficient_quota"]}}, False),
        ("openai", 400, OPENAI_NO_QUOTA, False),
        ("anthropic", 400, ANTHROPIC_LOW_BALANCE, True),
        ("anthropic", 400, {"error": ANTHROPIC_LOW_BALANCE["error"]}, True),
        ("anthropic", 400, ANTHROPIC_OTHER_400, False),
        ("anthropic", 429, ANTHROPIC_RATE_LIMIT, False),
        ("openai", 400, ANTHROPIC_LOW_BALANCE, False),  # another provider's 400 is a bad request
        ("google", 429, GOOGLE_PREPAY_DEPLETED, True),
        ("google", 429, GOOGLE_PREPAY_DEPLETED[0], True),
        ("google", 429, google_quota(0), True),
        ("google", 429, google_quota(5), False),
        ("google", 429, google_quota(20), False),
        ("google", 429, google_quota(250, "generate_content_free_tier_requests_per_day"), False),
        (
            "google",
            429,
            [{"error": {"code": 429, "message": "Resource has been exhausted (e.g. check quota)."}}],
            False,
        ),
        ("google", 503, GOOGLE_PREPAY_DEPLETED, False),
        ("openai", 429, GOOGLE_PREPAY_DEPLETED, False),
        ("openai", 500, OPENAI_NO_QUOTA, False),
    ],
)
def test_each_providers_no_funds_answer_is_told_from_its_other_errors(
    provider: str, status: int, payload: Any, expected: bool
) -> None:
    assert key_has_no_funds(provider, status, body(payload)) is expected


@pytest.mark.parametrize("raw", [b"", b"not json", b"\xff\xfe", b"[]", b"[1]", b'{"error": "insufficient_quota"}'])
def test_a_body_that_is_not_an_error_object_is_not_read_as_no_funds(raw: bytes) -> None:
    assert key_has_no_funds("openai", 429, raw) is False


def error_of(provider: str, status: int, payload: Any) -> Exception:
    """What a client at a `provider` key's endpoint makes of an error answer."""
    client = payment.KeyedClient(OpenRouterClient(get_settings()), usable(provider), httpx.AsyncClient())
    request = httpx.Request("POST", "https://api.example.test/v1/chat/completions")
    response = httpx.Response(status, content=body(payload), request=request)

    async def run() -> Exception:
        try:
            return await client.error_from_response(response)
        finally:
            await client.aclose()

    return anyio.run(run)


def test_a_keyed_client_makes_no_funds_a_402_that_is_not_retried_and_leaves_rate_limits_alone() -> None:
    for provider, status, payload in (
        ("openrouter", 402, OPENROUTER_402),
        ("openai", 429, OPENAI_NO_QUOTA),
        ("anthropic", 400, ANTHROPIC_LOW_BALANCE),
        ("google", 429, GOOGLE_PREPAY_DEPLETED),
    ):
        error = error_of(provider, status, payload)
        assert isinstance(error, InsufficientCreditsError) and error.status == 402, (provider, error)
        assert not error.retryable and payment.out_of_funds(error.status)
        assert "quota" not in str(error) and "credit balance" not in str(error)  # nothing of the body
    limited = error_of("openai", 429, OPENAI_RATE_LIMIT)
    assert isinstance(limited, RateLimitError) and limited.retryable and not payment.out_of_funds(limited.status)
    google_limited = error_of("google", 429, google_quota(5))
    assert isinstance(google_limited, RateLimitError)
    # Google's refusal of the key is still a refusal
    bad_key = [
        {"error": {"code": 400, "message": "API key not valid.", "details": [{"reason": "API_KEY_INVALID"}]}}
    ]
    assert isinstance(error_of("google", 400, bad_key), AuthenticationError)


def test_no_funds_is_a_424_naming_the_key_with_its_reason_and_a_refusal_says_refused() -> None:
    key = usable("openai")
    error = payment.key_out_of_funds(key)
    assert isinstance(error, ProviderKeyRefusedError) and (error.status, error.code) == (
        424,
        "PROVIDER_KEY_REFUSED",
    )
    assert error.details == {
        "provider_key_id": str(key.key_id),
        "provider": "openai",
        "name": "Prod",
        "reason": "no_funds",
    }
    assert error.message == (
        "The reply could not be made: the account of the key 'Prod' at openai has no funds or quota left. "
        "Top up the account at openai, or remove the key to use credits."
    )
    assert SECRET not in error.message
