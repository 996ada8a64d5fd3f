"""What the local `POST /chat/stream` adds to a reply's latency, against calling the upstream directly and
against LiteLLM's proxy in front of the same upstream, measured in the same run against the same fake
OpenRouter; optionally with a simulated network delay on every database round trip.

LiteLLM (`litellm[proxy]`, pinned in bench/requirements-litellm.txt) runs from its own venv,
`.oneai/bench-litellm-venv`, which `make bench` creates: never in the project's venv or layer. It proxies
`POST /chat/completions` to the fake as an OpenAI-compatible upstream, with no database, keys or
callbacks: a bare proxy. Our relay does more before its first token (auth, the rate check, the model and
tier, the quota reserve, the user's message and the history, in one database round trip); the ratio of
our added time to first token over LiteLLM's (both over the direct call, paired per triple) is printed.
`BENCH_DB_DELAYS_MS` (default "0,5") runs the comparison once per delay: the server then reaches
PostgreSQL through local/pg_proxy.py, which holds each round trip that many milliseconds, as the network
between Lambda and Supabase would.

Setup: a throwaway migrated database; the fake OpenRouter (`local.fake_openrouter`) in a thread of this
process; the local server (`python -m local`, as the e2e tests start it) as a subprocess pointed at both;
one user (made through `auth.users`, so the trigger provisions its quotas, then given a large limit) and
a token minted for it with the server's secret and issuer. Every reply is scripted for the chat model
only: `CHUNKS` text chunks `CHUNK_DELAY` apart, the first one sent right after the response headers.

Each measured request goes into its own conversation, created with a title through the API beforehand
(untimed): its history is one message and no title is generated while it streams. Requests run one at a
time from this process with httpx (a kept-alive connection per target), direct and relay interleaved
pair by pair (the order alternates) after a warm-up:
- direct: `POST {fake}/chat/completions` (stream true), as the relay itself calls it;
- relay: `POST {server}/chat/stream` into the conversation;
- unpersisted: the same against a second local server started with `ONEAI_REPLY_PERSISTENCE=false` (the
  reply's parts are not written to PostgreSQL: no resume, no stop), the same-run baseline of what keeping
  the parts (issue 16) costs the first reader. The three run in a rotating order.
After each persisted reply its `reply_streams.flushes` tells the database writes it made (flushes, plus one
for the fold at the end).
Time to first token (TTFT) runs from the request's start to the first content delta (direct) or the
first `text-delta` part (relay); gaps are between consecutive content deltas / `text-delta` parts.
The relay sends its response headers only after the first upstream token (`ChatRelay.open`), so the
headers cannot separate the server's own work; the fake's receive time of the upstream request (the
same monotonic clock, same process) does: request start -> upstream request received is the server's
pre-stream work (auth, catalog lookup, the prepare transaction with the quota reserve and the user
message insert, building the context, the upstream request).
"""

from __future__ import annotations

import contextlib
import itertools
import json
import math
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import psycopg

from bench._db import throwaway_database
from bench._report import ms, summarize, table
from local.dev_process import LocalServerProcess, run_local_server
from local.fake_openrouter import FakeOpenRouter, RecordedRequest, Reply
from local.pg_proxy import PgRoundTripProxy
from oneai.auth import mint_dev_token
from oneai.chat.resumable import FLUSH_INTERVAL_SECONDS

PAIRS = 60
QUICK_PAIRS = 15
WARMUP_PAIRS = 3
QUICK_WARMUP_PAIRS = 2
CHUNKS = 50
CHUNK_DELAY = 0.010  # seconds between the fake's chunks
CHUNK_TEXTS = tuple(f"w{index:02d} " for index in range(CHUNKS))

GOAL_TTFT_P50_MS = 10.0
GOAL_TTFT_P95_MS = 25.0
GOAL_GAP_P95_MS = 1.0

# The model every measured reply uses, and the (different) model of titles, as in the e2e tests.
CHAT_MODEL = "anthropic/claude-3.5-haiku"
TITLE_MODEL = "openai/gpt-4o-mini"
QUOTA_LIMIT = 1_000_000

JWT_SECRET = "bench-jwt-secret-for-the-oneai-benchmarks-0000"  # noqa: S105 - a local throwaway key
SUPABASE_URL = "http://127.0.0.1:54321"
ISSUER = f"{SUPABASE_URL}/auth/v1"
UPSTREAM_KEY = "sk-or-v1-bench-key"

