"""Loading the current branch of a 10,000-message conversation, as the API does it.

Data: one user's conversation of 5,000 exchanges (10,000 positions) where about 1 position in 10 has
1-3 extra revisions (user edits, which retire the edited message and its reply, and regenerations,
which retire a reply), so the current branch holds 10,000 messages among ~12,000 rows; plus 50 other
conversations of 200 positions of other users, with revisions made the same way. Rows are written by
COPY as admin and follow the schema and the service's rules (sequence_number, the parent chain,
original_message_id = revision 0 of the position, revision_number/type, one is_latest per position).

Measured inside `Database.user_transaction` (role `authenticated` under RLS), interleaved per
repetition after a warm-up:
- `current_branch(conn, cid)`: the API path, rows parsed into pydantic `Message` models;
- the same SQL fetched as tuples (PostgreSQL + transfer + psycopg, without models);
- the server's own time: `EXPLAIN (ANALYZE, FORMAT JSON)` Execution Time;
and the same three for the baseline: a plain `where conversation_id = %s and is_latest order by
sequence_number` with index and bitmap scans disabled, i.e. what the partial index saves.
"""

from __future__ import annotations

import gc
import random
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
from psycopg.rows import TupleRow, class_row, tuple_row
from pydantic import SecretStr

from bench._db import throwaway_database
from bench._report import SUMMARY_HEADERS, Summary, ms, summarize, summary_row, table
from oneai.auth import Principal, authenticate, mint_dev_token
from oneai.config import override_settings
from oneai.conversations.models import Message
from oneai.db import conversations as repo
from oneai.db.connection import Connection, Database
from oneai.runtime import freeze_startup_objects

GOAL_MS = 20.0
MAIN_POSITIONS = 10_000
OTHER_USERS = 10
OTHER_CONVERSATIONS = 50
OTHER_POSITIONS = 200
# Per exchange: the chance of an edit or a regeneration. An edit adds revisions at two positions
# (the user message and its reply), a regeneration at one: ~1 position in 10 ends up revised.
REVISION_EVENT_CHANCE = 0.13
MAX_EXTRA_REVISIONS = 3
REPETITIONS = 30
QUICK_REPETITIONS = 10
WARMUP = 3
SEED = 20261121

JWT_SECRET = "bench-jwt-secret-for-the-oneai-benchmarks-0000"  # noqa: S105 - a local throwaway key
SUPABASE_URL = "http://127.0.0.1:54321"
ISSUER = f"{SUPABASE_URL}/auth/v1"

MODELS = (
    "openai/gpt-4o-mini",
    "anthropic/claude-3.5-sonnet",
    "google/gemini-flash-1.5",
    "meta-llama/llama-3.1-70b-instruct",
)
_WORDS_TEXT = (
    "the a of to and in is it that for on with as this be are you can by not or from your at an we"
    " use function value database query index table message model request response error token user"
    " python lambda deploy stream branch revision latest sequence server client cache latency memory"
    " example configure install return string number list object field schema migration transaction"
    " because however therefore instead usually often simply first then next finally also only each"
    " should would could might must will make take give find show keep try run call read write change"
)
WORDS = tuple(_WORDS_TEXT.split())

MESSAGE_COPY_COLUMNS = (
    "id, conversation_id, user_id, role, content, model_id, tokens_used, sequence_number,"
    " parent_message_id, original_message_id, revision_number, revision_type, is_latest, status,"
    " selected_at, created_at"
)
BASELINE_SQL = f"""
select {repo.MESSAGE_COLUMNS} from public.chat_messages
where conversation_id = %(conversation_id)s and is_latest
order by sequence_number"""  # noqa: S608 - a constant column list
NO_INDEX = (
    "set local enable_indexscan = off; set local enable_bitmapscan = off; set local enable_indexonlyscan = off"
)


# --- data -----------------------------------------------------------------------------------------


