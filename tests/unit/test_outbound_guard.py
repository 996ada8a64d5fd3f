"""The SSRF guard of outbound URLs a customer chooses (oneai.outbound; API.md "Third round: shared rules"),
with the DNS answers injected and httpcore's mock network: which URLs are refused and why, and that a
client connects to the address that was checked (DNS rebinding), keeps the hostname, calls only that
origin and never follows a redirect. Over real sockets: tests/integration/test_outbound_http.py."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Sequence
from typing import Any

import httpcore
import httpx
import pytest

from oneai.config import Settings
from oneai.outbound import (
    UnsafeUrlError,
    check_url,
    check_url_async,
    guarded_async_client,
    guarded_client,
)
from oneai.outbound.url_guard import Resolver

PUBLIC_V4 = "93.184.215.14"
PUBLIC_V6 = "2606:4700:4700::1111"


def answering(*addresses: str) -> Resolver:
    def resolve(host: str, port: int) -> Sequence[str]:
        return list(addresses)

    return resolve


def flipping(first: Sequence[str], then: Sequence[str]) -> tuple[Resolver, list[str]]:
    """A DNS that answers `first` once and `then` afterwards (a rebinding attack); the hosts it was asked."""
    asked: list[str] = []

    def resolve(host: str, port: int) -> Sequence[str]:
        asked.append(host)
        return list(first if len(asked) == 1 else then)

    return resolve, asked


def refusal(url: str, *, allow_loopback: bool = False, resolver: Resolver | None = None) -> UnsafeUrlError:
    with pytest.raises(UnsafeUrlError) as caught:
        check_url(url, allow_loopback=allow_loopback, resolver=resolver or answering(PUBLIC_V4))
    return caught.value


# -- what is refused ----------------------------------------------------------------------------------

REFUSED_ADDRESSES = [
    "127.0.0.1",
    "127.255.255.254",
    "10.0.0.1",
    "172.16.0.1",
    "172.31.255.255",
    "192.168.1.1",
    "169.254.169.254",  # the instance metadata service
    "169.254.170.2",  # ECS task credentials
    "100.64.0.1",  # CGNAT
    "0.0.0.0",  # noqa: S104 - an address to refuse, not one to bind
    "0.1.2.3",
    "255.255.255.255",
    "224.0.0.1",
    "239.255.255.250",
    "240.0.0.1",
    "192.0.0.8",
    "192.0.2.10",
    "198.18.0.1",
    "198.51.100.7",
    "203.0.113.9",
    "::1",
    "::",
    "fe80::1",
    "fc00::1",
    "fd00:ec2::254",  # EC2's IPv6 metadata service
    "ff02::1",
    "2001:db8::1",
    "::ffff:127.0.0.1",
    "::ffff:169.254.169.254",
    "::ffff:10.0.0.1",
    "::7f00:1",  # IPv4-compatible 127.0.0.1
    "64:ff9b::a9fe:a9fe",  # NAT64 of 169.254.169.254
    "64:ff9b::7f00:1",
    "64:ff9b:1::1",
    "2002:7f00:1::1",  # 6to4 of 127.0.0.1
    "2002:a9fe:a9fe::1",
    "2001:0:4136:e378:8000:63bf:3fff:fdd2",  # Teredo
    "fec0::1",
    "100::1",
]


@pytest.mark.parametrize("address", REFUSED_ADDRESSES)
def test_a_host_resolving_to_an_address_that_is_not_public_is_refused(address: str) -> None:
    error = refusal("https://api.customer.example/v1", resolver=answering(address))
    assert error.type == "url_not_public"
    assert "api.customer.example" in error.reason
    assert address not in error.reason  # the customer learns about the host, not about our network


@pytest.mark.parametrize("address", REFUSED_ADDRESSES)
def test_the_same_address_written_in_the_url_is_refused(address: str) -> None:
    host = f"[{address}]" if ":" in address else address
    assert refusal(f"https://{host}/hook").type == "url_not_public"


@pytest.mark.parametrize(
    "host",
    [
        "2130706433",
        "0x7f.1",
        "0x7f000001",
        "017700000001",
        "127.1",
        "127.0.0.1.",
        "0",
        "0x0",
        "0xa9.0xfe.0xa9.0xfe",
    ],
)
def test_numeric_spellings_of_loopback_and_unspecified_addresses_are_refused(host: str) -> None:
    # getaddrinfo reads these as 127.0.0.1 / 0.0.0.0 without asking DNS; so does the guard, whatever the resolver says
    error = refusal(f"https://{host}:8443/x", resolver=answering(PUBLIC_V4))
    assert error.type == "url_not_public"


@pytest.mark.parametrize("host", ["0177.0.0.1", "127.0.0.01"])
def test_dotted_spellings_with_leading_zeros_are_not_urls(host: str) -> None:
    # httpx (which makes the calls) refuses to parse them at all
    assert refusal(f"https://{host}/x").type == "url_invalid"


def test_one_private_answer_among_public_ones_refuses_the_host() -> None:
    assert refusal("https://mixed.example", resolver=answering(PUBLIC_V4, PUBLIC_V6, "10.1.2.3")).type == (
        "url_not_public"
    )
    assert refusal("https://mixed.example", resolver=answering(PUBLIC_V6, "fd12::1")).type == "url_not_public"


@pytest.mark.parametrize(
    ("url", "kind"),
    [
        ("http://api.customer.example/v1", "url_scheme"),
        ("ftp://api.customer.example/", "url_scheme"),
        ("file:///etc/passwd", "url_scheme"),
        ("gopher://api.customer.example/", "url_scheme"),
        ("api.customer.example/v1", "url_scheme"),
        ("https://user:secret@api.customer.example/", "url_userinfo"),
        ("https://user@api.customer.example/", "url_userinfo"),
        ("https:///v1", "url_host"),
        ("https://api.customer.example:0/", "url_port"),
        ("https://api.customer.example:70000/", "url_port"),
        ("https://256.256.256.256/", "url_invalid"),
        ("https://0x1ffffffff/", "url_host"),
        ("https://exa mple.com/", "url_host"),
        ("https://api.example%2f..%2f/", "url_host"),
    ],
)
def test_malformed_and_unsafe_urls_are_refused_before_any_lookup(url: str, kind: str) -> None:
    looked_up: list[str] = []

    def resolver(host: str, port: int) -> Sequence[str]:
        looked_up.append(host)
        return [PUBLIC_V4]

    assert refusal(url, resolver=resolver).type == kind
    assert looked_up == []


def test_a_host_that_does_not_resolve_is_refused() -> None:
    def nxdomain(host: str, port: int) -> Sequence[str]:
        raise OSError(-2, "Name or service not known")

    error = refusal("https://nowhere.invalid/", resolver=nxdomain)
    assert (error.type, error.reason) == ("url_unresolvable", "the host nowhere.invalid could not be resolved")
    assert refusal("https://empty.example/", resolver=answering()).type == "url_unresolvable"


# -- what passes ----------------------------------------------------------------------------------------


def test_a_public_https_url_passes_with_every_address_kept() -> None:
    checked = check_url(
        "https://API.Customer.example:8443/v1/", allow_loopback=False, resolver=answering(PUBLIC_V4, PUBLIC_V6)
    )
    assert (checked.scheme, checked.host, checked.port) == ("https", "api.customer.example", 8443)
    assert [str(a) for a in checked.addresses] == [PUBLIC_V4, PUBLIC_V6]
    assert str(checked.url) == "https://api.customer.example:8443/v1/"


def test_an_international_host_is_checked_and_called_by_its_ascii_name() -> None:
    asked: list[str] = []

    def resolver(host: str, port: int) -> Sequence[str]:
        asked.append(host)
        return [PUBLIC_V4]

    checked = check_url("https://bücher.example/api", allow_loopback=False, resolver=resolver)
    assert asked == ["xn--bcher-kva.example"] and checked.host == "xn--bcher-kva.example"


def test_public_addresses_pass_including_an_ipv4_mapped_or_nat64_public_one() -> None:
    for address in (PUBLIC_V4, PUBLIC_V6, "::ffff:93.184.215.14", "64:ff9b::5db8:d70e", "8.8.8.8"):
        check_url("https://api.customer.example", allow_loopback=False, resolver=answering(address))


def test_with_loopback_allowed_only_loopback_is_added() -> None:
    for address in ("127.0.0.1", "127.0.0.2", "::1", "::ffff:127.0.0.1"):
        check_url("http://localhost:8080/", allow_loopback=True, resolver=answering(address))
    for address in (
        "10.0.0.1",
        "192.168.0.10",
        "169.254.169.254",
        "0.0.0.0",  # noqa: S104 - an address to refuse, not one to bind
        "::",
        "fd00::1",
        "100.64.0.9",
    ):
        error = refusal("http://localhost:8080/", allow_loopback=True, resolver=answering(address))
        assert error.type == "url_not_public"
    # plain http reaches only the local stand-ins, never a public host
    assert refusal("http://api.customer.example/", allow_loopback=True).type == "url_scheme"
    check_url("https://api.customer.example/", allow_loopback=True, resolver=answering(PUBLIC_V4))


def test_a_refusal_is_a_422_on_the_field_it_came_in() -> None:
    error = refusal("https://169.254.169.254/latest/meta-data/")
    problem = error.validation_error("base_url")
    assert (problem.status, problem.code) == (422, "VALIDATION_ERROR")
    assert problem.details == {
        "errors": [
            {
                "field": "base_url",
                "message": "169.254.169.254 is not a public address (link-local); only public hosts may be called",
                "type": "url_not_public",
            }
        ]
    }


def test_the_async_check_refuses_and_passes_the_same_urls() -> None:
    with pytest.raises(UnsafeUrlError):
        asyncio.run(check_url_async("https://x.example", allow_loopback=False, resolver=answering("10.0.0.1")))
    checked = asyncio.run(
        check_url_async("https://x.example", allow_loopback=False, resolver=answering(PUBLIC_V4))
    )
    assert [str(a) for a in checked.addresses] == [PUBLIC_V4]


@pytest.mark.parametrize(
    ("value", "expected"),
    [("1", True), ("true", True), ("TRUE", True), ("0", False), ("false", False), ("", False), (None, False)],
)
def test_the_loopback_setting_is_a_boolean_off_by_default(
    monkeypatch: pytest.MonkeyPatch, value: str | None, expected: bool
) -> None:
    if value is None:
        monkeypatch.delenv("ONEAI_ALLOW_LOOPBACK_URLS", raising=False)
    else:
        monkeypatch.setenv("ONEAI_ALLOW_LOOPBACK_URLS", value)
    assert Settings().allow_loopback_urls is expected


# -- the clients ------------------------------------------------------------------------------------


class RecordingBackend(httpcore.MockBackend):
    """httpcore's mock network: answers `buffer`; records where each connection went and what was sent."""

    def __init__(self, buffer: list[bytes]) -> None:
        super().__init__(buffer)
        self.connections: list[tuple[str, int]] = []
        self.sent: list[bytes] = []

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.NetworkStream:
        self.connections.append((host, port))
        stream = super().connect_tcp(host, port, timeout, local_address, socket_options)
        original_write = stream.write

        def write(buffer: bytes, timeout: float | None = None) -> None:
            self.sent.append(buffer)
            original_write(buffer, timeout)

        stream.write = write  # type: ignore[method-assign]
        return stream