REQUEST_TIMEOUT_SECONDS = 30

REPO_ROOT = Path(__file__).resolve().parent.parent
LITELLM_BIN = REPO_ROOT / ".oneai" / "bench-litellm-venv" / "bin" / "litellm"
LITELLM_START_SECONDS = 180
GOAL_LITELLM_RATIO_P50 = 0.8
DB_DELAYS_MS = tuple(float(v) for v in os.environ.get("BENCH_DB_DELAYS_MS", "0,5").split(",") if v.strip())


# ---------------------------------------------------------------------------------------------- server


@contextlib.contextmanager
def local_server(database_url: str, fake: FakeOpenRouter, *, persist: bool = True) -> Iterator[LocalServerProcess]:
    """`python -m local` as a subprocess against the fake upstream, stopped afterwards whatever happened."""
    env = {
        "ONEAI_REPLY_PERSISTENCE": "true" if persist else "false",
        "DATABASE_URL": database_url,
        "SUPABASE_URL": SUPABASE_URL,
        "SUPABASE_JWT_SECRET": JWT_SECRET,
        "OPENROUTER_API_KEY": UPSTREAM_KEY,
        "OPENROUTER_BASE_URL": fake.base_url,
        "ONEAI_TITLE_MODEL": TITLE_MODEL,
        # The rate check runs on every request (it is part of what is measured), with limits the run stays under.
        "ONEAI_RATE_LIMIT_PER_MINUTE": "100000",
        "ONEAI_RATE_LIMIT_BURST": "100000",
        "ONEAI_CHAT_RATE_LIMIT_PER_MINUTE": "100000",
        "ONEAI_CHAT_RATE_LIMIT_BURST": "100000",
    }
    with run_local_server(env) as server:
        yield server


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@contextlib.contextmanager
def litellm_proxy(fake: FakeOpenRouter) -> Iterator[str]:
    """LiteLLM's proxy (its own venv) routing the chat model to the fake as an OpenAI-compatible upstream."""
    if not LITELLM_BIN.exists():
        raise RuntimeError(f"{LITELLM_BIN} is missing: `make bench` creates LiteLLM's venv")
    port = _free_port()
    with tempfile.TemporaryDirectory(prefix="oneai-bench-litellm-") as workdir:
        config = Path(workdir) / "config.yaml"
        config.write_text(
            "model_list:\n"
            f"  - model_name: {CHAT_MODEL}\n"
            "    litellm_params:\n"
            f"      model: openai/{CHAT_MODEL}\n"
            f"      api_base: {fake.base_url}\n"
            f"      api_key: {UPSTREAM_KEY}\n"
            "litellm_settings:\n"
            "  telemetry: false\n"
        )
        env = os.environ | {"LITELLM_LOCAL_MODEL_COST_MAP": "True", "LITELLM_LOG": "ERROR"}
        env.pop("DATABASE_URL", None)  # a bare proxy: no spend tracking database
        log = (Path(workdir) / "litellm.log").open("wb")
        process = subprocess.Popen(
            [str(LITELLM_BIN), "--config", str(config), "--host", "127.0.0.1", "--port", str(port)],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=workdir,
        )
        base_url = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + LITELLM_START_SECONDS
            while True:
                if process.poll() is not None:
                    raise RuntimeError(f"LiteLLM exited: {(Path(workdir) / 'litellm.log').read_text()[-3000:]}")
                with contextlib.suppress(httpx.HTTPError):
                    if httpx.get(f"{base_url}/health/liveliness", timeout=1).status_code == 200:
                        break
                if time.monotonic() > deadline:
                    raise RuntimeError("LiteLLM did not start in time")
                time.sleep(0.5)
            yield base_url
        finally:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
            log.close()


def make_user(url: str) -> tuple[uuid.UUID, str]:
    """A user as Supabase makes one (the trigger provisions users and quotas), with a large limit."""
    user_id = uuid.uuid4()
    email = f"bench-chat-{user_id.hex[:10]}@example.test"
    with psycopg.connect(url, autocommit=True) as admin:
        admin.execute("insert into auth.users (id, email) values (%s, %s)", (user_id, email))
        admin.execute("update public.usage_quotas set quota_limit = %s where user_id = %s", (QUOTA_LIMIT, user_id))
    return user_id, mint_dev_token(user_id, secret=JWT_SECRET, issuer=ISSUER, email=email)


# ---------------------------------------------------------------------------------------------- measuring