@dataclass
class Dataset:
    rng: random.Random
    corpus: str
    messages: list[tuple[Any, ...]] = field(default_factory=list)
    conversations: list[tuple[Any, ...]] = field(default_factory=list)

    def new_id(self) -> uuid.UUID:
        return uuid.UUID(int=self.rng.getrandbits(128), version=4)

    def text(self, median_chars: float, sigma: float, low: int, high: int) -> str:
        length = min(high, max(low, int(self.rng.lognormvariate(0, sigma) * median_chars)))
        start = self.rng.randrange(0, len(self.corpus) - length)
        return self.corpus[start : start + length].strip() or "ok"

    def add_conversation(self, user_id: uuid.UUID, positions: int, start: datetime) -> tuple[uuid.UUID, int]:
        """A conversation of `positions` current messages; returns its id and its number of rows."""
        conversation_id = self.new_id()
        rng = self.rng
        first_row = len(self.messages)
        model = rng.choice(MODELS)
        parent: uuid.UUID | None = None  # the current message of the previous position
        at = start
        for user_seq in range(1, positions + 1, 2):
            extra = rng.randint(1, MAX_EXTRA_REVISIONS) if rng.random() < REVISION_EVENT_CHANCE else 0
            edit = extra > 0 and rng.random() < 0.5
            user_ids = self._position(
                conversation_id,
                user_id,
                "user",
                user_seq,
                extra=extra if edit else 0,
                parents=[parent],
                model=model,
                at=at,
            )
            parent = user_ids[-1]
            if user_seq + 1 <= positions:
                # An edit gives each user revision its own reply; a regeneration re-answers one message.
                reply_parents = user_ids if edit else [user_ids[0]] * (extra + 1)
                reply_ids = self._position(
                    conversation_id,
                    user_id,
                    "assistant",
                    user_seq + 1,
                    extra=extra,
                    parents=reply_parents,
                    model=model,
                    at=at,
                )
                parent = reply_ids[-1]
            at += timedelta(seconds=60 * (extra + 1) + rng.randint(20, 900))
        title = " ".join(rng.choices(WORDS, k=rng.randint(2, 6))).capitalize()
        self.conversations.append((conversation_id, user_id, title, start, at, at))
        return conversation_id, len(self.messages) - first_row

    def _position(
        self,
        conversation_id: uuid.UUID,
        user_id: uuid.UUID,
        role: str,
        seq: int,
        *,
        extra: int,
        parents: Sequence[uuid.UUID | None],
        model: str,
        at: datetime,
    ) -> list[uuid.UUID]:
        """Revisions 0..extra of one position (the last is current); `parents` is one per revision,
        or a single parent for all."""
        ids: list[uuid.UUID] = []
        for revision in range(extra + 1):
            message_id = self.new_id()
            created = at + timedelta(seconds=60 * revision + (8 if role == "assistant" else 0))
            if role == "user":
                content, tokens, status = self.text(150, 0.8, 8, 4_000), None, "complete"
                revision_type = "user_edit" if revision else None
            else:
                content = self.text(750, 0.7, 40, 12_000)
                tokens = len(content) // 4 + self.rng.randint(50, 400)
                status = "incomplete" if self.rng.random() < 0.005 else "complete"
                revision_type = "regeneration" if revision else None
            self.messages.append(
                (
                    message_id,
                    conversation_id,
                    user_id,
                    role,
                    content,
                    model,
                    tokens,
                    seq,
                    parents[revision] if len(parents) > 1 else parents[0],
                    ids[0] if ids else None,
                    revision,
                    revision_type,
                    revision == extra,
                    status,
                    created,
                    created,
                )
            )
            ids.append(message_id)
        return ids


def make_corpus(rng: random.Random, chars: int = 200_000) -> str:
    parts: list[str] = []
    size = 0
    while size < chars:
        sentence = " ".join(rng.choices(WORDS, k=rng.randint(6, 18))).capitalize() + "."
        sentence += "\n\n" if rng.random() < 0.15 else " "
        parts.append(sentence)
        size += len(sentence)
    return "".join(parts)


