"""A workspace's provider key is in no X-Ray trace (issue 26: "never in logs, responses, exports, traces"):
with tracing on, the keys' creation, their tests and the replies they pay (an `openai` key at OpenAI's
endpoint, a `custom` key at its base_url), including the provider's errors that quote the key, a test that
lists a model id quoting it and the refusals that mark it invalid, emit segments of which none holds the key
or its end, while the calls made with it are there (the key travels, the traces record the calls). (Only the
calls at OpenAI's endpoint: a custom endpoint's calls go through the outbound guard's own httpx clients,
subclasses of httpx's that X-Ray's patch of `httpx.Client` does not replace, so they are not recorded.)

As in test_tracing.py, the calls run in a fresh interpreter with Lambda's tracing environment (the tracer
is chosen at import); there the X-Ray recorder's emitter keeps every document it would send to the daemon,
whole (`Entity.serialize()`, what the UDP emitter sends), and each step is a traced method that records its
answer and its exception, as strict as tracing gets. The fake OpenRouter in that interpreter plays OpenAI
(`/openai`) and the custom endpoint; KMS is moto's there; PostgreSQL is the run's."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest

from local.fake_openrouter import FakeOpenRouter, ModelsReply, Reply, Status
from oneai.auth import authenticate
from oneai.config import get_settings
from oneai.db.connection import Database
from oneai.errors import OneAIError
from oneai.provider_keys import service as provider_keys
from tests.aws_support import moto_kms_key
from tests.conftest import TEST_JWT_SECRET, TEST_SUPABASE_URL, AppUser, create_user, token_for
from tests.e2e.test_chatbot_chat_http import chatbot, personal_workspace
from tests.integration.test_provider_key_funds import reply
from tests.integration.test_provider_keys import ALIAS, add
from tests.integration.test_tracing import REPO, TRACE_ID

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]

OPENAI_KEY = "sk-proj-traces-Hn4Wq8Zr2Vx6Lm0Pc3Ty"
CUSTOM_KEY = "sk-house-traces-Bf5Jk9Sd1Gh7Qa2Xe4"
OPENAI_MODEL = "openai/gpt-4o-mini"
CUSTOM_MODEL = "custom/house-model"
USAGE = {"prompt_tokens": 30, "completion_tokens": 4, "total_tokens": 34, "cost": 0.0002}
CASE_FILE = "ONEAI_TEST_TRACES_CASE"  # the environment variable naming the case's JSON file


class KeptDocuments:
    """The X-Ray recorder's emitter, keeping each document it is given (instead of sending it by UDP)."""

    def __init__(self) -> None:
        self.documents: list[str] = []

    def send_entity(self, entity: Any) -> None:
        self.documents.append(entity.serialize())

    def set_daemon_address(self, address: str | None) -> None:
        return None


