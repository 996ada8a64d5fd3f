"""A TCP proxy in front of PostgreSQL that counts round trips and can add network delay to each.

A round trip starts when a client sends after the server last answered it (or first on a connection):
the bytes of one burst (however many reads they take) are one round trip, the way libpq sends one
query, or one batch of statements, and waits. With `delay_seconds`, each round trip's first bytes are
held that long before they go on, which is what a network hop between Lambda and the database adds.

Used by the test that counts a chat turn's round trips (tests/e2e/test_chat_round_trips.py), by
`bench/chat_stream.py --db-delay-ms`, and by `make dev` to give the embedded server (a Unix socket only) a
TCP port that `sam local invoke`'s containers can reach (`ONEAI_PG_TCP_PORT`, nothing recorded).
"""

from __future__ import annotations

import contextlib
import selectors
import socket
import threading
import time
from collections.abc import Iterator
from typing import Self

from psycopg.conninfo import conninfo_to_dict, make_conninfo

_CHUNK = 65536


class PgRoundTripProxy:
    def __init__(
        self, upstream_url: str, *, delay_seconds: float = 0.0, port: int = 0, record_round_trips: bool = True
    ) -> None:
        self.upstream_url = upstream_url
        self.delay_seconds = delay_seconds
        self.port = port  # on 127.0.0.1; 0: a free one
        self.record_round_trips = record_round_trips
        self._listener: socket.socket | None = None
        self._stopping = threading.Event()
        self._lock = threading.Lock()
        # Each round trip: its monotonic start time and its first bytes (what a failing test shows).
        self._round_trips: list[tuple[float, bytes]] = []
        self._threads: list[threading.Thread] = []

    # -- what tests and benchmarks read ------------------------------------------------------------------

    @property
    def url(self) -> str:
        """The upstream URL with the proxy as its host (TCP on loopback, no TLS)."""
        if self._listener is None:
            raise RuntimeError("the proxy is not running")
        port = self._listener.getsockname()[1]
        return make_conninfo(self.upstream_url, host="127.0.0.1", port=str(port), sslmode="disable")

    def round_trips_between(self, start: float, end: float) -> int:
        with self._lock:
            return sum(1 for at, _ in self._round_trips if start <= at <= end)

    def queries_between(self, start: float, end: float) -> list[str]:
        """The start of each round trip's message (protocol framing dropped), for assertion messages."""
        with self._lock:
            found = [data for at, data in self._round_trips if start <= at <= end]
        return [data[5:120].decode("utf-8", "replace") for data in found]

    def wait_quiet(self, quiet_seconds: float = 0.5, timeout: float = 15.0) -> None:
        """Until no round trip started for `quiet_seconds` (the server's background work is done)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                last = self._round_trips[-1][0] if self._round_trips else 0.0
            if time.monotonic() - last >= quiet_seconds:
                return
            time.sleep(0.05)
        raise TimeoutError(f"the database connections were not quiet for {quiet_seconds} s")

    # -- running -----------------------------------------------------------------------------------------

    def __enter__(self) -> Self:
        listener = socket.create_server(("127.0.0.1", self.port))
        listener.settimeout(0.2)
        self._listener = listener
        thread = threading.Thread(target=self._accept, name="pg-proxy", daemon=True)
        thread.start()
        self._threads.append(thread)
        return self

    def __exit__(self, *exc: object) -> None:
        self._stopping.set()
        if self._listener is not None:
            self._listener.close()
        for thread in self._threads:
            thread.join(timeout=2)

    def stop(self) -> None:
        self.__exit__(None, None, None)

    def _upstream(self) -> socket.socket:
        params = conninfo_to_dict(self.upstream_url)
        host = str(params.get("host") or "127.0.0.1").split(",")[0]
        port = int(str(params.get("port") or 5432).split(",")[0])
        if host.startswith("/"):
            upstream = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            upstream.connect(f"{host}/.s.PGSQL.{port}")
            return upstream
        upstream = socket.create_connection((host, port))
        upstream.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return upstream

    def _accept(self) -> None:
        assert self._listener is not None
        while not self._stopping.is_set():
            try:
                client, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            client.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            thread = threading.Thread(target=self._relay, args=(client,), name="pg-proxy-conn", daemon=True)
            thread.start()
            self._threads.append(thread)

    def _relay(self, client: socket.socket) -> None:
        with contextlib.ExitStack() as stack:
            stack.enter_context(client)
            try:
                upstream = stack.enter_context(self._upstream())
            except OSError:
                return
            selector = stack.enter_context(selectors.DefaultSelector())
            selector.register(client, selectors.EVENT_READ, upstream)
            selector.register(upstream, selectors.EVENT_READ, client)
            server_answered = True  # the next client bytes start a round trip
            while not self._stopping.is_set():
                for key, _ in selector.select(timeout=0.2):
                    source: socket.socket = key.fileobj  # type: ignore[assignment]
                    target: socket.socket = key.data
                    try:
                        data = source.recv(_CHUNK)
                    except OSError:
                        return
                    if not data:
                        return
                    if source is client:
                        if server_answered:
                            server_answered = False
                            if self.record_round_trips:
                                with self._lock:
                                    self._round_trips.append((time.monotonic(), data[:120]))
                            if self.delay_seconds:
                                time.sleep(self.delay_seconds)
                    else:
                        server_answered = True
                    try:
                        target.sendall(data)
                    except OSError:
                        return


@contextlib.contextmanager
def round_trip_proxy(upstream_url: str, *, delay_seconds: float = 0.0) -> Iterator[PgRoundTripProxy]:
    with PgRoundTripProxy(upstream_url, delay_seconds=delay_seconds) as proxy:
        yield proxy
