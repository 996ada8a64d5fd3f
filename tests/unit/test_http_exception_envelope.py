"""An `HTTPException` raised by a dependency or route (ours or a library's) answers in the one envelope with
its own status, not as a 500: a 403 is `FORBIDDEN`, a 401 `UNAUTHORIZED`, a 404 `NOT_FOUND`."""

from __future__ import annotations

from fastapi import APIRouter, Depends, HTTPException
from fastapi.testclient import TestClient

from oneai.web import create_app


def refuse(status: int) -> None:
    raise HTTPException(status_code=status)


def build(status: int) -> TestClient:
    router = APIRouter(prefix="/things", dependencies=[Depends(lambda: refuse(status))])

    @router.get("/guarded")
    def guarded() -> dict[str, str]:
        return {"never": "reached"}

    return TestClient(create_app(title="t", prefix="/things", routers=[router]))


def test_a_dependencys_403_is_forbidden_in_the_envelope() -> None:
    with build(403) as client:
        response = client.get("/things/guarded")
    assert response.status_code == 403
    assert response.json() == {
        "error": {"code": "FORBIDDEN", "message": "You are not allowed to do this", "details": {}}
    }


def test_other_statuses_keep_their_codes() -> None:
    for status, code in ((401, "UNAUTHORIZED"), (404, "NOT_FOUND")):
        with build(status) as client:
            response = client.get("/things/guarded")
        assert (response.status_code, response.json()["error"]["code"]) == (status, code)
