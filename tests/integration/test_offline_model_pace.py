"""The offline model of `make dev` (the fake OpenRouter without a script, at the dev pace) answers in well
under a second, too fast to try resuming or stopping a reply by hand; a message with the word "slowly"
gets a longer reply at a word a second."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator

import httpx
import pytest

from local.fake_openrouter import DEFAULT_DEV_DELAY, OFFLINE_MODEL_ID, FakeOpenRouter, offline_catalog

pytestmark = pytest.mark.timeout(60)


@pytest.fixture(scope="module")
def offline() -> Iterator[FakeOpenRouter]:
    with FakeOpenRouter(delay=DEFAULT_DEV_DELAY, catalog=offline_catalog()) as server:
        yield server


def content_times(offline: FakeOpenRouter, text: str, *, at_most: int) -> list[float]:
    """When each of the first `at_most` pieces of text of the streamed reply arrived (seconds from the request)."""
    started = time.monotonic()
    arrivals: list[float] = []
    body = {"model": OFFLINE_MODEL_ID, "stream": True, "messages": [{"role": "user", "content": text}]}
    with httpx.stream("POST", f"{offline.base_url}/chat/completions", json=body, timeout=30) as response:
        assert response.status_code == 200
        for line in response.iter_lines():
            if not line.startswith("data: {"):
                continue
            choices = json.loads(line.removeprefix("data: "))["choices"]
            if choices and choices[0]["delta"].get("content"):
                arrivals.append(time.monotonic() - started)
                if len(arrivals) == at_most:
                    break
    return arrivals


def test_an_ordinary_message_is_answered_within_a_second_or_two(offline: FakeOpenRouter) -> None:
    arrivals = content_times(offline, "Hello there", at_most=1000)
    assert arrivals[-1] < 2.0


@pytest.mark.parametrize("text", ["Tell me a story slowly", "SLOWLY, please."])
def test_a_message_with_the_word_slowly_is_answered_a_word_a_second(offline: FakeOpenRouter, text: str) -> None:
    arrivals = content_times(offline, text, at_most=4)
    assert len(arrivals) == 4
    assert arrivals[3] - arrivals[1] >= 1.8  # two words, a second each
