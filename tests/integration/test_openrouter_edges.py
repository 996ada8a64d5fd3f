"""Odd but legal answers of OpenRouter, against the fake over a real socket: a model list with an entry
that does not fit, and a stream whose body ends after the model finished but without `data: [DONE]`."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Iterator

import pytest

from local.fake_openrouter import FakeOpenRouter, ModelsReply, Reply
from oneai.logging import logger
from oneai.openrouter import OpenRouterClient
from tests.integration.test_openrouter_client import done, make_client, read_all, texts

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(15)]


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="module")
def upstream() -> Iterator[FakeOpenRouter]:
    with FakeOpenRouter(delay=0.0) as server:
        yield server


@pytest.fixture
async def openrouter(upstream: FakeOpenRouter) -> AsyncIterator[OpenRouterClient]:
    upstream.reset()
    async with make_client(upstream.base_url) as client:
        yield client
    upstream.reset()


async def test_a_model_entry_that_does_not_fit_is_skipped_and_the_rest_listed(
    upstream: FakeOpenRouter, openrouter: OpenRouterClient, caplog: pytest.LogCaptureFixture
) -> None:
    good = {"id": "good/model", "name": "Good", "context_length": 4096, "pricing": {"prompt": "0.000001"}}
    upstream.script_models(ModelsReply([good, {"name": "an entry without an id"}, {"id": ["not", "a", "string"]}]))
    with caplog.at_level(logging.WARNING, logger=logger.name):
        models = await openrouter.list_models()
    assert [model.id for model in models] == ["good/model"]
    assert [r.getMessage() for r in caplog.records].count("Skipping a model entry that does not validate") == 2


async def test_a_stream_that_finished_but_lacks_the_done_line_is_a_complete_reply(
    upstream: FakeOpenRouter, openrouter: OpenRouterClient
) -> None:
    upstream.script(Reply(chunks=["Hel", "lo"], send_done=False))
    events = await read_all(openrouter)
    assert texts(events) == ["Hel", "lo"]
    result = done(events).result
    assert result.text == "Hello"
    assert result.finish_reason == "stop"
