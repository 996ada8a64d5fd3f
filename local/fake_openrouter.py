"""A fake OpenRouter that speaks its real wire protocol over a real socket (tests and offline `make dev`).

Routes (under any prefix, normally `/api/v1`):
- `POST .../chat/completions`, `stream` true or false. Streams look like OpenRouter's: `X-Generation-Id`
  header, `: OPENROUTER PROCESSING` comments, `chat.completion.chunk` chunks with `id`, `created`, the
  served `model`, `choices[0].delta.content`, a chunk with `finish_reason`, then a last chunk with
  `choices: []` and only `usage` (tokens and `cost`), then `data: [DONE]`. Errors before the stream are
  `{"error": {"code", "message", "metadata"}}` with that status; errors after it are a chunk with `error`
  and `finish_reason: "error"` under HTTP 200.
- `GET .../models`: a small, realistic catalog, including `openrouter/auto` (prices "-1"), an image model,
  and `oneai/offline`, named as offline.
- `GET .../generation?id=`: tokens and cost of a generation served here.
- `POST .../embeddings`: `{"model", "input": str | [str], "dimensions"?, "encoding_format"?}` answered like
  OpenRouter: `{"id": "embd-...", "object": "list", "model", "data": [{"object": "embedding", "index",
  "embedding"}], "usage": {"prompt_tokens", "total_tokens", "cost"}}`, the vectors being the offline
  embedding (`oneai.knowledge.offline_embedding`) of each input; tests script faults with
  `fake.script_embeddings(Status(429, retry_after=1), EmbeddingsReply(dimensions=1024), Hang(), Drop())`.

Without a script every chat request gets the offline reply: a deterministic text derived from the last
user message, labelled as offline, streamed word by word with a small delay (a word a second when the
message has the word "slowly"). Tests script the next
requests: `fake.script(Reply(...), Status(429, retry_after=1), ...)`. Every request is recorded (body and
headers) with, for streams, when the response finished or when the client went away (`disconnected_at`,
`time.monotonic()`), watched by a concurrent ASGI `receive()` so a disconnect is seen at once.

    with FakeOpenRouter() as fake:            # uvicorn in a background thread on 127.0.0.1:<free port>
        fake.script(Reply(chunks=["Hel", "lo"], served_model="x/y"))
        ... OpenRouterClient(settings with openrouter_base_url=fake.base_url) ...

`python -m local.fake_openrouter --port 8089` serves it standalone; `create_app()` gives the ASGI app.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import hashlib
import itertools
import json
import re
import secrets
import threading
import time
from collections import deque
from collections.abc import Awaitable, Callable, Iterable, Mapping, MutableMapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any
from urllib.parse import parse_qs

import anyio
import httpx
import uvicorn

from local.png import png_size, solid_png
from local.threaded_server import FakeUpstream, ThreadedServer

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

OFFLINE_MODEL_ID = "oneai/offline"
KEEPALIVE_COMMENT = "OPENROUTER PROCESSING"
DEFAULT_DEV_DELAY = 0.03
# A last user message with the word "slowly" gets a longer offline reply at a word a second (about a minute):
# time enough to try resuming and stopping a reply by hand under `make dev`.
SLOW_WORD = "slowly"
SLOW_WORD_SECONDS = 1.0
SLOW_REPLY_COUNT = 40
_PROVIDER = "OneAI Fake"

# ---------------------------------------------------------------------------------------------------
# Scenarios: what the next chat requests get.


@dataclass(frozen=True)
class Reply:
    """A normal reply. `chunks=None`: the offline text for the last user message, split into words.
    `served_model=None`: the requested model (first of `models` when given). `usage=None`: computed from
    word counts and catalog prices; `include_usage=False` sends no usage chunk. `delay` is the pause
    between chunks (None: the server's default); `keepalives_before` comments precede the first chunk."""

    chunks: Sequence[str] | None = None
    served_model: str | None = None
    usage: Mapping[str, Any] | None = None
    include_usage: bool = True
    keepalives_before: int = 0
    delay: float | None = None
    finish_reason: str = "stop"
    generation_id: str | None = None
    generation_header: bool = True
    send_done: bool = True
    # Images the reply carries (data URLs) in `delta.images` after its text. None: one generated PNG when
    # the request asks for `modalities` with "image" (an image model), none otherwise.
    images: Sequence[str] | None = None


@dataclass(frozen=True)
class Status:
    """An HTTP error before any stream: `{"error": {"code": status, "message", "metadata"}}`, or `body` as it
    is (another provider's error, e.g. OpenAI's `{"error": {"message", "type", "param", "code"}}`)."""

    status: int
    message: str | None = None
    retry_after: float | str | None = None
    metadata: Mapping[str, Any] | None = None
    body: Any = None


@dataclass(frozen=True)
class MidStreamError:
    """HTTP 200, `after_chunks` of text, then an `error` chunk with `finish_reason: "error"`; the stream
    ends there (no `[DONE]`). With `after_chunks=()` it is an error before the first token."""

    after_chunks: Sequence[str] = ()
    code: int | str = 502
    message: str = "provider failed"
    metadata: Mapping[str, Any] | None = None
    served_model: str | None = None
    usage: Mapping[str, Any] | None = None
    delay: float | None = None


@dataclass(frozen=True)
class Hang:
    """Never a token. `before_first_token=True`: 200 and headers are sent (and a comment every
    `keepalive_interval` seconds when set); False: not even the response headers."""

    before_first_token: bool = True
    keepalive_interval: float | None = None


@dataclass(frozen=True)
class Stall:
    """Sends `after_chunks`, then goes silent (or only comments) until the client leaves."""

    after_chunks: Sequence[str] = ("Hel",)
    keepalive_interval: float | None = None
    served_model: str | None = None


@dataclass(frozen=True)
class Infinite:
    """Streams `chunk` every `interval` seconds until the client goes away."""

    chunk: str = "word "
    interval: float = 0.05
    served_model: str | None = None


@dataclass(frozen=True)
class Drop:
    """Sends `after_chunks`, then breaks the connection without finishing the body (a network failure).
    uvicorn logs the deliberate exception that does it."""

    after_chunks: Sequence[str] = ()
    served_model: str | None = None
    # Images (data URLs) sent after the chunks, before the connection breaks.
    after_images: Sequence[str] = ()


class _Stopping(Exception):
    """The server is stopping: an endless scenario ends its response."""


_STOP_POLL_SECONDS = 0.05


class DroppedConnection(Exception):
    """Raised inside the app to make uvicorn cut the connection mid-body."""


Scenario = Reply | Status | MidStreamError | Hang | Stall | Infinite | Drop


@dataclass(frozen=True)
class EmbeddingsReply:
    """A scripted `POST /embeddings` answer: the offline vectors, sent after `delay` seconds, with
    `dimensions` (None: what the request asked, else 1536) and in reverse `data` order when `reverse` (the
    API does not promise the input's order); `drop_last` leaves the last input's vector out; `usage`
    replaces the computed usage (an empty mapping: none sent)."""

    delay: float = 0.0
    dimensions: int | None = None
    reverse: bool = False
    drop_last: bool = False
    usage: Mapping[str, Any] | None = None


EmbeddingsScenario = EmbeddingsReply | Status | Hang | Drop
# What the embedding models cost per input token (OpenRouter's prices); other models are refused with a 400.
EMBEDDING_PRICES = {
    "openai/text-embedding-3-small": Decimal("0.00000002"),
    "openai/text-embedding-3-large": Decimal("0.00000013"),
    OFFLINE_MODEL_ID: Decimal(0),
}


@dataclass(frozen=True)
class ModelsReply:
    """A scripted `GET /models` answer: these entries instead of the catalog (None: the catalog), sent
    after `delay` seconds (a slow OpenRouter)."""

    models: Sequence[Mapping[str, Any]] | None = None
    delay: float = 0.0


ModelsScenario = ModelsReply | Status


# ---------------------------------------------------------------------------------------------------
# The catalog


def _model(
    model_id: str,
    name: str,
    *,
    context: int,
    prompt: str,
    completion: str,
    inputs: Sequence[str] = ("text",),
    outputs: Sequence[str] = ("text",),
    description: str = "",
    image: str = "0",
) -> dict[str, Any]:
    return {
        "id": model_id,
        "canonical_slug": model_id,
        "name": name,
        "created": 1_720_000_000,
        "description": description or name,
        "context_length": context,
        "architecture": {
            "modality": f"{'+'.join(inputs)}->{'+'.join(outputs)}",
            "input_modalities": list(inputs),
            "output_modalities": list(outputs),
            "tokenizer": "Other",
            "instruct_type": None,
        },
        "pricing": {
            "prompt": prompt,
            "completion": completion,
            "request": "0",
            "image": image,
            "web_search": "0",
            "internal_reasoning": "0",
        },
        "top_provider": {"context_length": context, "max_completion_tokens": None, "is_moderated": False},
        "per_request_limits": None,
        "supported_parameters": ["max_tokens", "temperature", "stop"],
    }


def default_catalog() -> list[dict[str, Any]]:
    return [
        _model(
            OFFLINE_MODEL_ID,
            "OneAI Offline (local replies, no OpenRouter key)",
            context=32_768,
            prompt="0",
            completion="0",
            description="Offline development model: deterministic replies, served locally without OpenRouter.",
            inputs=("text", "image"),
        ),
        _model(
            "openai/gpt-4o-mini",
            "OpenAI: GPT-4o-mini",
            context=128_000,
            prompt="0.00000015",
            completion="0.0000006",
            inputs=("text", "image", "file"),
        ),
        _model(
            "anthropic/claude-3.5-haiku",
            "Anthropic: Claude 3.5 Haiku",
            context=200_000,
            prompt="0.0000008",
            completion="0.000004",
            inputs=("text", "image"),
        ),
        _model(
            "anthropic/claude-sonnet-4",
            "Anthropic: Claude Sonnet 4",
            context=200_000,
            prompt="0.000003",
            completion="0.000015",
            inputs=("text", "image", "file"),
        ),
        _model(
            "google/gemini-2.5-flash-image-preview",
            "Google: Gemini 2.5 Flash Image Preview",
            context=32_768,
            prompt="0.0000003",
            completion="0.0000025",
            inputs=("image", "text"),
            outputs=("image", "text"),
            image="0.001238",
        ),
        _model(
            "meta-llama/llama-3.3-70b-instruct",
            "Meta: Llama 3.3 70B Instruct",
            context=131_072,
            prompt="0.00000013",
            completion="0.0000004",
        ),
        _model("openrouter/auto", "Auto Router", context=2_000_000, prompt="-1", completion="-1"),
    ]


OFFLINE_STAND_IN = " (offline stand-in)"


def offline_catalog() -> list[dict[str, Any]]:
    """What `make dev` offers without an OpenRouter key: every model OneAI offers, each answered locally
    with the offline reply and named as an offline stand-in (the realistic catalog's prices and windows
    where it has the model, so costs and quotas behave as they would), so every quota key can be used."""
    from oneai.chat.offered_models import OFFERED_MODELS  # the layer; local/ runs with it on the path

    known = {entry["id"]: entry for entry in default_catalog()}
    catalog = []
    for offered in OFFERED_MODELS:
        entry = known.get(offered.model_id)
        if entry is None:
            image_model = offered.quota_key == "image_generation"
            entry = _model(
                offered.model_id,
                offered.model_id,
                context=128_000,
                prompt="0.000001",
                completion="0.000002",
                inputs=("text", "image") if image_model else ("text",),
                outputs=("image", "text") if image_model else ("text",),
            )
        else:
            entry = json.loads(json.dumps(entry))  # a copy: the default catalog stays as it is
        if entry["id"] != OFFLINE_MODEL_ID:
            entry["name"] = f"{entry['name']}{OFFLINE_STAND_IN}"
            entry["description"] = f"Offline stand-in for {offered.model_id}: deterministic local replies."
        catalog.append(entry)
    return catalog


# ---------------------------------------------------------------------------------------------------
# Records and shared state (the app runs in the server thread; tests read from theirs)


@dataclass
class RecordedRequest:
    method: str
    path: str
    headers: dict[str, str]
    body: Any
    scenario: str
    received_at: float
    stream: bool = False
    status: int | None = None
    finished_at: float | None = None
    disconnected_at: float | None = None
    generation_id: str | None = None

    @property
    def disconnected(self) -> bool:
        """The client went away before the response ended."""
        return self.disconnected_at is not None


@dataclass
class FakeState:
    delay: float = DEFAULT_DEV_DELAY
    catalog: list[dict[str, Any]] = field(default_factory=default_catalog)
    # (model, scenario): a scenario for one requested model only, or for any (None).
    scenarios: deque[tuple[str | None, Scenario]] = field(default_factory=deque)
    models_scenarios: deque[ModelsScenario] = field(default_factory=deque)
    embeddings_scenarios: deque[EmbeddingsScenario] = field(default_factory=deque)
    requests: list[RecordedRequest] = field(default_factory=list)
    generations: dict[str, dict[str, Any]] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)
    # Set when the server stops: endless scenarios end their responses so shutdown is quick and quiet.
    stopping: threading.Event = field(default_factory=threading.Event)

    def next_scenario(self, model: str | None = None) -> Scenario | None:
        with self.lock:
            for index, (for_model, scenario) in enumerate(self.scenarios):
                if for_model is None or for_model == model:
                    del self.scenarios[index]
                    return scenario
            return None

    def next_models_scenario(self) -> ModelsScenario | None:
        with self.lock:
            return self.models_scenarios.popleft() if self.models_scenarios else None

    def next_embeddings_scenario(self) -> EmbeddingsScenario | None:
        with self.lock:
            return self.embeddings_scenarios.popleft() if self.embeddings_scenarios else None

    def record(self, request: RecordedRequest) -> RecordedRequest:
        with self.lock:
            self.requests.append(request)
        return request

    def price(self, model_id: str) -> tuple[Decimal, Decimal]:
        for entry in self.catalog:
            if entry.get("id") == model_id:
                pricing = entry.get("pricing") or {}
                return _price(pricing.get("prompt")), _price(pricing.get("completion"))
        return Decimal(0), Decimal(0)

    def known_model(self, model_id: str) -> bool:
        return any(entry.get("id") == model_id for entry in self.catalog)


