"""HTTP clients for outbound URLs a customer chose: THE guard every such call goes through (a `custom`
provider's calls, webhook deliveries).

    checked = check_url(base_url, allow_loopback=settings.allow_loopback_urls)   # or check_url_async
    with guarded_client(checked, timeout=httpx.Timeout(10.0)) as client:         # guarded_async_client
        response = client.post("chat/completions", json=body)                     # relative to the URL
        response = client.post(checked.url, content=payload)                      # the URL itself

(A URL with a query, as webhook endpoints may have, is called as `checked.url`: httpx would append a
relative path after the query.)

What the clients do:
- connect only to the addresses `check_url` resolved and checked: the network backend under httpcore is
  given the hostname and connects to the checked address instead, so there is no second DNS lookup
  between the check and the connection for a rebinding answer to slip into;
- keep the hostname for everything else: the Host header, TLS SNI and the certificate's verification;
- call only the checked URL's origin (scheme, host, port): a request anywhere else raises `UnsafeUrlError`
  before any connection;
- never follow a redirect (a 3xx is returned to the caller as it is, whatever `follow_redirects` says);
- ignore proxy and netrc variables of the environment (a proxy would do its own DNS);
- always have timeouts: `timeout` is required and every part of it must be set.

The clients are meant for one call or one delivery (the checked addresses are a snapshot of DNS); check
the URL again for the next one.

httpx builds the httpcore pool of its transports itself and takes no network backend, so the transports
here are httpx's own with the pool replaced by one on the pinned backend (httpx is pinned exactly in the
layer's requirements; tests/unit/test_outbound_guard.py fails if that stops working).
"""

from __future__ import annotations

import ssl
from collections.abc import Iterable
from typing import Any, Final

import httpcore
import httpx

from oneai.config import get_settings
from oneai.outbound.url_guard import CheckedUrl, Resolver, UnsafeUrlError, check_url

__all__ = [
    "GuardedAsyncTransport",
    "GuardedTransport",
    "PinnedAsyncBackend",
    "PinnedBackend",
    "guarded_async_client",
    "guarded_client",
]

SocketOptions = Iterable[Any] | None
_DEFAULT_LIMITS: Final = httpx.Limits(max_connections=10, max_keepalive_connections=5, keepalive_expiry=15.0)
_USER_AGENT: Final = "OneAI (+https://oneai.app)"


def _other_host(host: str) -> UnsafeUrlError:
    return UnsafeUrlError(f"only the checked host may be called, not {host}", type="url_other_host")


class PinnedBackend(httpcore.NetworkBackend):
    """httpcore's network backend for one checked URL: `connect_tcp(host)` connects to the addresses
    checked for that host (in order, the next one when one fails), never resolving `host` again."""

    def __init__(self, checked: CheckedUrl, inner: httpcore.NetworkBackend | None = None) -> None:
        self.checked = checked
        self.inner = inner or httpcore.SyncBackend()

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: SocketOptions = None,
    ) -> httpcore.NetworkStream:
        if host.lower() != self.checked.host or port != self.checked.port:
            raise _other_host(host)
        error: Exception | None = None
        for address in self.checked.addresses:
            try:
                return self.inner.connect_tcp(
                    str(address), port, timeout=timeout, local_address=local_address, socket_options=socket_options
                )
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                error = exc
        assert error is not None  # a CheckedUrl has at least one address
        raise error

    def connect_unix_socket(
        self, path: str, timeout: float | None = None, socket_options: SocketOptions = None
    ) -> httpcore.NetworkStream:
        raise _other_host("a Unix socket")

    def sleep(self, seconds: float) -> None:
        self.inner.sleep(seconds)


class PinnedAsyncBackend(httpcore.AsyncNetworkBackend):
    """`PinnedBackend` for async clients (anyio: asyncio or trio)."""

    def __init__(self, checked: CheckedUrl, inner: httpcore.AsyncNetworkBackend | None = None) -> None:
        self.checked = checked
        self.inner = inner or httpcore.AnyIOBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,  # noqa: ASYNC109 - httpcore's interface
        local_address: str | None = None,
        socket_options: SocketOptions = None,
    ) -> httpcore.AsyncNetworkStream:
        if host.lower() != self.checked.host or port != self.checked.port:
            raise _other_host(host)
        error: Exception | None = None
        for address in self.checked.addresses:
            try:
                return await self.inner.connect_tcp(
                    str(address), port, timeout=timeout, local_address=local_address, socket_options=socket_options
                )
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                error = exc
        assert error is not None
        raise error

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,  # noqa: ASYNC109 - httpcore's interface
        socket_options: SocketOptions = None,
    ) -> httpcore.AsyncNetworkStream:
        raise _other_host("a Unix socket")

    async def sleep(self, seconds: float) -> None:
        await self.inner.sleep(seconds)


_default_context: ssl.SSLContext | None = None


def _ssl_context(verify: ssl.SSLContext | None) -> ssl.SSLContext:
    """`verify`, else httpx's default (certifi's CA bundle, hostnames checked), loaded once per container."""
    global _default_context
    if verify is not None:
        return verify
    if _default_context is None:
        _default_context = httpx.create_ssl_context(trust_env=False)
    return _default_context


