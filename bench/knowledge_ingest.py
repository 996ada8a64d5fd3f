"""Knowledge ingest, the pure part: parse + chunk throughput of each format, on one core, in process.

Files are made here (tests/knowledge_files.py): a 100-page text PDF (about 450 words a page, in paragraphs,
as a report reads), a DOCX handbook (200 headed sections), a long HTML help page, a 5,000-row CSV. Each
is parsed (`parse_document`) and chunked (`chunk_document`, default 500/50 tokens, cl100k_base) N times;
the tokenizer is loaded before timing (once per process, ~0.1 s: reported apart). Figures: pages/s (PDF)
and chunks/s, at the median of the runs.

Then the full ingest (`oneai.knowledge.ingest.Ingestor`, what IngestFunction runs for one message): the
claim, the read from S3 (moto, in process), parse, chunk, the embeddings from the fake OpenRouter (the
offline embedding over a local socket, in batches of 64, progress written after each) and the one
transaction that copies the chunks (vector(1536), HNSW and GIN indexes maintained) and marks the document
ready, into a throwaway migrated database. Goal of issue 24: >= 20 text pages/s on one core.
"""

from __future__ import annotations

import os
import time
import uuid
from typing import Any

from bench._report import summarize, table
from oneai.knowledge.chunking import chunk_document
from oneai.knowledge.parsing import parse_document
from oneai.knowledge.tokens import encoding
from tests.knowledge_files import DOCX_MEDIA_TYPE, docx_paragraph, docx_table, make_csv, make_docx, make_pdf

_TEXT = (
    "the customer may return any item within thirty days of delivery provided that it is unused and in it"
    "s original packaging refunds are issued to the original payment method after inspection which usuall"
    "y takes five working days exchanges are free of charge for faulty goods"
)
_WORDS = _TEXT.split()


def _prose(seed: int, words: int) -> str:
    picked = [_WORDS[(seed * 7 + i * 13) % len(_WORDS)] for i in range(words)]
    sentences = [" ".join(picked[i : i + 15]).capitalize() + "." for i in range(0, len(picked), 15)]
    return " ".join(sentences)


def _pdf(pages: int) -> bytes:
    def page(n: int) -> str:
        paragraphs = [_prose(n * 10 + p, 90) for p in range(5)]
        # PDF text arrives as lines of about 90 characters
        lines = []
        for paragraph in paragraphs:
            words = paragraph.split()
            lines.extend(" ".join(words[i : i + 14]) for i in range(0, len(words), 14))
        return "\n".join(lines)

    return make_pdf([page(n) for n in range(1, pages + 1)])


def _docx(sections: int) -> bytes:
    body = docx_paragraph("Operations handbook", heading=0)
    for n in range(sections):
        body += docx_paragraph(f"Section {n}", heading=1) + docx_paragraph(_prose(n, 120))
        if n % 10 == 0:
            body += docx_table([["Item", "Days"], *[[f"Item {i}", str(i)] for i in range(8)]])
    return make_docx(body)


def _html(sections: int) -> bytes:
    main = "".join(
        f"<h2>Topic {n}</h2><p>{_prose(n, 120)}</p><ul><li>{_prose(n + 1, 20)}</li></ul>" for n in range(sections)
    )
    return (
        "<html><head><title>Help</title><script>track()</script></head><body><nav><a href='/'>Home</a></nav>"
        f"<main><h1>Help centre</h1>{main}</main><footer>Footer</footer></body></html>"
    ).encode()


def run(quick: bool = False) -> None:
    repeats = 3 if quick else 7
    started = time.perf_counter()
    encoding()
    load_seconds = time.perf_counter() - started

    cases = [
        ("PDF, 100 text pages", _pdf(100), "application/pdf", "report.pdf"),
        ("DOCX, 200 sections", _docx(200), DOCX_MEDIA_TYPE, "handbook.docx"),
        ("HTML, 200 sections", _html(200), "text/html", "help.html"),
        ("CSV, 5,000 rows", make_csv(5000), "text/csv", "stock.csv"),
    ]
    rows = []
    for label, data, media_type, filename in cases:
        parse_times, chunk_times = [], []
        pages = chunks = tokens = 0
        for _ in range(repeats):
            t0 = time.perf_counter()
            document = parse_document(data, media_type, filename)
            t1 = time.perf_counter()
            result = chunk_document(document)
            t2 = time.perf_counter()
            parse_times.append(t1 - t0)
            chunk_times.append(t2 - t1)
            pages, chunks, tokens = document.pages or 0, len(result), sum(chunk.tokens for chunk in result)
        parse_s, chunk_s = summarize(parse_times).median, summarize(chunk_times).median
        total = parse_s + chunk_s
        rows.append(
            [
                label,
                f"{len(data) / 1024:,.0f}",
                f"{chunks:,}",
                f"{tokens:,}",
                f"{parse_s * 1000:,.0f}",
                f"{chunk_s * 1000:,.0f}",
                f"{pages / total:,.1f}" if pages else "-",
                f"{chunks / total:,.0f}",
            ]
        )
    print(
        f"knowledge_ingest: parse + chunk, median of {repeats} runs (cl100k_base loaded once in {load_seconds * 1000:.0f} ms)"
    )
    print(table(["file", "KiB", "chunks", "tokens", "parse ms", "chunk ms", "pages/s", "chunks/s"], rows))
    _full_ingest(quick)
    print("  goal (issue 24): >= 20 text pages/s on one core for parse + chunk + embed stand-in + DB write")


