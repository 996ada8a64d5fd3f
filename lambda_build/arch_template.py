"""template.yaml for another architecture, for the build the artifact tests load on this machine.

    python -m lambda_build.arch_template x86_64 OUT.yaml

A generated copy, not a template parameter: the deployed template has one architecture on purpose (the
layer's wheels and the build check follow it), and a parameter would offer a choice nobody should make
at deploy time. The three places that name it are replaced, each of which must be found.
"""

from __future__ import annotations

import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
TEMPLATE = REPO_ROOT / "template.yaml"
ARCHITECTURES = ("arm64", "x86_64")
# the longest first: "Architectures: [..]" is part of "CompatibleArchitectures: [..]"
PLACES = ("CompatibleArchitectures: [{}]", "BuildArchitecture: {}", "    Architectures: [{}]")


def for_architecture(text: str, target: str, source: str = "arm64") -> str:
    if target not in ARCHITECTURES:
        raise ValueError(f"unknown architecture {target!r}")
    for place in PLACES:
        if place.format(source) not in text:
            raise ValueError(f"template.yaml has no `{place.format(source)}`")
        text = text.replace(place.format(source), place.format(target))
    return text


def main(argv: list[str]) -> int:
    target, out = argv
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    Path(out).write_text(for_architecture(TEMPLATE.read_text(), target))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
