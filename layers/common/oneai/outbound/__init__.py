"""Outbound calls to URLs a customer chose (a `custom` provider, webhook endpoints): one SSRF guard.

`check_url` / `check_url_async` decide whether a URL may be called (`UnsafeUrlError` when not: a 422 at
save time through `validation_error(field)`); `guarded_client` / `guarded_async_client` make the calls,
connecting only to the addresses that were checked, never following a redirect."""

from oneai.outbound.transport import guarded_async_client, guarded_client
from oneai.outbound.url_guard import CheckedUrl, UnsafeUrlError, check_url, check_url_async

__all__ = [
    "CheckedUrl",
    "UnsafeUrlError",
    "check_url",
    "check_url_async",
    "guarded_async_client",
    "guarded_client",
]
