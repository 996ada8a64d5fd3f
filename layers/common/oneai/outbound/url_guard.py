"""The check of an outbound URL a customer chose (a `custom` provider's `base_url`, a webhook endpoint):
API.md "Third round: shared rules".

A URL passes when its scheme is `https` (plain `http` too only with `allow_loopback`, which `make dev` and
the tests set through `ONEAI_ALLOW_LOOPBACK_URLS`), it carries no user name or password, names a host and a
valid port, and EVERY address its host resolves to (getaddrinfo, IPv4 and IPv6, all answers) is public.
A host that is an IP address in any spelling getaddrinfo accepts ("2130706433", "0x7f.1", "017700000001",
"[::ffff:127.0.0.1]") is that address. With `allow_loopback`, loopback addresses (127.0.0.0/8, ::1) are
allowed too, and nothing else that is not public: private, link-local and the metadata address stay refused.

The result, `CheckedUrl`, carries the addresses that were checked: `oneai.outbound.transport` connects to
those, never to a second DNS answer (a DNS rebinding answer between the check and the connection).

A refusal is `UnsafeUrlError`: a reason a customer understands, naming at most the host (never the
address it resolved to, nor anything about our network). At save time it becomes a 422
`VALIDATION_ERROR` on the field (`validation_error(field)`); at use time the call or delivery fails.
"""

from __future__ import annotations

import ipaddress
import re
import socket
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Final

import anyio.to_thread
import httpx

from oneai.errors import ValidationError, field_error

__all__ = [
    "CheckedUrl",
    "IPAddress",
    "Resolver",
    "UnsafeUrlError",
    "check_url",
    "check_url_async",
    "refusal_of_address",
    "system_resolver",
]

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
# host, port -> every address getaddrinfo answered (as text, in its order). Tests inject their own.
Resolver = Callable[[str, int], Sequence[str]]

_DEFAULT_PORTS: Final = {"https": 443, "http": 80}
# What getaddrinfo reads as an IPv4 address written as numbers (inet_aton's forms: 1 to 4 parts, each
# decimal, octal with a leading 0, or hex with 0x): "2130706433", "0x7f.1", "017700000001", "127.1".
_NUMERIC_IPV4: Final = re.compile(r"^(?:0[xX][0-9a-fA-F]*|[0-9]+)(?:\.(?:0[xX][0-9a-fA-F]*|[0-9]+)){0,3}\.?$")

# A DNS name as getaddrinfo is given it (IDNA already applied): labels of letters, digits, `-` and `_`.
_HOSTNAME: Final = re.compile(
    r"^(?=.{1,253}\.?$)[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?(?:\.[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?)*\.?$"
)

_V4: Final = ipaddress.IPv4Network
_V6: Final = ipaddress.IPv6Network
# Never public, whatever `allow_loopback` says (loopback is handled apart). IANA's special-purpose
# registries; `is_global` below is a second net for what they add later.
_REFUSED_V4: Final = (
    (_V4("0.0.0.0/8"), "unspecified"),  # "this network"; 0.0.0.0 reaches the local host on Linux
    (_V4("10.0.0.0/8"), "private"),
    (_V4("100.64.0.0/10"), "shared (CGNAT)"),
    (_V4("169.254.0.0/16"), "link-local"),  # 169.254.169.254: the instance metadata service
    (_V4("172.16.0.0/12"), "private"),
    (_V4("192.0.0.0/24"), "reserved"),  # IETF protocol assignments
    (_V4("192.0.2.0/24"), "documentation"),
    (_V4("192.88.99.0/24"), "reserved"),  # 6to4 relay anycast
    (_V4("192.168.0.0/16"), "private"),
    (_V4("198.18.0.0/15"), "benchmarking"),
    (_V4("198.51.100.0/24"), "documentation"),
    (_V4("203.0.113.0/24"), "documentation"),
    (_V4("224.0.0.0/4"), "multicast"),
    (_V4("240.0.0.0/4"), "reserved"),  # 255.255.255.255, the broadcast address, is in it
)
_LOOPBACK_V4: Final = _V4("127.0.0.0/8")
_REFUSED_V6: Final = (
    (_V6("::/128"), "unspecified"),
    (_V6("::/96"), "reserved"),  # IPv4-compatible (deprecated): ::7f00:1 is 127.0.0.1
    (_V6("100::/64"), "reserved"),  # discard-only
    (_V6("64:ff9b:1::/48"), "private"),  # local-use NAT64
    (_V6("2001::/23"), "reserved"),  # IETF protocol assignments: Teredo 2001::/32, benchmarking, ORCHID
    (_V6("2001:db8::/32"), "documentation"),
    (_V6("2002::/16"), "reserved"),  # 6to4: 2002:7f00:1:: carries 127.0.0.1
    (_V6("3fff::/20"), "documentation"),
    (_V6("5f00::/16"), "reserved"),  # SRv6 SIDs
    (_V6("fc00::/7"), "private"),  # unique local; fd00:ec2::254 is EC2's metadata service
    (_V6("fe80::/10"), "link-local"),
    (_V6("fec0::/10"), "private"),  # site-local (deprecated)
    (_V6("ff00::/8"), "multicast"),
)
_LOOPBACK_V6: Final = ipaddress.IPv6Address("::1")
_NAT64: Final = _V6("64:ff9b::/96")  # the well-known prefix: DNS64 writes a public IPv4 address in it