def _full_ingest(quick: bool) -> None:
    import boto3
    import psycopg
    from moto import mock_aws
    from pydantic import SecretStr

    from bench._db import throwaway_database
    from local.fake_openrouter import FakeOpenRouter
    from oneai.attachments.storage import ObjectStore
    from oneai.config import override_settings
    from oneai.db.connection import Database
    from oneai.knowledge.ingest import DocumentRef, Ingestor, IngestResult
    from oneai.logging import logger

    logger.setLevel("WARNING")  # a line per batch and document would drown the report

    repeats = 2 if quick else 5
    pdf_pages = 20 if quick else 100
    cases = [
        (f"PDF, {pdf_pages} text pages", _pdf(pdf_pages), "application/pdf", "report.pdf"),
        ("DOCX, 200 sections", _docx(200), DOCX_MEDIA_TYPE, "handbook.docx"),
        ("CSV, 5,000 rows", make_csv(5000), "text/csv", "stock.csv"),
    ]
    for name, value in {
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ACCESS_KEY_ID": "bench",
        "AWS_SECRET_ACCESS_KEY": "bench",
    }.items():
        os.environ.setdefault(name, value)
    bucket = "oneai-bench-knowledge"
    with throwaway_database() as url, FakeOpenRouter(delay=0.0) as upstream, mock_aws():
        with psycopg.connect(url, autocommit=True) as conn:
            owner = uuid.uuid4()
            conn.execute("insert into auth.users (id, email) values (%s, 'owner@bench.test')", (owner,))
            row: Any = conn.execute(
                "insert into public.workspaces (name, slug, owner_id) values ('Bench', %s, %s) returning id",
                (f"bench-{owner.hex[:12]}", owner),
            ).fetchone()
            workspace_id = row[0]
        s3 = boto3.client("s3")
        s3.create_bucket(Bucket=bucket)
        with override_settings(
            database_url=SecretStr(url),
            attachments_bucket=bucket,
            openrouter_base_url=upstream.base_url,
            openrouter_api_key=SecretStr("sk-or-bench"),
        ) as settings:
            database = Database(settings)
            ingestor = Ingestor(database, ObjectStore(settings), settings)
            rows = []
            for label, data, media_type, filename in cases:
                times: list[float] = []
                pages = chunks = 0
                for _ in range(repeats):
                    document_id = uuid.uuid4()
                    key = f"knowledge/{workspace_id}/{document_id}/{filename}"
                    s3.put_object(Bucket=bucket, Key=key, Body=data, ContentType=media_type)
                    with database.service_transaction() as conn:
                        conn.execute(
                            "insert into public.documents (id, workspace_id, filename, media_type, size_bytes,"
                            " storage_key, status) values (%s, %s, %s, %s, %s, %s, 'queued')",
                            (document_id, workspace_id, filename, media_type, len(data), key),
                        )
                    started = time.perf_counter()
                    outcome = ingestor.ingest(DocumentRef(document_id=document_id), receive_count=1)
                    times.append(time.perf_counter() - started)
                    assert outcome.result is IngestResult.READY, outcome
                    with database.service_transaction() as conn:
                        done = conn.execute(
                            "select pages, chunks_total from public.documents where id = %s", (document_id,)
                        ).fetchone()
                    assert done is not None
                    pages, chunks = done["pages"] or 0, done["chunks_total"]
                seconds = summarize(times).median
                rows.append(
                    [
                        label,
                        f"{chunks:,}",
                        f"{seconds * 1000:,.0f}",
                        f"{pages / seconds:,.1f}" if pages else "-",
                        f"{chunks / seconds:,.0f}",
                    ]
                )
            database.close()
    print(
        f"knowledge_ingest: full ingest (claim, S3 read, parse, chunk, offline embeddings, DB write), median of {repeats}"
    )
    print(table(["file", "chunks", "ms", "pages/s", "chunks/s"], rows))
