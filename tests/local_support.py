"""A Python process of its own, run from the repository root the way `make` runs the project's modules."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Mapping

from tests.conftest import REPO_ROOT


def run_python(*args: str, environ: Mapping[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """`python <args>` with the layer and the repository importable; fails on a non-zero exit."""
    env = {
        **(os.environ if environ is None else environ),
        "PYTHONPATH": f"{REPO_ROOT / 'layers' / 'common'}:{REPO_ROOT}",
    }
    return subprocess.run(
        [sys.executable, *args], cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=120, check=True
    )
