"""The attachments bucket: presigned uploads and downloads, existence checks, writes and deletes.

boto3 (pinned in the layer) is imported on first use (a cold start that serves no
attachment never pays for it). `ONEAI_S3_ENDPOINT_URL` is set only locally (moto's S3 server under
`make dev` and the tests); in AWS the client uses the region's endpoint. Any S3 failure is a 503
`UNAVAILABLE` (nothing written on our side); an object that is not there is `None`, not an error.

Lifecycle: an object is uploaded with the tag `oneai-attached=false`; the bucket's lifecycle rule
expires such objects after a day, so an upload never attached to a message disappears by itself.
Attaching it (a chat turn) sets the tag to `true`; objects the server writes itself (generated images)
are written attached.

Deletes after a commit (`delete_after_commit`: a conversation's attachments, a document's file) never
fail the request: the rows are gone, so is what the caller asked to delete.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Final
from urllib.parse import quote

from oneai.config import Settings, get_settings
from oneai.errors import UnavailableError
from oneai.logging import logger
from oneai.observability import trace_calls

AWS_TIMEOUT_SECONDS: Final = 3
ATTACHED_TAG: Final = "oneai-attached"
UNATTACHED_TAGGING_XML: Final = (
    f"<Tagging><TagSet><Tag><Key>{ATTACHED_TAG}</Key><Value>false</Value></Tag></TagSet></Tagging>"
)
DELETE_BATCH: Final = 1000  # DeleteObjects takes at most 1000 keys per call


@dataclass(frozen=True, slots=True)
class StoredObject:
    size: int
    media_type: str


class ObjectStore:
    def __init__(self, settings: Settings) -> None:
        if not settings.attachments_bucket:
            raise UnavailableError("Attachments are not configured")
        self.bucket = settings.attachments_bucket
        self._endpoint_url = settings.s3_endpoint_url
        self._client: Any = None
        self._lock = threading.Lock()

    def _s3(self) -> Any:
        with self._lock:
            if self._client is None:
                trace_calls("botocore")
                import boto3
                from botocore.config import Config

                config = Config(
                    signature_version="s3v4",
                    connect_timeout=AWS_TIMEOUT_SECONDS,
                    read_timeout=AWS_TIMEOUT_SECONDS,
                    retries={"max_attempts": 2, "mode": "standard"},
                    # Locally the bucket is a path of the endpoint (no wildcard DNS on 127.0.0.1).
                    s3={"addressing_style": "path" if self._endpoint_url else "virtual"},
                )
                # A session of its own: boto3's default session keeps the credentials it resolved first,
                # so a store made after the environment changed (another local S3, rotated keys) would
                # sign its presigned POSTs with stale ones.
                session = boto3.session.Session()
                self._client = session.client("s3", endpoint_url=self._endpoint_url, config=config)
            return self._client

    def _call(self, operation: str, **kwargs: Any) -> Any:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            return getattr(self._s3(), operation)(**kwargs)
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "")
            if code in {"404", "NoSuchKey", "NotFound"}:
                return None
            logger.warning("s3 call failed", extra={"operation": operation, "error_code": code})
            raise UnavailableError("File storage is unavailable; try again") from None
        except BotoCoreError as exc:
            logger.warning("s3 call failed", extra={"operation": operation, "error_type": type(exc).__name__})
            raise UnavailableError("File storage is unavailable; try again") from None

    def presigned_post(
        self, key: str, *, media_type: str, max_bytes: int, expires_in: int, unattached: bool = True
    ) -> tuple[str, dict[str, str]]:
        """A form upload S3 itself holds to this key, this Content-Type and at most `max_bytes`. With
        `unattached` (attachments) the object is tagged for the lifecycle rule's expiry; a document's file
        (`unattached=False`) is kept until its document is deleted."""
        fields = {"Content-Type": media_type}
        conditions: list[Any] = [{"Content-Type": media_type}, ["content-length-range", 1, max_bytes]]
        if unattached:
            fields["tagging"] = UNATTACHED_TAGGING_XML
            conditions.append({"tagging": UNATTACHED_TAGGING_XML})
        # Signing is local (no network call), so no S3 failure can happen here.
        post = self._s3().generate_presigned_post(
            Bucket=self.bucket, Key=key, Fields=fields, Conditions=conditions, ExpiresIn=expires_in
        )
        return str(post["url"]), {str(k): str(v) for k, v in post["fields"].items()}

    def presigned_get(
        self, key: str, *, media_type: str, filename: str, expires_in: int, download: bool = False
    ) -> str:
        """`download`: the browser saves the file (`attachment`) instead of showing it (`inline`)."""
        disposition = f"{'attachment' if download else 'inline'}; filename*=UTF-8''{quote(filename)}"
        url = self._s3().generate_presigned_url(
            "get_object",
            Params={
                "Bucket": self.bucket,
                "Key": key,
                "ResponseContentType": media_type,
                "ResponseContentDisposition": disposition,
            },
            ExpiresIn=expires_in,
        )
        return str(url)

    def head(self, key: str) -> StoredObject | None:
        answer = self._call("head_object", Bucket=self.bucket, Key=key)
        if answer is None:
            return None
        return StoredObject(size=int(answer["ContentLength"]), media_type=str(answer.get("ContentType", "")))

    def put(self, key: str, body: bytes, *, media_type: str, attached: bool) -> None:
        """Write an object the server has the bytes of: a generated image (attached at once: its message
        is being written) or a chat body's `data:` URL (unattached until its turn commits)."""
        self._call(
            "put_object",
            Bucket=self.bucket,
            Key=key,
            Body=body,
            ContentType=media_type,
            ServerSideEncryption="AES256",
            Tagging=f"{ATTACHED_TAG}={'true' if attached else 'false'}",
        )

    def start_upload(self, key: str, *, media_type: str, attached: bool) -> str:
        """Begin a multipart upload (a file written in parts, none kept in memory); returns its upload id.
        Tagged like `put`, so an export (unattached) expires with the lifecycle rule after a day."""
        answer = self._call(
            "create_multipart_upload",
            Bucket=self.bucket,
            Key=key,
            ContentType=media_type,
            ServerSideEncryption="AES256",
            Tagging=f"{ATTACHED_TAG}={'true' if attached else 'false'}",
        )
        return str(answer["UploadId"])

    def upload_part(self, key: str, upload_id: str, number: int, body: bytes) -> dict[str, Any]:
        """One part (at least 5 MiB, but for the last); returns what `finish_upload` needs of it."""
        answer = self._call(
            "upload_part", Bucket=self.bucket, Key=key, UploadId=upload_id, PartNumber=number, Body=body
        )
        return {"PartNumber": number, "ETag": answer["ETag"]}

    def finish_upload(self, key: str, upload_id: str, parts: list[dict[str, Any]]) -> None:
        self._call(
            "complete_multipart_upload",
            Bucket=self.bucket,
            Key=key,
            UploadId=upload_id,
            MultipartUpload={"Parts": parts},
        )

    def abort_upload(self, key: str, upload_id: str) -> None:
        self._call("abort_multipart_upload", Bucket=self.bucket, Key=key, UploadId=upload_id)

    def get(self, key: str) -> bytes | None:
        answer = self._call("get_object", Bucket=self.bucket, Key=key)
        return None if answer is None else bytes(answer["Body"].read())

    def mark_attached(self, key: str) -> None:
        """Keep an uploaded object past the lifecycle rule's expiry of unattached uploads."""
        self._call(
            "put_object_tagging",
            Bucket=self.bucket,
            Key=key,
            Tagging={"TagSet": [{"Key": ATTACHED_TAG, "Value": "true"}]},
        )

    def delete(self, keys: Iterable[str]) -> int:
        """Delete these keys (missing ones are fine); returns how many were asked for."""
        batch: list[str] = []
        count = 0
        for key in keys:
            batch.append(key)
            if len(batch) == DELETE_BATCH:
                count += self._delete_batch(batch)
                batch = []
        if batch:
            count += self._delete_batch(batch)
        return count

    def delete_prefix(self, prefix: str) -> int:
        """Delete every object under `prefix`, a page (≤ 1000 keys) per DeleteObjects call."""
        count = 0
        token: str | None = None
        while True:
            kwargs: dict[str, Any] = {"Bucket": self.bucket, "Prefix": prefix, "MaxKeys": DELETE_BATCH}
            if token:
                kwargs["ContinuationToken"] = token
            page = self._call("list_objects_v2", **kwargs) or {}
            keys = [str(item["Key"]) for item in page.get("Contents", [])]
            if keys:
                count += self._delete_batch(keys)
            if not page.get("IsTruncated"):
                return count
            token = page.get("NextContinuationToken")

    def _delete_batch(self, keys: list[str]) -> int:
        answer = self._call(
            "delete_objects",
            Bucket=self.bucket,
            Delete={"Objects": [{"Key": key} for key in keys], "Quiet": True},
        )
        errors = (answer or {}).get("Errors") or []
        if errors:
            logger.warning("s3 delete left objects", extra={"failed": len(errors)})
            raise UnavailableError("File storage is unavailable; try again")
        return len(keys)


_store: ObjectStore | None = None
_store_lock = threading.Lock()


def get_object_store() -> ObjectStore:
    """This container's store, made on first use (503 when no bucket is configured)."""
    global _store
    with _store_lock:
        settings = get_settings()
        if _store is None or _store.bucket != settings.attachments_bucket:
            _store = ObjectStore(settings)
        return _store


def delete_after_commit(keys: Sequence[str], *, kind: str) -> None:
    """Delete the objects of rows whose deletion has committed (`kind` names them in the log: "attachments",
    "document files"). The rows are gone, so the request succeeds whatever S3 says: a failure is logged
    (how many objects and the error's type, never the keys: a document's key holds its filename) and the
    objects are left behind, unreachable through the API, for whatever deletes their prefix (the account's
    erasure; for a document's file also its workspace's purge)."""
    if not keys:
        return
    try:
        get_object_store().delete(keys)
    except Exception as exc:  # the rows are gone either way; say so and move on
        logger.warning(
            "stored objects left behind after a delete",
            extra={"kind": kind, "count": len(keys), "error_type": type(exc).__name__},
        )
        return
    logger.info("stored objects deleted after a delete", extra={"kind": kind, "count": len(keys)})
