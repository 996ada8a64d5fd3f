"""The outbound guard over real sockets: local HTTP and HTTPS servers on 127.0.0.1 stand for a customer's
endpoint. Allowed with loopback URLs on (as `make dev` and the tests run); refused with it off, before any
connection; a 302 to the metadata address is not followed; `localhost` (the system's resolver answers
127.0.0.1) is refused by default; over TLS the certificate is checked against the hostname, which is also
the SNI and the Host header while the connection goes to the checked address."""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import ipaddress
import ssl
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from oneai.outbound import UnsafeUrlError, check_url, check_url_async, guarded_async_client, guarded_client

pytestmark = pytest.mark.timeout(60)

SHORT = httpx.Timeout(3.0)


@dataclass
class Endpoint:
    """A local server: what it was asked, and the connections it accepted."""

    port: int
    requests: list[tuple[str, str, str]] = field(default_factory=list)  # method, path, Host header
    connections: int = 0
    server_names: list[str | None] = field(default_factory=list)  # TLS SNI


class CountingServer(ThreadingHTTPServer):
    daemon_threads = True
    endpoint: Endpoint

    def get_request(self) -> tuple[Any, Any]:
        accepted = super().get_request()
        self.endpoint.connections += 1
        return accepted


def handler_for(endpoint: Endpoint, routes: dict[str, tuple[int, dict[str, str], bytes]]) -> type:
    class Handler(BaseHTTPRequestHandler):
        def _answer(self) -> None:
            endpoint.requests.append((self.command, self.path, self.headers.get("Host", "")))
            length = int(self.headers.get("Content-Length") or 0)
            if length:
                self.rfile.read(length)
            status, headers, body = routes.get(self.path, (200, {}, b'{"ok":true}'))
            self.send_response(status)
            for name, value in {"Content-Length": str(len(body)), **headers}.items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(body)

        do_GET = do_POST = _answer

        def log_message(self, format: str, *args: Any) -> None:
            return None

    return Handler


@contextlib.contextmanager
def serving(
    routes: dict[str, tuple[int, dict[str, str], bytes]] | None = None, *, tls: ssl.SSLContext | None = None
) -> Iterator[Endpoint]:
    server = CountingServer(("127.0.0.1", 0), handler_for(Endpoint(0), {}))
    endpoint = Endpoint(server.server_address[1])
    server.endpoint = endpoint
    server.RequestHandlerClass = handler_for(endpoint, routes or {})
    if tls is not None:
        tls.sni_callback = lambda _socket, name, _context: endpoint.server_names.append(name)
        server.socket = tls.wrap_socket(server.socket, server_side=True, do_handshake_on_connect=False)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield endpoint
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


@dataclass(frozen=True)
class LocalCa:
    """A certificate authority of this test run, and a server certificate it signed for each name."""

    key: ec.EllipticCurvePrivateKey
    certificate: x509.Certificate
    directory: Path

    def client_context(self) -> ssl.SSLContext:
        context = ssl.create_default_context()
        context.load_verify_locations(cadata=self.certificate.public_bytes(serialization.Encoding.PEM).decode())
        return context

    def server_context(self, name: str) -> ssl.SSLContext:
        key = ec.generate_private_key(ec.SECP256R1())
        now = datetime.datetime.now(datetime.UTC)
        certificate = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
            .issuer_name(self.certificate.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(hours=1))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
            .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .sign(self.key, hashes.SHA256())
        )
        chain, key_file = self.directory / f"{name}.pem", self.directory / f"{name}.key"
        chain.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
        key_file.write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            )
        )
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(chain, key_file)
        return context


@pytest.fixture(scope="module")
def test_ca(tmp_path_factory: pytest.TempPathFactory) -> LocalCa:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "OneAI test CA")])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    return LocalCa(key, certificate, tmp_path_factory.mktemp("tls"))


def dns(answers: dict[str, list[Sequence[str]]]) -> Any:
    """A DNS stand-in: each name answers its lists in turn (the last one again after that)."""
    asked: dict[str, int] = {}

    def resolve(host: str, port: int) -> Sequence[str]:
        turn = asked.get(host, 0)
        asked[host] = turn + 1
        lists = answers[host]
        return lists[min(turn, len(lists) - 1)]

    return resolve


# -- plain http to the local stand-ins ---------------------------------------------------------------


def test_a_local_endpoint_is_called_when_loopback_urls_are_allowed() -> None:
    with serving() as endpoint:
        url = f"http://127.0.0.1:{endpoint.port}/v1/"
        with guarded_client(url, timeout=SHORT, allow_loopback=True) as client:
            response = client.post("chat/completions", json={"model": "custom/x"})
    assert response.status_code == 200 and response.json() == {"ok": True}
    assert endpoint.requests == [("POST", "/v1/chat/completions", f"127.0.0.1:{endpoint.port}")]


def test_the_settings_of_the_tests_allow_the_local_stand_ins() -> None:
    # tests/conftest.py turns ONEAI_ALLOW_LOOPBACK_URLS on for the run, as `make dev` does
    with serving() as endpoint, guarded_client(f"http://localhost:{endpoint.port}", timeout=SHORT) as client:
        assert client.get("/ping").status_code == 200


