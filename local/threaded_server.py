"""An ASGI app served by uvicorn on a background thread, over a real socket: the fake upstreams (OpenRouter,
Razorpay) that tests script and that `make dev` uses offline."""

from __future__ import annotations

import socket
import threading
import time
from typing import Self

import uvicorn
from starlette.types import ASGIApp

START_TIMEOUT_SECONDS = 10


class ThreadedServer:
    def __init__(
        self, app: ASGIApp, *, host: str = "127.0.0.1", port: int = 0, name: str, stopping: threading.Event
    ) -> None:
        self.app = app
        self.host = host
        self._requested_port = port
        self._name = name
        # Set while stopping, so endless responses can end themselves and shutdown stays quick.
        self._stopping = stopping
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self._socket: socket.socket | None = None

    @property
    def port(self) -> int:
        if self._socket is None:
            raise RuntimeError(f"{self._name} is not running")
        port: int = self._socket.getsockname()[1]
        return port

    def start(self) -> None:
        # IPPROTO_TCP and TCP_NODELAY (inherited by accepted connections): without them asyncio leaves
        # Nagle on, and each first chunk after the headers waits for the client's delayed ACK (~40 ms).
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.bind((self.host, self._requested_port))
        self._socket = sock
        config = uvicorn.Config(
            self.app,
            log_level="warning",
            access_log=False,
            lifespan="off",
            http="h11",
            ws="none",
            loop="asyncio",
            timeout_graceful_shutdown=1,
        )
        server = uvicorn.Server(config)
        self._server = server
        thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True, name=self._name)
        self._thread = thread
        thread.start()
        deadline = time.monotonic() + START_TIMEOUT_SECONDS
        while not server.started:
            if not thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(f"{self._name} did not start")
            time.sleep(0.005)

    def stop(self) -> None:
        self._stopping.set()
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=5)
            if self._thread.is_alive() and self._server is not None:
                self._server.force_exit = True
                self._thread.join(timeout=5)
        if self._socket is not None:
            self._socket.close()
        self._server = self._thread = None
        self._socket = None
        self._stopping.clear()


class FakeUpstream:
    """`start`/`stop`, `with` and `port` for a fake upstream whose app runs on `self._http`."""

    _http: ThreadedServer

    @property
    def port(self) -> int:
        return self._http.port

    def start(self) -> Self:
        self._http.start()
        return self

    def stop(self) -> None:
        self._http.stop()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()
