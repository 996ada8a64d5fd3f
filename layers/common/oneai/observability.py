"""Metrics and tracing shared by every function: Powertools Metrics (CloudWatch EMF, written to stdout,
so they cost no API call) and Tracer (X-Ray).

Tracing costs at import: the X-Ray SDK (and the botocore it samples with) loads in about 0.4 s on a cold
start, and patching every library it knows imports each of them. So the SDK is loaded only when tracing
is on (in Lambda, unless POWERTOOLS_TRACE_DISABLED, as Powertools decides), and only the libraries the
functions call out with are patched. Otherwise the tracer gets a provider that records nothing.
"""

from __future__ import annotations

import os
from collections.abc import AsyncGenerator, Generator
from contextlib import asynccontextmanager, contextmanager
from typing import Any

from aws_lambda_powertools import Metrics, Tracer
from aws_lambda_powertools.metrics import MetricUnit, single_metric
from aws_lambda_powertools.tracing.base import BaseProvider, BaseSegment

NAMESPACE = "OneAI"
SERVICE = "oneai"
# The libraries the functions call out with: OpenRouter (httpx), Razorpay's SDK (requests), AWS (botocore).
TRACED_MODULES = ("httpx", "requests", "botocore")

__all__ = ["MetricUnit", "count_server_error", "emit_metric", "metrics", "tracer", "tracing_enabled"]


def tracing_enabled(environ: os._Environ[str] | dict[str, str] = os.environ) -> bool:
    """Powertools' rule: in Lambda (LAMBDA_TASK_ROOT), not under `sam local`, not POWERTOOLS_TRACE_DISABLED."""
    disabled = environ.get("POWERTOOLS_TRACE_DISABLED", "false").strip().lower() in ("1", "true", "yes", "on")
    return bool(environ.get("LAMBDA_TASK_ROOT")) and not environ.get("AWS_SAM_LOCAL") and not disabled


class _Unrecorded(BaseSegment):
    def close(self, end_time: int | None = None) -> None:
        return None

    def add_subsegment(self, subsegment: Any) -> None:
        return None

    def remove_subsegment(self, subsegment: Any) -> None:
        return None

    def put_annotation(self, key: str, value: Any) -> None:
        return None

    def put_metadata(self, key: str, value: Any, namespace: str = "default") -> None:
        return None

    def add_exception(self, exception: BaseException, stack: Any, remote: bool = False) -> None:
        return None


class NoTracing(BaseProvider):
    """The tracer's provider while tracing is off: nothing recorded, the X-Ray SDK never imported."""

    @contextmanager
    def in_subsegment(self, name: Any = None, **kwargs: Any) -> Generator[BaseSegment, None, None]:
        yield _Unrecorded()

    @asynccontextmanager
    async def in_subsegment_async(self, name: Any = None, **kwargs: Any) -> AsyncGenerator[BaseSegment, None]:
        yield _Unrecorded()

    def put_annotation(self, key: str, value: Any) -> None:
        return None

    def put_metadata(self, key: str, value: Any, namespace: str = "default") -> None:
        return None

    def patch(self, modules: Any) -> None:
        return None

    def patch_all(self) -> None:
        return None


metrics = Metrics(namespace=NAMESPACE, service=SERVICE)
tracer = (
    Tracer(service=SERVICE, patch_modules=TRACED_MODULES)
    if tracing_enabled()
    else Tracer(service=SERVICE, disabled=True, auto_patch=False, provider=NoTracing())
)


def emit_metric(name: str, value: float, unit: MetricUnit = MetricUnit.Count, **dimensions: str) -> None:
    """One metric, written at once (for code that runs outside a decorated Lambda handler, such as the
    streaming app under uvicorn, where nothing would flush a batch)."""
    with single_metric(name=name, unit=unit, value=value, namespace=NAMESPACE) as metric:
        metric.add_dimension(name="service", value=SERVICE)
        for key, dimension in dimensions.items():
            metric.add_dimension(name=key, value=dimension)


def count_server_error(status: int) -> None:
    """One `ServerErrors` metric per 5xx answered by an app (the app-5xx alarm watches it): to Lambda those
    are successful invocations, so its Errors metric never sees them."""
    if status >= 500:
        emit_metric("ServerErrors", 1)