@dataclass(frozen=True)
class Built:
    main_user: uuid.UUID
    main_email: str
    conversation_id: uuid.UUID
    main_rows: int
    revised_positions: int
    table_rows: int
    conversations: int
    users: int
    seconds: float


def build(url: str) -> Built:
    started = time.perf_counter()
    rng = random.Random(SEED)
    data = Dataset(rng, make_corpus(rng))
    now = datetime.now(UTC)
    users = [data.new_id() for _ in range(1 + OTHER_USERS)]
    main_user = users[0]
    conversation_id, main_rows = data.add_conversation(main_user, MAIN_POSITIONS, now - timedelta(days=40))
    for index in range(OTHER_CONVERSATIONS):
        owner = users[1 + index % OTHER_USERS]
        data.add_conversation(owner, OTHER_POSITIONS, now - timedelta(days=rng.randint(1, 120)))
    revised = len({m[7] for m in data.messages if m[1] == conversation_id and m[10] > 0})

    emails = [f"bench-{u.hex[:10]}@example.test" for u in users]
    with psycopg.connect(url, autocommit=True) as admin:
        with admin.transaction(), admin.cursor() as cur:
            # As Supabase does it: auth.users rows; the trigger creates users and their quotas.
            cur.executemany(
                "insert into auth.users (id, email) values (%s, %s)", list(zip(users, emails, strict=True))
            )
            with cur.copy(
                "copy public.conversations (id, user_id, title, created_at, updated_at, last_message_at)"
                " from stdin"
            ) as copy:
                for row in data.conversations:
                    copy.write_row(row)
            with cur.copy(f"copy public.chat_messages ({MESSAGE_COPY_COLUMNS}) from stdin") as copy:
                for row in data.messages:
                    copy.write_row(row)
        admin.execute("vacuum (analyze) public.chat_messages, public.conversations, public.users")
    return Built(
        main_user=main_user,
        main_email=emails[0],
        conversation_id=conversation_id,
        main_rows=main_rows,
        revised_positions=revised,
        table_rows=len(data.messages),
        conversations=len(data.conversations),
        users=len(users),
        seconds=time.perf_counter() - started,
    )


# --- measuring ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Variant:
    """One way of loading the branch; `setup` runs in the transaction before the timed part."""

    key: str
    sql: str
    setup: str | None
    load: Callable[[Connection, str, dict[str, Any]], tuple[int, float | None]]
    samples: list[float] = field(default_factory=list)
    execute_samples: list[float] = field(default_factory=list)


def load_models(conn: Connection, query: str, params: dict[str, Any]) -> tuple[int, float | None]:
    if query == repo.CURRENT_BRANCH:  # the API's own function
        return len(repo.current_branch(conn, params["conversation_id"])), None
    with conn.cursor(row_factory=class_row(Message)) as cur:
        return len(cur.execute(query, params).fetchall()), None


def load_tuples(conn: Connection, query: str, params: dict[str, Any]) -> tuple[int, float | None]:
    """Tuples; also the time of `execute` alone, which receives the whole result (psycopg builds the
    Python rows only in `fetchall`)."""
    with conn.cursor(row_factory=tuple_row) as cur:
        started = time.perf_counter()
        cur.execute(query, params)
        executed = time.perf_counter() - started
        rows: list[TupleRow] = cur.fetchall()
    return len(rows), executed


def explain(conn: Connection, query: str, params: dict[str, Any]) -> dict[str, Any]:
    row = conn.execute("explain (analyze, format json) " + query, params).fetchone()
    assert row is not None
    return dict(row["QUERY PLAN"][0])


def plan_shape(plan: dict[str, Any]) -> str:
    """The main nodes of a plan, outermost first (init plans such as auth.uid() left out)."""

    def walk(node: dict[str, Any]) -> Iterator[str]:
        name = node["Node Type"]
        if "Index Name" in node:
            name += f" using {node['Index Name']}"
        yield name
        for child in node.get("Plans", []):
            if child.get("Parent Relationship") not in {"InitPlan", "SubPlan"}:
                yield from walk(child)

    return " > ".join(walk(plan["Plan"]))