def _price(value: object) -> Decimal:
    try:
        price = Decimal(str(value))
    except (InvalidOperation, ValueError):
        return Decimal(0)
    return price if price.is_finite() and price > 0 else Decimal(0)


# ---------------------------------------------------------------------------------------------------
# The ASGI app

_generation_counter = itertools.count(1)


def _new_generation_id() -> str:
    return f"gen-{int(time.time())}-{next(_generation_counter):04d}{secrets.token_hex(6)}"


def _last_user_text(messages: object) -> str:
    if not isinstance(messages, list):
        return ""
    for message in reversed(messages):
        if isinstance(message, dict) and message.get("role") == "user":
            content = message.get("content")
            if isinstance(content, str):
                return content
            if isinstance(content, list):  # content parts
                return " ".join(
                    str(part.get("text", ""))
                    for part in content
                    if isinstance(part, dict) and part.get("type") == "text"
                )
    return ""


def last_user_image_urls(messages: object) -> list[str]:
    """The `image_url` URLs of the last user message's content parts (data: or https: URLs)."""
    if not isinstance(messages, list):
        return []
    for message in reversed(messages):
        if isinstance(message, dict) and message.get("role") == "user":
            content = message.get("content")
            if not isinstance(content, list):
                return []
            return [
                str(part["image_url"]["url"])
                for part in content
                if isinstance(part, dict)
                and part.get("type") == "image_url"
                and isinstance(part.get("image_url"), dict)
                and part["image_url"].get("url")
            ]
    return []


