"""Metrics and tracing shared by every function: Powertools Metrics (CloudWatch EMF, written to stdout,
so they cost no API call) and Tracer (X-Ray; inactive outside Lambda)."""

from __future__ import annotations

from aws_lambda_powertools import Metrics, Tracer
from aws_lambda_powertools.metrics import MetricUnit, single_metric

NAMESPACE = "OneAI"
SERVICE = "oneai"

__all__ = ["MetricUnit", "emit_metric", "metrics", "tracer"]

metrics = Metrics(namespace=NAMESPACE, service=SERVICE)
tracer = Tracer(service=SERVICE)


def emit_metric(name: str, value: float, unit: MetricUnit = MetricUnit.Count, **dimensions: str) -> None:
    """One metric, written at once (for code that runs outside a decorated Lambda handler, such as the
    streaming app under uvicorn, where nothing would flush a batch)."""
    with single_metric(name=name, unit=unit, value=value, namespace=NAMESPACE) as metric:
        metric.add_dimension(name="service", value=SERVICE)
        for key, dimension in dimensions.items():
            metric.add_dimension(name=key, value=dimension)
