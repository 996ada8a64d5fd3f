"""Process-level tuning for Lambda containers."""

from __future__ import annotations

import gc


def freeze_startup_objects() -> None:
    """Call once at the end of a handler module's import.

    Everything imported at cold start (FastAPI, pydantic, psycopg, ...) lives as long as the container.
    Freezing moves those objects out of the collector's generations, so the full collections that a
    large response triggers (thousands of rows) no longer walk them every time.
    """
    gc.freeze()
