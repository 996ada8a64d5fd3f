"""The pieces of attachments that need no network: what an image really is, `data:` URLs, attachment
URLs, and the local S3's POST policy checks (what S3 refuses)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import uuid
from datetime import UTC, datetime, timedelta

import pytest

from local.png import png_size, solid_png
from local.s3_server import PolicyError, _signing_key, check_post_policy
from oneai.attachments.images import NotAnImageError, data_url, parse_data_url, sniff_media_type
from oneai.attachments.service import attachment_id_in_url

PNG = solid_png(4, 3, (1, 2, 3))
JPEG = b"\xff\xd8\xff\xe0" + b"\x00" * 20
GIF = b"GIF89a" + b"\x00" * 20
WEBP = b"RIFF\x00\x00\x00\x00WEBPVP8 " + b"\x00" * 10


def test_the_type_of_an_image_comes_from_its_bytes() -> None:
    assert [sniff_media_type(b) for b in (PNG, JPEG, GIF, WEBP)] == [
        "image/png",
        "image/jpeg",
        "image/gif",
        "image/webp",
    ]
    assert sniff_media_type(b"<svg xmlns='http://www.w3.org/2000/svg'/>") is None
    assert sniff_media_type(b"") is None
    assert png_size(PNG) == (4, 3)


def test_a_data_url_of_an_accepted_image_is_read_back_exactly() -> None:
    image = parse_data_url(data_url("image/png", PNG), max_bytes=1024)
    assert (image.media_type, image.data) == ("image/png", PNG)
    assert (
        parse_data_url("data:image/jpeg;name=x.jpg;base64," + base64.b64encode(JPEG).decode(), max_bytes=1024).data
        == JPEG
    )


@pytest.mark.parametrize(
    ("url", "why"),
    [
        ("data:text/plain;base64," + base64.b64encode(b"hello").decode(), "not an accepted image type"),
        ("data:image/svg+xml;base64," + base64.b64encode(b"<svg/>").decode(), "not an accepted image type"),
        ("data:image/png;base64," + base64.b64encode(b"just text, no picture").decode(), "not a image/png image"),
        ("data:image/png;base64," + base64.b64encode(JPEG).decode(), "not a image/png image"),
        ("data:image/png;base64,@@@not-base64@@@", "not valid base64"),
        ("data:image/png," + "%89PNG", "base64 data: URL"),
        ("https://example.com/cat.png", "base64 data: URL"),
        ("data:image/png;base64," + base64.b64encode(PNG + b"\0" * 2000).decode(), "larger than"),
    ],
)
def test_a_data_url_that_is_not_an_accepted_image_is_refused_with_the_reason(url: str, why: str) -> None:
    with pytest.raises(NotAnImageError, match=why.replace("(", r"\(")):
        parse_data_url(url, max_bytes=1024)


def test_an_attachment_id_is_read_from_its_url_and_nothing_else() -> None:
    attachment_id = uuid.uuid4()
    assert (
        attachment_id_in_url(f"https://api.oneai.app/default/attachments/{attachment_id}/content") == attachment_id
    )
    assert attachment_id_in_url(f"http://127.0.0.1:3000/attachments/{attachment_id}/content?x=1") == attachment_id
    assert attachment_id_in_url(f"https://api.oneai.app/attachments/{attachment_id}") is None
    assert (
        attachment_id_in_url("https://evil.example/attachments/not-a-uuid-at-all-000000000000000/content") is None
    )


SECRET = "local-secret"


def signed_fields(conditions: list[object], *, expires: datetime, **fields: str) -> dict[str, str]:
    date = "20261122"
    credential = f"AKID/{date}/us-east-1/s3/aws4_request"
    policy = {"expiration": expires.strftime("%Y-%m-%dT%H:%M:%SZ"), "conditions": [
        *conditions, {"x-amz-algorithm": "AWS4-HMAC-SHA256"}, {"x-amz-credential": credential}, {"x-amz-date": f"{date}T000000Z"},
    ]}  # fmt: skip
    encoded = base64.b64encode(json.dumps(policy).encode()).decode()
    signature = hmac.new(
        _signing_key(SECRET, date, "us-east-1", "s3"), encoded.encode(), hashlib.sha256
    ).hexdigest()
    return {
        **fields,
        "x-amz-algorithm": "AWS4-HMAC-SHA256",
        "x-amz-credential": credential,
        "x-amz-date": f"{date}T000000Z",
        "policy": encoded,
        "x-amz-signature": signature,
    }


def test_the_local_s3_refuses_what_s3_refuses_by_policy() -> None:
    later = datetime.now(UTC) + timedelta(minutes=5)
    conditions: list[object] = [
        {"bucket": "b"},
        {"key": "users/u/1"},
        {"Content-Type": "image/png"},
        ["content-length-range", 1, 10],
    ]
    fields = signed_fields(conditions, expires=later, key="users/u/1", **{"Content-Type": "image/png"})
    check_post_policy(fields, 10, "b", secret=SECRET)  # within every condition

    def refused(fields: dict[str, str], size: int = 5, bucket: str = "b") -> str:
        with pytest.raises(PolicyError) as caught:
            check_post_policy(fields, size, bucket, secret=SECRET)
        return caught.value.code

    assert refused(fields, size=11) == "EntityTooLarge"
    assert refused(fields, size=0) == "EntityTooSmall"
    assert refused({**fields, "Content-Type": "text/html"}) == "AccessDenied"
    assert refused({**fields, "key": "users/other/1"}) == "AccessDenied"
    assert refused(fields, bucket="other") == "AccessDenied"
    assert refused({**fields, "acl": "public-read"}) == "AccessDenied"  # a field the policy does not cover
    assert refused({**fields, "x-amz-signature": "0" * 64}) == "SignatureDoesNotMatch"
    expired = signed_fields(
        conditions,
        expires=datetime.now(UTC) - timedelta(seconds=1),
        key="users/u/1",
        **{"Content-Type": "image/png"},
    )
    assert refused(expired) == "AccessDenied"
