"""A workspace's provider keys (issue 26 items 1-3; API.md "Provider keys (bring your own)").

The routes (served by the credits function: these keys decide who pays for a workspace's replies) run in
the caller's user transaction under RLS: admins and owners of the workspace (`require_role(..., "admin")`:
404 for a stranger, 403 below admin; one key by id is 404 to whoever may not see it). The key is sealed
(`oneai.crypto.envelope.seal`, bound to the workspace) before it is stored and is never shown again: the
answers carry `mask_key`'s `…abcd`. A `custom` key's `base_url` passes the outbound guard when it is saved
(422 `VALIDATION_ERROR` on `base_url` with the guard's reason) and again at every call.

For the reply routing (`oneai.chatbots.payment`): `key_for(conn, settings, workspace_id, model_id)` picks the
workspace's key for a model and opens it; `mark_invalid` records a provider's refusal. Both run in a service
transaction (the sealed bytes are the service's to read; the caller has already decided the reply may run).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from decimal import ROUND_HALF_UP, Decimal
from typing import Final
from uuid import UUID

import psycopg.errors
from pydantic import SecretStr

from oneai.auth import Principal
from oneai.config import Settings
from oneai.crypto.envelope import Sealed, mask_key, open_sealed, seal
from oneai.db import provider_keys as repo
from oneai.db.connection import Connection, Database
from oneai.errors import ConflictError, NotFoundError, ValidationError, field_error
from oneai.logging import logger
from oneai.outbound import UnsafeUrlError, check_url
from oneai.provider_keys.models import ProviderKey, ProviderKeyCreate, ProviderKeyTest, ProviderKeyUpdate
from oneai.provider_keys.upstream import provider_base_url, try_key
from oneai.workspaces.service import require_role

NOT_FOUND: Final = "Provider key not found"
_ONE_NAME: Final = "provider_keys_one_name"
# The providers that serve their own models (`openai/...`) through an OpenAI-compatible endpoint.
DIRECT_PROVIDERS: Final = ("openai", "anthropic", "google")
MAX_REASON_CHARS: Final = 500
MOVED_WITHOUT_KEY: Final = (
    "a new base_url needs the key given again with it (a key goes only where it was saved for)"
)
_MOVED_WITH_KEY: Final = "provider_keys_base_url_with_key"


# --- what the API shows ---------------------------------------------------------------------------------


def spent_inr(settings: Settings, spent_usd: Decimal) -> Decimal:
    """A key's estimated spend in INR: the providers' USD cost at ONEAI_USD_INR_RATE (no markup: the
    customer pays their provider, not us), to the paisa."""
    # ROUND_HALF_UP: PostgreSQL's round(), which the prepare call's key choice (reply_key_for) uses; with
    # Decimal's default (half to even) a spend of x.xx5 could have room here and none there, and every reply
    # would find "its" key changed (503).
    return (max(spent_usd, Decimal(0)) * settings.usd_inr_rate).quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)


def _shown(settings: Settings, row: repo.KeyRow) -> ProviderKey:
    return ProviderKey.model_validate(
        {
            **row.model_dump(exclude={"last4", "spent_usd"}),
            "key": f"…{row.last4}",
            "spent_this_month": spent_inr(settings, row.spent_usd),
        }
    )


def _last4(key: SecretStr) -> str:
    return mask_key(key).removeprefix("…")


def _checked_base_url(settings: Settings, provider: str, base_url: str | None) -> str | None:
    """A custom key's base_url, passed by the outbound guard (422 on `base_url` otherwise); none elsewhere."""
    if provider != "custom":
        if base_url is not None:
            raise ValidationError(
                details={
                    "errors": [field_error("base_url", "only a custom key has a base_url", "base_url_not_allowed")]
                }
            )
        return None
    if base_url is None:
        raise ValidationError(
            details={"errors": [field_error("base_url", "a custom key needs its base_url", "missing")]}
        )
    try:
        check_url(base_url, allow_loopback=settings.allow_loopback_urls)
    except UnsafeUrlError as exc:
        raise exc.validation_error("base_url") from None
    return base_url


