"""`sam` is not on PATH: it lives in the venv the Makefile builds (.oneai/sam-venv). `make sam ARGS=...`
runs that one, building the venv first when it is missing (checked with `make -n`, which only prints)."""

from __future__ import annotations

import subprocess

from tests.conftest import REPO_ROOT


def test_make_sam_runs_the_pinned_sam_cli_with_the_given_arguments() -> None:
    planned = subprocess.run(
        ["make", "--no-print-directory", "-n", "sam", "ARGS=deploy --config-env prod"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    commands = planned.stdout.strip().splitlines()
    assert commands[-1] == ".oneai/sam-venv/bin/sam deploy --config-env prod"