def describe_image(data: bytes) -> str:
    """What the offline model "sees": the image's type, pixel size when it is a PNG, and byte count."""
    media_type = next((t for signature, t in _SIGNATURES if data.startswith(signature)), "not an image")
    size = png_size(data)
    pixels = f" of {size[0]}×{size[1]} pixels" if size else ""
    return f"{media_type}{pixels} ({len(data)} bytes)"


_SIGNATURES = ((b"\x89PNG\r\n\x1a\n", "image/png"), (b"\xff\xd8\xff", "image/jpeg"), (b"GIF8", "image/gif"))


async def describe_images(urls: Sequence[str]) -> list[str]:
    """One description per image: a data: URL is decoded, any other URL is fetched (as a provider does
    with a presigned link), so a link that does not serve the image shows up in the reply."""
    notes: list[str] = []
    async with httpx.AsyncClient(timeout=5) as http:
        for url in urls:
            if url.startswith("data:"):
                try:
                    notes.append(describe_image(base64.b64decode(url.partition(",")[2])))
                except ValueError:
                    notes.append("an unreadable data: URL")
                continue
            try:
                response = await http.get(url)
            except httpx.HTTPError as exc:
                notes.append(f"a link that could not be fetched ({type(exc).__name__})")
                continue
            if response.status_code != 200:
                notes.append(f"a link that answered HTTP {response.status_code}")
            else:
                notes.append(describe_image(response.content))
    return notes


