"""A boto3 client made on first use, one per container (the SQS producers of the ingest and webhook
queues): never at import, so a cold start that sends nothing does not load botocore."""

from __future__ import annotations

import threading
from typing import Any

from oneai.observability import trace_calls


class LazyAwsClient:
    def __init__(self, service: str, *, timeout_seconds: float, max_attempts: int) -> None:
        self._service = service
        self._timeout = timeout_seconds
        self._max_attempts = max_attempts
        self._client: Any = None
        self._lock = threading.Lock()

    def __call__(self) -> Any:
        with self._lock:
            if self._client is None:
                trace_calls("botocore")
                import boto3
                from botocore.config import Config

                config = Config(
                    connect_timeout=self._timeout,
                    read_timeout=self._timeout,
                    retries={"max_attempts": self._max_attempts, "mode": "standard"},
                )
                self._client = boto3.client(self._service, config=config)
            return self._client
