"""A key replaced while a call made with the old one is in flight (issue 26 item 4): the old key's refusal
arrives after the admin saved a new key. It must not mark the NEW key invalid: the admin would see the key
they just pasted shown `invalid`, and replies would stop using it (credits, or 402) until it was tested
again. The refusal is recorded only while the key is the one that was called. Both places that record a
refusal are checked: a reply's (`payment.key_refused`) and the key's test route (`run_key_test`), the
latter with a real interleaving (the custom endpoint saves the new key before it answers 401). KMS is
moto's, PostgreSQL is real."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler
from typing import Any

import pytest

from oneai.chatbots import payment
from oneai.config import get_settings
from oneai.db.connection import Database
from oneai.provider_keys import service
from oneai.provider_keys.models import ProviderKeyCreate, ProviderKeyUpdate
from tests.integration.test_provider_keys import kms
from tests.integration.test_workspaces_rls import team
from tests.json_endpoint import json_endpoint

__all__ = ["kms"]  # autouse fixture

pytestmark = pytest.mark.integration

OLD_KEY = "sk-proj-OldKeyTheProviderRevoked01"
NEW_KEY = "sk-proj-NewKeyTheAdminJustPasted02"


def shown_status(db: Database, owner: Any, key_id: Any) -> tuple[str, str | None]:
    with db.user_transaction(owner.principal) as conn:
        shown = service.get_key(conn, get_settings(), key_id)
    return shown.status, shown.invalid_reason


def test_a_replys_refusal_of_the_old_key_does_not_mark_the_new_key_invalid(db: Database, make_user: Any) -> None:
    owner = make_user()
    workspace = team(db, owner, {})
    with db.user_transaction(owner.principal) as conn:
        key = service.create_key(
            conn,
            get_settings(),
            workspace,
            ProviderKeyCreate.model_validate({"provider": "openai", "name": "Prod", "key": OLD_KEY}),
        )
    # GIVEN a reply that opened the old key
    with db.service_transaction() as conn:
        in_flight = service.key_for(conn, db.settings, workspace, "openai/gpt-4o-mini")
    assert in_flight is not None and in_flight.key.get_secret_value() == OLD_KEY
    # WHEN the admin saves a new key, and only then the provider's 401 for the old key arrives
    with db.user_transaction(owner.principal) as conn:
        service.update_key(conn, get_settings(), key.id, ProviderKeyUpdate.model_validate({"key": NEW_KEY}))
    refused = payment.key_refused(db, in_flight)
    # THEN the reply is still refused naming the key, but the new key stays active (unchecked)
    assert refused.status == 424
    assert shown_status(db, owner, key.id) == ("active", None)
    # AND the next reply uses the new key
    with db.service_transaction() as conn:
        next_key = service.key_for(conn, db.settings, workspace, "openai/gpt-4o-mini")
    assert next_key is not None and next_key.key.get_secret_value() == NEW_KEY
    # (a refusal of the key that is still the one called is recorded, as before)
    payment.key_refused(db, next_key)
    assert shown_status(db, owner, key.id) == ("invalid", "the key 'Prod' was refused by openai")


@pytest.fixture
def endpoint() -> Iterator[tuple[str, list[Callable[[], None]]]]:
    """A custom provider on 127.0.0.1 whose `GET /v1/models` first runs the queued callbacks (what happens
    elsewhere while the call is in flight), then answers 401 to any key."""
    during: list[Callable[[], None]] = []

    def respond(request: BaseHTTPRequestHandler) -> tuple[int, Any]:
        while during:
            during.pop(0)()
        return 401, {"error": {"message": "invalid api key"}}

    with json_endpoint(respond) as origin:
        yield f"{origin}/v1", during


def test_a_tests_refusal_of_the_old_key_does_not_mark_the_new_key_invalid(
    db: Database, make_user: Any, endpoint: tuple[str, list[Callable[[], None]]]
) -> None:
    base_url, during = endpoint
    settings = db.settings.model_copy(update={"allow_loopback_urls": True})
    owner = make_user()
    workspace = team(db, owner, {})
    with db.user_transaction(owner.principal) as conn:
        key = service.create_key(
            conn,
            settings,
            workspace,
            ProviderKeyCreate.model_validate(
                {"provider": "custom", "name": "Local", "key": OLD_KEY, "base_url": base_url}
            ),
        )

    def save_new_key() -> None:
        with db.user_transaction(owner.principal) as conn:
            service.update_key(conn, settings, key.id, ProviderKeyUpdate.model_validate({"key": NEW_KEY}))

    # WHEN the key is tested, and the admin saves a new key while the endpoint is refusing the old one
    during.append(save_new_key)
    tested = service.run_key_test(db, owner.principal, settings, key.id)
    # THEN the test says what the endpoint said of the key it was given
    assert (tested.ok, tested.error) == (False, "the key 'Local' was refused by custom")
    # AND the new key is not marked invalid by the old key's refusal
    assert shown_status(db, owner, key.id) == ("active", None)
    # (with nothing in between, a refusal is recorded, as before)
    service.run_key_test(db, owner.principal, settings, key.id)
    assert shown_status(db, owner, key.id) == ("invalid", "the key 'Local' was refused by custom")