class RecordingAsyncBackend(httpcore.AsyncMockBackend):
    def __init__(self, buffer: list[bytes]) -> None:
        super().__init__(buffer)
        self.connections: list[tuple[str, int]] = []

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,  # noqa: ASYNC109 - httpcore's interface
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        self.connections.append((host, port))
        return await super().connect_tcp(host, port, timeout, local_address, socket_options)


OK_RESPONSE = [b"HTTP/1.1 200 OK\r\n", b"Content-Type: text/plain\r\n", b"Content-Length: 2\r\n", b"\r\n", b"ok"]
REDIRECT_TO_METADATA = [
    b"HTTP/1.1 302 Found\r\n",
    b"Location: http://169.254.169.254/latest/meta-data/iam/security-credentials/\r\n",
    b"Content-Length: 0\r\n",
    b"\r\n",
]


def test_a_rebinding_dns_answer_is_never_connected_to() -> None:
    # GIVEN a DNS that answers a public address for the check, then 127.0.0.1 to anyone who asks again
    resolver, asked = flipping([PUBLIC_V4], ["127.0.0.1"])
    network = RecordingBackend(OK_RESPONSE)
    # WHEN the client is made for the URL and calls it
    with guarded_client(
        "https://hooks.customer.example/v1/", timeout=5, resolver=resolver, network_backend=network
    ) as client:
        response = client.post("events", json={"type": "document.processed"})
    # THEN DNS was asked once, and the connection went to the checked address, with the hostname kept
    assert response.status_code == 200 and response.text == "ok"
    assert asked == ["hooks.customer.example"]
    assert network.connections == [(PUBLIC_V4, 443)]
    head = b"".join(network.sent).split(b"\r\n\r\n", 1)[0].decode()
    assert head.startswith("POST /v1/events HTTP/1.1") and "\r\nHost: hooks.customer.example\r\n" in head


