"""What listing attachments on every message costs the current-branch load (issue 12).

Every message route now carries `attachments`: a correlated subquery per message row
(`oneai.db.attachments.MESSAGE_ATTACHMENTS_COLUMN`, an index probe on `attachments.message_id`). Data:
the 10,000-message conversation of the `current_branch` benchmark, with 1 message in 10 carrying one to
three image attachments (~1,500 rows; other users' attachments besides). Measured in one run, interleaved
per repetition inside a user transaction (RLS applies), parsed into `Message` models as the API does:
- the API's load (`repo.current_branch`, with the attachments column);
- baseline: the same query without the column (what the load was before).
Also: signing presigned GETs (what a chat turn does per image it sends the model), local signing only.
"""

from __future__ import annotations

import gc
import random
import time
import uuid
from typing import Any

import psycopg
from pydantic import SecretStr

from bench._db import throwaway_database
from bench._report import SUMMARY_HEADERS, summarize, summary_row, table
from bench.current_branch import ISSUER, JWT_SECRET, SEED, SUPABASE_URL, WARMUP, build
from oneai.auth import authenticate, mint_dev_token
from oneai.config import override_settings
from oneai.db import conversations as repo
from oneai.db.connection import Database

REPETITIONS = 30
QUICK_REPETITIONS = 8
ATTACHED_SHARE = 10  # one message in ten carries attachments
# The message columns before issue 12, i.e. the same query without `attachments`.
BASELINE_SQL = """
select id, conversation_id, role, content, model_id, tokens_used, sequence_number, revision_number,
       revision_type, original_message_id, parent_message_id, is_latest, status, created_at
from public.chat_messages
where conversation_id = %(conversation_id)s and is_latest and sequence_number > %(after_seq)s
order by sequence_number
limit %(limit)s"""
PRESIGN_COUNT = 100


def add_attachments(url: str, conversation_id: uuid.UUID, user_id: uuid.UUID) -> int:
    rng = random.Random(SEED)
    rows = []
    with psycopg.connect(url) as conn:
        messages = conn.execute(
            "select id from public.chat_messages where conversation_id = %s and is_latest order by sequence_number",
            (conversation_id,),
        ).fetchall()
        for (message_id,) in messages:
            if rng.randrange(ATTACHED_SHARE) == 0:
                for _ in range(rng.randint(1, 3)):
                    attachment_id = uuid.uuid4()
                    rows.append(
                        (attachment_id, user_id, conversation_id, message_id, f"users/{user_id}/{attachment_id}")
                    )
        with conn.cursor().copy(
            "copy public.attachments (id, user_id, conversation_id, message_id, s3_key, filename, media_type, size,"
            " status) from stdin"
        ) as copy:
            for row in rows:
                copy.write_row((*row, "photo.png", "image/png", rng.randint(10_000, 2_000_000), "uploaded"))
        conn.execute("analyze public.attachments")
    return len(rows)


def run(*, quick: bool = False) -> None:
    repetitions = QUICK_REPETITIONS if quick else REPETITIONS
    print("== message_attachments: the current-branch load with each message's attachments ==")
    with throwaway_database() as url:
        built = build(url)
        attached = add_attachments(url, built.conversation_id, built.main_user)
        with override_settings(
            database_url=SecretStr(url),
            supabase_jwt_secret=SecretStr(JWT_SECRET),
            supabase_jwt_issuer=ISSUER,
            supabase_url=SUPABASE_URL,
            dev_mode=False,
            attachments_bucket="oneai-bench",
            s3_endpoint_url="http://127.0.0.1:9",  # signing is local: nothing is ever sent there
        ) as settings:
            principal = authenticate(
                "Bearer "
                + mint_dev_token(built.main_user, secret=JWT_SECRET, issuer=ISSUER, email=built.main_email)
            )
            db = Database(settings)
            try:
                samples = measure(db, principal, built.conversation_id, repetitions)
            finally:
                db.close()
            presign = measure_presign(built.main_user)
    print(
        f"data: {built.main_rows:,} rows in the conversation (10,000 current), {attached:,} attachments on"
        f" ~1 message in {ATTACHED_SHARE}; {repetitions} repetitions after {WARMUP} warm-up, interleaved"
    )
    rows = [
        summary_row("with attachments (the API's load)", summarize(samples["with"])),
        summary_row("baseline: without the column", summarize(samples["without"])),
    ]
    print(table(SUMMARY_HEADERS, rows))
    extra = summarize(samples["with"]).median - summarize(samples["without"]).median
    print(f"cost of listing attachments: {extra * 1000:+.2f} ms median for 10,000 messages")
    print(f"presigning a GET: {presign * 1e6:.0f} µs each (median of {PRESIGN_COUNT}, no network)")


def measure(db: Database, principal: Any, conversation_id: uuid.UUID, repetitions: int) -> dict[str, list[float]]:
    samples: dict[str, list[float]] = {"with": [], "without": []}
    params = {"conversation_id": conversation_id, "after_seq": 0, "limit": None}

    def with_column() -> int:
        with db.user_transaction(principal) as conn:
            return len(repo.current_branch(conn, conversation_id))

    def without_column() -> int:
        with db.user_transaction(principal) as conn, conn.cursor(binary=True) as cur:
            return len(repo.MESSAGE_LIST.validate_python(cur.execute(BASELINE_SQL, params).fetchall()))

    for index in range(WARMUP + repetitions):
        for key, load in (("with", with_column), ("without", without_column))[:: 1 if index % 2 else -1]:
            gc.collect()
            started = time.perf_counter()
            count = load()
            elapsed = time.perf_counter() - started
            assert count == 10_000, count
            if index >= WARMUP:
                samples[key].append(elapsed)
    return samples


def measure_presign(user_id: uuid.UUID) -> float:
    from oneai.attachments.service import model_image_part
    from oneai.attachments.storage import get_object_store

    store = get_object_store()
    model_image_part(store, user_id, uuid.uuid4(), "image/png")  # the client is made on first use
    timings = []
    for _ in range(PRESIGN_COUNT):
        started = time.perf_counter()
        model_image_part(store, user_id, uuid.uuid4(), "image/png")
        timings.append(time.perf_counter() - started)
    return summarize(timings).median
