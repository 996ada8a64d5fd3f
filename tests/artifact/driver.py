"""Runs inside a bare python3.12 (`-I -S`: no site-packages, no PYTHONPATH, no script dir) started by
tests/artifact: loads one handler from a built artifact as the Lambda runtime does and invokes it with
events, printing one JSON line per answer. Only the standard library is used here.

    python3.12 -I -S driver.py JOB.json

JOB: {"path": [function dir, layer python dir, runtime lib dir], "handler": "pkg.handler.lambda_handler",
"function_name": "...", "events": [event, ...], "restore_after": n (optional: run the runtime's
SnapStart after-restore hooks after the n-th event, as Lambda does when it resumes a snapshot)}.
"""

import importlib
import json
import sys
import time


class Context:
    def __init__(self, function_name: str) -> None:
        self.function_name = function_name
        self.function_version = "1"
        self.memory_limit_in_mb = 512
        self.aws_request_id = "7682532f-d42a-59cc-88da-851241566745"
        self.invoked_function_arn = f"arn:aws:lambda:ap-south-1:123456789012:function:{function_name}"
        self.log_group_name = f"/aws/lambda/{function_name}"
        self.log_stream_name = "artifact-test"
        self._deadline = time.monotonic() + 15

    def get_remaining_time_in_millis(self) -> int:
        return int((self._deadline - time.monotonic()) * 1000)


def main() -> None:
    with open(sys.argv[1], encoding="utf-8") as handle:
        job = json.load(handle)
    sys.path[:0] = job["path"]
    started = time.perf_counter()
    module_name, _, attribute = job["handler"].rpartition(".")
    handler = getattr(importlib.import_module(module_name), attribute)
    import_ms = (time.perf_counter() - started) * 1000
    loaded = sorted(name for name in sys.modules if name.split(".")[0] in ("boto3", "botocore"))
    clients = sorted(name for name in ("botocore.client", "razorpay", "requests") if name in sys.modules)
    print(
        json.dumps(
            {
                "import_ms": import_ms,
                "aws_sdk_at_import": loaded,
                "client_libraries_at_import": clients,
                "file": sys.modules[module_name].__file__,
            }
        )
    )
    for index, event in enumerate(job["events"], start=1):
        answer = handler(event, Context(job["function_name"]))
        from oneai.database import get_database  # the layer's, as loaded by the handler

        print(json.dumps({"answer": answer, "backend_pid": get_database().backend_pid()}, default=str))
        if job.get("restore_after") == index:
            import snapshot_restore_py

            for hook, args, kwargs in snapshot_restore_py._after_restore_registry:
                hook(*args, **kwargs)
            print(json.dumps({"restored": len(snapshot_restore_py._after_restore_registry)}))
    sys.stdout.flush()


if __name__ == "__main__":
    main()
