"""A real S3 API on the machine for `make dev` and the tests: moto's server (werkzeug, on a thread, over a
real socket), with the one part of S3 that moto leaves out and the attachments rely on: the POST policy
of a presigned POST upload. S3 checks the form against the signed policy (expiry, signature, every
condition: bucket, key, Content-Type, content-length-range, ...) and refuses the upload otherwise; moto
stores whatever is posted. `PostPolicyEnforcer` does S3's checks, with S3's error codes, before moto
sees the request, so "S3 refuses a wrong type or an oversize file" is true locally too.

moto keeps everything in memory. Under `make dev` (a `state_dir`) the objects of the buckets it created
are written there when it stops and put back when it starts again, so files outlive a restart as their
database rows do in the embedded PostgreSQL.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import hmac
import io
import json
import logging
import shutil
import threading
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final
from urllib.parse import urlencode
from xml.sax.saxutils import escape

from werkzeug.formparser import parse_form_data
from werkzeug.serving import BaseWSGIServer, make_server

# Credentials of the local S3 only (moto accepts any; the enforcer checks signatures made with these).
LOCAL_ACCESS_KEY_ID: Final = "oneai-local-s3"
LOCAL_SECRET_ACCESS_KEY: Final = "oneai-local-s3-secret-not-for-aws"  # noqa: S105 - local only, documented
LOCAL_REGION: Final = "us-east-1"
DEFAULT_BUCKET: Final = "oneai-attachments-local"
# Form fields S3 does not require a policy condition for.
_UNCONDITIONED: Final = frozenset({"file", "policy", "x-amz-signature"})

StartResponse = Callable[..., Any]
WsgiApp = Callable[[dict[str, Any], StartResponse], Iterable[bytes]]


class PolicyError(Exception):
    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


def _signing_key(secret: str, date: str, region: str, service: str) -> bytes:
    key = hmac.new(f"AWS4{secret}".encode(), date.encode(), hashlib.sha256).digest()
    for part in (region, service, "aws4_request"):
        key = hmac.new(key, part.encode(), hashlib.sha256).digest()
    return key


def check_post_policy(
    fields: dict[str, str], file_size: int, bucket: str, *, secret: str, now: datetime | None = None
) -> None:
    """Raise PolicyError the way S3 answers a POST upload that breaks its policy."""
    lowered = {name.lower(): value for name, value in fields.items()}
    encoded = lowered.get("policy")
    if encoded is None:
        return  # an unsigned form: moto's own (anonymous) behaviour
    credential = lowered.get("x-amz-credential", "")
    parts = credential.split("/")
    if len(parts) != 5 or lowered.get("x-amz-algorithm") != "AWS4-HMAC-SHA256":
        raise PolicyError(400, "InvalidArgument", "Invalid credential or algorithm")
    _, date, region, service, _ = parts
    expected = hmac.new(_signing_key(secret, date, region, service), encoded.encode(), hashlib.sha256).hexdigest()
    if not hmac.compare_digest(expected, lowered.get("x-amz-signature", "")):
        raise PolicyError(403, "SignatureDoesNotMatch", "The request signature we calculated does not match")
    policy = json.loads(base64.b64decode(encoded))
    expiration = datetime.fromisoformat(policy["expiration"].replace("Z", "+00:00"))
    if (now or datetime.now(UTC)) > expiration:
        raise PolicyError(403, "AccessDenied", "Invalid according to Policy: Policy expired.")
    values = {**lowered, "bucket": bucket}
    covered = {"bucket"}
    for condition in policy["conditions"]:
        if isinstance(condition, dict):
            ((name, value),) = condition.items()
            operator, name = "eq", name.lower()
        elif condition[0].lower() == "content-length-range":
            low, high = int(condition[1]), int(condition[2])
            if file_size > high:
                raise PolicyError(400, "EntityTooLarge", "Your proposed upload exceeds the maximum allowed size")
            if file_size < low:
                raise PolicyError(
                    400, "EntityTooSmall", "Your proposed upload is smaller than the minimum allowed size"
                )
            continue
        else:
            operator, name, value = condition[0].lower(), condition[1].lstrip("$").lower(), condition[2]
        covered.add(name)
        actual = values.get(name, "")
        if (operator == "eq" and actual != value) or (operator == "starts-with" and not actual.startswith(value)):
            raise PolicyError(
                403,
                "AccessDenied",
                f'Invalid according to Policy: Policy Condition failed: ["{operator}", "${name}", "{value}"]',
            )
    extra = [
        name
        for name in lowered
        if name not in covered and name not in _UNCONDITIONED and not name.startswith("x-ignore-")
    ]
    if extra:
        raise PolicyError(
            403, "AccessDenied", f"Invalid according to Policy: Extra input fields: {', '.join(sorted(extra))}"
        )


class PostPolicyEnforcer:
    """WSGI middleware in front of moto: S3's checks of a POST upload's policy."""

    def __init__(self, app: WsgiApp, *, secret: str) -> None:
        self.app = app
        self.secret = secret

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        content_type = environ.get("CONTENT_TYPE", "")
        if environ.get("REQUEST_METHOD") != "POST" or not content_type.startswith("multipart/form-data"):
            return self.app(environ, start_response)
        body = environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0))
        parsing = {**environ, "wsgi.input": io.BytesIO(body)}
        _, form, files = parse_form_data(parsing)
        upload = files.get("file")
        size = len(upload.read()) if upload is not None else 0
        bucket = environ.get("PATH_INFO", "/").strip("/").split("/")[0]
        try:
            check_post_policy(dict(form.items()), size, bucket, secret=self.secret)
        except PolicyError as error:
            document = (
                f'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>{error.code}</Code>'
                f"<Message>{escape(error.message)}</Message></Error>"
            ).encode()
            start_response(
                f"{error.status} {'Forbidden' if error.status == 403 else 'Bad Request'}",
                [("Content-Type", "application/xml"), ("Content-Length", str(len(document)))],
            )
            return [document]
        environ["wsgi.input"] = io.BytesIO(body)
        return self.app(environ, start_response)


ObjectCreated = Callable[[str, str], None]


class ObjectCreatedNotifier:
    """WSGI middleware around the S3 API: after an object was stored (a PUT of an object, a POST form
    upload, answered 2xx) `notify(bucket, key)` runs, as S3's ObjectCreated event notification would."""

    def __init__(self, app: WsgiApp, notify: ObjectCreated) -> None:
        self.app = app
        self.notify = notify

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        created = self._created_key(environ)
        if created is None:
            return self.app(environ, start_response)
        statuses: list[int] = []

        def recording_start_response(status: str, headers: Any, *args: Any) -> Any:
            statuses.append(int(status.split(maxsplit=1)[0]))
            return start_response(status, headers, *args)

        answer = self.app(environ, recording_start_response)
        if statuses and 200 <= statuses[0] < 300:
            self.notify(*created)
        return answer

    @staticmethod
    def _created_key(environ: dict[str, Any]) -> tuple[str, str] | None:
        method = environ.get("REQUEST_METHOD")
        bucket, _, key = environ.get("PATH_INFO", "/").lstrip("/").partition("/")
        if method == "PUT" and key and not environ.get("QUERY_STRING"):  # not ?tagging, ?partNumber, ...
            return bucket, key
        if method == "POST" and environ.get("CONTENT_TYPE", "").startswith("multipart/form-data"):
            body = environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0))
            environ["wsgi.input"] = io.BytesIO(body)
            _, form, files = parse_form_data({**environ, "wsgi.input": io.BytesIO(body)})
            upload = files.get("file")
            form_key = form.get("key") or ""
            if not form_key:
                return None
            return bucket, form_key.replace("${filename}", (upload.filename or "") if upload else "")
        return None


