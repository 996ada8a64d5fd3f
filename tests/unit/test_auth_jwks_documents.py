"""What the JWKS cache takes from the project's key document, served on 127.0.0.1: only signing keys it
can use, by `kid`; anything else in the document is passed over, and a document that is not a key set
verifies nothing (401), so a broken or tampered endpoint can never widen what is accepted."""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from jwt.algorithms import ECAlgorithm

from oneai.auth import JwksCache
from oneai.errors import UnauthorizedError
from oneai.logging import logger


class Document:
    body: Any = None


@pytest.fixture
def served() -> Iterator[tuple[str, Document]]:
    document = Document()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = json.dumps(document.body).encode()
            self.send_response(200)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}/auth/v1/.well-known/jwks.json", document
    finally:
        httpd.shutdown()
        httpd.server_close()


def ec_jwk(kid: str, **extra: Any) -> dict[str, Any]:
    public = ec.generate_private_key(ec.SECP256R1()).public_key()
    jwk: dict[str, Any] = ECAlgorithm.to_jwk(public, as_dict=True)
    return {**jwk, "kid": kid, "alg": "ES256", "use": "sig", **extra}


@pytest.mark.parametrize("body", [{"keys": "none"}, [{"kid": "k"}], {"no_keys": []}, "keys"])
def test_a_document_that_is_not_a_key_set_verifies_nothing(served: tuple[str, Document], body: Any) -> None:
    url, document = served
    document.body = body
    with pytest.raises(UnauthorizedError) as caught:
        JwksCache(url).get_key("k")
    assert caught.value.status == 401


def test_only_usable_signing_keys_named_by_kid_are_taken(
    served: tuple[str, Document], caplog: pytest.LogCaptureFixture
) -> None:
    url, document = served
    good = ec_jwk("sig-1")
    document.body = {
        "keys": [
            "not an object",
            {**ec_jwk("ignored"), "kid": None},  # no kid to find it by
            ec_jwk("enc-1", use="enc"),  # an encryption key never verifies a signature
            {"kty": "EC", "crv": "P-999", "x": "AA", "y": "AA", "kid": "odd-1"},  # not a usable key
            good,
            {k: v for k, v in ec_jwk("implicit-sig").items() if k != "use"},  # `use` absent means sig
        ]
    }
    cache = JwksCache(url)
    with caplog.at_level(logging.WARNING, logger=logger.name):
        assert cache.get_key("sig-1").key_id == "sig-1"
    assert cache.get_key("implicit-sig").key_id == "implicit-sig"
    for kid in ("enc-1", "odd-1", "ignored"):
        with pytest.raises(UnauthorizedError):
            cache.get_key(kid)
    skipped = [r.getMessage() for r in caplog.records if "JWKS key skipped" in r.getMessage()]
    assert skipped == ["JWKS key skipped: unsupported (kid odd-1)"]
