"""The template's side of provider keys at rest and of the outbound guard (issue 26): a KMS key with
rotation, kept when the stack goes (the sealed keys live in the database), its alias named to every
function as ONEAI_PROVIDER_KEYS_KMS_KEY_ID, a policy that grants its data keys only with a workspace in the
encryption context; and loopback outbound URLs are never allowed in AWS."""

from __future__ import annotations

from typing import Any

import pytest

from lambda_build.layout import functions, template_environment
from local.template_routes import load_template


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
