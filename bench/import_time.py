"""Cold import of every function from its built artifact, in the Lambda layout, against a bare interpreter.

Each function of template.yaml is imported N times by a fresh `python3.12 -I -S -B` (no site-packages,
no PYTHONPATH, no bytecode written, as on Lambda, which cannot write into /var/task or /opt) whose
sys.path holds only the function's build dir and the layer's `python/`, with the template's environment
and LAMBDA_TASK_ROOT set. The module is what the runtime's init imports (the handler's, or the ASGI app
run.sh serves). Any AWS call at import would fail: AWS_ENDPOINT_URL points at a closed port.
The baseline, interleaved with the runs, is the same interpreter doing nothing (`-I -S -B -c pass`).
Twice: with X-Ray SDK tracing on (the template's default) and off.

Each case's import (as measured in the process) is also split in two: its libraries alone (the third-party
modules of the layer that its import loaded, imported by themselves in the same layout and order) and what
the project's own code adds on top (the difference). The first is the floor no change of ours can go below
while those libraries are used.

    python -m bench import_time                     # the build of `make build-native`
    ONEAI_BENCH_BUILD_DIR=/path/to/build python -m bench import_time   # another layout (e.g. main's)

A layout whose import reads the secrets (main before issue 8) cannot import offline: with
ONEAI_BENCH_WITHOUT_SECRET_STORE=1 the SSM path is left out, so its figures leave out that network time.

Goals on the 2-core reference machine (import wall time over the bare interpreter): webhooks and
quota_reset <= 200 ms, the API functions and chat_stream <= 350 ms.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from bench import REPO_ROOT
from bench._report import SUMMARY_HEADERS, ms, summarize, summary_row, table
from lambda_build.layout import functions, init_module, lambda_process_environment
from local.template_routes import Function

RUNS = 10
QUICK_RUNS = 3
GOALS_MS = {"WebhooksFunction": 200, "QuotaResetFunction": 200}
DEFAULT_GOAL_MS = 350
SNIPPET = "import sys, time; sys.path[:0] = sys.argv[1:]; t = time.perf_counter(); import {module}; print(time.perf_counter() - t)"
CLOSED_PORT = "http://127.0.0.1:9"
# After the import: the layer's modules that are not the project's (the function's own package is not in
# the layer), in the order they were loaded.
LIST_LIBRARIES = (
    "import json, sys; layer = sys.argv[-1]; sys.path[:0] = sys.argv[1:]; import {module}; "
    "print(json.dumps([name for name, m in list(sys.modules.items()) "
    "if (getattr(m, '__file__', None) or '').startswith(layer) and name.partition('.')[0] != 'oneai']))"
)
IMPORT_LIBRARIES = (
    "import importlib, sys, time; sys.path[:0] = sys.argv[2:]; names = sys.argv[1].split(','); "
    "t = time.perf_counter(); [importlib.import_module(n) for n in names]; print(time.perf_counter() - t)"
)


def build_dir() -> Path:
    configured = os.environ.get("ONEAI_BENCH_BUILD_DIR")
    if configured:
        return Path(configured)
    arch = "arm64" if platform.machine() == "aarch64" else platform.machine()
    return REPO_ROOT / ".oneai" / f"build-{arch}" / "build"


def bare_python() -> str:
    return str(Path(getattr(sys, "_base_executable", sys.executable)))


@dataclass
class Case:
    function: Function
    tracing: bool
    wall: list[float] = field(default_factory=list)
    imported: list[float] = field(default_factory=list)
    libraries: list[str] = field(default_factory=list)
    libraries_imported: list[float] = field(default_factory=list)

    @property
    def label(self) -> str:
        return (
            f"{self.function.logical_id} ({init_module(self.function)}), tracing {'on' if self.tracing else 'off'}"
        )


def _run(args: list[str], env: dict[str, str], cwd: Path) -> tuple[float, str]:
    started = time.perf_counter()
    done = subprocess.run(
        [bare_python(), "-I", "-S", "-B", *args], env=env, cwd=cwd, capture_output=True, text=True, check=False
    )
    wall = time.perf_counter() - started
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(args[:2])} failed ({done.returncode}):\n{done.stderr[-2000:]}")
    return wall, done.stdout


def _case_args(case: Case, root: Path) -> tuple[list[str], dict[str, str], Path]:
    code_dir = root / case.function.logical_id
    layer = root / "CommonLayer" / "python"
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        **lambda_process_environment(case.function, code_dir, tracing=case.tracing),
        "AWS_ENDPOINT_URL": CLOSED_PORT,
        "AWS_ACCESS_KEY_ID": "bench",
        "AWS_SECRET_ACCESS_KEY": "bench",
    }
    if os.environ.get("ONEAI_BENCH_WITHOUT_SECRET_STORE"):
        env.pop("ONEAI_SSM_PATH", None)
    args = ["-c", SNIPPET.format(module=init_module(case.function)), str(code_dir), str(layer)]
    return args, env, code_dir


def _libraries_args(case: Case, root: Path) -> tuple[list[str], dict[str, str], Path]:
    args, env, code_dir = _case_args(case, root)
    return ["-c", IMPORT_LIBRARIES, ",".join(case.libraries), *args[2:]], env, code_dir


def _list_libraries(case: Case, root: Path) -> list[str]:
    args, env, code_dir = _case_args(case, root)
    listing = ["-c", LIST_LIBRARIES.format(module=init_module(case.function)), *args[2:]]
    names: list[str] = json.loads(_run(listing, env, code_dir)[1].strip().splitlines()[-1])
    return names


def run(*, quick: bool = False) -> None:
    runs = QUICK_RUNS if quick else RUNS
    root = build_dir()
    print(f"== import_time: each function's init from its artifact, Lambda layout, fresh interpreter, N={runs} ==")
    print(f"python: {bare_python()} ({platform.python_version()}), build: {root}")
    if not (root / "CommonLayer" / "python").is_dir():
        raise SystemExit(f"no build at {root}: run `make build-native` first")
    cases = [Case(f, tracing) for tracing in (True, False) for f in functions()]
    bare: list[float] = []
    bare_env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin")}
    for case in cases:  # untimed: warm the disk cache, and find each case's libraries
        _run(*_case_args(case, root))
        case.libraries = _list_libraries(case, root)
    for _ in range(runs):
        bare.append(_run(["-c", "pass"], bare_env, root)[0])
        for case in cases:
            elapsed, out = _run(*_case_args(case, root))
            case.wall.append(elapsed)
            case.imported.append(float(out.strip().splitlines()[-1]))
            case.libraries_imported.append(float(_run(*_libraries_args(case, root))[1].strip().splitlines()[-1]))
    bare_summary = summarize(bare)
    rows = [summary_row("bare interpreter: python -I -S -B -c pass (wall)", bare_summary)]
    verdicts = []
    for case in cases:
        wall, imported = summarize(case.wall), summarize(case.imported)
        over = wall.median - bare_summary.median
        libraries = summarize(case.libraries_imported)
        # the split is of the import measured in the process (exit and start-up differ between the runs)
        ours = imported.median - libraries.median
        goal = GOALS_MS.get(case.function.logical_id, DEFAULT_GOAL_MS)
        rows += [
            [case.label, "", "", ""],
            summary_row("  process wall time", wall),
            summary_row("  import, measured in the process", imported),
            ["  wall over bare interpreter", ms(over), "", ""],
            summary_row(f"  its {len(case.libraries)} library modules alone, in the process", libraries),
        ]
        verdicts.append(
            [
                case.label,
                ms(over, 0),
                ms(libraries.median, 0),
                ms(ours, 0),
                str(goal),
                "yes" if over * 1000 <= goal else "NO",
            ]
        )
    print(table(SUMMARY_HEADERS, rows))
    print(
        "goals (wall over bare, median, ms); the import measured in the process split into its libraries"
        " (its third-party modules imported alone) and ours (the rest):"
    )
    print(table(("function", "over bare", "libraries", "ours", "goal", "met"), verdicts, align="lrrrrl"))
    packages = sorted({name.partition(".")[0] for case in cases for name in case.libraries})
    print(f"libraries loaded by some function: {', '.join(packages)}")


if __name__ == "__main__":
    run(quick="--quick" in sys.argv[1:])
