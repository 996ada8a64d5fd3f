"""The SnapStart after-restore hook of an app that the managed runtime does not run.

Under the Lambda Web Adapter the app is a uvicorn process of its own: the runtime's SnapStart hooks
(`snapshot_restore_py`) never run in it. The adapter (1.1.0 and later) bridges the lifecycle instead: after
a restore, before any invocation, it POSTs to `AWS_LWA_SNAPSTART_AFTER_RESTORE_PATH` and fails the restore
unless the answer is 2xx. This route runs the hooks the app registered at init, as the runtime would. The
adapter answers 403 to any outside request for the path, so only the adapter reaches it.
"""

from __future__ import annotations

from fastapi import APIRouter, Response

from oneai.runtime import run_after_restore_hooks

AFTER_RESTORE_PATH = "/lwa/snapstart/after-restore"

snapstart_hooks = APIRouter(include_in_schema=False)


@snapstart_hooks.post(AFTER_RESTORE_PATH, status_code=204)
def after_restore() -> Response:
    run_after_restore_hooks()  # a sync route: closing the connection blocks, so it runs in the threadpool
    return Response(status_code=204)
