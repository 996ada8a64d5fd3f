"""The pieces behind issue 22, items 7 and 10: one canonical id form, on every path of every app; one
`type` on every item of a 422, however it was raised."""

from __future__ import annotations

import uuid

from local.openapi import documents
from oneai.errors import ValidationError
from oneai.ids import CANONICAL_UUID, canonical_uuid

# The only path parameter that is not an id of ours: the chat stream takes the AI SDK's own chat id too
# (read by `canonical_uuid`, as the chat body's `id` is).
# chat_stream: an AI SDK chat id may be any string; widget: a chatbot's public id is `cb_` and 32 hex digits
NOT_OUR_IDS = {("chat_stream", "conversation_id"), ("widget", "public_id")}


def test_only_the_canonical_form_of_a_uuid_is_read_as_one() -> None:
    value = uuid.uuid4()
    assert canonical_uuid(str(value)) == value
    for alias in (str(value).upper(), value.hex, "{" + str(value) + "}", value.urn, f" {value}", f"{value}\n"):
        assert canonical_uuid(alias) is None, alias


def test_every_id_in_a_path_of_every_app_is_the_canonical_uuid() -> None:
    # GIVEN every path parameter of every OpenAPI document
    found = []
    for app, document in documents().items():
        for path, operations in document["paths"].items():
            for operation in operations.values():
                for parameter in operation.get("parameters", []):
                    if parameter["in"] == "path" and (app, parameter["name"]) not in NOT_OUR_IDS:
                        found.append((app, path, parameter["name"], parameter["schema"]))
    # THEN each that is an id (format uuid, or named like one) is held to the canonical pattern
    ids = [f for f in found if f[3].get("format") == "uuid" or f[2] == "id" or f[2].endswith("_id")]
    assert len(ids) > 20
    assert [f[:3] for f in ids if f[3].get("pattern") != CANONICAL_UUID.pattern] == []


def test_every_item_of_a_hand_raised_422_has_a_type() -> None:
    error = ValidationError("bad", details={"errors": [{"field": "a", "message": "m"}], "tiers": ["pro"]})
    assert error.details == {"errors": [{"field": "a", "message": "m", "type": "value_error"}], "tiers": ["pro"]}
