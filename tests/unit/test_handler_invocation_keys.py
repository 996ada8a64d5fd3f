"""Every Lambda entry point names its own invocation on its log lines: the keys come from
`oneai.logging.log_invocation` (per thread and asyncio task), never Powertools' `inject_lambda_context`,
whose global keys lose to the per-thread keys a previous invocation on the same thread left (under
`make dev` one process serves every function), so a line would carry another request's id."""

from __future__ import annotations

from pathlib import Path

FUNCTIONS = Path(__file__).resolve().parents[2] / "functions"


def test_no_entry_point_uses_the_global_lambda_context_keys() -> None:
    sources = sorted(FUNCTIONS.glob("*/*/*.py"))
    assert len(sources) > 20
    offenders = [str(p.relative_to(FUNCTIONS)) for p in sources if "inject_lambda_context" in p.read_text("utf-8")]
    assert offenders == []
