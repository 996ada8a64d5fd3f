"""Benchmarks that print their figures next to a baseline measured in the same run (not timed tests).

make bench                  # or: python -m bench [--quick] [current_branch] [import_time]
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent

# `make bench` exports PYTHONPATH=layers/common:.; make a bare `python -m bench` work the same way.
for _folder in (REPO_ROOT / "layers" / "common", REPO_ROOT):
    if str(_folder) not in sys.path:
        sys.path.insert(0, str(_folder))

# The code under measurement writes CloudWatch EMF metrics to stdout; here they would only bury the figures.
os.environ.setdefault("POWERTOOLS_METRICS_DISABLED", "true")
