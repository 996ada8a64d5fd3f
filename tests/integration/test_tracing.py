"""X-Ray tracing in Lambda: nothing patched (or imported for it) at import, and the calls the functions
make still reach X-Ray, each library patched where its first client is built.

Each case runs in a fresh interpreter with Lambda's tracing environment (LAMBDA_TASK_ROOT, a sampled
`_X_AMZN_TRACE_ID`), the X-Ray daemon being a UDP socket of the test, and a local HTTP server standing in
for the JWKS endpoint and Razorpay's API."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
TRACE_ID = "1-5759e988-bd862e3fe1be46a994272793"

PRELUDE = """
import http.server, json, os, socket, sys, threading

daemon = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
daemon.bind(("127.0.0.1", 0))
daemon.settimeout(5)
os.environ["AWS_XRAY_DAEMON_ADDRESS"] = "127.0.0.1:%d" % daemon.getsockname()[1]

class Upstream(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = json.dumps({"keys": []} if "jwks" in self.path else {
            "id": "sub_1", "plan_id": "plan_1", "status": "active"}).encode()
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass

upstream = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Upstream)
threading.Thread(target=upstream.serve_forever, daemon=True).start()
base = "http://127.0.0.1:%d" % upstream.server_port

def remote_subsegments(count):
    found = []
    while len(found) < count:
        document = json.loads(daemon.recv(65535).split(b"\\n", 1)[1])
        if document.get("namespace") == "remote":
            found.append(document)
    return found
"""


def run_traced(script: str, *, tracing: bool = True) -> dict[str, object]:
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "PYTHONPATH": f"{REPO / 'layers' / 'common'}",
        "LAMBDA_TASK_ROOT": str(REPO),
        "POWERTOOLS_TRACE_DISABLED": "false" if tracing else "true",
        "_X_AMZN_TRACE_ID": f"Root={TRACE_ID};Parent=53995c3f42cd8ad8;Sampled=1",
        "AWS_REGION": "ap-south-1",
    }
    done = subprocess.run(
        [sys.executable, "-c", PRELUDE + textwrap.dedent(script)],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    result: dict[str, object] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def test_importing_the_tracer_patches_and_imports_no_client_library() -> None:
    seen = run_traced(
        """
        from oneai.observability import traced_libraries, tracer
        import oneai.auth, oneai.billing.razorpay_client, oneai.config
        print(json.dumps({
            "tracing": not tracer.disabled,
            "patched": sorted(traced_libraries()),
            "loaded": sorted(m for m in ("botocore.client", "boto3", "requests", "razorpay") if m in sys.modules),
        }))
        """
    )
    assert seen == {"tracing": True, "patched": [], "loaded": []}


def test_the_jwks_fetch_and_a_razorpay_call_are_recorded_as_calls_out() -> None:
    # GIVEN tracing on and a handler's segment
    seen = run_traced(
        """
        from oneai.auth import JwksCache
        from oneai.billing.razorpay_client import RazorpayClient
        from oneai.errors import UnauthorizedError
        from oneai.observability import traced_libraries, tracer

        @tracer.capture_method
        def handle():
            try:  # a token's key id: the keys are fetched (the endpoint has none, so it is refused)
                JwksCache(base + "/auth/v1/.well-known/jwks.json").get_key("kid-1")
            except UnauthorizedError:
                pass
            client = RazorpayClient(key_id="rzp_test", key_secret="s", base_url=base, timeout_seconds=5)
            client.fetch_subscription("sub_1")

        handle()
        calls = remote_subsegments(2)
        print(json.dumps({
            "patched": sorted(traced_libraries()),
            "calls": sorted((c["http"]["request"]["method"], c["http"]["request"]["url"].split("/", 3)[3],
                             c["http"]["response"]["status"], c["trace_id"]) for c in calls),
        }))
        """
    )
    # THEN both calls reached the X-Ray daemon under the invocation's trace, with their URL and status
    assert seen["patched"] == ["httpx", "requests"]
    assert seen["calls"] == [
        ["GET", "auth/v1/.well-known/jwks.json", 200, TRACE_ID],
        ["GET", "v1/subscriptions/sub_1", 200, TRACE_ID],
    ]


def test_with_tracing_off_nothing_is_patched_and_the_sdk_is_not_loaded() -> None:
    seen = run_traced(
        """
        from oneai.observability import trace_calls, traced_libraries
        trace_calls("httpx")
        trace_calls("botocore")
        print(json.dumps({
            "patched": sorted(traced_libraries()),
            "recorder": "aws_xray_sdk.core" in sys.modules,
            "botocore": "botocore.client" in sys.modules,
        }))
        """,
        tracing=False,
    )
    # (Powertools itself imports only the SDK's package and its config module)
    assert seen == {"patched": [], "recorder": False, "botocore": False}


def test_only_the_traced_libraries_can_be_named() -> None:
    from oneai.observability import trace_calls

    with pytest.raises(ValueError, match="not one of the traced libraries"):
        trace_calls("urllib3")