@contextmanager
def _data_rules() -> Iterator[None]:
    try:
        yield
    except psycopg.errors.UniqueViolation as exc:
        if exc.diag.constraint_name == _ONE_NAME:
            raise ConflictError("The workspace already has a key of this provider with this name") from None
        raise
    except psycopg.errors.CheckViolation as exc:
        if exc.diag.constraint_name == _MOVED_WITH_KEY:  # the base_url was changed by another writer meanwhile
            raise ValidationError(
                details={"errors": [field_error("key", MOVED_WITHOUT_KEY, "key_required_with_base_url")]}
            ) from None
        raise


def _visible(conn: Connection, key_id: UUID) -> repo.KeyRow:
    """A key of a live workspace the caller administers (404 for everyone else: RLS shows it to admins and
    owners only)."""
    row = repo.get_key(conn, key_id)
    if row is None:
        raise NotFoundError(NOT_FOUND)
    try:
        require_role(conn, row.workspace_id, "admin")
    except NotFoundError:  # the workspace is deleted: so are its keys, for every read
        raise NotFoundError(NOT_FOUND) from None
    return row


# --- the routes -----------------------------------------------------------------------------------------


def create_key(conn: Connection, settings: Settings, workspace_id: UUID, body: ProviderKeyCreate) -> ProviderKey:
    require_role(conn, workspace_id, "admin")
    base_url = _checked_base_url(settings, body.provider, body.base_url)
    sealed = seal(body.key, workspace_id=workspace_id)
    with _data_rules():
        row = repo.insert_key(
            conn,
            workspace_id=workspace_id,
            provider=body.provider,
            name=body.name,
            sealed=sealed.to_bytes(),
            last4=_last4(body.key),
            base_url=base_url,
            monthly_limit=body.monthly_limit,
        )
    logger.info("provider key added", extra={"provider_key_id": str(row.id), "provider": row.provider})
    return _shown(settings, row)


def list_keys(conn: Connection, settings: Settings, workspace_id: UUID) -> list[ProviderKey]:
    require_role(conn, workspace_id, "admin")
    return [_shown(settings, row) for row in repo.list_keys(conn, workspace_id)]


def get_key(conn: Connection, settings: Settings, key_id: UUID) -> ProviderKey:
    return _shown(settings, _visible(conn, key_id))


def update_key(conn: Connection, settings: Settings, key_id: UUID, body: ProviderKeyUpdate) -> ProviderKey:
    row = _visible(conn, key_id)
    given = body.model_fields_set
    changes: dict[str, object] = {}
    if "name" in given:
        if body.name is None:
            raise ValidationError(details={"errors": [field_error("name", "a key keeps a name", "missing")]})
        changes["name"] = body.name
    if "monthly_limit" in given:
        changes["monthly_limit"] = body.monthly_limit
    if "base_url" in given:
        if row.provider == "custom" and body.base_url is None:
            raise ValidationError(
                details={"errors": [field_error("base_url", "a custom key needs its base_url", "missing")]}
            )
        changes["base_url"] = _checked_base_url(settings, row.provider, body.base_url)
        if changes["base_url"] != row.base_url and body.key is None:
            # Every call sends the key to its base_url: moved without the key, it would go wherever the
            # caller points it (the migration 20261129070000 trigger holds the same rule for any UPDATE).
            raise ValidationError(
                details={"errors": [field_error("key", MOVED_WITHOUT_KEY, "key_required_with_base_url")]}
            )
    if "key" in given:
        if body.key is None:
            raise ValidationError(details={"errors": [field_error("key", "a key cannot be emptied", "missing")]})
        changes["sealed_key"] = seal(body.key, workspace_id=row.workspace_id).to_bytes()
        changes["last4"] = _last4(body.key)
    with _data_rules():
        updated = repo.update_key(conn, key_id, changes)
    if updated is None:  # deleted or no longer the caller's in between
        raise NotFoundError(NOT_FOUND)
    if "key" in given:
        logger.info("provider key replaced", extra={"provider_key_id": str(key_id), "provider": row.provider})
    return _shown(settings, updated)