def check_chain(messages: list[Message], expected: int) -> None:
    if len(messages) != expected:
        raise RuntimeError(f"current branch has {len(messages)} messages, expected {expected}")
    for previous, message in zip([None, *messages], messages, strict=False):
        wanted_parent = previous.id if previous else None
        wanted_seq = previous.sequence_number + 1 if previous else 1
        if message.parent_message_id != wanted_parent or message.sequence_number != wanted_seq:
            raise RuntimeError(f"broken parent chain at sequence {message.sequence_number}")


# Server-side cases: the API's query as planned, the same query forced onto an ordered scan of the
# partial index (the plan its comment intends), and the baseline without indexes.
EXPLAINED = (
    ("index", repo.CURRENT_BRANCH, None),
    (
        "ordered",
        repo.CURRENT_BRANCH,
        "set local enable_seqscan = off; set local enable_bitmapscan = off; set local enable_sort = off",
    ),
    ("baseline", BASELINE_SQL, NO_INDEX),
)


def measure(db: Database, principal: Principal, built: Built, repetitions: int) -> dict[str, Any]:
    params: dict[str, Any] = {"conversation_id": built.conversation_id, "after_seq": 0, "limit": None}
    expected = MAIN_POSITIONS
    variants = [
        Variant("index_models", repo.CURRENT_BRANCH, None, load_models),
        Variant("index_tuples", repo.CURRENT_BRANCH, None, load_tuples),
        Variant("baseline_models", BASELINE_SQL, NO_INDEX, load_models),
        Variant("baseline_tuples", BASELINE_SQL, NO_INDEX, load_tuples),
    ]
    server: dict[str, list[float]] = {key: [] for key, _, _ in EXPLAINED}
    plans: dict[str, str] = {}
    transaction_samples: list[float] = []

    with db.user_transaction(principal) as conn:
        check_chain(repo.current_branch(conn, built.conversation_id), expected)
        branch_bytes = conn.execute(
            "select sum(octet_length(content)) as n from public.chat_messages"
            " where conversation_id = %s and is_latest",
            (built.conversation_id,),
        ).fetchone()

    # As in a handler process, which freezes what it imported at cold start (oneai.runtime).
    gc.collect()
    freeze_startup_objects()
    for repetition in range(WARMUP + repetitions):
        keep = repetition >= WARMUP
        for variant in variants:
            started = time.perf_counter()
            with db.user_transaction(principal) as conn:
                if variant.setup:
                    conn.execute(variant.setup)
                before = time.perf_counter()
                count, executed = variant.load(conn, variant.sql, params)
                elapsed = time.perf_counter() - before
            whole = time.perf_counter() - started
            if count != expected:
                raise RuntimeError(f"{variant.key}: {count} rows, expected {expected}")
            if keep:
                variant.samples.append(elapsed)
                if executed is not None:
                    variant.execute_samples.append(executed)
                if variant.key == "index_models":
                    transaction_samples.append(whole)
        for key, query, setup in EXPLAINED:
            with db.user_transaction(principal) as conn:
                if setup:
                    conn.execute(setup)
                plan = explain(conn, query, params)
            plans[key] = plan_shape(plan)
            if keep:
                server[key].append(plan["Execution Time"] / 1000)

    results: dict[str, Any] = {v.key: summarize(v.samples) for v in variants}
    results.update({f"{v.key}_execute": summarize(v.execute_samples) for v in variants if v.execute_samples})
    results.update({f"{key}_server": summarize(samples) for key, samples in server.items()})
    results["index_transaction"] = summarize(transaction_samples)
    results["plans"] = plans
    results["branch_bytes"] = int(branch_bytes["n"]) if branch_bytes else 0
    return results