@dataclass
class Sample:
    """One streamed request, times in seconds (time.monotonic) relative to its start."""

    headers: float  # response headers received
    first: float  # first content delta / text-delta part
    gaps: list[float]  # between consecutive deltas
    end: float  # the body fully read
    upstream_received: float  # the fake had read the (upstream) request
    text: str


@dataclass
class Pair:
    direct: Sample
    relay: Sample
    unpersisted: Sample
    writes: int  # database writes of the persisted reply (flushes and the fold)
    litellm: Sample | None = None


def _stream(
    client: httpx.Client, url: str, body: dict[str, Any], headers: dict[str, str], delta_of: Any
) -> tuple[float, float, list[float], float, str]:
    """POST and read the event stream line by line; `delta_of(event)` is the text of a content delta or
    None. Returns (headers, first delta, gaps, end) relative to the start, and the text."""
    times: list[float] = []
    pieces: list[str] = []
    started = time.monotonic()
    with client.stream("POST", url, json=body, headers=headers) as response:
        got_headers = time.monotonic()
        if response.status_code != 200:
            raise RuntimeError(f"POST {url}: {response.status_code} {_error_code(response)}")
        for line in response.iter_lines():
            now = time.monotonic()  # before parsing, so both variants pay their parsing after it
            if not line.startswith("data: ") or line == "data: [DONE]":
                continue
            delta = delta_of(json.loads(line[6:]))
            if delta:
                times.append(now)
                pieces.append(delta)
    ended = time.monotonic()
    if not times:
        raise RuntimeError(f"POST {url}: no content in the stream")
    gaps = [later - earlier for earlier, later in itertools.pairwise(times)]
    return got_headers - started, times[0] - started, gaps, ended - started, "".join(pieces)


def _error_code(response: httpx.Response) -> str:
    """The error envelope's code alone: a body may echo what was sent (a message, a header's value)."""
    response.read()
    try:
        error = response.json().get("error")
    except (ValueError, AttributeError):
        return "(no error envelope)"
    return str(error.get("code")) if isinstance(error, dict) else "(no error envelope)"


def _direct_delta(event: dict[str, Any]) -> str | None:
    choices = event.get("choices") or []
    return (choices[0].get("delta") or {}).get("content") if choices else None


def _relay_delta(event: dict[str, Any]) -> str | None:
    return event.get("delta") if event.get("type") == "text-delta" else None


