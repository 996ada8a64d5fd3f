"""What PostgreSQL cannot store, in any text or JSON the code hands it.

`text` and `jsonb` refuse NUL (U+0000); UTF-8 has no encoding for a lone surrogate (`"\\udc00"` is valid
JSON but not valid Unicode); `jsonb` has no NaN or Infinity (Python's JSON parser accepts them). Each
of these reaching the database is a 500, so the places where outside data comes in check for them.
"""

from __future__ import annotations

import math
import re
from typing import Any

# NUL, and the UTF-16 surrogate range, which only a lone (unpaired) surrogate escape can produce.
UNSTORABLE = re.compile("[\x00\ud800-\udfff]")


def has_unstorable(value: Any) -> bool:
    """Whether a parsed JSON value holds, at any depth, a string (key or value) or number the database
    could not store."""
    if isinstance(value, str):
        return UNSTORABLE.search(value) is not None
    if isinstance(value, float):
        return not math.isfinite(value)
    if isinstance(value, dict):
        return any(UNSTORABLE.search(str(key)) or has_unstorable(item) for key, item in value.items())
    if isinstance(value, list):
        return any(has_unstorable(item) for item in value)
    return False
