"""A local server (`python -m local`) of its own with tight rate limits, for the tests that drain buckets.

The session's shared server keeps the defaults; a test module that needs other limits starts one of these
against the same database and fake OpenRouter (a few seconds), so no other test is throttled by accident.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping

import pytest

from local.dev_process import LocalServerProcess, run_local_server
from local.fake_openrouter import FakeOpenRouter
from tests.conftest import REPO_ROOT, TEST_JWT_SECRET, TEST_SUPABASE_URL
from tests.e2e.conftest import TITLE_MODEL, UPSTREAM_TIMEOUT_SECONDS


@contextlib.contextmanager
def limited_server(
    name: str, database_url: str, openrouter: FakeOpenRouter, limits: Mapping[str, str]
) -> Iterator[LocalServerProcess]:
    env = {
        "DATABASE_URL": database_url,
        "SUPABASE_URL": TEST_SUPABASE_URL,
        "SUPABASE_JWT_SECRET": TEST_JWT_SECRET,
        "OPENROUTER_API_KEY": "sk-or-v1-test-key",
        "OPENROUTER_BASE_URL": openrouter.base_url,
        "ONEAI_TITLE_MODEL": TITLE_MODEL,
        "OPENROUTER_FIRST_TOKEN_TIMEOUT": UPSTREAM_TIMEOUT_SECONDS,
        "OPENROUTER_IDLE_TIMEOUT": UPSTREAM_TIMEOUT_SECONDS,
        **limits,
    }
    with contextlib.ExitStack() as stack:
        try:
            server = stack.enter_context(run_local_server(env, log_path=REPO_ROOT / ".oneai" / f"e2e-{name}.log"))
        except (RuntimeError, TimeoutError) as exc:
            pytest.fail(str(exc))
        yield server