def test_a_local_endpoint_is_refused_without_the_setting_and_never_connected_to() -> None:
    with serving() as endpoint:
        for url in (
            f"http://127.0.0.1:{endpoint.port}/hook",
            f"https://127.0.0.1:{endpoint.port}/hook",
            f"https://2130706433:{endpoint.port}/hook",
            f"https://[::ffff:127.0.0.1]:{endpoint.port}/hook",
        ):
            with pytest.raises(UnsafeUrlError):
                guarded_client(url, timeout=SHORT, allow_loopback=False)
    assert endpoint.connections == 0 and endpoint.requests == []


def test_localhost_resolves_to_loopback_and_is_refused_by_default() -> None:
    # the system's resolver (getaddrinfo, /etc/hosts) answers 127.0.0.1 for localhost
    with serving() as endpoint:
        with pytest.raises(UnsafeUrlError) as caught:
            check_url(f"https://localhost:{endpoint.port}/v1", allow_loopback=False)
        with pytest.raises(UnsafeUrlError):
            guarded_client(f"https://localhost:{endpoint.port}/v1", timeout=SHORT, allow_loopback=False)
    assert caught.value.type == "url_not_public"
    assert caught.value.reason.startswith("the host localhost resolves to an address that is not public")
    assert endpoint.connections == 0


def test_a_redirect_to_the_metadata_address_is_not_followed() -> None:
    redirect = (302, {"Location": "http://169.254.169.254/latest/meta-data/iam/security-credentials/"}, b"")
    with (
        serving({"/v1/models": redirect}) as endpoint,
        guarded_client(f"http://127.0.0.1:{endpoint.port}/v1/", timeout=SHORT, allow_loopback=True) as client,
    ):
        response = client.get("models", follow_redirects=True)
        with pytest.raises(UnsafeUrlError):
            client.get("http://169.254.169.254/latest/meta-data/")
    assert response.status_code == 302
    assert response.headers["location"].startswith("http://169.254.169.254/")
    assert endpoint.requests == [("GET", "/v1/models", f"127.0.0.1:{endpoint.port}")]


def test_the_async_client_calls_the_local_endpoint_and_returns_its_redirect() -> None:
    redirect = (307, {"Location": "http://10.0.0.1/"}, b"")

    async def run(port: int) -> tuple[int, int]:
        checked = await check_url_async(f"http://localhost:{port}/v1/", allow_loopback=True)
        async with guarded_async_client(checked, timeout=SHORT) as client:
            first = await client.get("models")
            second = await client.post("moved", json={}, follow_redirects=True)
        return first.status_code, second.status_code

    with serving({"/v1/moved": redirect}) as endpoint:
        assert asyncio.run(run(endpoint.port)) == (200, 307)
    assert [path for _, path, _ in endpoint.requests] == ["/v1/models", "/v1/moved"]


# -- https: the hostname is kept, the checked address is connected to ------------------------------------


def test_tls_is_verified_against_the_hostname_while_the_checked_address_is_connected_to(test_ca: LocalCa) -> None:
    # GIVEN an HTTPS endpoint with a certificate for llm.customer.test, and a DNS that answers 127.0.0.1 for
    # the check and the metadata address to anyone asking again (rebinding)
    with serving(tls=test_ca.server_context("llm.customer.test")) as endpoint:
        resolver = dns({"llm.customer.test": [["127.0.0.1"], ["169.254.169.254"]]})
        url = f"https://llm.customer.test:{endpoint.port}/v1"
        # WHEN the custom provider's base URL is called twice with one client
        with guarded_client(
            url, timeout=SHORT, allow_loopback=True, resolver=resolver, verify=test_ca.client_context()
        ) as client:
            statuses = [client.get("v1/models").status_code, client.get("v1/models").status_code]
    # THEN both reached the checked address, with the hostname as SNI and Host, and its certificate verified
    assert statuses == [200, 200]
    assert endpoint.server_names and set(endpoint.server_names) == {"llm.customer.test"}
    assert {host for _, _, host in endpoint.requests} == {f"llm.customer.test:{endpoint.port}"}


def test_a_certificate_for_another_name_fails_the_call(test_ca: LocalCa) -> None:
    with serving(tls=test_ca.server_context("someone-else.test")) as endpoint:
        resolver = dns({"llm.customer.test": [["127.0.0.1"]]})
        with (
            guarded_client(
                f"https://llm.customer.test:{endpoint.port}",
                timeout=SHORT,
                allow_loopback=True,
                resolver=resolver,
                verify=test_ca.client_context(),
            ) as client,
            pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"),
        ):
            client.get("/")
    assert endpoint.requests == []


def test_the_default_trust_store_does_not_trust_a_self_made_certificate(test_ca: LocalCa) -> None:
    with serving(tls=test_ca.server_context("llm.customer.test")) as endpoint:
        resolver = dns({"llm.customer.test": [[str(ipaddress.IPv4Address("127.0.0.1"))]]})
        with (
            guarded_client(
                f"https://llm.customer.test:{endpoint.port}", timeout=SHORT, allow_loopback=True, resolver=resolver
            ) as client,
            pytest.raises(httpx.ConnectError),
        ):
            client.get("/")
    assert endpoint.requests == []