def delete_key(conn: Connection, key_id: UUID) -> None:
    _visible(conn, key_id)
    if not repo.delete_key(conn, key_id):
        raise NotFoundError(NOT_FOUND)
    logger.info("provider key deleted", extra={"provider_key_id": str(key_id)})


def run_key_test(db: Database, principal: Principal, settings: Settings, key_id: UUID) -> ProviderKeyTest:
    """`POST /provider-keys/{id}/test`: the caller's right to the key in one transaction, its sealed bytes
    opened by the service's, the call made outside any transaction, and what it showed recorded: a refusal
    (401/403) marks the key invalid, an accepted key is active again. An account without funds (`no_funds`:
    the key is accepted, the account cannot pay) is answered and changes nothing: funds come back."""
    with db.user_transaction(principal) as conn:
        _visible(conn, key_id)
    opened = _open(db, key_id)
    if opened is None:
        raise NotFoundError(NOT_FOUND)
    key, row = opened
    # The call goes where the opened key was saved for: the base_url read with its sealed bytes (not the
    # caller's earlier read, which a move with a new key in between would pair with the new key).
    outcome = try_key(settings, provider=row.provider, name=row.name, base_url=row.base_url, key=key)
    del key, opened
    if outcome.ok or outcome.refused:
        # Recorded only if the key is still the one called: a key replaced meanwhile keeps its status.
        status, reason = ("active", None) if outcome.ok else ("invalid", outcome.error)
        with db.user_transaction(principal) as conn:
            repo.set_status(conn, key_id, status, reason, if_updated_at=row.updated_at)
    return ProviderKeyTest(ok=outcome.ok, models=outcome.models, error=outcome.error, reason=outcome.reason)


def _open(db: Database, key_id: UUID) -> tuple[SecretStr, repo.SealedKey] | None:
    """The key opened, with the row it was read with (its provider, name, base_url and `updated_at`)."""
    with db.service_transaction() as conn:
        found = repo.sealed_for_use(conn, key_id)
    if found is None:
        return None
    return open_sealed(Sealed.from_bytes(found.sealed), workspace_id=found.workspace_id), found


# --- for the reply routing ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class UsableKey:
    """A workspace's key, opened for one call. `key` is a `SecretStr` and the repr leaves it out: pass
    `key.get_secret_value()` only to the request that needs it.

    `base_url`: where to call (`custom`: the customer's URL, to be called ONLY through `oneai.outbound`'s
    guarded clients, `guarded` says so; else the provider's endpoint from the settings). `upstream_model`:
    the model id to send there (OpenRouter takes the whole id; a provider's own endpoint takes it without
    the `openai/` prefix, Anthropic's by its own id: `ANTHROPIC_MODEL_IDS`; a custom endpoint takes `<name>`
    of `custom/<name>`). `within_limit`: whether its `monthly_limit` (INR) still has room for this month's
    estimated spend `spent_this_month` (INR)."""

    key_id: UUID
    workspace_id: UUID
    provider: str
    name: str
    base_url: str
    upstream_model: str
    monthly_limit: Decimal | None
    spent_this_month: Decimal
    within_limit: bool
    key: SecretStr = field(repr=False)
    updated_at: datetime | None = None  # the row's when it was read: a refusal is recorded against it

    @property
    def guarded(self) -> bool:
        return self.provider == "custom"