def run(*, quick: bool = False) -> None:
    repetitions = QUICK_REPETITIONS if quick else REPETITIONS
    print(f"== current_branch: load the current branch of a {MAIN_POSITIONS:,}-message conversation ==")
    with throwaway_database() as url:
        built = build(url)
        with psycopg.connect(url) as admin:
            version = admin.execute("show server_version").fetchone()
        with override_settings(
            database_url=SecretStr(url),
            supabase_jwt_secret=SecretStr(JWT_SECRET),
            supabase_jwt_issuer=ISSUER,
            supabase_url=SUPABASE_URL,
            dev_mode=False,
        ) as settings:
            token = mint_dev_token(built.main_user, secret=JWT_SECRET, issuer=ISSUER, email=built.main_email)
            principal = authenticate("Bearer " + token)
            db = Database(settings)
            try:
                results = measure(db, principal, built, repetitions)
            finally:
                db.close()
    report(built, results, repetitions, version[0] if version else "?")


def report(built: Built, results: dict[str, Any], repetitions: int, server_version: str) -> None:
    r = results
    print(
        f"data: 1 conversation, {MAIN_POSITIONS:,} current messages in {built.main_rows:,} rows"
        f" ({built.revised_positions:,} positions revised), current content {r['branch_bytes'] / 1e6:.1f} MB;"
        f" chat_messages {built.table_rows:,} rows, {built.conversations} conversations, {built.users} users"
    )
    print(
        f"      built in {built.seconds:.1f} s (COPY + VACUUM ANALYZE), PostgreSQL {server_version};"
        f" {repetitions} repetitions after {WARMUP} warm-up, interleaved, one user transaction each"
    )
    rows = [
        ["with the partial index: the API's query", "", "", ""],
        summary_row("  current_branch() -> Message models", r["index_models"]),
        summary_row("  same SQL as tuples, no models", r["index_tuples"]),
        summary_row("    of which execute (result received)", r["index_tuples_execute"]),
        summary_row("  server execution (EXPLAIN ANALYZE)", r["index_server"]),
        summary_row("  whole user transaction + models", r["index_transaction"]),
        summary_row("  server, forced ordered index scan", r["ordered_server"]),
        ["baseline: no index (seq scan + sort)", "", "", ""],
        summary_row("  same load -> Message models", r["baseline_models"]),
        summary_row("  same SQL as tuples, no models", r["baseline_tuples"]),
        summary_row("  server execution (EXPLAIN ANALYZE)", r["baseline_server"]),
    ]
    print(table(SUMMARY_HEADERS, rows))
    print(f"plan, API query:     {r['plans']['index']}")
    print(f"plan, forced scan:   {r['plans']['ordered']}")
    print(f"plan, baseline:      {r['plans']['baseline']}")

    index_models: Summary = r["index_models"]
    index_server: Summary = r["index_server"]
    postgres = index_server.median
    output = max(0.0, r["index_tuples_execute"].median - postgres)
    rows_built = max(0.0, r["index_tuples"].median - r["index_tuples_execute"].median)
    models = max(0.0, index_models.median - r["index_tuples"].median)
    print(
        f"split of current_branch(), medians: PostgreSQL execution {ms(postgres)}"
        f" + detoast/output/transfer {ms(output)} + psycopg rows {ms(rows_built)}"
        f" + pydantic models {ms(models)} ms"
    )
    print(
        f"what the index buys, medians: server {ms(r['baseline_server'].median - postgres)} ms"
        f" ({r['baseline_server'].median / postgres:.2f}x),"
        f" end to end {ms(r['baseline_models'].median - index_models.median)} ms"
        f" ({r['baseline_models'].median / index_models.median:.2f}x)"
    )
    verdict = "PASS" if index_models.median * 1000 <= GOAL_MS else "MISS"
    print(f"goal: current_branch() median <= {GOAL_MS:.0f} ms: {ms(index_models.median)} ms  {verdict}")


if __name__ == "__main__":
    run()