class Bench:
    def __init__(
        self,
        fake: FakeOpenRouter,
        server: LocalServerProcess,
        plain: LocalServerProcess,
        token: str,
        *,
        url: str,
        litellm_url: str | None = None,
    ) -> None:
        self.fake = fake
        self.server = server
        self.url = url
        self.litellm_url = litellm_url
        self.auth = {"Authorization": f"Bearer {token}"}
        timeout = httpx.Timeout(REQUEST_TIMEOUT_SECONDS)
        self.upstream = httpx.Client(timeout=timeout)
        self.api = httpx.Client(base_url=server.base_url, timeout=timeout)
        self.plain = httpx.Client(base_url=plain.base_url, timeout=timeout)

    def close(self) -> None:
        self.upstream.close()
        self.api.close()
        self.plain.close()

    def writes_of(self, conversation_id: str) -> int:
        """The persisted reply's database writes: its flushes, and the fold that ends it (which runs just
        after the last byte of the body was sent, so it is waited for here, untimed)."""
        deadline = time.monotonic() + 5
        with psycopg.connect(self.url, autocommit=True) as conn:
            while time.monotonic() < deadline:
                row = conn.execute(
                    "select flushes, status from public.reply_streams where conversation_id = %s",
                    (conversation_id,),
                ).fetchone()
                if row is not None and row[1] != "streaming":
                    return int(row[0]) + 1
                time.sleep(0.01)
        raise RuntimeError("the persisted reply was not folded")

    def _upstream_record(self, tag: str) -> RecordedRequest:
        for record in reversed(self.fake.chat_requests):
            body = record.body if isinstance(record.body, dict) else {}
            messages = body.get("messages") or []
            if messages and messages[-1].get("content") == tag:
                if record.scenario != "Reply" or body.get("model") != CHAT_MODEL:
                    raise RuntimeError(f"the upstream request got {record.scenario} for {body.get('model')}")
                return record
        raise RuntimeError(f"no upstream request for {tag}")

    def direct(self, tag: str) -> Sample:
        self.fake.script(Reply(chunks=CHUNK_TEXTS, delay=CHUNK_DELAY), model=CHAT_MODEL)
        body = {"model": CHAT_MODEL, "stream": True, "messages": [{"role": "user", "content": tag}]}
        started = time.monotonic()
        headers, first, gaps, end, text = _stream(
            self.upstream,
            f"{self.fake.base_url}/chat/completions",
            body,
            {"Authorization": f"Bearer {UPSTREAM_KEY}"},
            _direct_delta,
        )
        received = self._upstream_record(tag).received_at - started
        return Sample(headers, first, gaps, end, received, text)

    def litellm(self, tag: str) -> Sample:
        assert self.litellm_url is not None
        self.fake.script(Reply(chunks=CHUNK_TEXTS, delay=CHUNK_DELAY), model=CHAT_MODEL)
        body = {"model": CHAT_MODEL, "stream": True, "messages": [{"role": "user", "content": tag}]}
        started = time.monotonic()
        headers, first, gaps, end, text = _stream(
            self.upstream,
            f"{self.litellm_url}/chat/completions",
            body,
            {"Authorization": "Bearer none"},
            _direct_delta,
        )
        received = self._upstream_record(tag).received_at - started
        return Sample(headers, first, gaps, end, received, text)

    def relay(self, tag: str, client: httpx.Client | None = None) -> tuple[Sample, str]:
        api = client or self.api
        created = api.post("/conversations", json={"title": "bench"}, headers=self.auth)
        if created.status_code != 201:
            raise RuntimeError(f"POST /conversations: {created.status_code} {_error_code(created)}")
        conversation_id = created.json()["id"]
        self.fake.script(Reply(chunks=CHUNK_TEXTS, delay=CHUNK_DELAY), model=CHAT_MODEL)
        body = {"conversation_id": conversation_id, "model": CHAT_MODEL, "content": tag}
        started = time.monotonic()
        headers, first, gaps, end, text = _stream(api, "/chat/stream", body, self.auth, _relay_delta)
        received = self._upstream_record(tag).received_at - started
        return Sample(headers, first, gaps, end, received, text), conversation_id

    def pair(self, index: int) -> Pair:
        tag = uuid.uuid4().hex[:8]
        variants = ["direct", "relay", "unpersisted"] + (["litellm"] if self.litellm_url else [])
        shift = index % len(variants)  # the order rotates, so no variant always goes first
        samples: dict[str, Sample] = {}
        persisted_conversation = ""
        for name in variants[shift:] + variants[:shift]:
            tagged = f"{name} {index} {tag}"
            if name == "direct":
                samples[name] = self.direct(tagged)
            elif name == "litellm":
                samples[name] = self.litellm(tagged)
            elif name == "relay":
                samples[name], persisted_conversation = self.relay(tagged)
            else:
                samples[name], _ = self.relay(tagged, self.plain)
        expected = "".join(CHUNK_TEXTS)
        for name, sample in samples.items():
            if sample.text != expected or len(sample.gaps) != CHUNKS - 1:
                raise RuntimeError(f"{name}: the streamed text differs from the scripted reply")
        return Pair(
            samples["direct"],
            samples["relay"],
            samples["unpersisted"],
            self.writes_of(persisted_conversation),
            samples.get("litellm"),
        )


# ---------------------------------------------------------------------------------------------- report


def _pct(samples: Sequence[float], fraction: float) -> float:
    """Nearest-rank percentile, as bench._report.summarize does for p95."""
    ordered = sorted(samples)
    return ordered[max(1, math.ceil(fraction * len(ordered))) - 1]


def _verdict(value: float, goal: float) -> str:
    return "PASS" if value <= goal else "MISS"


def _report_litellm(pairs: list[Pair]) -> None:
    """Our added time to first token against LiteLLM proxy's, both over the direct call (paired)."""
    litellm_pairs = [p for p in pairs if p.litellm is not None]
    if litellm_pairs:
        litellm_ttft = [p.litellm.first for p in litellm_pairs if p.litellm]
        litellm_added = [p.litellm.first - p.direct.first for p in litellm_pairs if p.litellm]
        ours_added = [p.relay.first - p.direct.first for p in litellm_pairs]
        lt, lt_added = summarize(litellm_ttft), statistics.median(litellm_added)
        ratio = statistics.median(ours_added) / lt_added if lt_added > 0 else math.inf
        print(
            f"LiteLLM proxy: TTFT p50 {ms(lt.median)} ms, p95 {ms(lt.p95)} ms; added over direct (paired) p50"
            f" {ms(lt_added)} ms, p95 {ms(_pct(litellm_added, 0.95))} ms"
        )
        print(
            f"ratio of added TTFT, ours / LiteLLM's, p50: {ratio:.2f} (ours {ms(statistics.median(ours_added))} ms"
            f" with auth, rate limit, reserve and message write; goal <= {GOAL_LITELLM_RATIO_P50:g})"
            f" {_verdict(ratio, GOAL_LITELLM_RATIO_P50)}"
        )


