"""The chatbots function (issue 25) from its built artifact, in a bare python3.12 as Lambda runs it:
every sample event of events/chatbots/ answers as the source-tree test expects
(tests/integration/test_chatbots_events.py)."""

from __future__ import annotations

import json
from pathlib import Path

from tests.artifact.conftest import built_functions, invoke_artifact
from tests.integration.test_chatbots_events import (
    EXPECTED,
    OPENROUTER_EVENTS,
    check_answers,
    dev_user_with_a_chatbot,
)

__all__ = ["dev_user_with_a_chatbot"]  # a fixture, used by name

EVENTS = Path(__file__).resolve().parents[2] / "events"


def test_chatbots_answers_every_sample_event(
    dev_user_with_a_chatbot: None, moto_endpoint: str, runtime_lib: Path, tmp_path: Path
) -> None:
    built = next(b for b in built_functions() if b.name == "ChatbotsFunction")
    # The sample that embeds its query (OpenRouter) answers in the source-tree test only, as the documents'.
    expected = {name: status for name, status in EXPECTED.items() if name not in OPENROUTER_EVENTS}
    names = list(expected)
    folder = EVENTS / built.function.events_dir_name
    events = [json.loads((folder / f"{name}.json").read_text()) for name in names]
    run = invoke_artifact(built, events, endpoint=moto_endpoint, runtime_lib=runtime_lib, tmp_path=tmp_path)
    assert {n: a["statusCode"] for n, a in zip(names, run.answers, strict=True)} == expected, [
        (n, a["statusCode"], a.get("body", "")[:200]) for n, a in zip(names, run.answers, strict=True)
    ]
    check_answers(
        {n: json.loads(a["body"]) if a.get("body") else None for n, a in zip(names, run.answers, strict=True)}
    )
