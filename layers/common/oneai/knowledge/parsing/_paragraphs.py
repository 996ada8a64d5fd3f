"""Plain text to paragraphs: blank lines separate them; lines inside one are kept (lists, addresses)."""

from __future__ import annotations

import re

_BLANK_LINES = re.compile(r"\n[ \t\f\v]*\n\s*")
_SPACES = re.compile(r"[ \t\f\v]+")


def paragraphs(text: str) -> list[str]:
    result = []
    for part in _BLANK_LINES.split(text):
        lines = [_SPACES.sub(" ", line).strip() for line in part.split("\n")]
        joined = "\n".join(line for line in lines if line)
        if joined:
            result.append(joined)
    return result