def asks_slowly(messages: object) -> bool:
    """Whether the last user message has the word "slowly" (any case, punctuation around it ignored)."""
    return any(word.strip(".,;:!?\"'()").lower() == SLOW_WORD for word in _last_user_text(messages).split())


def offline_reply(messages: object, image_notes: Sequence[str] = ()) -> str:
    """The deterministic offline answer to a conversation (derived from its last user message and the
    descriptions of the images it carries)."""
    words = _last_user_text(messages).split()
    seen = "".join(f" I received an image: {note}." for note in image_notes)
    if asks_slowly(messages):
        count = " ".join(str(number) for number in range(1, SLOW_REPLY_COUNT + 1))
        return "[offline] Answering slowly, a word a second, so you can resume or stop this reply: " + count + seen
    if not words:
        return "[offline] Hello from OneAI's offline model. No OpenRouter key is set, so replies are local." + seen
    quoted = " ".join(words[:24]) + (" …" if len(words) > 24 else "")
    plural = "" if len(words) == 1 else "s"
    return (
        f"[offline] This reply comes from OneAI's offline model because no OpenRouter key is set. "
        f"You wrote {len(words)} word{plural}: “{quoted}”." + seen
    )


def generated_image(prompt: str) -> str:
    """The offline image model's picture: a 64×64 PNG whose colour comes from the prompt, as a data URL."""
    digest = hashlib.sha256(prompt.encode()).digest()
    png = solid_png(64, 64, (digest[0], digest[1], digest[2]))
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def split_words(text: str) -> list[str]:
    """Word chunks that join back to `text` exactly."""
    return re.findall(r"\S+\s*|\s+", text)


def _count_words(messages: object) -> int:
    total = 0
    if isinstance(messages, list):
        for message in messages:
            if isinstance(message, dict):
                content = message.get("content")
                text = content if isinstance(content, str) else _last_user_text([message])
                total += len(text.split()) + 4  # a few tokens of framing per message
    return total


