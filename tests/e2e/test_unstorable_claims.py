"""A validly signed token whose claims hold text PostgreSQL cannot store is a 401 on every route, under
`make dev` too, where an unknown `sub` is provisioned as a user from the token's email and metadata (a
NUL or a lone surrogate there was a 500 on every route, from the failed insert)."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest

from tests.conftest import token_for
from tests.e2e.conftest import LocalServer

# One route of each function a user token reaches, and the error code each answers a bad token with
# (/v1 speaks OpenAI's error shape).
USER_ROUTES = [
    ("GET", "/conversations", "UNAUTHORIZED"),
    ("GET", "/user/profile", "UNAUTHORIZED"),
    ("GET", "/chat/models", "UNAUTHORIZED"),
    ("GET", "/subscription", "UNAUTHORIZED"),
    ("GET", "/v1/models", "invalid_api_key"),
    ("GET", "/admin/users", "UNAUTHORIZED"),
]


@pytest.mark.parametrize(
    "claims",
    [
        pytest.param({"email": "new\u0000user@example.test"}, id="nul-in-email"),
        pytest.param({"email": "\udc00@example.test"}, id="lone-surrogate-in-email"),
        pytest.param({"user_metadata": {"full_name": "Ada\u0000"}}, id="nul-in-user-metadata"),
        pytest.param(
            {"app_metadata": {"provider": "email", "providers": ["\ud800"]}}, id="lone-surrogate-in-app-metadata"
        ),
    ],
)
def test_claims_the_database_cannot_store_are_401_in_the_envelope_on_every_route(
    local_server: LocalServer, claims: dict[str, Any]
) -> None:
    email = claims.pop("email", "unknown@example.test")
    token = token_for(uuid.uuid4(), email, extra_claims=claims)
    with httpx.Client(base_url=local_server.base_url, timeout=30) as client:
        for method, path, code in USER_ROUTES:
            response = client.request(method, path, headers={"Authorization": f"Bearer {token}"})
            assert response.status_code == 401, (path, response.text)
            assert response.json()["error"]["code"] == code, path


def test_a_new_user_with_ordinary_claims_is_still_provisioned(local_server: LocalServer) -> None:
    token = token_for(uuid.uuid4(), "fresh@example.test", extra_claims={"user_metadata": {"full_name": "Ada"}})
    response = httpx.get(
        f"{local_server.base_url}/conversations", headers={"Authorization": f"Bearer {token}"}, timeout=30
    )
    assert response.status_code == 200, response.text
