"""The rate-limit policy and headers (draft-ietf-httpapi-ratelimit-headers-11), and the OpenAI error bodies
of `/v1`: pure functions, no network."""

from __future__ import annotations

import pytest

from oneai.config import override_settings
from oneai.errors import (
    BadRequestError,
    ForbiddenError,
    NotFoundError,
    OneAIError,
    QuotaExceededError,
    RateLimitedError,
    UnauthorizedError,
    UpstreamError,
    ValidationError,
)
from oneai.ratelimit import RateCheck, RateOutcome, RatePolicy, new_check, policy_for
from oneai.web.openai_errors import openai_error_body


def test_given_the_defaults_then_the_policies_are_those_of_the_api_contract() -> None:
    with override_settings() as settings:
        assert policy_for(settings, "all") == RatePolicy("all", 300, 60)
        assert policy_for(settings, "chat") == RatePolicy("chat", 20, 5)
    # A full bucket of 60 refills in 12 s at 300 a minute; 5 in 15 s at 20 a minute.
    assert RatePolicy("all", 300, 60).policy_header() == '"all";q=60;w=12'
    assert RatePolicy("chat", 20, 5).policy_header() == '"chat";q=5;w=15'


def test_given_the_limiter_is_off_then_requests_carry_no_check() -> None:
    with override_settings(rate_limit_enabled=False) as settings:
        assert new_check(settings, "all") is None and new_check(settings, "chat") is None


def test_given_an_admitted_request_then_ratelimit_says_what_is_left_and_no_retry_after() -> None:
    check = RateCheck(RatePolicy("all", 300, 60))
    assert check.headers() == {}  # not checked yet: nothing to say
    check.outcome = RateOutcome(admitted=True, remaining=57, reset_seconds=0.6, retry_after_seconds=0)
    assert check.headers() == {"RateLimit-Policy": '"all";q=60;w=12', "RateLimit": '"all";r=57;t=1'}


@pytest.mark.parametrize(("wait", "retry_after"), [(0.0, "1"), (0.2, "1"), (1.0, "1"), (1.01, "2"), (59.5, "60")])
def test_given_a_refusal_then_retry_after_is_whole_seconds_of_at_least_one(wait: float, retry_after: str) -> None:
    check = RateCheck(RatePolicy("chat", 20, 5))
    check.outcome = RateOutcome(admitted=False, remaining=0, reset_seconds=15.0, retry_after_seconds=wait)
    headers = check.headers()
    assert headers["Retry-After"] == retry_after
    assert headers["RateLimit"] == '"chat";r=0;t=15'


@pytest.mark.parametrize(
    ("error", "status", "kind", "code", "param"),
    [
        (UnauthorizedError(), 401, "invalid_request_error", "invalid_api_key", None),
        (ForbiddenError("no", details={"model": "m"}), 403, "permission_error", "model_not_in_plan", "model"),
        (ForbiddenError("This account is suspended"), 403, "permission_error", "account_suspended", None),
        (NotFoundError("no", details={"model": "m"}), 404, "invalid_request_error", "model_not_found", "model"),
        (RateLimitedError(), 429, "requests", "rate_limit_exceeded", None),
        (QuotaExceededError(), 429, "insufficient_quota", "insufficient_quota", None),
        # A field's error names it (tests/unit/test_openai_api_errors.py); one without a field, the body.
        (
            ValidationError("bad", details={"errors": [{"field": "", "message": "bad"}]}),
            400,
            "invalid_request_error",
            "invalid_value",
            None,
        ),
        (BadRequestError("not JSON"), 400, "invalid_request_error", None, None),
        (UpstreamError(), 502, "server_error", "upstream_error", None),
    ],
)
def test_given_a_domain_error_then_v1_answers_openais_body(
    error: OneAIError, status: int, kind: str, code: str | None, param: str | None
) -> None:
    assert openai_error_body(error) == (
        status,
        {"error": {"message": error.message, "type": kind, "param": param, "code": code}},
    )
