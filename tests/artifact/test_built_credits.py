"""The credits function (issue 26) from its built artifact, in a bare python3.12 as Lambda runs it: every
sample event of events/credits/ but the purchase (the artifact run has no Razorpay) answers as the
source-tree test expects (tests/integration/test_credits_events.py); the provider key is sealed under the
KMS key the template names, in the moto server."""

from __future__ import annotations

import json
from pathlib import Path

import boto3

from lambda_build.layout import REGION
from tests.artifact.conftest import built_functions, invoke_artifact, lambda_environment
from tests.integration.test_credits_events import EXPECTED, dev_user_with_a_workspace

__all__ = ["dev_user_with_a_workspace"]  # a fixture, used by name

EVENTS = Path(__file__).resolve().parents[2] / "events"


def test_credits_answers_every_sample_event(
    dev_user_with_a_workspace: None, moto_endpoint: str, runtime_lib: Path, tmp_path: Path
) -> None:
    built = next(b for b in built_functions() if b.name == "CreditsFunction")
    alias = lambda_environment(built, moto_endpoint, runtime_lib)["ONEAI_PROVIDER_KEYS_KMS_KEY_ID"]
    kms = boto3.client(
        "kms",
        endpoint_url=moto_endpoint,
        region_name=REGION,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )
    if alias not in {a["AliasName"] for a in kms.list_aliases()["Aliases"]}:
        kms.create_alias(AliasName=alias, TargetKeyId=kms.create_key()["KeyMetadata"]["KeyId"])
    expected = {name: status for name, status in EXPECTED.items() if name != "purchase-workspace-credits"}
    names = list(expected)
    folder = EVENTS / built.function.events_dir_name
    events = [json.loads((folder / f"{name}.json").read_text()) for name in names]
    run = invoke_artifact(built, events, endpoint=moto_endpoint, runtime_lib=runtime_lib, tmp_path=tmp_path)
    assert {n: a["statusCode"] for n, a in zip(names, run.answers, strict=True)} == expected, [
        (n, a["statusCode"], a.get("body", "")[:200]) for n, a in zip(names, run.answers, strict=True)
    ]
    answers = dict(zip(names, run.answers, strict=True))
    assert (
        json.loads(answers["get-credits-open-api"]["body"])["info"]["title"] == "OneAI credits and provider keys"
    )
    added = json.loads(answers["create-provider-key"]["body"])
    assert added["key"] == "…-key" and "sk-proj-sample-not-a-real-key" not in json.dumps(run.answers)
    assert json.loads(answers["get-workspace-credits"]["body"])["balance"] == "0.00"
