"""`widget.allowed_origins`: which pages may use a chatbot's public routes (empty: any).

An entry is an origin (`https://shop.example`, a port when not the scheme's default) or a wildcard over
its subdomains (`https://*.example.com`, which does not admit `https://example.com` itself). Compared
case-insensitively, a trailing slash ignored, default ports dropped.
"""

from __future__ import annotations

from collections.abc import Iterable
from urllib.parse import urlsplit

DEFAULT_PORTS = {"http": 80, "https": 443}


def normalized(origin: str) -> str | None:
    """`scheme://host[:port]` in lowercase without a default port; None for what is no origin."""
    text = origin.strip().rstrip("/").lower()
    try:
        parts = urlsplit(text)
        port = parts.port
    except ValueError:
        return None
    if parts.scheme not in DEFAULT_PORTS or not parts.hostname or parts.path or parts.query or parts.fragment:
        return None
    if parts.username is not None or parts.password is not None:
        return None
    host = parts.hostname
    if ":" in host:  # IPv6 literal
        host = f"[{host}]"
    if port is None or port == DEFAULT_PORTS[parts.scheme]:
        return f"{parts.scheme}://{host}"
    return f"{parts.scheme}://{host}:{port}"


def is_allowed(origin: str | None, allowed: Iterable[str]) -> bool:
    """Whether a request from `origin` (its Origin header; None without one) may use the chatbot."""
    entries = [entry for entry in allowed if isinstance(entry, str) and entry.strip()]
    if not entries:
        return True
    if origin is None:
        return False
    candidate = normalized(origin)
    if candidate is None:
        return False
    for entry in entries:
        text = entry.strip().rstrip("/").lower()
        if "://*." in text:
            scheme, _, suffix = text.partition("://*.")
            pattern = normalized(f"{scheme}://{suffix}")
            if pattern is None:
                continue
            pattern_scheme, _, pattern_host = pattern.partition("://")
            got_scheme, _, got_host = candidate.partition("://")
            if got_scheme == pattern_scheme and got_host.endswith("." + pattern_host):
                return True
        elif normalized(text) == candidate:
            return True
    return False
