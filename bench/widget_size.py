"""The embeddable widget's script (`functions/widget/widget.js`, served as `GET /widget.js`): its size as
served (raw) and as a browser downloads it from a server or CDN that compresses (gzip level 9 and level 6,
the usual default), against its budget of 12 KB gzipped (issue 27; tests/unit/test_widget_pieces.py holds
it). No build step: the source is what is served. The added time to first token of a widget turn against
an in-app chatbot turn: bench/widget_chat.py."""

from __future__ import annotations

import gzip
from pathlib import Path

from bench._report import table

SCRIPT = Path(__file__).resolve().parent.parent / "functions" / "widget" / "widget.js"
BUDGET_GZIPPED = 12 * 1024


def run(*, quick: bool = False) -> None:
    del quick  # one measurement: sizes do not vary
    raw = SCRIPT.read_bytes()
    rows = [
        ["raw", f"{len(raw):,}", ""],
        ["gzip -9", f"{len(gzip.compress(raw, compresslevel=9)):,}", f"{BUDGET_GZIPPED:,}"],
        ["gzip -6", f"{len(gzip.compress(raw, compresslevel=6)):,}", f"{BUDGET_GZIPPED:,}"],
    ]
    print("widget_size: functions/widget/widget.js (served as GET /widget.js)")
    print(table(["form", "bytes", "budget"], rows))