def candidate_providers(model_id: str) -> tuple[list[str], str | None]:
    """The providers whose keys may serve `model_id`, in the order they are tried, and the name a custom key
    must have: `custom/<name>` -> (["custom"], name); `openai/...`, `anthropic/...`, `google/...` -> that
    provider, then `openrouter`; any other model -> `openrouter`."""
    prefix, _, rest = model_id.partition("/")
    if prefix == "custom":
        return (["custom"], rest) if rest else ([], None)
    if prefix in DIRECT_PROVIDERS and rest:
        return [prefix, "openrouter"], None
    return ["openrouter"], None


# Anthropic's API names its models otherwise than OpenRouter's catalog (`anthropic/claude-3.5-haiku`): by
# its own ids, with dashes, never a dot (an id it does not know is a 404 `not_found_error`). The offered ones
# by their snapshot (what Anthropic's `GET /v1/models` lists); any other with its dots made dashes
# (OpenRouter's `claude-sonnet-4.5` is Anthropic's `claude-sonnet-4-5`).
ANTHROPIC_MODEL_IDS: Final = {
    "claude-3.5-haiku": "claude-3-5-haiku-20241022",
    "claude-sonnet-4": "claude-sonnet-4-20250514",
    "claude-opus-4": "claude-opus-4-20250514",
}


def _upstream_model(provider: str, model_id: str) -> str:
    if provider == "openrouter":
        return model_id
    name = model_id.partition("/")[2]
    if provider == "anthropic":
        return ANTHROPIC_MODEL_IDS.get(name, name.replace(".", "-"))
    return name


def key_for(conn: Connection, settings: Settings, workspace_id: UUID, model_id: str) -> UsableKey | None:
    """The workspace's active key for `model_id`, opened, or None (the platform's OpenRouter account and the
    workspace's credits serve the reply). Run in a service transaction.

    Rule: the model's own provider first (`openai` for `openai/...`, ...), then an `openrouter` key (it
    serves any model); `custom/<name>` only by the custom key named `<name>`. Among keys of one provider
    the oldest first. A key whose `monthly_limit` has no room is passed over for the next one; when none
    has room, the first is answered with `within_limit` false (the caller refuses the reply or falls back
    to credits: its decision). An invalid key is never answered. A key that does not open raises
    `SealedOpenError` (never expected: the row and its seal are the same workspace's)."""
    providers, custom_name = candidate_providers(model_id)
    if not providers:
        return None
    rows = repo.usable_keys(conn, workspace_id, providers, custom_name)
    rows.sort(key=lambda r: (providers.index(r.provider), r.created_at, str(r.id)))
    if not rows:
        return None

    def room(row: repo.UsableRow) -> bool:
        return row.monthly_limit is None or spent_inr(settings, row.spent_usd) < row.monthly_limit

    chosen = next((row for row in rows if room(row)), rows[0])
    key = open_sealed(Sealed.from_bytes(chosen.sealed_key), workspace_id=chosen.workspace_id)
    return UsableKey(
        key_id=chosen.id,
        workspace_id=chosen.workspace_id,
        provider=chosen.provider,
        name=chosen.name,
        base_url=provider_base_url(settings, chosen.provider, chosen.base_url),
        upstream_model=_upstream_model(chosen.provider, model_id),
        monthly_limit=chosen.monthly_limit,
        spent_this_month=spent_inr(settings, chosen.spent_usd),
        within_limit=room(chosen),
        key=key,
        updated_at=chosen.updated_at,
    )


def mark_invalid(conn: Connection, key_id: UUID, reason: str, *, if_updated_at: datetime | None = None) -> bool:
    """Record that the provider refused the key (401/403 on a reply): `status` invalid with `reason` (use
    `oneai.provider_keys.upstream.refused_message`; never a provider's body). With `if_updated_at` (the
    `UsableKey.updated_at` of the key that was called), only if the key has not changed since: a key
    replaced while the refused call was in flight stays as it is. False: no such key, or changed."""
    row = repo.set_status(conn, key_id, "invalid", reason[:MAX_REASON_CHARS], if_updated_at=if_updated_at)
    return row is not None