class FakeOpenRouterApp:
    """The raw ASGI app (no framework, so disconnects and chunk boundaries are under control)."""

    def __init__(self, state: FakeState) -> None:
        self.state = state

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await _lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        path: str = scope.get("path", "")
        root: str = scope.get("root_path", "") or ""
        if root and path.startswith(root):
            path = path[len(root) :]
        path = path.rstrip("/")
        method: str = scope.get("method", "GET")
        if path.endswith("/chat/completions") and method == "POST":
            await self._chat(scope, receive, send)
        elif path.endswith("/models") and method == "GET":
            await self._models(scope, receive, send)
        elif path.endswith("/embeddings") and method == "POST":
            await self._embeddings(scope, receive, send)
        elif path.endswith("/generation") and method == "GET":
            await self._generation(scope, send)
        else:
            await _json(send, 404, _error_body(404, "Not Found"))

    # -- /models --------------------------------------------------------------------------------------

    async def _models(self, scope: Scope, receive: Receive, send: Send) -> None:
        record = self.state.record(
            RecordedRequest("GET", scope["path"], _headers(scope), None, "models", time.monotonic())
        )
        scenario = self.state.next_models_scenario()
        if isinstance(scenario, Status):
            record.status = scenario.status
            await _status_response(send, scenario)
        else:
            models = self.state.catalog
            if isinstance(scenario, ModelsReply):
                await anyio.sleep(scenario.delay)
                models = self.state.catalog if scenario.models is None else list(scenario.models)
            record.status = 200
            await _json(send, 200, {"data": models})
        record.finished_at = time.monotonic()

    async def _generation(self, scope: Scope, send: Send) -> None:
        query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
        generation_id = (query.get("id") or [""])[0]
        with self.state.lock:
            data = self.state.generations.get(generation_id)
        if data is None:
            await _json(send, 404, _error_body(404, f"Generation {generation_id} not found"))
        else:
            await _json(send, 200, {"data": data})

    # -- /embeddings --------------------------------------------------------------------------------

    async def _embeddings(self, scope: Scope, receive: Receive, send: Send) -> None:
        body = await _read_json(receive)
        headers = _headers(scope)
        scenario: EmbeddingsScenario | None = self.state.next_embeddings_scenario()
        record = self.state.record(_posted(scope, headers, body, scenario))
        inputs = _embedding_inputs(body)
        if _unauthorized(headers):
            scenario = Status(401, "No auth credentials found")
        elif inputs is None:
            scenario = Status(400, 'Input required: specify "input" as a non-empty string or strings')
        elif scenario is None:
            model = body.get("model")
            if model not in EMBEDDING_PRICES:
                scenario = Status(400, f"{model} is not a valid embedding model ID")
            else:
                scenario = EmbeddingsReply()
        if isinstance(scenario, Status):
            record.status = scenario.status
            await _status_response(send, scenario)
        elif isinstance(scenario, Drop):
            raise DroppedConnection("connection dropped on purpose by the fake OpenRouter")
        elif isinstance(scenario, Hang):
            exchange = _Exchange(self.state, record, body, receive, send)
            await exchange._watch_only()  # nothing until the client gives up
            return
        else:
            assert inputs is not None
            await anyio.sleep(scenario.delay)
            record.status = 200
            await _json(send, 200, _embeddings_payload(body, inputs, scenario))
        record.finished_at = time.monotonic()

    # -- /chat/completions --------------------------------------------------------------------------

    async def _chat(self, scope: Scope, receive: Receive, send: Send) -> None:
        body = await _read_json(receive)
        headers = _headers(scope)
        scenario = self.state.next_scenario(_requested_model(body) if isinstance(body, dict) else None)
        stream = isinstance(body, dict) and body.get("stream") is True
        record = self.state.record(_posted(scope, headers, body, scenario, stream=stream))
        if _unauthorized(headers):
            scenario = Status(401, "No auth credentials found")
        elif not isinstance(body, dict) or not isinstance(body.get("messages"), list) or not body["messages"]:
            scenario = Status(400, 'Input required: specify "messages"')
        elif scenario is None:
            requested = _requested_model(body)
            if not self.state.known_model(requested):
                scenario = Status(400, f"{requested} is not a valid model ID")
            else:
                scenario = Reply(
                    keepalives_before=1, delay=SLOW_WORD_SECONDS if asks_slowly(body["messages"]) else None
                )
        if isinstance(scenario, Status):
            record.status = scenario.status
            await _status_response(send, scenario)
            record.finished_at = time.monotonic()
            return
        record.status = 200
        image_urls = last_user_image_urls(body.get("messages"))
        notes = await describe_images(image_urls) if image_urls else []
        exchange = _Exchange(self.state, record, body, receive, send, image_notes=notes)
        if stream:
            await exchange.stream(scenario)
        else:
            await exchange.complete(scenario)


async def _read_json(receive: Receive) -> Any:
    """The request body parsed as JSON (None when it is not JSON)."""
    try:
        return json.loads(await _read_body(receive) or b"null")
    except ValueError:
        return None


def _posted(
    scope: Scope, headers: dict[str, str], body: Any, scenario: object | None, *, stream: bool = False
) -> RecordedRequest:
    """The record of a POST, named after the scenario that answers it ("offline": none was scripted)."""
    label = type(scenario).__name__ if scenario is not None else "offline"
    return RecordedRequest("POST", scope["path"], headers, body, label, time.monotonic(), stream=stream)


def _unauthorized(headers: Mapping[str, str]) -> bool:
    """An Authorization header that is not a bearer token (none at all is let through, as offline)."""
    authorization = headers.get("authorization")
    return authorization is not None and not authorization.startswith("Bearer ")


def _embedding_inputs(body: object) -> list[str] | None:
    """The texts of an embeddings request (a string or a list of strings; none empty), else None."""
    if not isinstance(body, dict):
        return None
    value = body.get("input")
    texts = [value] if isinstance(value, str) else value
    if not isinstance(texts, list) or not texts or not all(isinstance(t, str) and t for t in texts):
        return None
    return texts


