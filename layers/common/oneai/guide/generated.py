"""Blocks of the user guide generated from configuration, so that the guide cannot drift from it.

A page holds a block between `<!-- generated:NAME begin -->` and `<!-- generated:NAME end -->`; the text
between the markers is replaced by the renderer of NAME. `--write` rewrites the committed pages, `--check`
exits 1 when one differs (a test runs it), and the index step fills the blocks before indexing.

    python -m oneai.guide.generated --write
"""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Callable
from pathlib import Path

from oneai.guide.folder import default_guide_dir
from oneai.quota.tiers import PRICE_CURRENCY, QUOTA_KEYS, TIERS, QuotaKey, ResetFrequency, Tier

_BLOCK = re.compile(
    r"(?P<begin><!-- generated:(?P<name>[a-z-]+) begin[^>]*-->\n)(?P<content>.*?)(?P<end><!-- generated:(?P=name) end -->)",
    re.DOTALL,
)

QUOTA_NAMES: dict[QuotaKey, str] = {
    "small_messages": "Messages to fast models",
    "large_messages": "Messages to large models",
    "image_generation": "Image generations",
}
RESET_WORDS: dict[ResetFrequency, str] = {
    "3hour": "every 3 hours",
    "daily": "a day",
    "monthly": "a month",
}
RESET_EXPLAINED: dict[ResetFrequency, str] = {
    "3hour": "three hours after the window started (a rolling window that starts again when it resets)",
    "daily": "every day at 00:00 UTC",
    "monthly": "on the 1st of every month at 00:00 UTC",
}
_CURRENCY_SYMBOLS = {"USD": "$"}


def _price(tier: Tier) -> str:
    if tier.price is None:
        return "Custom pricing"
    if tier.price == 0:
        return "Free"
    symbol = _CURRENCY_SYMBOLS.get(PRICE_CURRENCY, f"{PRICE_CURRENCY} ")
    return f"{symbol}{tier.price // 100}.{tier.price % 100:02d} a month"


def render_tier_table() -> str:
    """The limits of every tier as a markdown table, then when each kind of quota resets."""
    tiers = list(TIERS.values())
    lines = [
        "| | " + " | ".join(t.display_name for t in tiers) + " |",
        "|---|" + "---|" * len(tiers),
        "| Price | " + " | ".join(_price(t) for t in tiers) + " |",
    ]
    for key in QUOTA_KEYS:
        cells = [f"{t.quotas[key].limit:,} {RESET_WORDS[t.quotas[key].reset_frequency]}" for t in tiers]
        lines.append(f"| {QUOTA_NAMES[key]} | " + " | ".join(cells) + " |")
    lines.append("")
    for key in QUOTA_KEYS:
        frequencies_of_key = sorted({t.quotas[key].reset_frequency for t in tiers})
        explained = " or ".join(RESET_EXPLAINED[f] for f in frequencies_of_key)
        lines.append(f"- {QUOTA_NAMES[key]} reset {explained}.")
    return "\n".join(lines) + "\n"


RENDERERS: dict[str, Callable[[], str]] = {"tiers": render_tier_table}


def expand_generated(markdown: str) -> str:
    """`markdown` with every generated block rendered afresh; an unknown block name is an error."""

    def fill(match: re.Match[str]) -> str:
        renderer = RENDERERS.get(match["name"])
        if renderer is None:
            raise ValueError(f"unknown generated block: {match['name']}")
        return f"{match['begin']}{renderer()}{match['end']}"

    return _BLOCK.sub(fill, markdown)


def stale_pages(directory: Path, *, write: bool) -> list[Path]:
    """The pages whose committed text differs from their expansion (rewritten when `write`)."""
    stale = []
    for path in sorted(directory.glob("*.md")):
        text = path.read_text(encoding="utf-8")
        expanded = expand_generated(text)
        if expanded != text:
            stale.append(path)
            if write:
                path.write_text(expanded, encoding="utf-8")
    return stale


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m oneai.guide.generated", description=__doc__.split("\n\n")[0])
    parser.add_argument("--write", action="store_true", help="rewrite the pages whose generated blocks are stale")
    parser.add_argument("--dir", type=Path, default=None, help="the guide folder (default: docs/guide)")
    args = parser.parse_args(argv)
    stale = stale_pages(args.dir or default_guide_dir(), write=args.write)
    for path in stale:
        print(f"{'rewrote' if args.write else 'stale'}: {path.name}")
    if stale and not args.write:
        print("generated guide blocks are stale; run `python -m oneai.guide.generated --write`", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
