"""A custom key's base_url moves only with its key (issue 26 item 1, "the key is never returned"): every call
made with a custom key sends the key to its base_url, so an admin who did not enter the key (and cannot read
it) could otherwise point it at a server of their own and press "test" to receive it. The route refuses a
new base_url without the key (422 on `key`), and a direct UPDATE under RLS is refused by the database
(migration 20261129070000); a new base_url with the key, the same base_url, or any other change pass.
KMS is moto's, PostgreSQL is real."""

from __future__ import annotations

from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler
from typing import Any

import psycopg
import pytest

from oneai.config import get_settings
from oneai.db.connection import Database
from oneai.errors import ValidationError
from oneai.provider_keys import service
from oneai.provider_keys.models import ProviderKeyCreate, ProviderKeyUpdate
from tests.integration.test_provider_keys import kms
from tests.integration.test_workspaces_rls import team
from tests.json_endpoint import Respond, json_endpoint

__all__ = ["kms"]  # autouse fixture

pytestmark = pytest.mark.integration

KEY = "custom-key-the-owner-entered-7c2e"


def test_a_custom_keys_base_url_moves_only_with_its_key(db: Database, make_user: Any) -> None:
    owner, admin = make_user(), make_user()
    workspace = team(db, owner, {admin.id: "admin"})
    settings = get_settings()
    home, elsewhere = "https://93.184.215.14/v1", "https://93.184.215.15/v1"  # public literals: no DNS asked
    with db.user_transaction(owner.principal) as conn:
        key = service.create_key(
            conn,
            settings,
            workspace,
            ProviderKeyCreate.model_validate(
                {"provider": "custom", "name": "House", "key": KEY, "base_url": home}
            ),
        )

    def patch(user: Any, **fields: Any) -> Any:
        with db.user_transaction(user.principal) as conn:
            return service.update_key(conn, settings, key.id, ProviderKeyUpdate.model_validate(fields))

    # WHEN an admin moves the key elsewhere without giving it: 422 on `key`, and it stays where it was
    with pytest.raises(ValidationError) as refused:
        patch(admin, base_url=elsewhere)
    assert [e["field"] for e in refused.value.details["errors"]] == ["key"]
    assert patch(admin, name="House LLM").base_url == home  # other changes pass, the base_url unchanged
    assert patch(admin, base_url=home, monthly_limit="100").base_url == home  # the same base_url is no move
    # AND a direct UPDATE under RLS (the admin's own session) is refused by the database too
    with pytest.raises(psycopg.errors.CheckViolation), db.user_transaction(admin.principal) as conn:
        conn.execute("update public.provider_keys set base_url = %s where id = %s", (elsewhere, key.id))
    # THEN with the key given again, it moves
    moved = patch(admin, base_url=elsewhere, key="custom-key-given-again-4f1a")
    assert (moved.base_url, moved.key) == (elsewhere, "…4f1a")


@pytest.fixture
def endpoints() -> Iterator[tuple[list[str], list[tuple[int, str | None]]]]:
    """Two custom endpoints on 127.0.0.1 (`/v1/models` lists one model for any key); `seen` records which
    endpoint (0 or 1) received which Authorization header."""
    seen: list[tuple[int, str | None]] = []

    def answering_as(number: int) -> Respond:
        def respond(request: BaseHTTPRequestHandler) -> tuple[int, Any]:
            seen.append((number, request.headers.get("authorization")))
            return 200, {"object": "list", "data": [{"id": "m"}]}

        return respond

    with json_endpoint(answering_as(0)) as first, json_endpoint(answering_as(1)) as second:
        yield [f"{first}/v1", f"{second}/v1"], seen


def test_a_key_moved_with_a_new_key_during_its_test_is_never_sent_to_the_old_base_url(
    db: Database,
    make_user: Any,
    endpoints: tuple[list[str], list[tuple[int, str | None]]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    (old_url, new_url), seen = endpoints
    settings = db.settings.model_copy(update={"allow_loopback_urls": True})
    owner, admin = make_user(), make_user()
    workspace = team(db, owner, {admin.id: "admin"})
    with db.user_transaction(owner.principal) as conn:
        key = service.create_key(
            conn,
            settings,
            workspace,
            ProviderKeyCreate.model_validate(
                {"provider": "custom", "name": "House", "key": KEY, "base_url": old_url}
            ),
        )
    new_key = "custom-key-for-the-new-host-93ab"
    # GIVEN the owner moves the key to a new host with a new key after the admin's test read the key's row
    # and before it opened the key (the interleaving, made certain: the move runs just before the open)
    open_key = service._open

    def moved_then_opened(database: Database, key_id: Any) -> Any:
        with db.user_transaction(owner.principal) as conn:
            service.update_key(
                conn, settings, key_id, ProviderKeyUpdate.model_validate({"base_url": new_url, "key": new_key})
            )
        return open_key(database, key_id)

    monkeypatch.setattr(service, "_open", moved_then_opened)
    # WHEN the admin's test runs
    service.run_key_test(db, admin.principal, settings, key.id)
    # THEN the new key went only to the new host (never to the host it was not saved for)
    assert (0, f"Bearer {new_key}") not in seen, seen
    assert seen in ([(1, f"Bearer {new_key}")], [(0, f"Bearer {KEY}")]), seen
