"""Where the user guide's markdown pages are (read by the index step and by the generated blocks' command)."""

from __future__ import annotations

import os
from pathlib import Path


def default_guide_dir() -> Path:
    """`ONEAI_GUIDE_DIR`, else `docs/guide` of the repository this runs in."""
    configured = os.environ.get("ONEAI_GUIDE_DIR")
    if configured:
        return Path(configured)
    for folder in (Path.cwd(), *Path.cwd().parents, *Path(__file__).resolve().parents):
        candidate = folder / "docs" / "guide"
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError("docs/guide not found; set ONEAI_GUIDE_DIR")