def test_a_webhook_endpoint_with_a_query_is_called_as_it_was_checked() -> None:
    network = RecordingBackend(OK_RESPONSE)
    checked = check_url(
        "https://hooks.customer.example/in?token=t0k", allow_loopback=False, resolver=answering(PUBLIC_V4)
    )
    with guarded_client(checked, timeout=5, network_backend=network) as client:
        assert client.post(checked.url, content=b"{}").status_code == 200
    assert b"".join(network.sent).startswith(b"POST /in?token=t0k HTTP/1.1\r\n")


def test_the_next_checked_address_is_tried_when_the_first_does_not_connect() -> None:
    class FirstRefuses(RecordingBackend):
        def connect_tcp(self, host: str, port: int, *args: Any, **kwargs: Any) -> httpcore.NetworkStream:
            if host == PUBLIC_V6:
                self.connections.append((host, port))
                raise httpcore.ConnectError("connection refused")
            return super().connect_tcp(host, port, *args, **kwargs)

    network = FirstRefuses(OK_RESPONSE)
    with guarded_client(
        "https://api.customer.example",
        timeout=5,
        resolver=answering(PUBLIC_V6, PUBLIC_V4),
        network_backend=network,
    ) as client:
        assert client.get("/").status_code == 200
    assert network.connections == [(PUBLIC_V6, 443), (PUBLIC_V4, 443)]