def _pool_options(context: ssl.SSLContext, limits: httpx.Limits) -> dict[str, Any]:
    """httpx's own pool settings, for the pool the guarded transports put in place of httpx's."""
    return {
        "ssl_context": context,
        "max_connections": limits.max_connections,
        "max_keepalive_connections": limits.max_keepalive_connections,
        "keepalive_expiry": limits.keepalive_expiry,
    }


class GuardedTransport(httpx.HTTPTransport):
    """httpx's transport, connecting through `PinnedBackend` and only to the checked origin."""

    def __init__(
        self,
        checked: CheckedUrl,
        *,
        verify: ssl.SSLContext | None = None,
        limits: httpx.Limits = _DEFAULT_LIMITS,
        network_backend: httpcore.NetworkBackend | None = None,
    ) -> None:
        context = _ssl_context(verify)
        super().__init__(verify=context, trust_env=False)
        self.checked = checked
        self._pool = httpcore.ConnectionPool(
            **_pool_options(context, limits), network_backend=PinnedBackend(checked, network_backend)
        )

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        if not self.checked.same_origin(request.url):
            raise _other_host(request.url.host)
        return super().handle_request(request)


class GuardedAsyncTransport(httpx.AsyncHTTPTransport):
    """httpx's async transport, connecting through `PinnedAsyncBackend` and only to the checked origin."""

    def __init__(
        self,
        checked: CheckedUrl,
        *,
        verify: ssl.SSLContext | None = None,
        limits: httpx.Limits = _DEFAULT_LIMITS,
        network_backend: httpcore.AsyncNetworkBackend | None = None,
    ) -> None:
        context = _ssl_context(verify)
        super().__init__(verify=context, trust_env=False)
        self.checked = checked
        self._pool = httpcore.AsyncConnectionPool(
            **_pool_options(context, limits), network_backend=PinnedAsyncBackend(checked, network_backend)
        )

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if not self.checked.same_origin(request.url):
            raise _other_host(request.url.host)
        return await super().handle_async_request(request)


class _NoRedirectClient(httpx.Client):
    def send(
        self,
        request: httpx.Request,
        *,
        stream: bool = False,
        auth: Any = httpx.USE_CLIENT_DEFAULT,
        follow_redirects: Any = httpx.USE_CLIENT_DEFAULT,
    ) -> httpx.Response:
        return super().send(request, stream=stream, auth=auth, follow_redirects=False)


class _NoRedirectAsyncClient(httpx.AsyncClient):
    async def send(
        self,
        request: httpx.Request,
        *,
        stream: bool = False,
        auth: Any = httpx.USE_CLIENT_DEFAULT,
        follow_redirects: Any = httpx.USE_CLIENT_DEFAULT,
    ) -> httpx.Response:
        return await super().send(request, stream=stream, auth=auth, follow_redirects=False)


def _required_timeout(timeout: httpx.Timeout | float) -> httpx.Timeout:
    value = timeout if isinstance(timeout, httpx.Timeout) else httpx.Timeout(timeout)
    parts = (value.connect, value.read, value.write, value.pool)
    if any(part is None or part <= 0 for part in parts):
        raise ValueError("an outbound client needs connect, read, write and pool timeouts")
    return value


def _client_options(checked: CheckedUrl, timeout: httpx.Timeout | float, headers: Any) -> dict[str, Any]:
    return {
        "base_url": checked.url,
        "timeout": _required_timeout(timeout),
        "follow_redirects": False,
        "trust_env": False,
        "headers": {"User-Agent": _USER_AGENT, **dict(headers or {})},
    }


def guarded_client(
    url: str | CheckedUrl,
    *,
    timeout: httpx.Timeout | float,
    headers: Any = None,
    allow_loopback: bool | None = None,
    resolver: Resolver | None = None,
    verify: ssl.SSLContext | None = None,
    network_backend: httpcore.NetworkBackend | None = None,
) -> httpx.Client:
    """A sync client for `url` (checked here when given as text: `UnsafeUrlError`; blocks on DNS), its
    base URL. `allow_loopback` defaults to the setting `ONEAI_ALLOW_LOOPBACK_URLS`; `resolver`, `verify`
    (an SSL context to trust instead of certifi's CAs) and `network_backend` are for tests."""
    checked = (
        url
        if isinstance(url, CheckedUrl)
        else check_url(url, allow_loopback=_allow_loopback(allow_loopback), resolver=resolver)
    )
    transport = GuardedTransport(checked, verify=verify, network_backend=network_backend)
    return _NoRedirectClient(transport=transport, **_client_options(checked, timeout, headers))


def guarded_async_client(
    checked: CheckedUrl,
    *,
    timeout: httpx.Timeout | float,
    headers: Any = None,
    verify: ssl.SSLContext | None = None,
    network_backend: httpcore.AsyncNetworkBackend | None = None,
) -> httpx.AsyncClient:
    """An async client for a URL checked by `check_url_async` (so DNS never blocks the event loop)."""
    transport = GuardedAsyncTransport(checked, verify=verify, network_backend=network_backend)
    return _NoRedirectAsyncClient(transport=transport, **_client_options(checked, timeout, headers))


def _allow_loopback(given: bool | None) -> bool:
    return get_settings().allow_loopback_urls if given is None else given
