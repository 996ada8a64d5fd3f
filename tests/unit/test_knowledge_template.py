"""The template gives the knowledge base's files the rights each function needs: the workspaces function
signs uploads and downloads and deletes files; every function that erases accounts (account, admin) or
purges workspaces (quota reset) deletes the files of the workspaces they remove, and the erasing ones the
user's attachments too. A missing policy would only show in AWS, as a 503 of an erasure or a purge."""

from __future__ import annotations

from typing import Any

import pytest

from local.template_routes import load_template


@pytest.fixture(scope="module")
def resources() -> dict[str, Any]:
    return dict(load_template()["Resources"])


def policies_of(resources: dict[str, Any], function: str) -> list[Any]:
    return list(resources[function]["Properties"]["Policies"])


@pytest.mark.parametrize(
    ("function", "needed"),
    [
        ("WorkspacesFunction", {"KnowledgeFilesPolicy"}),
        ("AccountFunction", {"KnowledgeFilesPolicy", "AttachmentsDeletePolicy"}),
        ("AdminFunction", {"KnowledgeFilesPolicy", "AttachmentsDeletePolicy"}),
        ("QuotaResetFunction", {"KnowledgeFilesPolicy"}),
    ],
)
def test_each_function_that_touches_the_files_has_their_policy(
    resources: dict[str, Any], function: str, needed: set[str]
) -> None:
    refs = {p["Ref"] for p in policies_of(resources, function) if isinstance(p, dict) and "Ref" in p}
    assert needed <= refs, (function, needed - refs)


def test_the_knowledge_policy_covers_only_the_knowledge_prefix(resources: dict[str, Any]) -> None:
    statements = resources["KnowledgeFilesPolicy"]["Properties"]["PolicyDocument"]["Statement"]
    objects = next(s for s in statements if s["Sid"] == "KnowledgeObjects")
    assert set(objects["Action"]) == {"s3:GetObject", "s3:PutObject", "s3:DeleteObject"}
    assert objects["Resource"] == {"Fn::Sub": "${AttachmentsBucket.Arn}/knowledge/*"}
    listing = next(s for s in statements if s["Sid"] == "ListKnowledgePrefix")
    assert listing["Condition"] == {"StringLike": {"s3:prefix": "knowledge/*"}}


def test_the_ingest_may_tag_and_delete_the_knowledge_files_and_only_those(resources: dict[str, Any]) -> None:
    """It tags a document's file attached, and deletes a file that landed after its document was deleted
    (oneai.knowledge.ingest): without s3:DeleteObject that delete is an AccessDenied in AWS only."""
    inline = [p for p in policies_of(resources, "IngestFunction") if isinstance(p, dict) and "Statement" in p]
    statements = [s for policy in inline for s in policy["Statement"]]
    actions = {
        action
        for s in statements
        if s["Resource"] == {"Fn::Sub": "${AttachmentsBucket.Arn}/knowledge/*"}
        for action in ([s["Action"]] if isinstance(s["Action"], str) else s["Action"])
    }
    assert actions == {"s3:PutObjectTagging", "s3:DeleteObject"}
