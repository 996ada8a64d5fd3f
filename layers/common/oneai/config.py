"""Settings: one class, built on first use, overridable in tests.

Locally every value comes from the environment. In AWS the secrets are not template literals: the
function gets `ONEAI_SSM_PATH` (SSM Parameter Store SecureStrings under a path, named like the
environment variables) and/or `ONEAI_SECRET_ID` (a Secrets Manager secret holding a JSON object with
the same keys), fetched through Powertools Parameters; values found there win over the environment.

Nothing is fetched at import: a cold start (or a SnapStart snapshot) makes no network call, and the
secrets are read by the first invocation that needs them. They are read again once they are older than
`SECRETS_MAX_AGE_SECONDS`, so a rotated secret reaches warm containers; while nothing changed the same
`Settings` object is kept, so the objects built from it (the database connection, API clients) stay.

The environment is read by a validator of our own rather than pydantic-settings, which costs about 30 ms
of every cold start for features not used here (.env files, nested models, its own AWS source). The
rules are the ones it applied: a field's variable is its alias, else its name, in any case; what the
constructor is given wins; list fields are JSON.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from decimal import Decimal
from typing import Any, get_origin

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator
from pydantic.fields import FieldInfo

# The keys that may come from a secret store (same names as the environment variables).
SECRET_KEYS = (
    "DATABASE_URL",
    "SUPABASE_JWT_SECRET",
    "OPENROUTER_API_KEY",
    "RAZORPAY_KEY_ID",
    "RAZORPAY_KEY_SECRET",
    "RAZORPAY_WEBHOOK_SECRET",
    "RAZORPAY_WEBHOOK_SECRET_PREVIOUS",
    "RAZORPAY_PLAN_IDS",
    "UNSUBSCRIBE_SECRET",
    "INVITATION_SECRET",
    "WIDGET_SESSION_SECRET",
)
SECRETS_MAX_AGE_SECONDS = 300

DEV_JWT_SECRET = "oneai-local-dev-secret-change-me-0123456789"  # noqa: S105 - documented, dev only


class Settings(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    database_url: SecretStr | None = None
    supabase_url: str = "http://127.0.0.1:54321"
    supabase_jwt_secret: SecretStr | None = None
    supabase_jwt_issuer: str | None = None
    supabase_jwt_audience: str = "authenticated"
    jwks_cache_seconds: int = 600

    openrouter_api_key: SecretStr | None = None
    openrouter_base_url: str = "https://openrouter.ai/api/v1"
    openrouter_referer: str = "https://oneai.app"
    openrouter_title: str = "OneAI"
    openrouter_first_token_timeout_seconds: float = Field(
        default=30.0, validation_alias="OPENROUTER_FIRST_TOKEN_TIMEOUT"
    )
    openrouter_idle_timeout_seconds: float = Field(default=60.0, validation_alias="OPENROUTER_IDLE_TIMEOUT")
    # The cheap model that names new conversations (outside the user's quota).
    title_model: str = Field(default="openai/gpt-4o-mini", validation_alias="ONEAI_TITLE_MODEL")
    # Issue 16: keep replies' parts in PostgreSQL for resume and stop; off only as bench/chat_stream.py's baseline.
    reply_persistence: bool = Field(default=True, validation_alias="ONEAI_REPLY_PERSISTENCE")
    # How long a reply may read the model: before the chat function's Timeout (300 s), leaving time to save.
    reply_time_limit_seconds: float = Field(default=280.0, gt=0, validation_alias="ONEAI_REPLY_TIME_LIMIT")
    # Knowledge base embeddings (issue 24): the model (its vectors must have the 1536 dimensions of the chunks'
    # column), how many chunks go in one request and how many characters at most (a proxy for the
    # provider's tokens-per-request limit, about 4 characters a token), and how long one request may take.
    embedding_model: str = Field(default="openai/text-embedding-3-small", validation_alias="ONEAI_EMBEDDING_MODEL")
    embedding_batch_size: int = Field(default=64, ge=1, le=2048, validation_alias="ONEAI_EMBEDDING_BATCH_SIZE")
    embedding_batch_chars: int = Field(default=200_000, ge=1, validation_alias="ONEAI_EMBEDDING_BATCH_CHARS")
    embedding_timeout_seconds: float = Field(default=60.0, gt=0, validation_alias="ONEAI_EMBEDDING_TIMEOUT")
    # The analytics' top questions (issue 28): a visitor's first question joins the cluster of the most
    # similar earlier question (cosine similarity of their embeddings) at or above this, else starts one.
    analytics_question_similarity: float = Field(
        default=0.75, gt=0, lt=1, validation_alias="ONEAI_ANALYTICS_QUESTION_SIMILARITY"
    )

    razorpay_key_id: str | None = None
    razorpay_key_secret: SecretStr | None = None
    razorpay_webhook_secret: SecretStr | None = None
    # During a webhook secret rotation, signatures made with the previous secret are accepted too.
    razorpay_webhook_secret_previous: SecretStr | None = None
    # Tier -> Razorpay plan id, written `pro=plan_x,enterprise=plan_y` (SSM in AWS, the environment locally).
    razorpay_plan_ids: str = ""
    razorpay_api_base_url: str = "https://api.razorpay.com"
    razorpay_timeout_seconds: float = 8.0
    # How long a subscription in `pending` (a renewal payment failing) keeps its paid tier.
    grace_period_days: float = Field(default=3.0, validation_alias="ONEAI_GRACE_PERIOD_DAYS")
    # How long a plan change's new subscription may await Checkout before the sweep cancels it.
    replacement_checkout_hours: float = Field(
        default=24.0, gt=0, validation_alias="ONEAI_REPLACEMENT_CHECKOUT_HOURS"
    )

    # EventBridge bus for domain events (quota warnings, payment failures); unset locally: only logged.
    event_bus_name: str | None = Field(default=None, validation_alias="ONEAI_EVENT_BUS")

    # Attachments (issue 12): the private S3 bucket, where its API is (only set locally: moto's server under
    # `make dev`; in AWS the default endpoint). Attachment URLs are under `public_api_url`.
    attachments_bucket: str | None = Field(default=None, validation_alias="ONEAI_ATTACHMENTS_BUCKET")
    s3_endpoint_url: str | None = Field(default=None, validation_alias="ONEAI_S3_ENDPOINT_URL")
    max_attachment_bytes: int = Field(
        default=10 * 1024 * 1024, gt=0, validation_alias="ONEAI_MAX_ATTACHMENT_BYTES"
    )
    # Knowledge base (issue 24): the largest document accepted (the presigned POST holds an upload to its
    # declared size, never more than this), and the SQS queue the ingest function reads (unset locally:
    # `oneai.knowledge.ingest_queue` hands the messages to the local sink, or only logs them).
    max_document_bytes: int = Field(default=20 * 1024 * 1024, gt=0, validation_alias="ONEAI_MAX_DOCUMENT_BYTES")
    ingest_queue_url: str | None = Field(default=None, validation_alias="ONEAI_INGEST_QUEUE_URL")
    # Lifetimes of the presigned upload (POST) and of the presigned GET a content route redirects to.
    attachment_upload_seconds: int = Field(default=900, gt=0, le=3600, validation_alias="ONEAI_UPLOAD_URL_SECONDS")
    attachment_url_seconds: int = Field(
        default=300, gt=0, le=3600, validation_alias="ONEAI_ATTACHMENT_URL_SECONDS"
    )

    # Knowledge ingest (issue 24): deliveries a document gets (the ingest queue's maxReceiveCount in
    # template.yaml: keep them equal), when a `processing` document counts as abandoned by its worker
    # (longer than the ingest function's timeout) and when an `uploading` one whose file never came fails.
    ingest_max_attempts: int = Field(default=3, ge=1, le=10, validation_alias="ONEAI_INGEST_MAX_ATTEMPTS")
    ingest_stale_seconds: int = Field(default=1200, gt=0, validation_alias="ONEAI_INGEST_STALE_SECONDS")
    upload_abandoned_hours: int = Field(default=24, gt=0, validation_alias="ONEAI_UPLOAD_ABANDONED_HOURS")

    # Notifications (email through SES v2): the verified sender, an optional configuration set, the key
    # that signs one-click unsubscribe links, and the public API base those links point at. With
    # ONEAI_MAIL_OUTBOX set (`make dev`) no email is sent: each is written there as an .eml file.
    mail_from: str | None = Field(default=None, validation_alias="ONEAI_MAIL_FROM")
    mail_configuration_set: str | None = Field(default=None, validation_alias="ONEAI_MAIL_CONFIGURATION_SET")
    mail_outbox: str | None = Field(default=None, validation_alias="ONEAI_MAIL_OUTBOX")
    unsubscribe_secret: SecretStr | None = None
    public_api_url: str = Field(default="http://127.0.0.1:3000", validation_alias="ONEAI_PUBLIC_API_URL")

    # Workspaces (issue 23): the key the accept links of invitations are derived with (rotating it voids
    # every pending invitation's link), where those links point (the frontend's page, which posts the
    # token to `POST /invitations/{token}/accept`), and changes to the tiers' workspace limits as JSON,
    # e.g. `{"free": {"members": 3}}` (defaults: oneai.quota.tiers.WORKSPACE_LIMITS).
    invitation_secret: SecretStr | None = None
    invitation_url_base: str = Field(
        default="http://127.0.0.1:3000/invitations", validation_alias="ONEAI_INVITATION_URL_BASE"
    )
    workspace_limits: str = Field(default="", validation_alias="ONEAI_WORKSPACE_LIMITS")

    # Outbound URLs a customer chooses (a `custom` provider, webhook endpoints; oneai.outbound): plain http
    # and loopback addresses are allowed only with this on, so the local stand-ins of `make dev` and the
    # tests can be called. Off unless `1`/`true`; never set in AWS.
    allow_loopback_urls: bool = Field(default=False, validation_alias="ONEAI_ALLOW_LOOPBACK_URLS")
    # Provider keys at rest (oneai.crypto.envelope): the KMS key their data keys come from (an id, ARN or
    # alias; read on first use), and where KMS's API is (only set locally: moto's server under `make dev`).
    provider_keys_kms_key_id: str | None = Field(default=None, validation_alias="ONEAI_PROVIDER_KEYS_KMS_KEY_ID")
    kms_endpoint_url: str | None = Field(default=None, validation_alias="ONEAI_KMS_ENDPOINT_URL")
    # A workspace's own provider keys (issue 26; oneai.provider_keys): the OpenAI-compatible endpoints of the
    # providers a key may be for (OpenRouter's is `openrouter_base_url`), settings so that tests and
    # `make dev` point them at local stand-ins; and how long a key's test call may take.
    openai_base_url: str = Field(default="https://api.openai.com/v1", validation_alias="ONEAI_OPENAI_BASE_URL")
    anthropic_base_url: str = Field(
        default="https://api.anthropic.com/v1", validation_alias="ONEAI_ANTHROPIC_BASE_URL"
    )
    google_base_url: str = Field(
        default="https://generativelanguage.googleapis.com/v1beta/openai", validation_alias="ONEAI_GOOGLE_BASE_URL"
    )
    provider_key_test_timeout_seconds: float = Field(
        default=10.0, gt=0, validation_alias="ONEAI_PROVIDER_KEY_TEST_TIMEOUT"
    )
    # Outbound webhooks (issue 28): the delivery queue (unset: the local sink under `make dev`, else only
    # logged), one attempt's timeout, the backoff's base delay and how long a delivery is retried.
    webhook_queue_url: str | None = Field(default=None, validation_alias="ONEAI_WEBHOOK_QUEUE_URL")
    webhook_timeout_seconds: float = Field(
        default=10.0, gt=0, le=60, validation_alias="ONEAI_WEBHOOK_TIMEOUT_SECONDS"
    )
    webhook_retry_base_seconds: float = Field(
        default=30.0, gt=0, validation_alias="ONEAI_WEBHOOK_RETRY_BASE_SECONDS"
    )
    webhook_retry_window_seconds: float = Field(
        default=86400.0, gt=0, validation_alias="ONEAI_WEBHOOK_RETRY_WINDOW_SECONDS"
    )
    # Workspace credits (issue 26): INR. The welcome grant of a new user's personal workspace; what one
    # purchase may be; how a reply's OpenRouter cost (USD) becomes credits (rate x markup, both recorded
    # on the ledger); the least a reply reserves (when its model's prices are unknown or tiny).
    welcome_credits: Decimal = Field(default=Decimal("0"), ge=0, validation_alias="ONEAI_WELCOME_CREDITS")
    credits_min_purchase: Decimal = Field(
        default=Decimal("100"), gt=0, validation_alias="ONEAI_CREDITS_MIN_PURCHASE"
    )
    credits_max_purchase: Decimal = Field(
        default=Decimal("100000"), gt=0, validation_alias="ONEAI_CREDITS_MAX_PURCHASE"
    )
    usd_inr_rate: Decimal = Field(default=Decimal("85"), gt=0, validation_alias="ONEAI_USD_INR_RATE")
    credits_markup: Decimal = Field(default=Decimal("1"), gt=0, validation_alias="ONEAI_CREDITS_MARKUP")
    credits_min_reserve: Decimal = Field(default=Decimal("1"), gt=0, validation_alias="ONEAI_CREDITS_MIN_RESERVE")
    # The embeddable widget (issue 27): the key visitor session tokens are signed with (HMAC-SHA256;
    # rotating it ends every open session, and the widget simply opens a new one), how long a session
    # token lasts, and the public routes' rate limits: per source address (`widget`, every public route,
    # preflights included) and per chatbot and visitor id (`widget_visitor`: sessions, messages, rating).
    widget_session_secret: SecretStr | None = None
    widget_session_seconds: int = Field(
        default=3600, ge=60, le=86400, validation_alias="ONEAI_WIDGET_SESSION_SECONDS"
    )
    widget_rate_limit_per_minute: int = Field(
        default=120, ge=1, validation_alias="ONEAI_WIDGET_RATE_LIMIT_PER_MINUTE"
    )
    widget_rate_limit_burst: int = Field(default=60, ge=1, validation_alias="ONEAI_WIDGET_RATE_LIMIT_BURST")
    widget_visitor_rate_limit_per_minute: int = Field(
        default=30, ge=1, validation_alias="ONEAI_WIDGET_VISITOR_RATE_LIMIT_PER_MINUTE"
    )
    widget_visitor_rate_limit_burst: int = Field(
        default=20, ge=1, validation_alias="ONEAI_WIDGET_VISITOR_RATE_LIMIT_BURST"
    )

    port: int = 3000
    # Dev mode provisions an unknown `sub` on first use; never set in AWS.
    dev_mode: bool = Field(default=False, validation_alias="ONEAI_DEV_MODE")
    share_url_base: str = Field(default="http://127.0.0.1:3000/shared", validation_alias="ONEAI_SHARE_URL_BASE")
    cors_origins: list[str] = Field(default_factory=lambda: ["*"], validation_alias="ONEAI_CORS_ORIGINS")
    max_body_bytes: int = Field(default=256 * 1024, validation_alias="ONEAI_MAX_BODY_BYTES")
    db_connect_timeout_seconds: int = 5
    db_statement_timeout_ms: int = 10_000

    # Rate limits per caller (API.md "Rate limits"): `all` for every authenticated request, `chat` for the
    # requests that start a model reply. Off only for the benchmark's baseline.
    rate_limit_enabled: bool = Field(default=True, validation_alias="ONEAI_RATE_LIMIT_ENABLED")
    rate_limit_per_minute: int = Field(default=300, ge=1, validation_alias="ONEAI_RATE_LIMIT_PER_MINUTE")
    rate_limit_burst: int = Field(default=60, ge=1, validation_alias="ONEAI_RATE_LIMIT_BURST")
    chat_rate_limit_per_minute: int = Field(default=20, ge=1, validation_alias="ONEAI_CHAT_RATE_LIMIT_PER_MINUTE")
    chat_rate_limit_burst: int = Field(default=5, ge=1, validation_alias="ONEAI_CHAT_RATE_LIMIT_BURST")
    # Anonymous feedback on the user guide, per source address (signed-in feedback counts in `all`).
    feedback_rate_limit_per_minute: int = Field(
        default=6, ge=1, validation_alias="ONEAI_FEEDBACK_RATE_LIMIT_PER_MINUTE"
    )
    feedback_rate_limit_burst: int = Field(default=10, ge=1, validation_alias="ONEAI_FEEDBACK_RATE_LIMIT_BURST")

    @model_validator(mode="before")
    @classmethod
    def _from_environment(cls, given: Any) -> Any:
        """Each field the constructor was not given, from its environment variable when set."""
        if not isinstance(given, dict):
            return given
        environ = {name.lower(): value for name, value in os.environ.items()}
        values = dict(given)
        for field_name, field in cls.model_fields.items():
            name = _input_name_of(field_name, field)
            if name in values or name.lower() not in environ:
                continue
            raw = environ[name.lower()]
            values[name] = _json_value(name, raw) if get_origin(field.annotation) is list else raw
        return values

    @field_validator("allow_loopback_urls", mode="before")
    @classmethod
    def _empty_is_off(cls, value: Any) -> Any:
        """An empty `ONEAI_ALLOW_LOOPBACK_URLS=` is off, like an unset one."""
        return False if isinstance(value, str) and not value.strip() else value

    @model_validator(mode="after")
    def _default_issuer(self) -> Settings:
        if self.supabase_jwt_issuer is None:
            # frozen model: set once during validation
            object.__setattr__(self, "supabase_jwt_issuer", f"{self.supabase_url.rstrip('/')}/auth/v1")
        return self

    @property
    def jwks_url(self) -> str:
        return f"{self.supabase_url.rstrip('/')}/auth/v1/.well-known/jwks.json"

    def plan_ids(self) -> dict[str, str]:
        """`razorpay_plan_ids` as {tier: plan id}; malformed entries are a configuration error."""
        plans: dict[str, str] = {}
        for entry in filter(None, (part.strip() for part in self.razorpay_plan_ids.split(","))):
            tier, separator, plan_id = entry.partition("=")
            if not separator or not tier.strip() or not plan_id.strip():
                raise ValueError("RAZORPAY_PLAN_IDS must look like pro=plan_x,enterprise=plan_y")
            plans[tier.strip()] = plan_id.strip()
        return plans

    def require_database_url(self) -> str:
        if self.database_url is None:
            raise RuntimeError("DATABASE_URL is not configured")
        return self.database_url.get_secret_value()


def has_secret_store(environ: dict[str, str] | os._Environ[str]) -> bool:
    return bool(environ.get("ONEAI_SSM_PATH") or environ.get("ONEAI_SECRET_ID"))


def load_secret_values(environ: dict[str, str], *, force_fetch: bool = False) -> dict[str, Any]:
    """Secrets from SSM (`ONEAI_SSM_PATH`) and Secrets Manager (`ONEAI_SECRET_ID`), cached by Powertools
    unless `force_fetch`. Powertools (and through it boto3) is imported here, on first use only."""
    values: dict[str, Any] = {}
    ssm_path = environ.get("ONEAI_SSM_PATH")
    secret_id = environ.get("ONEAI_SECRET_ID")
    if ssm_path or secret_id:
        from oneai.observability import trace_calls

        trace_calls("botocore")
    if ssm_path:
        from aws_lambda_powertools.utilities import parameters

        found = parameters.get_parameters(
            ssm_path, decrypt=True, max_age=SECRETS_MAX_AGE_SECONDS, force_fetch=force_fetch
        )
        values.update({k.upper(): v for k, v in found.items() if k.upper() in SECRET_KEYS})
    if secret_id:
        from aws_lambda_powertools.utilities import parameters

        raw = parameters.get_secret(secret_id, max_age=SECRETS_MAX_AGE_SECONDS, force_fetch=force_fetch)
        document = json.loads(raw) if isinstance(raw, str) else json.loads(bytes(raw).decode())
        values.update({k.upper(): v for k, v in document.items() if k.upper() in SECRET_KEYS})
    return {k.lower(): v for k, v in values.items()}


_current: Settings | None = None
_loaded_at = 0.0  # time.monotonic() of the last read from the secret stores
_overridden = False  # tests pinned the settings (override_settings): no refresh
_clock = time.monotonic  # tests move it


def get_settings() -> Settings:
    """The settings of this container: built on first use, the secrets read again when older than
    `SECRETS_MAX_AGE_SECONDS` (the same object is returned while nothing changed)."""
    global _current, _loaded_at
    now = _clock()
    stale = now - _loaded_at >= SECRETS_MAX_AGE_SECONDS and has_secret_store(os.environ)
    if _current is None or (stale and not _overridden):
        # This cache decides when to read; Powertools' own could still hold values from before a reset
        # (a SnapStart restore), so the stores are always asked.
        fresh = Settings(**load_secret_values(dict(os.environ), force_fetch=True))
        if fresh != _current:
            _current = fresh
        _loaded_at = now
    return _current


def environment_settings() -> Settings:
    """Settings for what is configured at import (CORS origins, body limit): the current settings if
    already built, else the environment alone. Never reads a secret store, so importing a handler
    makes no network call."""
    return _current if _current is not None else Settings()


def reset_settings() -> None:
    """Forget the settings: the next `get_settings()` reads the environment and the stores again (tests,
    and after a SnapStart restore, so no secret from before the snapshot is used)."""
    global _current, _loaded_at
    _current = None
    _loaded_at = 0.0


@contextmanager
def override_settings(**changes: Any) -> Iterator[Settings]:
    """Tests: swap the settings for a validated copy with `changes`, restore afterwards."""
    global _current, _overridden
    original, was_overridden = get_settings(), _overridden
    # Settings take their aliased fields only by alias (ONEAI_DEV_MODE, not DEV_MODE), in code too.
    values = {_input_name(name): value for name, value in {**original.model_dump(), **changes}.items()}
    _current, _overridden = Settings(**values), True
    try:
        yield _current
    finally:
        _current, _overridden = original, was_overridden


def _input_name(field_name: str) -> str:
    return _input_name_of(field_name, Settings.model_fields[field_name])


def _input_name_of(field_name: str, field: FieldInfo) -> str:
    """The name a field is given by, in the constructor and (in any case) in the environment."""
    alias = field.validation_alias
    return alias if isinstance(alias, str) else field_name


def _json_value(name: str, raw: str) -> Any:
    try:
        return json.loads(raw)
    except ValueError:
        raise ValueError(f'{name.upper()} must be JSON, e.g. ["https://app.example"]') from None