class UnsafeUrlError(ValueError):
    """An outbound URL refused by the guard. `reason` is for the customer (it names at most the host);
    `type` is a stable machine-readable kind (`url_invalid`, `url_scheme`, `url_userinfo`, `url_host`,
    `url_port`, `url_unresolvable`, `url_not_public`; `url_other_host` from a client asked to call another
    origin than the one checked)."""

    def __init__(self, reason: str, *, type: str) -> None:
        super().__init__(reason)
        self.reason = reason
        self.type = type

    def field_error(self, field: str) -> dict[str, str]:
        """One item of a 422's `details.errors` for `field` (e.g. `base_url`, `url`)."""
        return field_error(field, self.reason, self.type)

    def validation_error(self, field: str) -> ValidationError:
        """The 422 `VALIDATION_ERROR` that refuses the URL given as `field` when it is saved."""
        return ValidationError(details={"errors": [self.field_error(field)]})


@dataclass(frozen=True, slots=True)
class CheckedUrl:
    """A URL that passed the guard, and the addresses its host had when it did (connect to these only).

    `host` is the ASCII form (IDNA) the TLS certificate and the Host header are checked against."""

    url: httpx.URL
    scheme: str
    host: str
    port: int
    addresses: tuple[IPAddress, ...]
    allow_loopback: bool

    def same_origin(self, url: httpx.URL) -> bool:
        """Whether `url` is on this URL's scheme, host and port (where the checked addresses apply)."""
        port = url.port or _DEFAULT_PORTS.get(url.scheme)
        return url.scheme == self.scheme and _ascii_host(url) == self.host and port == self.port


def system_resolver(host: str, port: int) -> list[str]:
    """Every address getaddrinfo answers for `host` (IPv4 and IPv6, TCP), in its order, duplicates dropped."""
    answers = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP)
    seen: dict[str, None] = {}
    for _family, _type, _proto, _canonname, sockaddr in answers:
        seen.setdefault(str(sockaddr[0]), None)
    return list(seen)


def refusal_of_address(address: IPAddress, *, allow_loopback: bool) -> str | None:
    """Why `address` may not be connected to (`"private"`, `"link-local"`, ...), or None: it may.

    IPv6 forms that carry an IPv4 address (IPv4-mapped ::ffff:a.b.c.d, NAT64 64:ff9b::/96) are judged by
    that IPv4 address; the deprecated ones (IPv4-compatible, 6to4, Teredo) are refused outright."""
    if isinstance(address, ipaddress.IPv6Address):
        embedded = _embedded_ipv4(address)
        if embedded is not None:
            return refusal_of_address(embedded, allow_loopback=allow_loopback)
        loopback = address == _LOOPBACK_V6
        kind = next((kind for network6, kind in _REFUSED_V6 if address in network6), None)
    else:
        loopback = address in _LOOPBACK_V4
        kind = next((kind for network4, kind in _REFUSED_V4 if address in network4), None)
    if loopback:
        return None if allow_loopback else "loopback"
    if kind is None and address.is_multicast:
        kind = "multicast"
    if kind is None and not address.is_global:
        kind = "reserved"
    return kind


