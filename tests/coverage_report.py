"""Coverage per package, from the combined data of every process of the run (`make coverage`, `make test`).

    python -m tests.coverage_report            # the per-package table and the total
    python -m tests.coverage_report --files    # the per-file report (missing lines) first

A package is a directory of `oneai` (`oneai.billing`, `oneai.chat`, ...; modules directly under `oneai`
count as `oneai`) or a function package (`functions/<name>`). Figures count statements and branches
together, as coverage's own total does. Exits 2 when the total is under `fail_under` (pyproject.toml).
"""

from __future__ import annotations

import argparse
import io
import sys
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import coverage
from coverage.results import Numbers, should_fail_under

REPO_ROOT = Path(__file__).resolve().parent.parent
LAYER_PACKAGE = PurePosixPath("layers/common/oneai")


@dataclass
class Tally:
    statements: int = 0
    missing: int = 0
    branches: int = 0
    partial_branches: int = 0
    missing_branches: int = 0

    def add(self, numbers: Numbers) -> None:
        self.statements += numbers.n_statements
        self.missing += numbers.n_missing
        self.branches += numbers.n_branches
        self.partial_branches += numbers.n_partial_branches
        self.missing_branches += numbers.n_missing_branches

    @property
    def percent(self) -> float:
        possible = self.statements + self.branches
        covered = possible - self.missing - self.missing_branches
        return 100.0 * covered / possible if possible else 100.0


def package_of(path: Path) -> str:
    relative = PurePosixPath(path.resolve().relative_to(REPO_ROOT).as_posix())
    if relative.is_relative_to(LAYER_PACKAGE):
        inner = relative.relative_to(LAYER_PACKAGE)
        return "oneai" if len(inner.parts) == 1 else f"oneai.{inner.parts[0]}"
    if relative.parts[0] == "functions" and len(relative.parts) > 2:
        return f"functions/{relative.parts[1]}"
    return str(relative.parent)


def tally(cov: coverage.Coverage) -> dict[str, Tally]:
    packages: dict[str, Tally] = defaultdict(Tally)
    data = cov.get_data()
    for filename in sorted(data.measured_files()):
        path = Path(filename)
        if not path.is_file():
            continue
        analysis = cov._analyze(filename)  # the public API gives no branch counts per file
        if analysis.numbers.n_statements:
            packages[package_of(path)].add(analysis.numbers)
    return dict(packages)


def render(packages: dict[str, Tally]) -> str:
    width = max(len(name) for name in [*packages, "package"])
    header = f"{'package':<{width}}  {'stmts':>6} {'miss':>5} {'branch':>6} {'brpart':>6} {'cover':>7}"
    lines = [header, "-" * len(header)]
    total = Tally()
    for name in sorted(packages):
        t = packages[name]
        lines.append(
            f"{name:<{width}}  {t.statements:>6} {t.missing:>5} {t.branches:>6} {t.partial_branches:>6} {t.percent:>6.1f}%"
        )
        for field in ("statements", "missing", "branches", "partial_branches", "missing_branches"):
            setattr(total, field, getattr(total, field) + getattr(t, field))
    lines.append("-" * len(header))
    lines.append(
        f"{'TOTAL':<{width}}  {total.statements:>6} {total.missing:>5} {total.branches:>6} {total.partial_branches:>6} {total.percent:>6.1f}%"
    )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--files", action="store_true", help="print coverage's per-file report first")
    parser.add_argument("--data-file", help="another combined data file than pyproject.toml's")
    args = parser.parse_args(argv)

    cov = coverage.Coverage(data_file=args.data_file) if args.data_file else coverage.Coverage()
    cov.load()
    if args.files:
        cov.report(show_missing=True, skip_covered=True, file=sys.stdout)
        print()
    total = cov.report(file=io.StringIO())  # coverage's own total, the one `fail_under` is held to
    print("Coverage across processes (branches included), per package:")
    print(render(tally(cov)))
    fail_under = float(cov.config.fail_under)
    if should_fail_under(total, fail_under, cov.config.precision):
        print(f"FAIL: total coverage {total:.1f}% is under the floor of {fail_under:g}% (pyproject.toml)")
        return 2
    print(f"total coverage {total:.1f}% (floor {fail_under:g}%)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
