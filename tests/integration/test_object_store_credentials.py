"""A store signs with the credentials of the environment it was made in, not the first ones the process saw."""

from __future__ import annotations

import boto3
import httpx
import pytest

from local.s3_server import LocalS3
from oneai.attachments.storage import ObjectStore
from oneai.config import override_settings

BUCKET = "oneai-credentials-test"


def test_a_store_made_after_the_credentials_changed_signs_with_the_new_ones(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # GIVEN boto3's default session has already resolved other credentials (an earlier client did)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "earlier-key")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "earlier-secret")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setattr(boto3, "DEFAULT_SESSION", None)  # this test's own, put back after it
    boto3.client("s3", endpoint_url="http://127.0.0.1:9")  # resolves (and caches) the earlier credentials
    with LocalS3() as s3:
        s3.create_bucket(BUCKET)
        for name, value in s3.environment(BUCKET).items():
            monkeypatch.setenv(name, value)
        # WHEN a store made now presigns an upload and the file is posted to the local S3
        with override_settings(attachments_bucket=BUCKET, s3_endpoint_url=s3.endpoint_url) as settings:
            url, fields = ObjectStore(settings).presigned_post(
                "a/b.txt", media_type="text/plain", max_bytes=5, expires_in=300
            )
        answer = httpx.post(url, data=fields, files={"file": ("b.txt", b"hello", "text/plain")}, timeout=10)
    # THEN the local S3 (which checks the signature with its own secret) takes it
    assert answer.status_code in (200, 204), answer.text
