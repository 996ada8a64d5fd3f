"""The chat function restores from SnapStart like the other functions: template.yaml publishes it with a
snapshot and an adapter that bridges the lifecycle (Lambda Web Adapter 1.1.0, layer 30 and later), the
adapter's after-restore path is a route of the app, and that route runs the hooks the app registered at
init, as the managed runtime runs them in the processes it owns."""

from __future__ import annotations

import sys
from typing import Any

import pytest
import snapshot_restore_py
from fastapi.testclient import TestClient

from local.template_routes import load_template, parameter_defaults
from oneai import runtime
from oneai.config import get_settings, override_settings, reset_settings
from oneai.database import get_database
from oneai.web.snapstart import AFTER_RESTORE_PATH
from tests.unit.test_config import aws, clean_env, put_params

__all__ = ["aws", "clean_env"]

# aws-lambda-web-adapter PR #871: layer version 30 is the first published layer of v1.1.0, the release
# that added the SnapStart hooks (29 was withdrawn); the layers before it never call the app at a restore.
FIRST_ADAPTER_LAYER_WITH_SNAPSTART = 30


@pytest.fixture
def registry(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """The runtime library's after-restore registry, empty for the test."""
    hooks: list[Any] = []
    monkeypatch.setattr(snapshot_restore_py, "_after_restore_registry", hooks)
    return hooks


def test_the_chat_function_is_published_with_a_snapshot_and_the_adapters_restore_hook() -> None:
    template = load_template()
    chat = template["Resources"]["ChatStreamFunction"]["Properties"]
    assert chat["SnapStart"] == {"ApplyOn": "PublishedVersions"}
    assert chat["AutoPublishAlias"] == "live"  # SnapStart serves published versions only, through the alias
    assert chat["Environment"]["Variables"]["AWS_LWA_SNAPSTART_AFTER_RESTORE_PATH"] == AFTER_RESTORE_PATH
    assert int(parameter_defaults(template)["WebAdapterLayerVersion"]) >= FIRST_ADAPTER_LAYER_WITH_SNAPSTART


def test_the_after_restore_hooks_run_in_the_order_of_registration(registry: list[Any]) -> None:
    ran: list[tuple[str, str]] = []
    snapshot_restore_py.register_after_restore(lambda name: ran.append(("first", name)), "a")
    snapshot_restore_py.register_after_restore(lambda *, name: ran.append(("second", name)), name="b")
    assert runtime.run_after_restore_hooks() == 2
    assert ran == [("first", "a"), ("second", "b")]


def test_without_the_runtime_library_the_hook_is_kept_and_run_by_the_module(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "snapshot_restore_py", None)  # `import` raises ImportError
    monkeypatch.setattr(runtime, "_local_after_restore", [])
    ran: list[str] = []
    runtime._register_after_restore(lambda: ran.append("hook"))
    assert runtime.run_after_restore_hooks() == 1
    assert ran == ["hook"]


def test_the_adapters_after_restore_request_forgets_the_connection_and_the_secrets(
    aws: dict[str, Any], monkeypatch: pytest.MonkeyPatch, registry: list[Any]
) -> None:
    from chat_stream.app import build_app

    monkeypatch.setenv("ONEAI_SSM_PATH", "/oneai/test/")
    put_params(aws["ssm"], {"OPENROUTER_API_KEY": "before-snapshot"})
    with override_settings():
        reset_settings()
        # GIVEN the app's init registered its hook, and a request built the settings and the database
        runtime.freeze_startup_objects()
        app = build_app()
        settings, database = get_settings(), get_database()
        put_params(aws["ssm"], {"OPENROUTER_API_KEY": "after-restore"})
        # WHEN the adapter, after a restore, POSTs its hook path (an empty body)
        answer = TestClient(app).post(AFTER_RESTORE_PATH)
        # THEN the app answers 2xx (anything else fails the restore) and nothing from before is reused
        assert answer.status_code == 204, answer.text
        restored = get_settings()
        assert restored is not settings
        assert restored.openrouter_api_key is not None
        assert restored.openrouter_api_key.get_secret_value() == "after-restore"
        assert get_database() is not database


def test_the_hook_path_is_not_in_the_api_documents() -> None:
    from chat_stream.app import build_app

    assert AFTER_RESTORE_PATH not in build_app().openapi()["paths"]