def _embedded_ipv4(address: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv4-mapped (::ffff:a.b.c.d) or NAT64 (64:ff9b::a.b.c.d) address stands for."""
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address in _NAT64:
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return None


def check_url(url: str | httpx.URL, *, allow_loopback: bool, resolver: Resolver | None = None) -> CheckedUrl:
    """Parse `url`, resolve its host (`resolver`, else getaddrinfo) and check every address; the
    `CheckedUrl`, or `UnsafeUrlError`. Blocks on DNS: in async code use `check_url_async`."""
    parsed, host, port, literal = _parse(url, allow_loopback=allow_loopback)
    if literal is not None:
        return _checked(parsed, host, port, [literal], allow_loopback=allow_loopback)
    return _checked(
        parsed, host, port, _resolve(resolver or system_resolver, host, port), allow_loopback=allow_loopback
    )


async def check_url_async(
    url: str | httpx.URL, *, allow_loopback: bool, resolver: Resolver | None = None
) -> CheckedUrl:
    """`check_url` with the DNS lookup on a worker thread (the event loop is not blocked)."""
    parsed, host, port, literal = _parse(url, allow_loopback=allow_loopback)
    if literal is not None:
        return _checked(parsed, host, port, [literal], allow_loopback=allow_loopback)
    answers = await anyio.to_thread.run_sync(_resolve, resolver or system_resolver, host, port)
    return _checked(parsed, host, port, answers, allow_loopback=allow_loopback)


def _parse(url: str | httpx.URL, *, allow_loopback: bool) -> tuple[httpx.URL, str, int, IPAddress | None]:
    try:
        parsed = url if isinstance(url, httpx.URL) else httpx.URL(url.strip())
    except (httpx.InvalidURL, TypeError, ValueError):
        raise UnsafeUrlError("is not a valid URL", type="url_invalid") from None
    allowed = ("https", "http") if allow_loopback else ("https",)
    if parsed.scheme not in allowed:
        raise UnsafeUrlError("must be an https:// URL", type="url_scheme")
    if parsed.userinfo:
        raise UnsafeUrlError("must not contain a user name or password", type="url_userinfo")
    host = _ascii_host(parsed)
    if not host:
        raise UnsafeUrlError("must name a host", type="url_host")
    literal = _literal_address(host)
    if literal is None and not _HOSTNAME.match(host):
        raise UnsafeUrlError(f"{host} is not a valid host name", type="url_host")
    port = parsed.port if parsed.port is not None else _DEFAULT_PORTS[parsed.scheme]
    if not 1 <= port <= 65535:
        raise UnsafeUrlError("has an invalid port", type="url_port")
    return parsed, host, port, literal


def _ascii_host(url: httpx.URL) -> str:
    """The host as DNS and TLS see it: IDNA (punycode), lower case."""
    try:
        return url.raw_host.decode("ascii").lower()
    except UnicodeDecodeError:
        return ""


def _literal_address(host: str) -> IPAddress | None:
    """The address `host` is when it is an IP address in any spelling getaddrinfo would read as one."""
    try:
        return ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        pass
    if _NUMERIC_IPV4.match(host):
        try:
            return ipaddress.IPv4Address(socket.inet_aton(host.rstrip(".")))
        except OSError:
            # Numbers getaddrinfo would not read as an address either (e.g. a part over 255): not a host.
            raise UnsafeUrlError(f"{host} is not a valid host", type="url_host") from None
    return None


def _resolve(resolver: Resolver, host: str, port: int) -> list[IPAddress]:
    try:
        answers = list(resolver(host, port))
    except (OSError, UnicodeError):
        raise UnsafeUrlError(f"the host {host} could not be resolved", type="url_unresolvable") from None
    addresses: list[IPAddress] = []
    for answer in answers:
        try:
            # A scoped IPv6 answer (fe80::1%eth0) is judged by its address.
            addresses.append(ipaddress.ip_address(answer.partition("%")[0]))
        except ValueError:
            raise UnsafeUrlError(f"the host {host} could not be resolved", type="url_unresolvable") from None
    if not addresses:
        raise UnsafeUrlError(f"the host {host} could not be resolved", type="url_unresolvable")
    return addresses


def _checked(
    parsed: httpx.URL, host: str, port: int, addresses: list[IPAddress], *, allow_loopback: bool
) -> CheckedUrl:
    for address in addresses:
        kind = refusal_of_address(address, allow_loopback=allow_loopback)
        if kind is None:
            continue
        if _literal_address(host) is not None:
            reason = f"{host} is not a public address ({kind}); only public hosts may be called"
        else:
            reason = f"the host {host} resolves to an address that is not public ({kind}); only public hosts may be called"
        raise UnsafeUrlError(reason, type="url_not_public")
    if parsed.scheme == "http" and not all(_is_loopback(address) for address in addresses):
        # Plain http is for the local stand-ins only (`allow_loopback`), never for a public host.
        raise UnsafeUrlError("must be an https:// URL", type="url_scheme")
    return CheckedUrl(
        url=parsed,
        scheme=parsed.scheme,
        host=host,
        port=port,
        addresses=tuple(addresses),
        allow_loopback=allow_loopback,
    )


def _is_loopback(address: IPAddress) -> bool:
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return address.is_loopback