def report(pairs: list[Pair], total: float, warmup: int, load: tuple[float, float, float]) -> None:
    direct_ttft = [p.direct.first for p in pairs]
    relay_ttft = [p.relay.first for p in pairs]
    direct_gaps = [g for p in pairs for g in p.direct.gaps]
    relay_gaps = [g for p in pairs for g in p.relay.gaps]
    n = len(pairs)
    print(
        f"{n} pairs after {warmup} warm-up pairs, interleaved (order alternating); each reply {CHUNKS} chunks"
        f" {CHUNK_DELAY * 1000:g} ms apart, the first right after the headers; whole run {total:.1f} s"
        " (database made, migrated and dropped; server started and stopped);"
        f" load average before {load[0]:.2f}, after {os.getloadavg()[0]:.2f} (1 min; other work on the machine"
        " shows up in these figures)"
    )
    plain_ttft = [p.unpersisted.first for p in pairs]
    plain_gaps = [g for p in pairs for g in p.unpersisted.gaps]
    rows = []
    for name, ttft, gaps in (
        ("direct", direct_ttft, direct_gaps),
        ("relay", relay_ttft, relay_gaps),
        ("unpersisted", plain_ttft, plain_gaps),
    ):
        t, g = summarize(ttft), summarize(gaps)
        rows.append(
            [
                name,
                ms(t.median),
                ms(t.p95),
                ms(max(ttft)),
                f"{len(gaps):,}",
                ms(g.median, 3),
                ms(g.p95, 3),
                ms(max(gaps), 3),
            ]
        )
    headers = ("variant", "TTFT p50", "TTFT p95", "TTFT max", "gaps", "gap p50", "gap p95", "gap max")
    print(table(headers, rows))
    print(
        "  (ms; direct = the fake upstream called from here, relay = the local /chat/stream in front of it,"
        " unpersisted = the same relay without keeping the reply's parts in PostgreSQL)"
    )
    by_persistence = [r - u for r, u in zip(relay_ttft, plain_ttft, strict=True)]
    writes = [p.writes for p in pairs]
    durations = [p.relay.end for p in pairs]
    print("added by keeping the parts (relay - unpersisted, same run):")
    rows = [
        ["TTFT, paired differences p50", ms(statistics.median(by_persistence))],
        ["TTFT, paired differences p95", ms(_pct(by_persistence, 0.95))],
        ["TTFT, p50 relay - p50 unpersisted", ms(statistics.median(relay_ttft) - statistics.median(plain_ttft))],
        ["gap, p95 relay - p95 unpersisted", ms(summarize(relay_gaps).p95 - summarize(plain_gaps).p95, 3)],
    ]
    print(table(("", "ms"), rows, align="lr"))
    print(
        f"database writes per persisted reply ({CHUNKS} parts of text over ~{ms(statistics.median(durations))} ms):"
        f" p50 {statistics.median(writes):g}, max {max(writes)}, min {min(writes)}"
        f" (one write per flush, a flush every {FLUSH_INTERVAL_SECONDS:g} s at most, plus the fold;"
        f" {CHUNKS + 5} parts would be {CHUNKS + 5} writes one per part)"
    )

    added = [r - d for r, d in zip(relay_ttft, direct_ttft, strict=True)]
    added_p50, added_p95 = statistics.median(added), _pct(added, 0.95)
    p50_difference = statistics.median(relay_ttft) - statistics.median(direct_ttft)
    gap_added = summarize(relay_gaps).p95 - summarize(direct_gaps).p95
    print("added by the relay (ms):")
    rows = [
        ["TTFT, paired differences p50", ms(added_p50), f"<= {GOAL_TTFT_P50_MS:g}", _verdict(added_p50 * 1000, GOAL_TTFT_P50_MS)],
        ["TTFT, paired differences p95", ms(added_p95), f"<= {GOAL_TTFT_P95_MS:g}", _verdict(added_p95 * 1000, GOAL_TTFT_P95_MS)],
        ["TTFT, p50 relay - p50 direct", ms(p50_difference), f"<= {GOAL_TTFT_P50_MS:g}", _verdict(p50_difference * 1000, GOAL_TTFT_P50_MS)],
        ["gap, p95 relay - p95 direct", ms(gap_added, 3), f"<= {GOAL_GAP_P95_MS:g}", _verdict(gap_added * 1000, GOAL_GAP_P95_MS)],
    ]  # fmt: skip
    print(table(("", "measured", "goal", ""), rows, align="lrrl"))

    _report_litellm(pairs)

    # Where the relay's TTFT goes: its headers wait for the first upstream token (ChatRelay.open), so
    # the split comes from the fake's receive time of the upstream request.
    pre = [p.relay.upstream_received for p in pairs]
    transit = [p.direct.upstream_received for p in pairs]
    upstream_first = [p.direct.first - p.direct.upstream_received for p in pairs]
    forward = [
        p.relay.first - p.relay.upstream_received - (p.direct.first - p.direct.upstream_received) for p in pairs
    ]
    headers_to_first = [p.relay.first - p.relay.headers for p in pairs]
    tail_relay = [p.relay.end - p.relay.first - sum(p.relay.gaps) for p in pairs]
    tail_direct = [p.direct.end - p.direct.first - sum(p.direct.gaps) for p in pairs]
    print("where the relay's TTFT goes (ms, per request; the fake's clock is this process's):")
    rows = []
    for label, values in (
        ("relay: request start -> response headers", [p.relay.headers for p in pairs]),
        ("relay: response headers -> first text-delta", headers_to_first),
        ("relay: request start -> upstream request received (pre-stream work)", pre),
        ("  baseline, direct: request start -> request received", transit),
        ("upstream: request received -> first delta here (direct)", upstream_first),
        ("relay: first upstream chunk -> first text-delta (estimate*)", forward),
        ("relay: last text-delta -> end of body (save, usage, finish)", tail_relay),
        ("  baseline, direct: last delta -> end of body", tail_direct),
    ):
        rows.append([label, ms(statistics.median(values)), ms(_pct(values, 0.95)), ms(max(values))])
    print(table(("", "p50", "p95", "max"), rows))
    print(
        "  * relay TTFT - pre-stream work - (direct TTFT - direct transit): the relay's own cost of passing"
        " the first chunk on, on top of the upstream's time to its first chunk"
    )
    pre_stream = statistics.median(pre) - statistics.median(transit)
    print(
        f"pre-stream work beyond the direct transit, p50: {ms(pre_stream)} ms of the {ms(added_p50)} ms added"
        " (p50 of the paired differences)"
    )


