"""A workspace's provider keys at the SQL and service level (issue 26 items 1-3): admins and owners see and
change the workspace's keys and nobody else does (a viewer, an editor, a stranger: nothing, at the SQL level
too); the sealed bytes cannot be read by any user, not even an admin; a sealed key opens only with its own
workspace; a custom base_url passes the outbound guard at save time; and the rules that choose a key for a
reply (`key_for`): the model's own provider, then OpenRouter, a custom model by its key's name, never an
invalid key, a key over its monthly limit passed over. KMS is moto's; PostgreSQL is real."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any
from uuid import UUID

import psycopg
import pytest

from oneai.config import get_settings, override_settings
from oneai.crypto.envelope import Sealed, SealedOpenError, open_sealed
from oneai.db.connection import Database
from oneai.errors import ConflictError, ForbiddenError, NotFoundError, ValidationError
from oneai.provider_keys import service
from oneai.provider_keys.models import ProviderKeyCreate, ProviderKeyUpdate
from tests.aws_support import moto_kms_key
from tests.conftest import AppUser
from tests.integration.test_workspaces_rls import team

pytestmark = pytest.mark.integration

ALIAS = "alias/oneai-test-provider-keys"
SECRET = "sk-proj-Zq8xW3vR7tY1uI5oP9aS2dF6gH4jK0lM"


@pytest.fixture(autouse=True)
def kms(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    with moto_kms_key(monkeypatch, ALIAS):
        yield


@pytest.fixture
def people(make_user: Any, db: Database) -> dict[str, Any]:
    owner, admin, editor, viewer, stranger = (make_user() for _ in range(5))
    workspace = team(db, owner, {admin.id: "admin", editor.id: "editor", viewer.id: "viewer"})
    return {
        "owner": owner,
        "admin": admin,
        "editor": editor,
        "viewer": viewer,
        "stranger": stranger,
        "workspace": workspace,
    }


def add(db: Database, user: AppUser, workspace_id: UUID, **fields: Any) -> Any:
    body = ProviderKeyCreate.model_validate({"provider": "openai", "name": "main", "key": SECRET, **fields})
    with db.user_transaction(user.principal) as conn:
        return service.create_key(conn, get_settings(), workspace_id, body)


def as_user(db: Database, user: AppUser, statement: str, params: tuple[Any, ...] = ()) -> list[dict[str, Any]]:
    """`statement` as `authenticated` with the user's claims, through the product's user transaction."""
    with db.user_transaction(user.principal) as conn:
        return list(conn.execute(statement, params).fetchall())


def test_only_admins_and_owners_see_the_keys_and_nobody_reads_the_sealed_bytes(
    db: Database, database_url: str, people: dict[str, Any]
) -> None:
    shown = add(db, people["admin"], people["workspace"])
    assert shown.key == f"…{SECRET[-4:]}" and SECRET not in shown.model_dump_json()
    select = "select id, name, last4 from public.provider_keys where workspace_id = %s"
    for who, count in (("owner", 1), ("admin", 1), ("editor", 0), ("viewer", 0), ("stranger", 0)):
        assert len(as_user(db, people[who], select, (people["workspace"],))) == count, who
    for who in ("owner", "admin", "viewer"):
        for statement in ("select sealed_key from public.provider_keys", "select * from public.provider_keys"):
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                as_user(db, people[who], statement)
    # nor can a viewer write one, even sealed bytes of their own
    with pytest.raises(psycopg.errors.InsufficientPrivilege):
        as_user(
            db,
            people["viewer"],
            "insert into public.provider_keys (workspace_id, provider, name, sealed_key, last4, created_by)"
            " values (%s, 'openai', 'x', %s, 'abcd', %s)",
            (people["workspace"], b"\x01" * 64, people["viewer"].id),
        )
    # the service reads them: ciphertext, not the key
    with db.service_transaction() as conn:
        row = conn.execute("select sealed_key from public.provider_keys where id = %s", (shown.id,)).fetchone()
    assert row is not None and SECRET.encode() not in bytes(row["sealed_key"])


def test_the_routes_answer_by_role_and_a_key_of_another_workspace_is_not_found(
    db: Database, make_user: Any, people: dict[str, Any]
) -> None:
    workspace = people["workspace"]
    shown = add(db, people["owner"], workspace, monthly_limit="1500.50")
    assert (shown.provider, shown.name, str(shown.monthly_limit), shown.status) == (
        "openai",
        "main",
        "1500.50",
        "active",
    )
    for who, error in (("viewer", ForbiddenError), ("editor", ForbiddenError), ("stranger", NotFoundError)):
        with db.user_transaction(people[who].principal) as conn, pytest.raises(error):
            service.list_keys(conn, get_settings(), workspace)
        with db.user_transaction(people[who].principal) as conn, pytest.raises(NotFoundError):
            service.get_key(conn, get_settings(), shown.id)
    # an admin of another workspace: 404 for this one's key, whatever they try
    other_owner = make_user()
    team(db, other_owner)
    with db.user_transaction(other_owner.principal) as conn:
        for call in (
            lambda: service.get_key(conn, get_settings(), shown.id),
            lambda: service.update_key(conn, get_settings(), shown.id, ProviderKeyUpdate(name="x")),
            lambda: service.delete_key(conn, shown.id),
        ):
            with pytest.raises(NotFoundError):
                call()
    with db.user_transaction(people["admin"].principal) as conn:
        listed = service.list_keys(conn, get_settings(), workspace)
        assert [k.id for k in listed] == [shown.id]
        with pytest.raises(ConflictError):
            service.create_key(
                conn,
                get_settings(),
                workspace,
                ProviderKeyCreate(provider="openai", name="main", key=SECRET),  # type: ignore[arg-type]
            )


def test_a_sealed_key_opens_only_with_its_workspace(db: Database, people: dict[str, Any]) -> None:
    shown = add(db, people["owner"], people["workspace"])
    with db.service_transaction() as conn:
        row = conn.execute("select sealed_key from public.provider_keys where id = %s", (shown.id,)).fetchone()
    assert row is not None
    sealed = Sealed.from_bytes(bytes(row["sealed_key"]))
    assert open_sealed(sealed, workspace_id=people["workspace"]).get_secret_value() == SECRET
    with pytest.raises(SealedOpenError):
        open_sealed(sealed, workspace_id=uuid.uuid4())


def test_base_url_is_a_custom_keys_and_passes_the_outbound_guard(db: Database, people: dict[str, Any]) -> None:
    workspace = people["workspace"]

    def refused_field(**fields: Any) -> list[dict[str, str]]:
        with pytest.raises(ValidationError) as caught:
            add(db, people["owner"], workspace, **fields)
        assert SECRET not in str(caught.value.details)
        return list(caught.value.details["errors"])

    assert refused_field(provider="openai", base_url="https://api.example.com/v1")[0]["field"] == "base_url"
    assert refused_field(provider="custom")[0]["field"] == "base_url"
    # loopback is refused unless ONEAI_ALLOW_LOOPBACK_URLS is on (the tests' default turns it on)
    with override_settings(allow_loopback_urls=False):
        for url in ("http://127.0.0.1:9/v1", "https://127.0.0.1/v1", "https://169.254.169.254/latest"):
            (error,) = refused_field(provider="custom", name="local", base_url=url)
            assert error["field"] == "base_url" and error["type"].startswith("url_"), error
            assert "127.0.0.1" not in error["message"] or "127.0.0.1" in url
    shown = add(db, people["owner"], workspace, provider="custom", name="ollama", base_url="http://127.0.0.1:9/v1")
    assert shown.base_url == "http://127.0.0.1:9/v1"
    with (
        db.user_transaction(people["owner"].principal) as conn,
        override_settings(allow_loopback_urls=False),
        pytest.raises(ValidationError),
    ):
        service.update_key(conn, get_settings(), shown.id, ProviderKeyUpdate(base_url="http://10.0.0.1/v1"))


def usage(
    database_url: str, user: AppUser, workspace_id: UUID, key_id: UUID, *, cost: str, when: datetime
) -> None:
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(
            "insert into public.usage_records (user_id, workspace_id, quota_key, requested_model, model_id,"
            " prompt_tokens, completion_tokens, cost, created_at, provider_key_id)"
            " values (%s, %s, 'small_messages', 'openai/gpt-4o', 'openai/gpt-4o', 10, 20, %s, %s, %s)",
            (user.id, workspace_id, Decimal(cost), when, key_id),
        )


def test_key_for_chooses_the_models_provider_then_openrouter_and_keeps_limits(
    db: Database,
    database_url: str,
    people: dict[str, Any],
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    workspace, owner = people["workspace"], people["owner"]

    def chosen(model: str) -> service.UsableKey | None:
        with db.service_transaction() as conn:
            return service.key_for(conn, get_settings(), workspace, model)

    assert chosen("openai/gpt-4o") is None  # no keys: the platform's account and credits
    router_key = add(db, owner, workspace, provider="openrouter", name="router", key="sk-or-v1-" + "r" * 40)
    openai_key = add(db, owner, workspace, provider="openai", name="direct", monthly_limit="100.00")
    add(
        db,
        owner,
        workspace,
        provider="custom",
        name="llama3",
        key="local-key-123456",
        base_url="http://127.0.0.1:9/v1",
    )

    direct = chosen("openai/gpt-4o")
    assert direct is not None
    assert (direct.key_id, direct.provider, direct.upstream_model, direct.within_limit) == (
        openai_key.id,
        "openai",
        "gpt-4o",
        True,
    )
    assert direct.base_url == get_settings().openai_base_url and not direct.guarded
    assert direct.key.get_secret_value() == SECRET and SECRET not in repr(direct)
    for model in ("anthropic/claude-3.5-haiku", "meta-llama/llama-3.1-8b-instruct", "google/gemini-2.0-flash"):
        other = chosen(model)
        assert other is not None and (other.key_id, other.upstream_model) == (router_key.id, model), model
    custom = chosen("custom/llama3")
    assert custom is not None and custom.guarded
    assert (custom.base_url, custom.upstream_model, custom.key.get_secret_value()) == (
        "http://127.0.0.1:9/v1",
        "llama3",
        "local-key-123456",
    )
    assert chosen("custom/other") is None and chosen("custom/") is None

    # over its monthly limit (this month's spend, USD at the configured rate): the next key serves
    rate = get_settings().usd_inr_rate
    last_month = datetime.now(UTC).replace(day=1) - timedelta(days=2)
    usage(
        database_url, owner, workspace, openai_key.id, cost=str(Decimal(200) / rate), when=last_month
    )  # not this month
    assert chosen("openai/gpt-4o").key_id == openai_key.id  # type: ignore[union-attr]
    usage(database_url, owner, workspace, openai_key.id, cost=str(Decimal(100) / rate), when=datetime.now(UTC))
    served = chosen("openai/gpt-4o")
    assert served is not None and served.key_id == router_key.id and served.within_limit
    with db.user_transaction(owner.principal) as conn:
        assert service.get_key(conn, get_settings(), openai_key.id).spent_this_month == Decimal("100.00")

    # an invalid key is never chosen; with only a key over its limit left, it is answered without room
    with db.service_transaction() as conn:
        assert service.mark_invalid(conn, router_key.id, "the key 'router' was refused by openrouter")
        assert not service.mark_invalid(conn, uuid.uuid4(), "nothing")
    over = chosen("openai/gpt-4o")
    assert over is not None and (over.key_id, over.within_limit) == (openai_key.id, False)
    assert chosen("meta-llama/llama-3.1-8b-instruct") is None
    with db.user_transaction(owner.principal) as conn:
        shown = service.get_key(conn, get_settings(), router_key.id)
    assert (shown.status, shown.invalid_reason) == ("invalid", "the key 'router' was refused by openrouter")
    # a new key makes it active again; deleting a key keeps its usage, unlinked
    with db.user_transaction(owner.principal) as conn:
        renewed = service.update_key(
            conn, get_settings(), router_key.id, ProviderKeyUpdate(key="sk-or-v1-" + "n" * 40)
        )
        assert (renewed.status, renewed.invalid_reason, renewed.key) == ("active", None, "…nnnn")
        service.delete_key(conn, openai_key.id)
    with psycopg.connect(database_url) as conn:
        count = conn.execute(
            "select count(*) from public.usage_records where workspace_id = %s and provider_key_id is null",
            (workspace,),
        ).fetchone()
    assert count is not None and count[0] == 2
    # nothing of this logged a key (Powertools writes to stdout; the standard logging records too)
    captured = capsys.readouterr()
    assert "provider key added" in captured.out + caplog.text
    for secret in (SECRET, "local-key-123456", "r" * 40, "n" * 40):
        assert secret not in captured.out + captured.err + caplog.text
