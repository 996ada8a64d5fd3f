"""A provider's endpoint played on 127.0.0.1 for the provider-key tests: every GET is answered by a
function of the request with a JSON body (a real socket, so the outbound guard and httpx do their work)."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

# What the endpoint answers a request with: (status, the JSON body).
Respond = Callable[[BaseHTTPRequestHandler], tuple[int, Any]]


@contextmanager
def json_endpoint(respond: Respond) -> Iterator[str]:
    """Serve `respond` until the block ends; yields the endpoint's origin (`http://127.0.0.1:<port>`)."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            status, payload = respond(self)
            body = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
