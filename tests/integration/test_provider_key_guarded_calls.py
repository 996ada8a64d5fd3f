"""A `custom` key's base_url is checked again at every call (issue 26; docs/api/provider-keys.md): a key saved
while its host resolved to a public address, whose host now resolves to loopback, the metadata address or a
private address, with loopback URLs refused (as in production). Its test answers that the base_url is refused
and a reply with it is refused, both before any connection: the stand-in on 127.0.0.1 that a connection to
the host would reach records none, and the platform's OpenRouter is not asked instead. The key keeps its
status (it was not refused), the reply's turn is given back, and no message names the address.

The DNS is the resolver the guard asks (`oneai.outbound.url_guard.system_resolver`), patched; PostgreSQL is
real, KMS moto's (as in test_provider_keys.py)."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from typing import Any

import pytest

from local.fake_openrouter import FakeOpenRouter
from oneai.config import override_settings
from oneai.db.connection import Database
from oneai.outbound import url_guard
from oneai.provider_keys.service import run_key_test
from tests.e2e.test_chatbot_chat_http import chatbot, personal_workspace
from tests.integration.test_outbound_http import serving
from tests.integration.test_provider_key_funds import fake, key_state, messages_today, refused
from tests.integration.test_provider_keys import add, kms
from tests.unit.test_outbound_guard import PUBLIC_V4

__all__ = ["fake", "kms"]  # fixtures, used by name (kms: autouse)

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

HOST = "llm.customer.test"
CUSTOM_KEY = "sk-house-Vq7mN2xR8tL4pK9wZ3"
MODEL = "custom/house-model"  # served only by the custom key named `house-model`


@pytest.fixture
def dns(monkeypatch: pytest.MonkeyPatch) -> dict[str, list[str]]:
    """What each host resolves to for the outbound guard now (the test changes it); other hosts do not."""
    answers: dict[str, list[str]] = {}

    def resolve(host: str, port: int) -> list[str]:
        if host not in answers:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return list(answers[host])

    monkeypatch.setattr(url_guard, "system_resolver", resolve)
    return answers


@pytest.fixture
def strict_db(settings_with_db: Any) -> Iterator[Database]:
    """The service's database with loopback URLs refused, as in production (the suite allows them)."""
    with override_settings(allow_loopback_urls=False) as settings:
        database = Database(settings)
        yield database
        database.close()


@pytest.mark.parametrize(
    ("now_resolves_to", "kind"),
    [
        pytest.param(["127.0.0.1"], "loopback", id="loopback"),
        # (127.0.0.1 after it: where the stand-in listens, so a call let through would be seen connecting)
        pytest.param(["169.254.169.254", "127.0.0.1"], "link-local", id="metadata"),
        pytest.param(["10.0.0.7", "127.0.0.1"], "private", id="private"),
    ],
)
def test_a_custom_key_whose_host_no_longer_resolves_to_a_public_address_is_refused_before_any_connection(
    strict_db: Database,
    fake: FakeOpenRouter,
    dns: dict[str, list[str]],
    make_user: Any,
    database_url: str,
    *,
    now_resolves_to: list[str],
    kind: str,
) -> None:
    owner = make_user()
    workspace = personal_workspace(database_url, owner)
    bot = chatbot(database_url, workspace, [], credits=None, model=MODEL)
    with serving() as endpoint:
        # GIVEN the workspace's custom key, saved while its host resolved to a public address
        dns[HOST] = [PUBLIC_V4]
        base_url = f"https://{HOST}:{endpoint.port}/v1"
        key = add(
            strict_db, owner, workspace, provider="custom", name="house-model", key=CUSTOM_KEY, base_url=base_url
        )
        # WHEN its host now resolves to an address that is not public, and the key is tested, then used
        dns[HOST] = now_resolves_to
        tested = run_key_test(strict_db, owner.principal, strict_db.settings, key.id)
        error = refused(strict_db, fake, owner, bot)
    reason = f"the host {HOST} resolves to an address that is not public ({kind}); only public hosts may be called"
    # THEN the key's test says the base_url is refused, and why
    assert tested.model_dump() == {
        "ok": False,
        "models": None,
        "error": f"the base_url is refused: {reason}",
        "reason": None,
    }
    # AND the reply's caller gets the key's 424 naming it (the workspace's configuration, not a platform
    # failure), saying the same
    assert (error.status, error.code, error.message, error.details) == (
        424,
        "PROVIDER_KEY_REFUSED",
        f"The reply could not be made: the base_url of the key 'house-model' is refused ({reason}). Point the"
        " key at a public address, or remove it to use credits.",
        {"provider_key_id": str(key.id), "provider": "custom", "name": "house-model", "reason": "url_refused"},
    )
    # AND neither names the address the host resolved to
    assert not [address for address in now_resolves_to if address in f"{tested.error} {error.message}"]
    # AND nothing connected to where the host now points; the platform's OpenRouter was not asked instead
    assert (endpoint.connections, endpoint.requests) == (0, [])
    assert fake.chat_requests == []
    # AND the key stays active (the provider did not refuse it), the workspace's message unit came back
    assert key_state(database_url, key.id) == "(active,)"
    assert messages_today(database_url, workspace) == 0


def test_with_loopback_allowed_the_same_key_does_connect_to_the_stand_in(
    strict_db: Database, dns: dict[str, list[str]], make_user: Any, database_url: str
) -> None:
    """The other side of the test above: where a call is let through, the stand-in sees its connection (so
    the zero there means the guard stopped the call, not that the stand-in could not be reached)."""
    owner = make_user()
    workspace = personal_workspace(database_url, owner)
    with serving() as endpoint:
        dns[HOST] = [PUBLIC_V4]
        base_url = f"https://{HOST}:{endpoint.port}/v1"
        key = add(
            strict_db, owner, workspace, provider="custom", name="house-model", key=CUSTOM_KEY, base_url=base_url
        )
        dns[HOST] = ["127.0.0.1"]
        allowing = strict_db.settings.model_copy(update={"allow_loopback_urls": True})
        tested = run_key_test(strict_db, owner.principal, allowing, key.id)
    # (the stand-in speaks plain HTTP to an https:// URL: the TLS handshake fails after the connection)
    assert (tested.ok, tested.error) == (False, "custom could not be reached")
    assert endpoint.connections == 1