def run(*, quick: bool = False) -> None:
    pairs_wanted = QUICK_PAIRS if quick else PAIRS
    warmup = QUICK_WARMUP_PAIRS if quick else WARMUP_PAIRS
    print(
        "== chat_stream: time to first token and gaps between chunks, local /chat/stream vs LiteLLM's proxy"
        " vs the fake upstream called directly =="
    )
    with (
        throwaway_database() as url,
        FakeOpenRouter(delay=0.0) as fake,
        litellm_proxy(fake) as litellm_url,
    ):
        for delay_ms in DB_DELAYS_MS:
            print(f"\n-- database round trips delayed by {delay_ms:g} ms (local/pg_proxy.py) --")
            started = time.perf_counter()
            load = os.getloadavg()
            pairs: list[Pair] = []
            with (
                PgRoundTripProxy(url, delay_seconds=delay_ms / 1000) as proxy,
                local_server(proxy.url, fake) as server,
                local_server(proxy.url, fake, persist=False) as plain,
            ):
                _, token = make_user(url)
                bench = Bench(fake, server, plain, token, url=url, litellm_url=litellm_url)
                try:
                    for index in range(warmup + pairs_wanted):
                        pair = bench.pair(index)
                        if index >= warmup:
                            pairs.append(pair)
                except BaseException:
                    print(f"--- local server output ---\n{server.log[-4000:]}", file=sys.stderr)
                    raise
                finally:
                    bench.close()
                if fake.pending_scenarios:
                    raise RuntimeError(f"{fake.pending_scenarios} scripted replies were not used")
            report(pairs, time.perf_counter() - started, warmup, load)


if __name__ == "__main__":
    run()
