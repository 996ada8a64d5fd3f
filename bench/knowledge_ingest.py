"""Knowledge ingest, the pure part: parse + chunk throughput of each format, on one core, in process.

Files are made here (tests/knowledge_files.py): a 100-page text PDF (about 450 words a page, in paragraphs,
as a report reads), a DOCX handbook (200 headed sections), a long HTML help page, a 5,000-row CSV. Each
is parsed (`parse_document`) and chunked (`chunk_document`, default 500/50 tokens, cl100k_base) N times;
the tokenizer is loaded before timing (once per process, ~0.1 s: reported apart). Figures: pages/s (PDF)
and chunks/s, at the median of the runs. Goal of issue 24: >= 20 text pages/s on one core including the
embedding stand-in and the database write, which are not in this bench (they come with the ingest worker);
this part has to leave them most of that budget.
"""

from __future__ import annotations

import time

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
    print("  goal (issue 24): >= 20 text pages/s on one core for parse + chunk + embed stand-in + DB write")