def _embeddings_payload(body: Mapping[str, Any], inputs: Sequence[str], reply: EmbeddingsReply) -> dict[str, Any]:
    from oneai.knowledge.offline_embedding import EMBEDDING_DIMENSIONS, offline_embedding

    asked = body.get("dimensions")
    dimensions = reply.dimensions or (asked if isinstance(asked, int) and asked > 0 else EMBEDDING_DIMENSIONS)
    data = [
        {"object": "embedding", "index": index, "embedding": offline_embedding(text, dimensions)}
        for index, text in enumerate(inputs)
    ]
    if reply.drop_last:
        data.pop()
    if reply.reverse:
        data.reverse()
    model = str(body.get("model"))
    # About four characters a token, as the real tokenizers average on English text.
    tokens = sum(max(1, len(text) // 4) for text in inputs)
    usage = (
        dict(reply.usage)
        if reply.usage is not None
        else {
            "prompt_tokens": tokens,
            "total_tokens": tokens,
            "cost": float(EMBEDDING_PRICES.get(model, Decimal(0)) * tokens),
        }
    )
    payload: dict[str, Any] = {
        "id": f"embd-{int(time.time())}-{secrets.token_hex(6)}",
        "object": "list",
        "model": model,
        "provider": _PROVIDER,
        "data": data,
    }
    if usage:
        payload["usage"] = usage
    return payload


class _Exchange:
    """One chat request being answered."""

    def __init__(
        self,
        state: FakeState,
        record: RecordedRequest,
        body: dict[str, Any],
        receive: Receive,
        send: Send,
        *,
        image_notes: Sequence[str] = (),
    ) -> None:
        self.image_notes = list(image_notes)
        self.state = state
        self.record = record
        self.body = body
        self.receive = receive
        self.send = send
        self.created = int(time.time())
        self.generation_id = _new_generation_id()
        record.generation_id = self.generation_id

    def images_of(self, reply: Reply) -> list[str]:
        if reply.images is not None:
            return list(reply.images)
        modalities = self.body.get("modalities")
        if isinstance(modalities, list) and "image" in modalities:
            return [generated_image(_last_user_text(self.body.get("messages")))]
        return []

    def served_model(self, override: str | None) -> str:
        if override:
            return override
        requested = _requested_model(self.body)
        return OFFLINE_MODEL_ID if requested == "openrouter/auto" else requested

    def usage(self, model: str, text: str, override: Mapping[str, Any] | None) -> dict[str, Any]:
        if override is not None:
            return dict(override)
        prompt_tokens = _count_words(self.body.get("messages"))
        completion_tokens = len(text.split())
        prompt_price, completion_price = self.state.price(model)
        cost = prompt_price * prompt_tokens + completion_price * completion_tokens
        return {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
            "cost": float(cost),
            "is_byok": False,
            "prompt_tokens_details": {"cached_tokens": 0},
            "completion_tokens_details": {"reasoning_tokens": 0},
        }

    def remember(self, model: str, usage: Mapping[str, Any] | None, *, streamed: bool) -> None:
        usage = usage or {}
        with self.state.lock:
            self.state.generations[self.generation_id] = {
                "id": self.generation_id,
                "model": model,
                "streamed": streamed,
                "created_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(self.created)),
                "tokens_prompt": usage.get("prompt_tokens"),
                "tokens_completion": usage.get("completion_tokens"),
                "total_cost": usage.get("cost", 0),
                "provider_name": _PROVIDER,
            }

    def chunk(
        self,
        model: str,
        *,
        content: str | None = "",
        finish_reason: str | None = None,
        choices: bool = True,
        usage: Mapping[str, Any] | None = None,
        error: Mapping[str, Any] | None = None,
        images: Sequence[str] = (),
    ) -> dict[str, Any]:
        payload: dict[str, Any] = {
            "id": self.generation_id,
            "provider": _PROVIDER,
            "model": model,
            "object": "chat.completion.chunk",
            "created": self.created,
            "choices": [],
        }
        if choices:
            payload["choices"] = [
                {
                    "index": 0,
                    "delta": {"role": "assistant", "content": content},
                    "finish_reason": finish_reason,
                    "native_finish_reason": finish_reason,
                    "logprobs": None,
                }
            ]
        if images and payload["choices"]:
            payload["choices"][0]["delta"]["images"] = [
                {"type": "image_url", "image_url": {"url": url}, "index": index}
                for index, url in enumerate(images)
            ]
        if error is not None:
            payload["error"] = dict(error)
        if usage is not None:
            payload["usage"] = dict(usage)
        return payload

    # -- streaming ----------------------------------------------------------------------------------

    async def start_stream(self, *, generation_header: bool = True) -> None:
        headers = [
            (b"content-type", b"text/event-stream"),
            (b"cache-control", b"no-cache"),
            (b"x-accel-buffering", b"no"),
        ]
        if generation_header:
            headers.append((b"x-generation-id", self.generation_id.encode()))
        await self.send({"type": "http.response.start", "status": 200, "headers": headers})

    async def write(self, data: bytes) -> None:
        await self.send({"type": "http.response.body", "body": data, "more_body": True})

    async def comment(self, text: str = KEEPALIVE_COMMENT) -> None:
        await self.write(f": {text}\n\n".encode())

    async def event(self, payload: Mapping[str, Any] | str) -> None:
        data = (
            payload if isinstance(payload, str) else json.dumps(payload, ensure_ascii=False, separators=(",", ":"))
        )
        await self.write(f"data: {data}\n\n".encode())

    async def stream(self, scenario: Scenario) -> None:
        """Run `scenario` while a concurrent receive() watches for the client going away."""
        if isinstance(scenario, Hang) and not scenario.before_first_token:
            await self._watch_only()
            return
        await self.start_stream(generation_header=not isinstance(scenario, Reply) or scenario.generation_header)
        async with anyio.create_task_group() as group:

            async def watch() -> None:
                while True:
                    message = await self.receive()
                    if message["type"] == "http.disconnect":
                        if self.record.finished_at is None:
                            self.record.disconnected_at = time.monotonic()
                        group.cancel_scope.cancel()
                        return

            group.start_soon(watch)
            with contextlib.suppress(_Stopping):
                await self._play(scenario)
            # Recorded before the closing send: a client that stops reading at [DONE] may return (and
            # its test look) before that send does.
            self.record.finished_at = time.monotonic()
            await self.send({"type": "http.response.body", "body": b"", "more_body": False})
            group.cancel_scope.cancel()

    async def _watch_only(self) -> None:
        """Send nothing until the client goes away (or the server stops: then a 503)."""
        while not self.state.stopping.is_set():
            with anyio.move_on_after(_STOP_POLL_SECONDS):
                message = await self.receive()
                if message["type"] == "http.disconnect":
                    self.record.disconnected_at = time.monotonic()
                    return
        await _json(self.send, 503, _error_body(503, "The fake OpenRouter is shutting down"))
        self.record.finished_at = time.monotonic()

    async def _sleep(self, seconds: float) -> None:
        """Sleep, waking up early when the server stops (raises _Stopping then)."""
        deadline = time.monotonic() + seconds
        while (remaining := deadline - time.monotonic()) > 0:
            if self.state.stopping.is_set():
                raise _Stopping
            await anyio.sleep(min(remaining, _STOP_POLL_SECONDS))

    async def _pause(self, delay: float | None) -> None:
        seconds = self.state.delay if delay is None else delay
        if seconds > 0:
            await anyio.sleep(seconds)

    async def _play(self, scenario: Scenario) -> None:
        if isinstance(scenario, Reply):
            await self._play_reply(scenario)
        elif isinstance(scenario, MidStreamError):
            model = self.served_model(scenario.served_model)
            for index, text in enumerate(scenario.after_chunks):
                if index:
                    await self._pause(scenario.delay)
                await self.event(self.chunk(model, content=text))
            error: dict[str, Any] = {"code": scenario.code, "message": scenario.message}
            if scenario.metadata is not None:
                error["metadata"] = dict(scenario.metadata)
            await self.event(
                self.chunk(model, content="", finish_reason="error", error=error, usage=scenario.usage)
            )
            self.remember(model, scenario.usage, streamed=True)
        elif isinstance(scenario, Hang):
            await self._silence(scenario.keepalive_interval)
        elif isinstance(scenario, Stall):
            model = self.served_model(scenario.served_model)
            for text in scenario.after_chunks:
                await self.event(self.chunk(model, content=text))
            await self._silence(scenario.keepalive_interval)
        elif isinstance(scenario, Drop):
            model = self.served_model(scenario.served_model)
            await self._send_then_images(model, scenario.after_chunks, scenario.after_images)
            await anyio.sleep(0.01)  # let the chunks leave before the connection is cut
            raise DroppedConnection("connection dropped on purpose by the fake OpenRouter")
        elif isinstance(scenario, Infinite):
            model = self.served_model(scenario.served_model)
            while True:
                await self.event(self.chunk(model, content=scenario.chunk))
                await self._sleep(scenario.interval)

    async def _send_then_images(self, model: str, texts: Sequence[str], images: Sequence[str]) -> None:
        for text in texts:
            await self.event(self.chunk(model, content=text))
        for url in images:
            await self.event(self.chunk(model, content="", images=[url]))

    async def _silence(self, keepalive_interval: float | None) -> None:
        while True:
            if keepalive_interval:
                await self._sleep(keepalive_interval)
                await self.comment()
            else:
                await self._sleep(3600)

    async def _play_reply(self, reply: Reply) -> None:
        model = self.served_model(reply.served_model)
        if reply.generation_id:
            self.generation_id = reply.generation_id
            self.record.generation_id = reply.generation_id
        chunks = (
            list(reply.chunks)
            if reply.chunks is not None
            else split_words(offline_reply(self.body["messages"], self.image_notes))
        )
        for _ in range(reply.keepalives_before):
            await self.comment()
            await self._pause(reply.delay)
        for index, text in enumerate(chunks):
            if index:
                await self._pause(reply.delay)
            await self.event(self.chunk(model, content=text))
        for url in self.images_of(reply):
            await self._pause(reply.delay)
            await self.event(self.chunk(model, content="", images=[url]))
        await self.event(self.chunk(model, content="", finish_reason=reply.finish_reason))
        usage = self.usage(model, "".join(chunks), reply.usage) if reply.include_usage else None
        if usage is not None:
            await self.event(self.chunk(model, choices=False, usage=usage))
        self.remember(model, usage, streamed=True)
        if reply.send_done:
            await self.event("[DONE]")

    # -- non-streaming ------------------------------------------------------------------------------

    async def complete(self, scenario: Scenario) -> None:
        if isinstance(scenario, Reply):
            model = self.served_model(scenario.served_model)
            chunks = scenario.chunks if scenario.chunks is not None else [offline_reply(self.body["messages"])]
            text = "".join(chunks)
            usage = self.usage(model, text, scenario.usage) if scenario.include_usage else None
            await self._pause(scenario.delay)
            self.remember(model, usage, streamed=False)
            payload: dict[str, Any] = {
                "id": self.generation_id,
                "provider": _PROVIDER,
                "model": model,
                "object": "chat.completion",
                "created": self.created,
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": text},
                        "finish_reason": scenario.finish_reason,
                        "native_finish_reason": scenario.finish_reason,
                        "logprobs": None,
                    }
                ],
            }
            if usage is not None:
                payload["usage"] = usage
            headers = [(b"x-generation-id", self.generation_id.encode())] if scenario.generation_header else []
            await _json(self.send, 200, payload, headers)
        elif isinstance(scenario, MidStreamError):
            status = scenario.code if isinstance(scenario.code, int) else 502
            await _json(self.send, status, _error_body(scenario.code, scenario.message, scenario.metadata))
        elif isinstance(scenario, Drop):
            raise DroppedConnection("connection dropped on purpose by the fake OpenRouter")
        else:  # Hang, Stall, Infinite: nothing until the client gives up
            await self._watch_only()
            return
        self.record.finished_at = time.monotonic()


