"""The workspaces function (issue 23) from its built artifact, in a bare python3.12 as Lambda runs it:
every sample event of events/workspaces/ answers as the source-tree test expects
(tests/integration/test_workspaces_events.py), its secrets (the invitation key) read from SSM."""

from __future__ import annotations

import json
from pathlib import Path

from tests.artifact.conftest import built_functions, invoke_artifact
from tests.integration.test_workspaces_events import (
    DOCUMENT_EVENTS,
    EXPECTED,
    SAMPLE_WORKSPACE_ID,
    dev_user_with_a_workspace,
)

__all__ = ["dev_user_with_a_workspace"]  # a fixture, used by name

EVENTS = Path(__file__).resolve().parents[2] / "events"


def test_workspaces_answers_every_sample_event(
    dev_user_with_a_workspace: None, moto_endpoint: str, runtime_lib: Path, tmp_path: Path
) -> None:
    built = next(b for b in built_functions() if b.name == "WorkspacesFunction")
    # The documents' samples (S3, OpenRouter) answer in the source-tree test only, for now.
    expected = {name: status for name, status in EXPECTED.items() if name not in DOCUMENT_EVENTS}
    names = list(expected)
    folder = EVENTS / built.function.events_dir_name
    events = [json.loads((folder / f"{name}.json").read_text()) for name in names]
    run = invoke_artifact(built, events, endpoint=moto_endpoint, runtime_lib=runtime_lib, tmp_path=tmp_path)
    assert {n: a["statusCode"] for n, a in zip(names, run.answers, strict=True)} == expected, [
        (n, a["statusCode"], a.get("body", "")[:200]) for n, a in zip(names, run.answers, strict=True)
    ]
    answers = dict(zip(names, run.answers, strict=True))
    assert json.loads(answers["get-workspaces-open-api"]["body"])["info"]["title"] == "OneAI workspaces"
    assert json.loads(answers["invite-to-workspace"]["body"])["email"] == "teammate@example.com"
    assert json.loads(answers["restore-workspace"]["body"])["id"] == SAMPLE_WORKSPACE_ID
