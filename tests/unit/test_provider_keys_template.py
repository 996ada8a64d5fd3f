"""The template's side of provider keys at rest and of the outbound guard (issue 26): a KMS key with
rotation, kept when the stack goes (the sealed keys live in the database), its alias named to every
function as ONEAI_PROVIDER_KEYS_KMS_KEY_ID, a policy that grants its data keys only with a workspace in the
encryption context; and loopback outbound URLs are never allowed in AWS."""

from __future__ import annotations

import ast
from typing import Any

import pytest

from lambda_build.layout import functions, template_environment
from local.template_routes import load_template
from tests.conftest import REPO_ROOT
from tests.unit.test_import_layers import import_graph, imported_names, shortest_chain


@pytest.fixture(scope="module")
def template() -> dict[str, Any]:
    return dict(load_template())


def test_the_provider_keys_key_rotates_and_outlives_the_stack(template: dict[str, Any]) -> None:
    key = template["Resources"]["ProviderKeysKey"]
    assert key["Type"] == "AWS::KMS::Key"
    assert (key["DeletionPolicy"], key["UpdateReplacePolicy"]) == ("Retain", "Retain")
    assert key["Properties"]["EnableKeyRotation"] is True
    assert key["Properties"]["KeySpec"] == "SYMMETRIC_DEFAULT"
    alias = template["Resources"]["ProviderKeysKeyAlias"]["Properties"]
    assert alias == {
        "AliasName": {"Fn::Sub": "alias/oneai-${Stage}-provider-keys"},
        "TargetKeyId": {"Ref": "ProviderKeysKey"},
    }


def variables_of(template: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Each function's own environment variables, and Globals' under "Globals"."""
    found = {"Globals": template["Globals"]["Function"]["Environment"]["Variables"]}
    for name, resource in template["Resources"].items():
        if resource["Type"] == "AWS::Serverless::Function":
            found[name] = (resource["Properties"].get("Environment") or {}).get("Variables") or {}
    return found


def test_every_function_is_told_the_key_by_its_alias(template: dict[str, Any]) -> None:
    variables = variables_of(template)
    assert variables.pop("Globals")["ONEAI_PROVIDER_KEYS_KMS_KEY_ID"] == {
        "Fn::Sub": "alias/oneai-${Stage}-provider-keys"
    }
    assert not [name for name, own in variables.items() if "ONEAI_PROVIDER_KEYS_KMS_KEY_ID" in own]
    # as a deployed function sees it (the default stage)
    first = functions()[0]
    assert template_environment(first)["ONEAI_PROVIDER_KEYS_KMS_KEY_ID"] == "alias/oneai-default-provider-keys"


def test_the_policy_grants_data_keys_of_that_key_only_for_a_workspace(template: dict[str, Any]) -> None:
    (statement,) = template["Resources"]["ProviderKeysCryptoPolicy"]["Properties"]["PolicyDocument"]["Statement"]
    assert statement["Action"] == ["kms:GenerateDataKey", "kms:Decrypt"]
    assert statement["Resource"] == {"Fn::GetAtt": ["ProviderKeysKey", "Arn"]}
    assert statement["Condition"] == {"Null": {"kms:EncryptionContext:oneai:workspace_id": "false"}}


def test_loopback_outbound_urls_are_never_allowed_in_aws(template: dict[str, Any]) -> None:
    assert not [name for name, own in variables_of(template).items() if "ONEAI_ALLOW_LOOPBACK_URLS" in own]


def test_the_function_serving_the_provider_key_routes_may_seal_and_open_keys(template: dict[str, Any]) -> None:
    credits = template["Resources"]["CreditsFunction"]["Properties"]
    assert {"Ref": "ProviderKeysCryptoPolicy"} in credits["Policies"]
    paths = {(e["Properties"]["Method"], e["Properties"]["Path"]) for e in credits["Events"].values()}
    assert {
        ("POST", "/workspaces/{workspace_id}/provider-keys"),
        ("GET", "/workspaces/{workspace_id}/provider-keys"),
        ("GET", "/provider-keys/{provider_key_id}"),
        ("PATCH", "/provider-keys/{provider_key_id}"),
        ("DELETE", "/provider-keys/{provider_key_id}"),
        ("POST", "/provider-keys/{provider_key_id}/test"),
    } <= paths


# Functions whose code imports the envelope's module without ever sealing or opening: the reason each
# needs no KMS rights. ChatbotsFunction's retrieval test route shares the turn's retrieval module, which
# imports the turn's types; it embeds a question and searches, and never makes a reply.
REACH_WITHOUT_KEYS = {"ChatbotsFunction": "POST /chatbots/{id}/retrieve searches only; no reply, no key opened"}
ENVELOPE = "oneai.crypto.envelope"


def functions_reaching(template: dict[str, Any], module: str) -> dict[str, list[str]]:
    """Each function whose own code reaches `module` through the layer's imports, with the shortest chain
    (every import counts, at module level or inside a function: test_import_layers' graph)."""
    graph = import_graph()
    found: dict[str, list[str]] = {}
    for name, resource in template["Resources"].items():
        if resource["Type"] != "AWS::Serverless::Function":
            continue
        starts: set[str] = set()
        for path in sorted((REPO_ROOT / resource["Properties"]["CodeUri"]).rglob("*.py")):
            tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
            for base, taken in imported_names(tree, "function.module", package=False):
                starts.update(m for m in {base, *(f"{base}.{item}" for item in taken)} if m in graph)
        chains = [c for s in sorted(starts) if (c := shortest_chain(graph, s, lambda node: node == module))]
        if chains:
            found[name] = min(chains, key=len)
    return found


def test_exactly_the_functions_that_seal_or_open_keys_have_the_kms_rights(template: dict[str, Any]) -> None:
    """A function that seals or opens a provider key or a webhook secret without ProviderKeysCryptoPolicy
    works under make dev and fails in AWS (KMS AccessDenied): ChatStreamFunction serves members' chatbot
    replies, which open the workspace's key, and had no such right. And no function holds it idly."""
    reaching = functions_reaching(template, ENVELOPE)
    assert {"ChatStreamFunction", "WidgetFunction", "CreditsFunction", "WorkspacesFunction"} <= reaching.keys()
    assert REACH_WITHOUT_KEYS.keys() <= reaching.keys()  # an exception that no longer applies goes
    granted = {
        name
        for name, resource in template["Resources"].items()
        if resource["Type"] == "AWS::Serverless::Function"
        and {"Ref": "ProviderKeysCryptoPolicy"} in resource["Properties"].get("Policies", [])
    }
    missing = {name: " -> ".join(reaching[name]) for name in reaching.keys() - REACH_WITHOUT_KEYS.keys() - granted}
    assert not missing, f"these reach {ENVELOPE} without ProviderKeysCryptoPolicy: {missing}"
    assert not granted - reaching.keys(), "these hold ProviderKeysCryptoPolicy and never seal or open a key"