def traced_calls() -> None:
    """In the traced interpreter (`run_traced_calls`): the keys added, tested and used for replies, each step
    a traced method; what the steps answered, what the providers' endpoint received and every document
    emitted, written to the case's file."""
    from aws_xray_sdk.core import xray_recorder  # type: ignore[import-untyped]

    from oneai.observability import tracer

    case_file = Path(os.environ[CASE_FILE])
    case = json.loads(case_file.read_text())
    kept = KeptDocuments()
    xray_recorder.configure(emitter=kept)
    assert not tracer.disabled, "tracing is on in this interpreter"

    with FakeOpenRouter(delay=0.0) as fake:
        endpoints = {
            "openai_base_url": f"{fake.base_url}/openai",
            "openrouter_base_url": fake.base_url,
            "title_model": "anthropic/claude-3.5-haiku",  # titles are not the replies scripted below
        }
        with moto_kms_key(pytest.MonkeyPatch(), ALIAS, **endpoints):
            db = Database(get_settings())
            owner = AppUser(principal=authenticate(f"Bearer {case['token']}"), token=case["token"])
            workspace = UUID(case["workspace"])

            @tracer.capture_method
            def add_keys() -> dict[str, UUID]:
                openai = add(db, owner, workspace, provider="openai", name="Production", key=OPENAI_KEY)
                custom = add(
                    db,
                    owner,
                    workspace,
                    provider="custom",
                    name="house-model",
                    key=CUSTOM_KEY,
                    base_url=f"{fake.base_url}/custom-endpoint",
                )
                return {"openai": openai.id, "custom": custom.id}

            @tracer.capture_method
            def key_test(key_id: UUID) -> dict[str, Any]:
                return provider_keys.run_key_test(db, owner.principal, db.settings, key_id).model_dump()

            @tracer.capture_method
            def paid_reply(chatbot_id: UUID) -> str:
                return reply(db, fake, owner, chatbot_id)

            def replied(chatbot_id: str) -> str:
                try:
                    paid_reply(UUID(chatbot_id))
                except OneAIError as exc:
                    return f"{exc.status} {exc.code}"
                return "200"

            keys = add_keys()
            # the key's test: a list with an id quoting the key (an endpoint echoing its request); a 500
            # whose body quotes it
            fake.script_models(ModelsReply(models=[{"id": "gpt-4o-mini"}, {"id": f"echo-{OPENAI_KEY}"}]))
            fake.script_models(Status(500, f"upstream failed for key {CUSTOM_KEY}"))
            tests = [key_test(keys["openai"]), key_test(keys["custom"])]
            # replies: served, then failed by the provider with an error quoting the key, then refused
            fake.script(Reply(chunks=["Open 9 to 5."], usage=USAGE), model="gpt-4o-mini")
            fake.script(Status(400, f"Unsupported parameter for key {OPENAI_KEY}"), model="gpt-4o-mini")
            fake.script(Reply(chunks=["From the house model."], usage=USAGE), model="house-model")
            fake.script(Status(401, f"Incorrect API key provided: {CUSTOM_KEY}"), model="house-model")
            replies = [replied(case["openai_bot"]) for _ in range(2)] + [
                replied(case["custom_bot"]) for _ in range(2)
            ]
            # and the openai key's test refused with the key quoted
            fake.script_models(Status(401, f"Incorrect API key provided: {OPENAI_KEY}"))
            tests.append(key_test(keys["openai"]))
            db.close()
        requests = [
            {
                "method": r.method,
                "path": r.path.removeprefix("/api/v1"),
                "authorization": r.headers.get("authorization"),
                "trace": r.headers.get("x-amzn-trace-id", ""),
            }
            for r in fake.requests
            if "/openai/" in r.path or "/custom-endpoint/" in r.path
        ]
    case_file.write_text(
        json.dumps({"tests": tests, "replies": replies, "requests": requests, "documents": kept.documents})
    )


def run_traced_calls(tmp_path: Path, database_url: str, case: dict[str, str]) -> dict[str, Any]:
    """`traced_calls` in a fresh interpreter with Lambda's tracing environment (test_tracing.py's); what
    it wrote."""
    case_file = tmp_path / "case.json"
    case_file.write_text(json.dumps(case))
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "PYTHONPATH": f"{REPO / 'layers' / 'common'}{os.pathsep}{REPO}",
        "LAMBDA_TASK_ROOT": str(REPO),
        "POWERTOOLS_TRACE_DISABLED": "false",
        "_X_AMZN_TRACE_ID": f"Root={TRACE_ID};Parent=53995c3f42cd8ad8;Sampled=1",
        "AWS_REGION": "ap-south-1",
        "DATABASE_URL": database_url,
        "SUPABASE_URL": TEST_SUPABASE_URL,
        "SUPABASE_JWT_SECRET": TEST_JWT_SECRET,
        "ONEAI_ALLOW_LOOPBACK_URLS": "1",  # the custom endpoint is the fake on 127.0.0.1
        CASE_FILE: str(case_file),
    }
    done = subprocess.run(
        [sys.executable, "-c", f"from {__name__} import traced_calls; traced_calls()"],
        env=env,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=150,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-4000:]
    result: dict[str, Any] = json.loads(case_file.read_text())
    return result


