"""Module-level Powertools logger shared by the layer: JSON lines, never bodies, tokens or secrets."""

from __future__ import annotations

from aws_lambda_powertools import Logger

logger = Logger(service="oneai")