def _requested_model(body: Mapping[str, Any]) -> str:
    models = body.get("models")
    if isinstance(models, list) and models and isinstance(models[0], str):
        return models[0]
    model = body.get("model")
    return model if isinstance(model, str) and model else "openrouter/auto"


def _error_body(code: int | str, message: str, metadata: Mapping[str, Any] | None = None) -> dict[str, Any]:
    error: dict[str, Any] = {"code": code, "message": message}
    if metadata is not None:
        error["metadata"] = dict(metadata)
    return {"error": error}


_REASONS = {
    400: "Bad Request",
    401: "Unauthorized",
    402: "Insufficient credits",
    403: "Forbidden",
    408: "Request timed out",
    429: "Rate limit exceeded",
    500: "Internal Server Error",
    502: "Provider returned error",
    503: "No available provider",
}


async def _status_response(send: Send, scenario: Status) -> None:
    message = scenario.message or _REASONS.get(scenario.status, "Error")
    headers: list[tuple[bytes, bytes]] = []
    if scenario.retry_after is not None:
        value = scenario.retry_after
        text = f"{value:g}" if isinstance(value, float | int) else str(value)
        headers.append((b"retry-after", text.encode()))
    payload = _error_body(scenario.status, message, scenario.metadata) if scenario.body is None else scenario.body
    await _json(send, scenario.status, payload, headers)


