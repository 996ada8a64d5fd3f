"""The committed OpenAPI documents are what the apps serve, and they describe the error envelope."""

from __future__ import annotations

from local.openapi import documents, main


def test_committed_openapi_documents_are_current() -> None:
    # WHEN the documents are regenerated from the apps THEN nothing differs from docs/openapi/
    assert main(["--check"]) == 0


def test_every_operation_documents_the_error_envelope_and_json_bodies() -> None:
    document = documents()["conversations"]
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            assert "404" in operation["responses"], (method, path)
            envelope = operation["responses"]["404"]["content"]["application/json"]["schema"]
            assert envelope == {"$ref": "#/components/schemas/ErrorEnvelope"}
    create = document["paths"]["/conversations"]["post"]
    assert create["responses"]["201"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/Conversation"
    }
