"""Metrics and tracing shared by every function: Powertools Metrics (CloudWatch EMF, written to stdout,
so they cost no API call) and Tracer (X-Ray).

Tracing costs at import: the X-Ray SDK loads in about 0.4 s on a cold start, and patching a library
imports it (botocore's client alone is about 60 ms, httpx about 45 ms). So the SDK is loaded only when
tracing is on (in Lambda, unless POWERTOOLS_TRACE_DISABLED, as Powertools decides), and otherwise the
tracer gets a provider that records nothing. Nothing is patched at import: the code that builds a client
of a library calls `trace_calls(library)` first, so a function patches (and imports) only what it uses.
"""

from __future__ import annotations

import os
import threading
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

__all__ = [
    "MetricUnit",
    "count_server_error",
    "emit_metric",
    "metrics",
    "trace_calls",
    "traced_libraries",
    "tracer",
    "tracing_enabled",
]


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
    Tracer(service=SERVICE, auto_patch=False)
    if tracing_enabled()
    else Tracer(service=SERVICE, disabled=True, auto_patch=False, provider=NoTracing())
)


_traced: set[str] = set()
_traced_lock = threading.Lock()


def trace_calls(library: str) -> None:
    """Have X-Ray record the calls made with `library` (one of TRACED_MODULES) from now on, when tracing
    is on; once per container. Call it before building a client: httpx's patch swaps its client classes."""
    if library not in TRACED_MODULES:
        raise ValueError(f"{library!r} is not one of the traced libraries {TRACED_MODULES}")
    if tracer.disabled or library in _traced:
        return
    with _traced_lock:
        if library not in _traced:
            tracer.patch((library,))
            _traced.add(library)


def traced_libraries() -> frozenset[str]:
    """The libraries patched so far (what the artifact tests and the bench report)."""
    return frozenset(_traced)


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
