"""Every time an answer holds is written by `oneai.timestamps.iso_z` (`...Z`), whichever route writes it
(issue 22, item 9): each response model of every FastAPI app, walked to its leaves, types its times as
`UtcTime`, and holds no field a time could pass through unformatted."""

from __future__ import annotations

import importlib
import sys
import types
import typing
from datetime import datetime, timedelta, timezone
from typing import Any

from fastapi.routing import APIRoute, iter_route_contexts
from pydantic import BaseModel, PlainSerializer

from local.openapi import FASTAPI_FUNCTIONS
from oneai.conversations.models import SharedSnapshot
from oneai.timestamps import UtcTime, iso_z
from tests.conftest import REPO_ROOT


def response_models() -> dict[str, type[BaseModel]]:
    found: dict[str, type[BaseModel]] = {}
    for name, module_name in FASTAPI_FUNCTIONS.items():
        function_dir = str(REPO_ROOT / "functions" / name)
        if function_dir not in sys.path:
            sys.path.insert(0, function_dir)
        app = importlib.import_module(module_name).build_app()
        for context in iter_route_contexts(app.router.routes):
            route = context.route
            if isinstance(route, APIRoute) and route.response_model is not None:
                for model in models_in(route.response_model):
                    found[f"{model.__module__}.{model.__qualname__}"] = model
    return found


def models_in(annotation: Any) -> list[type[BaseModel]]:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    return [model for arg in typing.get_args(annotation) for model in models_in(arg)]


def untyped_times(annotation: Any, metadata: list[Any], where: str) -> list[str]:
    """The places under `annotation` where a datetime is not serialized by `iso_z`."""
    if typing.get_origin(annotation) is typing.Annotated:
        inner, *extra = typing.get_args(annotation)
        return untyped_times(inner, [*metadata, *extra], where)
    if annotation is datetime:
        serializers = [m.func for m in metadata if isinstance(m, PlainSerializer)]
        return [] if serializers == [iso_z] else [where]
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return []  # walked on its own
    if typing.get_origin(annotation) in (typing.Union, types.UnionType, list, tuple, dict, set, frozenset):
        return [p for arg in typing.get_args(annotation) for p in untyped_times(arg, [], where)]
    return []


def test_every_time_in_every_response_model_is_written_with_z() -> None:
    # GIVEN every model any route answers with, and the models its fields hold
    models = response_models()
    pending = list(models.values())
    while pending:
        for field in pending.pop().model_fields.values():
            for nested in models_in(field.annotation):
                key = f"{nested.__module__}.{nested.__qualname__}"
                if key not in models:
                    models[key] = nested
                    pending.append(nested)
    # WHEN their fields are walked to the leaves
    untyped = [
        where
        for key, model in sorted(models.items())
        for name, field in model.model_fields.items()
        for where in untyped_times(field.annotation, list(field.metadata), f"{key}.{name}")
    ]
    passthrough = [key for key, model in sorted(models.items()) if model.model_config.get("extra") == "allow"]
    # THEN each time is a UtcTime, and no model passes unknown keys (a time among them) through unformatted
    assert len(models) > 40
    assert untyped == []
    assert passthrough == []


def test_a_utc_time_is_written_with_z_whatever_offset_it_came_with() -> None:
    kolkata = timezone(timedelta(hours=5, minutes=30))
    moment = datetime(2026, 11, 23, 15, 30, tzinfo=kolkata)

    class Answer(BaseModel):
        at: UtcTime

    assert Answer(at=moment).model_dump(mode="json") == {"at": "2026-11-23T10:00:00Z"}
    assert Answer(at=moment).model_dump()["at"].utcoffset() == timedelta(0)


def test_the_shared_snapshot_writes_shared_at_with_z() -> None:
    # GIVEN a snapshot as the database hands it back: its times as PostgreSQL's jsonb wrote them
    stored = {
        "title": "t",
        "created_at": "2026-11-20T18:02:55Z",
        "shared_at": "2026-11-21T09:00:00.123456+00:00",
        "messages": [],
    }
    # THEN it answers with every time in the one form
    answered = SharedSnapshot.model_validate(stored).model_dump(mode="json")
    assert answered["shared_at"] == "2026-11-21T09:00:00.123456Z"