def test_a_client_calls_only_the_checked_origin() -> None:
    network = RecordingBackend(OK_RESPONSE)
    with guarded_client(
        "https://api.customer.example/v1", timeout=5, resolver=answering(PUBLIC_V4), network_backend=network
    ) as client:
        for elsewhere in (
            "https://169.254.169.254/latest/meta-data/",
            "http://api.customer.example/v1",
            "https://api.customer.example:8443/v1",
            "https://other.example/v1",
        ):
            with pytest.raises(UnsafeUrlError) as caught:
                client.get(elsewhere)
            assert caught.value.type == "url_other_host"
    assert network.connections == []


def test_a_redirect_is_returned_not_followed_even_when_asked() -> None:
    network = RecordingBackend(REDIRECT_TO_METADATA + OK_RESPONSE)
    with guarded_client(
        "https://api.customer.example", timeout=5, resolver=answering(PUBLIC_V4), network_backend=network
    ) as client:
        response = client.get("/models", follow_redirects=True)
    assert response.status_code == 302 and response.next_request is not None
    assert network.connections == [(PUBLIC_V4, 443)]


def test_a_refused_url_makes_no_client() -> None:
    network = RecordingBackend(OK_RESPONSE)
    with pytest.raises(UnsafeUrlError):
        guarded_client("https://metadata.example", timeout=5, resolver=answering("169.254.169.254"))
    with pytest.raises(UnsafeUrlError):
        guarded_client("https://localhost", timeout=5, allow_loopback=False, resolver=answering("127.0.0.1"))
    assert network.connections == []


def test_the_loopback_choice_defaults_to_the_setting() -> None:
    from oneai.config import override_settings

    with override_settings(allow_loopback_urls=False), pytest.raises(UnsafeUrlError):
        guarded_client("http://localhost:8080", timeout=5, resolver=answering("127.0.0.1"))
    with override_settings(allow_loopback_urls=True):
        guarded_client("http://localhost:8080", timeout=5, resolver=answering("127.0.0.1")).close()


@pytest.mark.parametrize(
    "timeout",
    [httpx.Timeout(None), httpx.Timeout(5.0, read=None), httpx.Timeout(5.0, pool=None), 0],
)
def test_a_client_without_timeouts_is_refused(timeout: Any) -> None:
    with pytest.raises(ValueError, match="timeouts"):
        guarded_client("https://api.customer.example", timeout=timeout, resolver=answering(PUBLIC_V4))


def test_proxy_variables_of_the_environment_are_ignored(monkeypatch: pytest.MonkeyPatch) -> None:
    # a proxy would resolve the name itself: the checked address would not be the one connected to
    monkeypatch.setenv("HTTPS_PROXY", "http://10.0.0.9:3128")
    monkeypatch.setenv("ALL_PROXY", "http://10.0.0.9:3128")
    network = RecordingBackend(OK_RESPONSE)
    with guarded_client(
        "https://api.customer.example", timeout=5, resolver=answering(PUBLIC_V4), network_backend=network
    ) as client:
        assert client.get("/").status_code == 200
    assert network.connections == [(PUBLIC_V4, 443)]


def test_the_async_client_connects_to_the_checked_address_and_does_not_follow_redirects() -> None:
    async def run() -> tuple[int, int, list[tuple[str, int]], list[str]]:
        resolver, asked = flipping([PUBLIC_V4], ["169.254.169.254"])
        checked = await check_url_async("https://llm.customer.example/v1", allow_loopback=False, resolver=resolver)
        network = RecordingAsyncBackend(OK_RESPONSE + REDIRECT_TO_METADATA)
        async with guarded_async_client(checked, timeout=5, network_backend=network) as client:
            first = await client.get("models")
            second = await client.get("models", follow_redirects=True)
            with pytest.raises(UnsafeUrlError):
                await client.get("http://169.254.169.254/")
        return first.status_code, second.status_code, network.connections, asked

    first, second, connections, asked = asyncio.run(run())
    assert (first, second) == (200, 302)
    assert connections == [(PUBLIC_V4, 443)]  # one kept-alive connection, to the checked address
    assert asked == ["llm.customer.example"]