async def _json(send: Send, status: int, payload: Any, headers: Iterable[tuple[bytes, bytes]] = ()) -> None:
    data = json.dumps(payload, ensure_ascii=False).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(data)).encode()),
                *headers,
            ],
        }
    )
    await send({"type": "http.response.body", "body": data, "more_body": False})


async def _read_body(receive: Receive) -> bytes:
    parts: list[bytes] = []
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            break
        parts.append(message.get("body", b""))
        if not message.get("more_body", False):
            break
    return b"".join(parts)


def _headers(scope: Scope) -> dict[str, str]:
    return {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}


async def _lifespan(receive: Receive, send: Send) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return


def create_app(state: FakeState | None = None, *, delay: float = DEFAULT_DEV_DELAY) -> FakeOpenRouterApp:
    """The ASGI app; pass a `FakeState` to script it and read its records."""
    return FakeOpenRouterApp(state or FakeState(delay=delay))


# ---------------------------------------------------------------------------------------------------
# The server in a background thread


class FakeOpenRouter(FakeUpstream):
    """The fake served by uvicorn in a daemon thread on a real socket. Use as a context manager."""

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        delay: float = 0.0,
        prefix: str = "/api/v1",
        catalog: list[dict[str, Any]] | None = None,
    ) -> None:
        self.state = FakeState(delay=delay, catalog=catalog if catalog is not None else default_catalog())
        self.app = create_app(self.state)
        self._host = host
        self._prefix = prefix
        self._http = ThreadedServer(
            self.app, host=host, port=port, name="fake-openrouter", stopping=self.state.stopping
        )

    @property
    def base_url(self) -> str:
        return f"http://{self._host}:{self.port}{self._prefix}"

    # -- scripting ----------------------------------------------------------------------------------

    def script(self, *scenarios: Scenario, model: str | None = None) -> None:
        """Queue scenarios for the next chat requests, one per request, in order; with `model`, only for
        requests of that model (others, such as title requests, get the default reply)."""
        with self.state.lock:
            self.state.scenarios.extend((model, scenario) for scenario in scenarios)

    def script_models(self, *scenarios: ModelsScenario) -> None:
        """Queue answers for the next `GET /models` requests."""
        with self.state.lock:
            self.state.models_scenarios.extend(scenarios)

    def script_embeddings(self, *scenarios: EmbeddingsScenario) -> None:
        """Queue answers for the next `POST /embeddings` requests, one per request, in order."""
        with self.state.lock:
            self.state.embeddings_scenarios.extend(scenarios)

    def reset(self) -> None:
        """Forget scripts and records (between tests sharing one server)."""
        with self.state.lock:
            self.state.scenarios.clear()
            self.state.models_scenarios.clear()
            self.state.embeddings_scenarios.clear()
            self.state.requests.clear()
            self.state.generations.clear()

    @property
    def requests(self) -> list[RecordedRequest]:
        with self.state.lock:
            return list(self.state.requests)

    @property
    def chat_requests(self) -> list[RecordedRequest]:
        return [r for r in self.requests if r.path.rstrip("/").endswith("/chat/completions")]

    @property
    def embeddings_requests(self) -> list[RecordedRequest]:
        return [r for r in self.requests if r.path.rstrip("/").endswith("/embeddings")]

    @property
    def models_requests(self) -> list[RecordedRequest]:
        return [r for r in self.requests if r.path.rstrip("/").endswith("/models")]

    @property
    def pending_scenarios(self) -> int:
        with self.state.lock:
            return len(self.state.scenarios)

    async def wait_for_disconnect(
        self, request: RecordedRequest | None = None, *, within: float = 2.0
    ) -> RecordedRequest:
        """Wait (without blocking the event loop) until the chat request (default: the last one) saw its
        client go away; raise TimeoutError otherwise."""
        with anyio.fail_after(within):
            while True:
                target = request or (self.chat_requests[-1] if self.chat_requests else None)
                if target is not None and target.disconnected_at is not None:
                    return target
                await anyio.sleep(0.005)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="A fake OpenRouter API (offline replies) on a local port.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8089)
    parser.add_argument("--delay", type=float, default=DEFAULT_DEV_DELAY, help="seconds between word chunks")
    args = parser.parse_args(argv)
    print(f"Fake OpenRouter on http://{args.host}:{args.port}/api/v1 (OPENROUTER_BASE_URL)")
    uvicorn.run(create_app(delay=args.delay), host=args.host, port=args.port, log_level="info", lifespan="off")


if __name__ == "__main__":
    main()
