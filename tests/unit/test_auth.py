"""oneai.auth: Supabase access tokens -> Principal, or a 401 that never echoes the token.

The only network is a JWKS server on 127.0.0.1 started here, with a request counter.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.algorithms import ECAlgorithm, RSAAlgorithm
from pydantic import SecretStr

from oneai.auth import (
    JwksCache,
    Principal,
    TokenVerifier,
    authenticate,
    bearer_token,
    get_verifier,
    mint_dev_token,
)
from oneai.config import Settings, override_settings
from oneai.errors import UnauthorizedError

SECRET = "unit-test-jwt-secret-0123456789-abcdefghij"
JWKS_PATH = "/auth/v1/.well-known/jwks.json"
USER_ID = uuid.UUID("6f1c2a8e-3b5d-4e7f-9a01-23456789abcd")
EMAIL = "ada@example.com"


# ---------------------------------------------------------------- keys and a local JWKS server


ECKey = ec.EllipticCurvePrivateKey
RSAKey = rsa.RSAPrivateKey


@dataclass
class Keys:
    ec: ECKey
    ec_new: ECKey  # the key after rotation
    ec_attacker: ECKey
    rsa: RSAKey


@pytest.fixture(scope="module")
def keys() -> Keys:
    return Keys(
        ec=ec.generate_private_key(ec.SECP256R1()),
        ec_new=ec.generate_private_key(ec.SECP256R1()),
        ec_attacker=ec.generate_private_key(ec.SECP256R1()),
        rsa=rsa.generate_private_key(public_exponent=65537, key_size=2048),
    )


def ec_jwk(key: ec.EllipticCurvePrivateKey, kid: str, **extra: Any) -> dict[str, Any]:
    jwk: dict[str, Any] = ECAlgorithm.to_jwk(key.public_key(), as_dict=True)
    return {**jwk, "kid": kid, "alg": "ES256", "use": "sig", **extra}


def rsa_jwk(key: rsa.RSAPrivateKey, kid: str, **extra: Any) -> dict[str, Any]:
    jwk: dict[str, Any] = RSAAlgorithm.to_jwk(key.public_key(), as_dict=True)
    return {**jwk, "kid": kid, "alg": "RS256", "use": "sig", **extra}


@dataclass
class JwksServer:
    url: str = ""
    jwks: list[dict[str, Any]] = field(default_factory=list)
    status: int = 200
    delay: float = 0.0
    requests: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)


@pytest.fixture
def server(keys: Keys) -> Iterator[JwksServer]:
    state = JwksServer(jwks=[ec_jwk(keys.ec, "ec-1"), rsa_jwk(keys.rsa, "rsa-1")])

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            with state.lock:
                state.requests += 1
            time.sleep(state.delay)
            ok = self.path == JWKS_PATH and state.status == 200
            body = json.dumps({"keys": state.jwks}).encode() if ok else b"{}"
            self.send_response(state.status if self.path == JWKS_PATH else 404)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    state.url = f"http://127.0.0.1:{httpd.server_address[1]}"
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        httpd.shutdown()
        httpd.server_close()


@pytest.fixture
def settings(server: JwksServer) -> Iterator[Settings]:
    with override_settings(
        supabase_url=server.url,
        supabase_jwt_issuer=f"{server.url}/auth/v1",
        supabase_jwt_secret=SecretStr(SECRET),
        jwks_cache_seconds=600,
    ) as s:
        yield s


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def verifier(settings: Settings, clock: Clock) -> TokenVerifier:
    jwks = JwksCache(settings.jwks_url, cache_seconds=settings.jwks_cache_seconds, clock=clock)
    return TokenVerifier(settings, jwks)


# ---------------------------------------------------------------- token helpers


def claims(settings: Settings, **changes: Any) -> dict[str, Any]:
    """Supabase-shaped claims; a change to None removes the claim."""
    now = int(time.time())
    base: dict[str, Any] = {
        "iss": settings.supabase_jwt_issuer,
        "sub": str(USER_ID),
        "aud": "authenticated",
        "exp": now + 3600,
        "iat": now,
        "email": EMAIL,
        "role": "authenticated",
        "aal": "aal1",
        "session_id": str(uuid.uuid4()),
        "is_anonymous": False,
    }
    base.update(changes)
    return {k: v for k, v in base.items() if v is not None}


def sign(payload: dict[str, Any], key: Any, alg: str, kid: str | None = None) -> str:
    return jwt.encode(payload, key, algorithm=alg, headers={"kid": kid} if kid else None)


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def forge(header: dict[str, Any], payload: dict[str, Any], hmac_key: bytes | None = None) -> str:
    """A hand-built token (for headers PyJWT refuses to produce); HMAC-SHA256 signed if a key is given."""
    signing_input = f"{b64(json.dumps(header).encode())}.{b64(json.dumps(payload).encode())}"
    sig = hmac.new(hmac_key, signing_input.encode(), hashlib.sha256).digest() if hmac_key else b""
    return f"{signing_input}.{b64(sig)}"


def flip_signature_byte(token: str) -> str:
    head, payload, sig = token.split(".")
    raw = bytearray(base64.urlsafe_b64decode(sig + "=" * (-len(sig) % 4)))
    raw[len(raw) // 2] ^= 0x01
    return f"{head}.{payload}.{b64(bytes(raw))}"


def rejected(call: Callable[[], object], token: str | None = None) -> UnauthorizedError:
    """THEN a 401 UNAUTHORIZED whose message (and details) never contain the token or its signature."""
    with pytest.raises(UnauthorizedError) as info:
        call()
    err = info.value
    assert (err.status, err.code) == (401, "UNAUTHORIZED")
    if token:
        shown = f"{err} {err.message} {err.details!r} {err!r}"
        signature = token.rsplit(".", 1)[-1]
        assert token not in shown
        assert len(signature) < 8 or signature not in shown
    return err


def refused(verifier: TokenVerifier, token: str) -> UnauthorizedError:
    return rejected(lambda: verifier.verify(token), token)


# ---------------------------------------------------------------- valid tokens


def test_given_dev_hs256_token_when_authenticating_header_then_principal(settings: Settings) -> None:
    token = mint_dev_token(USER_ID, secret=SECRET, issuer=str(settings.supabase_jwt_issuer), email=EMAIL)
    principal = authenticate(f"Bearer {token}")
    assert isinstance(principal, Principal)
    assert (principal.user_id, principal.email, principal.role) == (USER_ID, EMAIL, "authenticated")
    assert json.loads(principal.claims_json())["sub"] == str(USER_ID)
    assert " " not in principal.claims_json()
    assert token not in repr(principal)


def test_given_es256_token_from_jwks_when_authenticating_twice_then_principal_and_one_fetch(
    settings: Settings, server: JwksServer, keys: Keys
) -> None:
    token = sign(claims(settings), keys.ec, "ES256", "ec-1")
    for _ in range(2):
        principal = authenticate(f"Bearer {token}")
        assert (principal.user_id, principal.email) == (USER_ID, EMAIL)
    assert server.requests == 1  # cached


def test_given_rs256_token_from_jwks_when_verifying_then_principal(
    settings: Settings, verifier: TokenVerifier, keys: Keys
) -> None:
    principal = verifier.verify(sign(claims(settings, email=""), keys.rsa, "RS256", "rsa-1"))
    assert (principal.user_id, principal.email) == (USER_ID, None)


def test_given_mint_dev_token_then_it_looks_like_a_supabase_access_token(settings: Settings) -> None:
    token = mint_dev_token(
        str(USER_ID), secret=SECRET, issuer="iss", email=EMAIL, extra_claims={"user_metadata": {"n": 1}}
    )
    c = jwt.decode(token, SECRET, algorithms=["HS256"], audience="authenticated", issuer="iss")
    assert c["role"] == "authenticated"
    assert c["aal"] == "aal1"
    assert c["is_anonymous"] is False
    assert c["app_metadata"]["provider"] == "email"
    assert c["user_metadata"] == {"n": 1}
    assert uuid.UUID(c["session_id"])
    assert c["exp"] - c["iat"] == 7 * 24 * 3600


@pytest.mark.parametrize(
    ("extra", "is_admin"),
    [
        ({"app_metadata": {"provider": "google", "role": "admin"}}, True),
        ({}, False),
        ({"app_metadata": {"provider": "google", "role": "Admin"}}, False),
        ({"app_metadata": {"role": ["admin"]}}, False),
        ({"app_metadata": "admin"}, False),
        # user_metadata is the user's own to edit: it never makes an admin
        ({"user_metadata": {"role": "admin"}}, False),
        ({"role": "admin"}, False),  # the database role claim is not the app role either
    ],
)
def test_given_app_metadata_role_admin_then_the_principal_is_an_admin(
    settings: Settings, extra: dict[str, Any], is_admin: bool
) -> None:
    token = mint_dev_token(
        USER_ID, secret=SECRET, issuer=str(settings.supabase_jwt_issuer), email=EMAIL, extra_claims=extra
    )
    assert authenticate(f"Bearer {token}").is_admin is is_admin


# ---------------------------------------------------------------- claims


def test_given_expired_token_then_401_access_token_expired(settings: Settings, verifier: TokenVerifier) -> None:
    token = sign(claims(settings, exp=int(time.time()) - 60), SECRET, "HS256")
    assert refused(verifier, token).message == "Access token expired"


def test_given_token_expired_within_clock_skew_leeway_then_accepted(
    settings: Settings, verifier: TokenVerifier
) -> None:
    token = sign(claims(settings, exp=int(time.time()) - 3), SECRET, "HS256")
    assert verifier.verify(token).user_id == USER_ID


@pytest.mark.parametrize(
    "changes",
    [
        pytest.param({"aud": "anon"}, id="wrong-audience"),
        pytest.param({"iss": "https://evil.example/auth/v1"}, id="wrong-issuer"),
        pytest.param({"exp": None}, id="missing-exp"),
        pytest.param({"aud": None}, id="missing-aud"),
        pytest.param({"iss": None}, id="missing-iss"),
        pytest.param({"sub": None}, id="missing-sub"),
        pytest.param({"sub": "not-a-uuid"}, id="sub-not-uuid"),
        pytest.param({"sub": USER_ID.hex}, id="sub-uuid-without-dashes"),
        pytest.param({"sub": 42}, id="sub-not-string"),
        pytest.param({"role": None}, id="missing-role"),
        pytest.param({"iat": int(time.time()) + 3600}, id="issued-in-future"),
    ],
)
def test_given_bad_claims_when_verifying_then_401(
    settings: Settings, verifier: TokenVerifier, changes: dict[str, Any]
) -> None:
    token = sign(claims(settings, **changes), SECRET, "HS256")
    refused(verifier, token)


@pytest.mark.parametrize(
    "changes",
    [
        pytest.param({"email": "ada\u0000@example.com"}, id="nul-in-email"),
        pytest.param({"email": "\udc00@example.com"}, id="lone-surrogate-in-email"),
        pytest.param({"user_metadata": {"name": ["Ada", "\u0000"]}}, id="nul-deep-in-user-metadata"),
        pytest.param({"app_metadata": {"provider": "\ud800"}}, id="lone-surrogate-in-app-metadata"),
        pytest.param({"app_metadata": {"\u0000": "x"}}, id="nul-in-a-claim-key"),
        pytest.param({"user_metadata": {"score": float("nan")}}, id="nan-number"),
        pytest.param({"extra": float("inf")}, id="infinite-number"),
    ],
)
def test_given_a_valid_signature_over_claims_postgresql_cannot_store_then_401(
    settings: Settings, verifier: TokenVerifier, changes: dict[str, Any]
) -> None:
    # Every claim reaches PostgreSQL (request.jwt.claims; a dev user's email and metadata): a 401, not a 500.
    token = sign(claims(settings, **changes), SECRET, "HS256")
    refused(verifier, token)


# ---------------------------------------------------------------- signatures and algorithms


@pytest.mark.parametrize("alg", ["HS256", "ES256", "RS256"])
def test_given_one_signature_byte_changed_then_401(
    settings: Settings, verifier: TokenVerifier, keys: Keys, alg: str
) -> None:
    key, kid = {"HS256": (SECRET, None), "ES256": (keys.ec, "ec-1"), "RS256": (keys.rsa, "rsa-1")}[alg]
    token = flip_signature_byte(sign(claims(settings), key, alg, kid))
    refused(verifier, token)


def test_given_token_signed_by_another_key_with_known_kid_then_401(
    settings: Settings, verifier: TokenVerifier, keys: Keys
) -> None:
    es = sign(claims(settings), keys.ec_attacker, "ES256", "ec-1")
    hs = sign(claims(settings), "another-secret-0123456789-0123456789-abc", "HS256")
    for token in (es, hs):
        refused(verifier, token)


def test_given_alg_none_then_401(settings: Settings, verifier: TokenVerifier) -> None:
    for alg in ("none", "None", "NONE"):
        token = forge({"alg": alg, "typ": "JWT"}, claims(settings))
        refused(verifier, token)


def test_given_disallowed_algorithms_then_401(settings: Settings, verifier: TokenVerifier, keys: Keys) -> None:
    tokens = [
        sign(claims(settings), SECRET * 2, "HS512"),
        sign(claims(settings), keys.rsa, "PS256", "rsa-1"),
        forge({"typ": "JWT"}, claims(settings), SECRET.encode()),  # missing alg
        forge({"alg": "ES256"}, claims(settings)),  # asymmetric without kid
        forge({"alg": "ES256", "kid": 7}, claims(settings)),  # kid not a string
    ]
    for token in tokens:
        refused(verifier, token)


def test_given_hs256_signed_with_rsa_public_key_pem_then_401(
    settings: Settings, verifier: TokenVerifier, keys: Keys
) -> None:
    # GIVEN the classic key-confusion attack: HMAC keyed with the public PEM, pointing at the RSA kid
    pem = keys.rsa.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    for header in ({"alg": "HS256"}, {"alg": "HS256", "kid": "rsa-1"}):
        token = forge(header, claims(settings), pem)
        refused(verifier, token)


def test_given_hs256_token_but_no_secret_configured_then_401(settings: Settings) -> None:
    with override_settings(supabase_jwt_secret=None):
        token = mint_dev_token(USER_ID, secret=SECRET, issuer=str(settings.supabase_jwt_issuer))
        rejected(lambda: authenticate(f"Bearer {token}"), token)


def test_given_algorithm_and_jwk_key_type_mismatch_then_401(
    settings: Settings, verifier: TokenVerifier, keys: Keys
) -> None:
    rs_with_ec_kid = sign(claims(settings), keys.rsa, "RS256", "ec-1")
    es_with_rsa_kid = sign(claims(settings), keys.ec, "ES256", "rsa-1")
    for token in (rs_with_ec_kid, es_with_rsa_kid):
        refused(verifier, token)


def test_given_jwk_alg_differs_from_token_alg_then_401(
    settings: Settings, server: JwksServer, verifier: TokenVerifier, keys: Keys
) -> None:
    server.jwks = [rsa_jwk(keys.rsa, "rsa-ps", alg="PS256")]
    token = sign(claims(settings), keys.rsa, "RS256", "rsa-ps")
    refused(verifier, token)


@pytest.mark.parametrize("token", ["", "abc", "a.b.c", "not a jwt at all", "x" * 20_000])
def test_given_garbage_token_then_401(verifier: TokenVerifier, token: str) -> None:
    refused(verifier, token)


# ---------------------------------------------------------------- JWKS cache


def test_given_key_rotation_when_unknown_kid_then_exactly_one_refetch_and_success(
    settings: Settings, server: JwksServer, verifier: TokenVerifier, keys: Keys, clock: Clock
) -> None:
    verifier.verify(sign(claims(settings), keys.ec, "ES256", "ec-1"))
    assert server.requests == 1
    # WHEN the project rotates to a new key and a token signed with it arrives later
    server.jwks = [ec_jwk(keys.ec_new, "ec-2"), ec_jwk(keys.ec, "ec-1")]
    clock.now += 31
    token = sign(claims(settings), keys.ec_new, "ES256", "ec-2")
    # THEN one re-fetch, the token is accepted, and later uses of the new kid come from the cache
    assert verifier.verify(token).user_id == USER_ID
    assert verifier.verify(token).user_id == USER_ID
    assert server.requests == 2


def test_given_recent_fetch_when_unknown_kid_then_no_refetch_until_30s(
    settings: Settings, server: JwksServer, verifier: TokenVerifier, keys: Keys, clock: Clock
) -> None:
    verifier.verify(sign(claims(settings), keys.ec, "ES256", "ec-1"))
    server.jwks = [ec_jwk(keys.ec_new, "ec-2")]
    token = sign(claims(settings), keys.ec_new, "ES256", "ec-2")
    clock.now += 10
    refused(verifier, token)
    assert server.requests == 1
    clock.now += 21
    assert verifier.verify(token).user_id == USER_ID
    assert server.requests == 2


def test_given_burst_of_random_kids_then_at_most_one_extra_fetch(
    settings: Settings, server: JwksServer, verifier: TokenVerifier, keys: Keys, clock: Clock
) -> None:
    verifier.verify(sign(claims(settings), keys.ec, "ES256", "ec-1"))
    clock.now += 31
    server.delay = 0.05  # make concurrent requests overlap the fetch
    tokens = [sign(claims(settings), keys.ec_attacker, "ES256", str(uuid.uuid4())) for _ in range(40)]

    def attempt(token: str) -> int:
        try:
            verifier.verify(token)
        except UnauthorizedError as err:
            return err.status
        return 200

    with ThreadPoolExecutor(max_workers=8) as pool:
        statuses = list(pool.map(attempt, tokens))
    assert statuses == [401] * len(tokens)
    assert server.requests == 2


def test_given_cache_expired_when_verifying_then_keys_are_refetched_once(
    settings: Settings, server: JwksServer, verifier: TokenVerifier, keys: Keys, clock: Clock
) -> None:
    token = sign(claims(settings), keys.ec, "ES256", "ec-1")
    verifier.verify(token)
    clock.now += settings.jwks_cache_seconds + 1
    verifier.verify(token)
    verifier.verify(token)
    assert server.requests == 2


def test_given_jwks_endpoint_failing_and_nothing_cached_then_401_without_details(
    settings: Settings, server: JwksServer, verifier: TokenVerifier, keys: Keys
) -> None:
    server.status = 503
    token = sign(claims(settings), keys.ec, "ES256", "ec-1")
    err = refused(verifier, token)
    assert "503" not in err.message
    assert "http" not in err.message.lower()


def test_given_jwks_endpoint_unreachable_then_401(settings: Settings, keys: Keys) -> None:
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    with override_settings(supabase_url=url, supabase_jwt_issuer=f"{url}/auth/v1") as s:
        token = sign(claims(s), keys.ec, "ES256", "ec-1")
        err = rejected(lambda: authenticate(f"Bearer {token}"), token)
        assert "refused" not in err.message.lower()


def test_given_cached_keys_when_jwks_endpoint_goes_down_then_cached_keys_still_verify(
    settings: Settings, server: JwksServer, verifier: TokenVerifier, keys: Keys, clock: Clock
) -> None:
    token = sign(claims(settings), keys.ec, "ES256", "ec-1")
    verifier.verify(token)
    server.status = 500
    clock.now += settings.jwks_cache_seconds + 1
    assert verifier.verify(token).user_id == USER_ID
    assert server.requests == 2


# ---------------------------------------------------------------- Authorization header


@pytest.mark.parametrize("header", [None, "", "   ", "Basic x", "Bearer", "Bearer ", "Token abc", "Bearer a b"])
def test_given_missing_or_malformed_authorization_then_401(header: str | None) -> None:
    rejected(lambda: bearer_token(header))


@pytest.mark.parametrize("header", ["Bearer abc.def.ghi", "bearer abc.def.ghi", "  BEARER   abc.def.ghi  "])
def test_given_bearer_header_in_any_case_then_token(header: str) -> None:
    assert bearer_token(header) == "abc.def.ghi"


def test_given_settings_swapped_then_verifier_rebuilt(settings: Settings) -> None:
    first = get_verifier()
    assert get_verifier() is first
    assert first.settings is settings
    with override_settings(supabase_jwt_audience="other") as other:
        assert get_verifier() is not first
        assert get_verifier().settings is other
