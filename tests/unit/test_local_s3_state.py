"""The local S3 of `make dev` keeps its files across a restart (saved to its state directory when it stops,
put back when it starts), as the embedded PostgreSQL keeps the rows that describe them: a content link
made after a restart still leads to the file (it led to S3's 403 SignatureDoesNotMatch from moto).

moto's objects live in its process, so each run of the local S3 here is a process of its own, as each
`make dev` is.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tests.local_support import run_python

BUCKET = "oneai-attachments-restart"
KEY = "users/00000000-0000-4000-8000-000000000001/6f1c2a8e-3b5d-4e7f-9a01-23456789abcd"

RUN = """
import json, sys
import httpx
from pathlib import Path
from local.png import solid_png
from local.s3_server import LocalS3

state, action, bucket, key = Path(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
with LocalS3(state_dir=state) as s3:
    s3.create_bucket(bucket)
    client = s3.client()
    if action == "put":
        body = solid_png(8, 8, (10, 20, 30))
        client.put_object(Bucket=bucket, Key=key, Body=body, ContentType="image/png", Tagging="oneai-attached=true")
    elif action == "delete":
        client.delete_object(Bucket=bucket, Key=key)
    elif action == "fetch":
        link = client.generate_presigned_url(
            "get_object", Params={"Bucket": bucket, "Key": key, "ResponseContentType": "image/png"}, ExpiresIn=300
        )
        response = httpx.get(link)
        listed = client.list_objects_v2(Bucket=bucket).get("KeyCount", 0)
        tags = client.get_object_tagging(Bucket=bucket, Key=key)["TagSet"] if response.status_code == 200 else []
        print(json.dumps({"status": response.status_code, "same": response.content == solid_png(8, 8, (10, 20, 30)),
                          "type": response.headers.get("content-type"), "tags": tags, "listed": listed}))
"""


def run_local_s3(state: Path, action: str) -> dict[str, Any]:
    """One run of the local S3 (one process): start, do `action`, stop."""
    done = run_python("-c", RUN, str(state), action, BUCKET, KEY)
    return json.loads(done.stdout) if action == "fetch" else {}


def test_files_outlive_a_restart_and_their_presigned_links_work(tmp_path: Path) -> None:
    run_local_s3(tmp_path, "put")
    after_restart = run_local_s3(tmp_path, "fetch")
    assert after_restart["status"] == 200
    assert after_restart["same"] is True
    assert after_restart["type"] == "image/png"
    assert after_restart["tags"] == [{"Key": "oneai-attached", "Value": "true"}]


def test_a_deleted_file_stays_deleted_after_a_restart(tmp_path: Path) -> None:
    run_local_s3(tmp_path, "put")
    run_local_s3(tmp_path, "delete")
    assert run_local_s3(tmp_path, "fetch")["listed"] == 0
