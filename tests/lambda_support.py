"""What the tests that call a Lambda handler directly need: a context object, and the conditions a fresh
Lambda process runs a buffered handler in (the dev settings the sample events are signed for, and an
event loop on the main thread for Mangum)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from pydantic import SecretStr

from local import LOCAL_SUPABASE_URL
from oneai.config import DEV_JWT_SECRET, override_settings
from oneai.database import get_database


@dataclass
class FakeLambdaContext:
    function_name: str
    memory_limit_in_mb: int = 512
    aws_request_id: str = "7682532f-d42a-59cc-88da-851241566745"

    @property
    def invoked_function_arn(self) -> str:
        return f"arn:aws:lambda:ap-south-1:123456789012:function:{self.function_name}"

    def get_remaining_time_in_millis(self) -> int:
        return 15_000


@contextmanager
def like_a_lambda_process(database_url: str) -> Iterator[None]:
    """Settings of the dev stack the events in events/ are signed for, against `database_url`, and an
    event loop on this thread (an earlier asyncio.run() in the test process leaves none behind)."""
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    try:
        with override_settings(
            database_url=SecretStr(database_url),
            supabase_url=LOCAL_SUPABASE_URL,
            supabase_jwt_issuer=f"{LOCAL_SUPABASE_URL}/auth/v1",
            supabase_jwt_secret=SecretStr(DEV_JWT_SECRET),
        ):
            try:
                yield
            finally:
                get_database().close()
    finally:
        asyncio.set_event_loop(None)
        loop.close()
