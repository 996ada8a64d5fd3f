"""What a key's test makes of a provider's answer, against real servers on 127.0.0.1.

Google answers a key it does not accept with 400 INVALID_ARGUMENT, reason API_KEY_INVALID (not 401), on
its OpenAI-compatible endpoint too. A key's test must read that as the refusal it is: `ok` false, the key
named, `refused` (the route marks it invalid), while any other 400 of Google stays a plain failure (the
server plays Google's endpoint with the body Google sends, a JSON list). And a model list that quotes the
key (an endpoint echoing what it was sent) is answered without that id: the key is never returned."""

from __future__ import annotations

import json
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler
from typing import Any

import pytest
from pydantic import SecretStr

from oneai.config import get_settings
from oneai.provider_keys.upstream import google_refuses_key, try_key
from tests.json_endpoint import json_endpoint

pytestmark = pytest.mark.integration

GOOD_KEY = "AIzaSyGoodKeyForTheTest0123456789"
BAD_KEY = "AIzaSyBadKeyForTheTest98765432100"
# What Google's OpenAI-compatible endpoint answers for a key it does not accept.
GOOGLE_BAD_KEY_BODY = [
    {
        "error": {
            "code": 400,
            "message": "API key not valid. Please pass a valid API key.",
            "status": "INVALID_ARGUMENT",
            "details": [
                {
                    "@type": "type.googleapis.com/google.rpc.ErrorInfo",
                    "reason": "API_KEY_INVALID",
                    "domain": "googleapis.com",
                    "metadata": {"service": "generativelanguage.googleapis.com"},
                }
            ],
        }
    }
]
OTHER_400_BODY = [
    {"error": {"code": 400, "message": "Request contains an invalid argument.", "status": "INVALID_ARGUMENT"}}
]


@pytest.fixture
def google() -> Iterator[str]:
    """`GET /v1beta/openai/models`: the list for GOOD_KEY, Google's bad-key 400 for BAD_KEY, another 400
    for any other key."""

    def respond(request: BaseHTTPRequestHandler) -> tuple[int, Any]:
        auth = request.headers.get("authorization")
        if auth == f"Bearer {GOOD_KEY}":
            return 200, {"object": "list", "data": [{"id": "models/gemini-2.5-flash"}]}
        return 400, GOOGLE_BAD_KEY_BODY if auth == f"Bearer {BAD_KEY}" else OTHER_400_BODY

    with json_endpoint(respond) as origin:
        yield f"{origin}/v1beta/openai"


def test_googles_400_for_a_bad_key_is_a_refusal_naming_the_key(google: str) -> None:
    settings = get_settings().model_copy(update={"google_base_url": google})

    def check(key: str) -> Any:
        return try_key(settings, provider="google", name="Gemini", base_url=None, key=SecretStr(key))

    good = check(GOOD_KEY)
    assert (good.ok, good.models) == (True, ["models/gemini-2.5-flash"])
    bad = check(BAD_KEY)
    assert (bad.ok, bad.refused, bad.error) == (False, True, "the key 'Gemini' was refused by google")
    other = check("AIzaSyAnotherKeyWhoseCallIsBad000")
    assert (other.ok, other.refused, other.error) == (False, False, "google answered HTTP 400")


def test_only_googles_own_bad_key_answer_is_read_as_a_refusal() -> None:
    body = json.dumps(GOOGLE_BAD_KEY_BODY).encode()
    assert google_refuses_key("google", 400, body)
    assert not google_refuses_key("google", 400, json.dumps(OTHER_400_BODY).encode())
    assert not google_refuses_key("google", 500, body)
    assert not google_refuses_key("openai", 400, body)  # another provider's 400 says nothing of its key


@pytest.fixture
def echoing() -> Iterator[str]:
    """A custom endpoint that lists, among its models, one whose id quotes the Authorization it was sent."""

    def respond(request: BaseHTTPRequestHandler) -> tuple[int, Any]:
        echoed = str(request.headers.get("authorization"))
        return 200, {"object": "list", "data": [{"id": "llama3"}, {"id": f"debug: {echoed}"}]}

    with json_endpoint(respond) as origin:
        yield f"{origin}/v1"


def test_a_model_list_that_quotes_the_key_is_answered_without_it(echoing: str) -> None:
    settings = get_settings().model_copy(update={"allow_loopback_urls": True})
    tested = try_key(settings, provider="custom", name="Proxy", base_url=echoing, key=SecretStr(GOOD_KEY))
    assert (tested.ok, tested.models) == (True, ["llama3"])