class LocalS3:
    """moto's S3 with POST policies enforced, on 127.0.0.1 (a free port unless given). `on_object_created`
    (settable while it runs) is told of every object stored, like S3's event notifications."""

    def __init__(
        self, *, port: int = 0, secret: str = LOCAL_SECRET_ACCESS_KEY, state_dir: Path | None = None
    ) -> None:
        self._port = port
        self._secret = secret
        self._state_dir = state_dir
        self._buckets: list[str] = []
        self._server: BaseWSGIServer | None = None
        self._thread: threading.Thread | None = None
        self.on_object_created: ObjectCreated | None = None

    @property
    def endpoint_url(self) -> str:
        if self._server is None:
            raise RuntimeError("the local S3 is not running")
        return f"http://127.0.0.1:{self._server.server_port}"

    def start(self) -> LocalS3:
        from moto.moto_server.werkzeug_app import (
            DomainDispatcherApplication,
            MotoRequestHandler,
            create_backend_app,
        )

        logging.getLogger("werkzeug").setLevel(logging.WARNING)  # no line per request
        app = ObjectCreatedNotifier(
            PostPolicyEnforcer(DomainDispatcherApplication(create_backend_app), secret=self._secret),
            self._object_created,
        )
        self._server = make_server("127.0.0.1", self._port, app, threaded=True, request_handler=MotoRequestHandler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True, name="local-s3")
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None and self._state_dir is not None:
            for bucket in self._buckets:
                self._save(bucket, self._state_dir / bucket)
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._server = self._thread = None

    def _object_created(self, bucket: str, key: str) -> None:
        if self.on_object_created is not None:
            self.on_object_created(bucket, key)

    def __enter__(self) -> LocalS3:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def client(self) -> Any:
        import boto3

        return boto3.client(
            "s3",
            endpoint_url=self.endpoint_url,
            region_name=LOCAL_REGION,
            aws_access_key_id=LOCAL_ACCESS_KEY_ID,
            aws_secret_access_key=self._secret,
        )

    def create_bucket(self, name: str) -> None:
        """The bucket, with the objects saved in `state_dir` by the last `stop`, if any."""
        client = self.client()
        with contextlib.suppress(client.exceptions.BucketAlreadyOwnedByYou):
            client.create_bucket(Bucket=name)
        self._buckets.append(name)
        if self._state_dir is not None:
            self._restore(name, self._state_dir / name)

    def _save(self, bucket: str, directory: Path) -> None:
        """Every object of `bucket` (bytes, type, metadata, tags) into `directory`, replacing what it held."""
        client = self.client()
        shutil.rmtree(directory, ignore_errors=True)
        (directory / "objects").mkdir(parents=True)
        index: list[dict[str, Any]] = []
        for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket):
            for number, summary in enumerate(page.get("Contents", []), start=len(index)):
                key = summary["Key"]
                found = client.get_object(Bucket=bucket, Key=key)
                (directory / "objects" / str(number)).write_bytes(found["Body"].read())
                tags = client.get_object_tagging(Bucket=bucket, Key=key)["TagSet"]
                index.append(
                    {
                        "key": key,
                        "file": str(number),
                        "content_type": found.get("ContentType", "binary/octet-stream"),
                        "metadata": found.get("Metadata", {}),
                        "tags": {tag["Key"]: tag["Value"] for tag in tags},
                    }
                )
        (directory / "index.json").write_text(json.dumps(index))

    def _restore(self, bucket: str, directory: Path) -> None:
        index_path = directory / "index.json"
        if not index_path.exists():
            return
        client = self.client()
        for entry in json.loads(index_path.read_text()):
            client.put_object(
                Bucket=bucket,
                Key=entry["key"],
                Body=(directory / "objects" / entry["file"]).read_bytes(),
                ContentType=entry["content_type"],
                Metadata=entry["metadata"],
                Tagging=urlencode(entry["tags"]),
            )

    def environment(self, bucket: str) -> dict[str, str]:
        """What a process needs to use this S3 as the attachments bucket."""
        return {
            "ONEAI_S3_ENDPOINT_URL": self.endpoint_url,
            "ONEAI_ATTACHMENTS_BUCKET": bucket,
            "AWS_ACCESS_KEY_ID": LOCAL_ACCESS_KEY_ID,
            "AWS_SECRET_ACCESS_KEY": self._secret,
            "AWS_DEFAULT_REGION": LOCAL_REGION,
        }