def entities(document: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """A document and every subsegment in it, depth first."""
    yield document
    for child in document.get("subsegments", []):
        yield from entities(child)


@pytest.fixture
def case(database_url: str) -> dict[str, str]:
    """A workspace without credits with a chatbot on an OpenAI model and one on its custom model; its owner's
    token."""
    owner = create_user(database_url)
    workspace = personal_workspace(database_url, owner)
    return {
        "token": token_for(owner.id, owner.principal.email),
        "workspace": str(workspace),
        "openai_bot": str(chatbot(database_url, workspace, [], credits=None, model=OPENAI_MODEL)),
        "custom_bot": str(chatbot(database_url, workspace, [], credits=None, model=CUSTOM_MODEL)),
    }


def test_no_segment_holds_a_provider_key_through_its_tests_and_the_replies_it_pays(
    tmp_path: Path, database_url: str, case: dict[str, str]
) -> None:
    # GIVEN tracing on; WHEN the workspace's openai and custom keys are added, tested and used for replies
    seen = run_traced_calls(tmp_path, database_url, case)
    # THEN the steps went as a customer would see them: a test passed (the id quoting the key left out),
    # one failed, one refused the key; a reply of each key served, one failed, one refused the key
    assert [(t["ok"], t["models"], t["error"], t["reason"]) for t in seen["tests"]] == [
        (True, ["gpt-4o-mini"], None, None),
        (False, None, "custom answered HTTP 500", None),
        (False, None, "the key 'Production' was refused by openai", "refused"),
    ]
    assert seen["replies"] == ["200", "502 UPSTREAM_ERROR", "200", "424 PROVIDER_KEY_REFUSED"]
    # AND every call carried its key; those at OpenAI's endpoint under the invocation's trace (the custom
    # endpoint's go through the outbound guard's own clients, which X-Ray's httpx patch does not reach)
    calls = seen["requests"]
    assert sorted((c["method"], c["path"], c["authorization"]) for c in calls) == sorted(
        [("GET", "/openai/models", f"Bearer {OPENAI_KEY}")] * 2
        + [("POST", "/openai/chat/completions", f"Bearer {OPENAI_KEY}")] * 2
        + [("GET", "/custom-endpoint/models", f"Bearer {CUSTOM_KEY}")]
        + [("POST", "/custom-endpoint/chat/completions", f"Bearer {CUSTOM_KEY}")] * 2
    )
    assert all(f"Root={TRACE_ID}" in c["trace"] for c in calls if c["path"].startswith("/openai/"))
    # AND the traces hold those calls (URL and status) and each step with its answer, or its exception
    recorded = [e for text in seen["documents"] for e in entities(json.loads(text))]
    at_openai = sorted(
        (
            e["http"]["request"]["method"],
            e["http"]["request"]["url"].split("/api/v1", 1)[1],
            e["http"]["response"]["status"],
        )
        for e in recorded
        if e.get("namespace") == "remote" and "/api/v1/openai/" in e["http"]["request"]["url"]
    )
    assert at_openai == [
        ("GET", "/openai/models", 200),
        ("GET", "/openai/models", 401),
        ("POST", "/openai/chat/completions", 200),
        ("POST", "/openai/chat/completions", 400),
    ]
    steps = [e for e in recorded if str(e.get("name", "")).startswith("## ")]
    assert (
        sorted(e["name"].rsplit(".", 1)[1] for e in steps) == ["add_keys"] + ["key_test"] * 3 + ["paid_reply"] * 4
    )
    assert all(e["metadata"]["oneai"] for e in steps)  # "<step> response" or "<step> error"
    failed = [cause["exceptions"][0]["message"] for e in steps if (cause := e.get("cause"))]
    assert len(failed) == 2 and "'house-model' was refused by custom" in failed[1]
    # AND no document of them holds either key, nor the end of one
    for key in (OPENAI_KEY, CUSTOM_KEY):
        assert not [text for text in seen["documents"] if key in text or key[-12:] in text]
