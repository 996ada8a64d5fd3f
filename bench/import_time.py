"""Cold import time of every function handler, each in a fresh interpreter, as a Lambda cold start pays it.

For each `functions/<name>/<package>/handler.py` the module `<package>.handler` is imported by a new
`python -c` with PYTHONPATH=layers/common:functions/<name> (the layout Lambda sees), N times: the
process wall time and the import time measured inside the process. The baseline, measured the same
way and interleaved with it, is a bare `python -c pass`. One untimed run first writes the bytecode
caches, so the figures are "warm disk cache, compiled .pyc", like a deployed package with .pyc files.
Then one `-X importtime` run shows where the time goes: the slowest top-level packages.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from dataclasses import dataclass, field

from bench import REPO_ROOT
from bench._report import SUMMARY_HEADERS, ms, summarize, summary_row, table

RUNS = 10
QUICK_RUNS = 3
TOP = 5
IMPORT_SNIPPET = "import time; t = time.perf_counter(); import {module}; print(time.perf_counter() - t)"


@dataclass(frozen=True)
class Handler:
    function: str  # functions/<function>
    module: str  # <package>.handler
    pythonpath: str

    @classmethod
    def discover(cls) -> list[Handler]:
        found = []
        for path in sorted(REPO_ROOT.glob("functions/*/*/handler.py")):
            function_dir = path.parent.parent
            pythonpath = os.pathsep.join([str(REPO_ROOT / "layers" / "common"), str(function_dir)])
            found.append(cls(function_dir.name, f"{path.parent.name}.handler", pythonpath))
        return found


@dataclass
class Samples:
    wall: list[float] = field(default_factory=list)
    imported: list[float] = field(default_factory=list)


def _env(pythonpath: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
    env["PYTHONPATH"] = pythonpath
    return env


def _run(args: list[str], pythonpath: str) -> tuple[float, subprocess.CompletedProcess[str]]:
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, *args], env=_env(pythonpath), cwd=REPO_ROOT, capture_output=True, text=True, check=False
    )
    wall = time.perf_counter() - started
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(args)} failed ({done.returncode}):\n{done.stderr[-2000:]}")
    return wall, done


@dataclass(frozen=True)
class ImportLine:
    name: str
    self_us: int
    cumulative_us: int
    depth: int


def parse_importtime(stderr: str) -> list[ImportLine]:
    """`import time: <self> | <cumulative> | <indent><name>`; two spaces of indent per nesting level."""
    lines = []
    for raw in stderr.splitlines():
        if not raw.startswith("import time:"):
            continue
        fields = raw[len("import time:") :].split("|")
        if len(fields) != 3 or not fields[0].strip().isdigit():
            continue  # the header line
        label = fields[2]
        name = label.lstrip(" ")
        depth = (len(label) - len(name) - 1) // 2
        lines.append(ImportLine(name, int(fields[0]), int(fields[1]), depth))
    return lines


def importer_of(lines: list[ImportLine], index: int) -> str:
    """The first module outside the package that imported it (lines come children first: a line's
    importer is the next line one level up)."""
    package = lines[index].name.split(".")[0]
    depth = lines[index].depth
    for line in lines[index + 1 :]:
        if line.depth < depth:
            if line.name.split(".")[0] != package:
                return line.name
            depth = line.depth
    return "-"


def slowest_packages(handler: Handler, startup: set[str]) -> tuple[list[list[str]], int]:
    _, done = _run(["-X", "importtime", "-c", f"import {handler.module}"], handler.pythonpath)
    lines = parse_importtime(done.stderr)
    own = [(i, line) for i, line in enumerate(lines) if line.name not in startup]
    total = sum(line.cumulative_us for _, line in own if line.depth == 0)
    top_level = sorted(
        ((i, line) for i, line in own if "." not in line.name), key=lambda item: -item[1].cumulative_us
    )
    rows = [
        [
            line.name,
            ms(line.cumulative_us / 1e6),
            f"{100 * line.cumulative_us / total:.0f}%",
            importer_of(lines, i),
        ]
        for i, line in top_level[:TOP]
    ]
    return rows, total


def run(*, quick: bool = False) -> None:
    runs = QUICK_RUNS if quick else RUNS
    handlers = Handler.discover()
    print(f"== import_time: cold import of each function handler, fresh interpreter, N={runs} ==")
    print(
        f"python: {sys.executable} ({sys.version.split()[0]}); handlers: {', '.join(h.module for h in handlers)}"
    )
    if not handlers:
        print("no functions/*/*/handler.py found")
        return
    bare = Samples()
    per_handler = {h.module: Samples() for h in handlers}
    for handler in handlers:  # untimed: compile and cache the bytecode, warm the disk cache
        _run(["-c", IMPORT_SNIPPET.format(module=handler.module)], handler.pythonpath)
    _run(["-c", "pass"], handlers[0].pythonpath)
    for _ in range(runs):
        bare.wall.append(_run(["-c", "pass"], handlers[0].pythonpath)[0])
        for handler in handlers:
            elapsed, done = _run(["-c", IMPORT_SNIPPET.format(module=handler.module)], handler.pythonpath)
            per_handler[handler.module].wall.append(elapsed)
            per_handler[handler.module].imported.append(float(done.stdout.strip().splitlines()[-1]))

    bare_summary = summarize(bare.wall)
    rows = [summary_row("bare interpreter: python -c pass (wall)", bare_summary)]
    for handler in handlers:
        samples = per_handler[handler.module]
        wall = summarize(samples.wall)
        imported = summarize(samples.imported)
        rows += [
            [f"{handler.module} (functions/{handler.function})", "", "", ""],
            summary_row("  process wall time", wall),
            summary_row("  import, measured in the process", imported),
            ["  process wall over bare interpreter", ms(wall.median - bare_summary.median), "", ""],
            # Mostly the interpreter's exit tearing the modules down: a Lambda container does not pay it.
            [
                "  rest: wall - bare - import (mostly exit)",
                ms(wall.median - bare_summary.median - imported.median),
                "",
                "",
            ],
        ]
    print(table(SUMMARY_HEADERS, rows))

    _, startup_run = _run(["-X", "importtime", "-c", "pass"], handlers[0].pythonpath)
    startup = {line.name for line in parse_importtime(startup_run.stderr)}
    for handler in handlers:
        top, total = slowest_packages(handler, startup)
        print(
            f"slowest top-level packages under {handler.module} (one -X importtime run, which inflates times;"
            f" total {ms(total / 1e6)} ms; a package's time includes what it imports)"
        )
        print(table(("package", "cumulative ms", "share", "first imported by"), top, align="lrrl"))


if __name__ == "__main__":
    run(quick="--quick" in sys.argv[1:])
