"""`make dev`: migrate a database, then serve every route of template.yaml on http://127.0.0.1:$PORT.

PostgreSQL is `DATABASE_URL` when set, else an embedded server under `.oneai/pgdata`. Secrets come from
the environment only (never from SSM: `ONEAI_SSM_PATH` is not set here), with dev defaults for the
JWT secret, the Razorpay webhook secret and dev mode. Restart after changing code: handlers are imported
once, like in a container.
"""

from __future__ import annotations

import logging
import os
import re
import signal
import sys
from pathlib import Path
from types import FrameType
from typing import Any
from urllib.parse import quote, urlsplit

import psycopg
import uvicorn

from local import DEFAULT_PORT, DEV_USER_EMAIL, DEV_USER_ID, LOCAL_SUPABASE_URL
from local.request_limits import GatewayH11Protocol
from local.server import LocalApiGateway, cors_from_template
from local.template_routes import Route, list_functions, list_routes, load_template, rest_api_settings

# Environment entries of the template that must not leak into the local process: they point at AWS.
_AWS_ONLY_ENV = frozenset({"ONEAI_SSM_PATH", "ONEAI_SECRET_ID", "AWS_LAMBDA_EXEC_WRAPPER"})
# Where `make dev` writes the emails it would send (ONEAI_MAIL_OUTBOX wins).
DEFAULT_OUTBOX = Path(__file__).resolve().parent.parent / ".oneai" / "outbox"
# Where the local S3 keeps its files between runs (like the embedded PostgreSQL's .oneai/pgdata).
DEFAULT_S3_STATE = DEFAULT_OUTBOX.parent / "s3"
# The material of the local KMS key provider keys are sealed under, kept between runs (local/kms.py).
DEFAULT_KMS_MATERIAL = DEFAULT_OUTBOX.parent / "kms" / "provider-keys.key"


def apply_dev_environment(port: int, template: dict[str, Any]) -> None:
    """Dev defaults; anything already set in the environment wins."""
    from local.events import (
        DEV_INVITATION_SECRET,
        DEV_RAZORPAY_WEBHOOK_SECRET,
        DEV_UNSUBSCRIBE_SECRET,
        DEV_WIDGET_SESSION_SECRET,
    )
    from oneai.config import DEV_JWT_SECRET

    os.environ.setdefault("ONEAI_DEV_MODE", "1")
    os.environ.setdefault("SUPABASE_JWT_SECRET", DEV_JWT_SECRET)
    # Dev only: the secret POST /webhooks/razorpay verifies signatures with (events/webhooks/ are signed
    # with it). Set RAZORPAY_WEBHOOK_SECRET to a Razorpay test-mode webhook's secret to receive real ones.
    os.environ.setdefault("RAZORPAY_WEBHOOK_SECRET", DEV_RAZORPAY_WEBHOOK_SECRET)
    os.environ.setdefault("SUPABASE_URL", LOCAL_SUPABASE_URL)
    os.environ.setdefault("ONEAI_SHARE_URL_BASE", f"http://127.0.0.1:{port}/shared")
    # Notifications: no email leaves the machine; each is an .eml file in the outbox. Unsubscribe links
    # are signed with a dev-only secret and point at this server.
    os.environ.setdefault("ONEAI_MAIL_OUTBOX", str(DEFAULT_OUTBOX))
    os.environ.setdefault("ONEAI_MAIL_FROM", "OneAI <no-reply@oneai.local>")
    os.environ.setdefault("UNSUBSCRIBE_SECRET", DEV_UNSUBSCRIBE_SECRET)
    os.environ.setdefault("ONEAI_PUBLIC_API_URL", f"http://127.0.0.1:{port}")
    # Workspace invitations: accept links derived with a dev-only key, pointing at a frontend page here.
    os.environ.setdefault("INVITATION_SECRET", DEV_INVITATION_SECRET)
    os.environ.setdefault("ONEAI_INVITATION_URL_BASE", f"http://127.0.0.1:{port}/invitations")
    # Outbound URLs a customer chooses (a custom provider, webhooks) may be plain http and loopback here, so
    # the local stand-ins can play them; never in AWS.
    os.environ.setdefault("ONEAI_ALLOW_LOOPBACK_URLS", "1")
    # Widget visitor sessions: tokens signed with a dev-only key.
    os.environ.setdefault("WIDGET_SESSION_SECRET", DEV_WIDGET_SESSION_SECRET)
    os.environ.setdefault("POWERTOOLS_TRACE_DISABLED", "1")  # no X-Ray daemon here
    os.environ.setdefault("POWERTOOLS_METRICS_DISABLED", "true")  # EMF lines would drown the request log
    # One process hosts every function, so their literal template variables share one environment.
    for function in list_functions(template):
        for name, value in function.environment.items():
            if name not in _AWS_ONLY_ENV and not name.startswith("AWS_LWA_"):
                os.environ.setdefault(name, value)


def prepare_openrouter() -> Any:
    """Without OPENROUTER_API_KEY, an offline model that speaks OpenRouter's protocol (a handle to keep)."""
    if os.environ.get("OPENROUTER_API_KEY"):
        return None
    from local.fake_openrouter import DEFAULT_DEV_DELAY, OFFLINE_MODEL_ID, FakeOpenRouter, offline_catalog

    # Every offered model answers offline, so each quota key can be exercised without a key.
    offline = FakeOpenRouter(delay=DEFAULT_DEV_DELAY, catalog=offline_catalog()).start()
    # Set before the template's variables are applied, so they do not point at the real API.
    os.environ["OPENROUTER_BASE_URL"] = offline.base_url
    os.environ.setdefault("ONEAI_TITLE_MODEL", OFFLINE_MODEL_ID)
    return offline


def prepare_razorpay() -> Any:
    """Without RAZORPAY_KEY_ID, the fake Razorpay API (local/fake_razorpay.py, the SDK's mock bodies) with
    dev-only values: its key pair, RAZORPAY_API_BASE_URL pointing at it and, unless set, dev plan ids. A
    handle to keep, or None (real keys set, or tests/fixtures/razorpay is missing: billing answers 503)."""
    if os.environ.get("RAZORPAY_KEY_ID"):
        return None
    from local.fake_razorpay import DEV_KEY_ID, DEV_KEY_SECRET, DEV_PLAN_IDS, FakeRazorpay

    try:
        fake = FakeRazorpay(key_id=DEV_KEY_ID, key_secret=DEV_KEY_SECRET).start()
    except FileNotFoundError as exc:
        print(f"  Razorpay        not configured, billing answers 503 ({exc})", flush=True)
        return None
    # Set before the template's variables are applied, so nothing points at the real API.
    os.environ["RAZORPAY_API_BASE_URL"] = fake.base_url
    os.environ["RAZORPAY_KEY_ID"] = DEV_KEY_ID
    os.environ["RAZORPAY_KEY_SECRET"] = DEV_KEY_SECRET
    os.environ.setdefault("RAZORPAY_PLAN_IDS", DEV_PLAN_IDS)
    return fake


def prepare_s3() -> Any:
    """Without ONEAI_S3_ENDPOINT_URL, moto's S3 server on this machine (local/s3_server.py) with the
    attachments bucket created and its files of the last run (saved under .oneai/s3 when it stops); the
    process's AWS credentials become the local S3's own (nothing here talks to AWS). A handle to keep, or
    None (an S3 endpoint was given: it is used as it is)."""
    if os.environ.get("ONEAI_S3_ENDPOINT_URL"):
        return None
    from local.s3_server import DEFAULT_BUCKET, LocalS3

    s3 = LocalS3(port=int(os.environ.get("ONEAI_LOCAL_S3_PORT") or 0), state_dir=DEFAULT_S3_STATE).start()
    bucket = os.environ.get("ONEAI_ATTACHMENTS_BUCKET") or DEFAULT_BUCKET
    s3.create_bucket(bucket)
    os.environ.update(s3.environment(bucket))
    return s3


def prepare_kms(local_s3: Any) -> bool:
    """Without ONEAI_PROVIDER_KEYS_KMS_KEY_ID, the provider keys' KMS key in the local S3's moto server
    (local/kms.py), its material kept in .oneai/kms so sealed keys open after a restart. Whether it did."""
    if os.environ.get("ONEAI_PROVIDER_KEYS_KMS_KEY_ID") or local_s3 is None:
        return False
    from local.kms import local_kms_environment

    os.environ.update(local_kms_environment(local_s3, material_file=DEFAULT_KMS_MATERIAL))
    return True


def start_event_bus(template: dict[str, Any]) -> Any:
    """Domain events go in-process to the functions whose rules match them, as in AWS: the notifications
    function (local/event_bus.py) and the webhook delivery function (local/webhook_queue.py); a handle to
    stop both."""
    from local.event_bus import LocalEventBus, notifications_function
    from local.webhook_queue import LocalWebhookQueue, rule_patterns, webhook_function
    from oneai.events import DomainEvent, set_local_sink

    functions = list_functions(template)
    notifications = notifications_function(functions)
    bus = LocalEventBus(notifications).start() if notifications is not None else None
    webhooks_fn = webhook_function(functions)
    webhooks = (
        LocalWebhookQueue(webhooks_fn, rule_patterns(template, webhooks_fn)).start() if webhooks_fn else None
    )
    if bus is None and webhooks is None:
        return None
    notification_patterns = rule_patterns(template, notifications) if notifications is not None else []

    def publish(event: DomainEvent) -> None:
        from local.webhook_queue import matches

        if bus is not None and matches(notification_patterns, event):
            bus.publish(event)
        if webhooks is not None:
            webhooks.publish(event)

    set_local_sink(publish)
    return _Services(bus, webhooks)


class _Services:
    """Local services stopped together."""

    def __init__(self, *services: Any) -> None:
        self.services = services

    def stop(self) -> None:
        _stop_all(*self.services)


def start_ingest_queue(template: dict[str, Any], local_s3: Any) -> Any:
    """Uploads under knowledge/ in the local S3 and the reprocess messages go to the ingest function
    in-process (local/ingest_queue.py); a handle to stop."""
    from local.ingest_queue import LocalIngestQueue, ingest_function

    function = ingest_function(list_functions(template))
    if function is None:
        return None
    queue = LocalIngestQueue(function).start()
    if local_s3 is not None:
        local_s3.on_object_created = queue.object_created
    return queue


def start_analytics_schedule(template: dict[str, Any]) -> Any:
    """AnalyticsFunction's schedule, in-process (local/analytics_schedule.py); a handle to stop."""
    from local.analytics_schedule import (
        LocalAnalyticsSchedule,
        analytics_function,
        interval_from_environment,
        schedule_input,
    )

    function = analytics_function(list_functions(template))
    interval = interval_from_environment()
    if function is None or interval <= 0:
        return None
    return LocalAnalyticsSchedule(function, schedule_input(template, function), interval).start()


def start_ingest_sweep(template: dict[str, Any]) -> Any:
    """IngestFunction's sweep schedule, in-process (local/ingest_sweep.py); a handle to stop. Its requeue
    messages go to the local ingest queue, so it starts after that queue and stops before it."""
    from local.ingest_sweep import (
        LocalIngestSweep,
        ingest_sweep_function,
        interval_from_environment,
        schedule_input,
    )

    function = ingest_sweep_function(list_functions(template))
    interval = interval_from_environment()
    if function is None or interval <= 0:
        return None
    return LocalIngestSweep(function, schedule_input(template, function), interval).start()


def redact(url: str) -> str:
    return re.sub(r"(://[^:/@]+):[^@]*@", r"\1:***@", url)


def is_supabase_host(url: str) -> bool:
    host = urlsplit(url).hostname or ""
    return host.endswith((".supabase.co", ".supabase.com"))


def prepare_database() -> tuple[str, Any]:
    """The database URL (exported as DATABASE_URL for the handlers) and a handle to keep alive."""
    handle: Any = None
    url = os.environ.get("DATABASE_URL")
    if not url:
        from local.embedded_pg import start_embedded_postgres

        print("starting the embedded PostgreSQL under .oneai/pgdata ...", flush=True)
        url, handle = start_embedded_postgres()
        os.environ["DATABASE_URL"] = url
    if is_supabase_host(url):
        # The local auth shim must never reach Supabase; migrate it on purpose (see README).
        print("DATABASE_URL is a Supabase project: not migrating it from `make dev`.", flush=True)
    else:
        from oneai.db.migrate import migrate
        from oneai.deploy import after_migrations

        applied = migrate(url, local_shim=True)
        print(f"migrations: {len(applied)} applied" + (f" ({', '.join(applied)})" if applied else ""), flush=True)
        guide = after_migrations(url).guide  # the deploy step's work after the migrations
        print(f"user guide: {guide.pages} pages indexed ({guide.written} changed)", flush=True)
    return url, handle


def expose_database_over_tcp(database_url: str, port: int) -> tuple[str, Any]:
    """The embedded server listens on a Unix socket only, which `sam local invoke`'s containers cannot
    reach: a TCP port on 127.0.0.1 in front of it (`ONEAI_PG_TCP_PORT`). Its URL, and the proxy to stop."""
    from psycopg.conninfo import conninfo_to_dict

    from local.pg_proxy import PgRoundTripProxy

    proxy = PgRoundTripProxy(database_url, port=port, record_round_trips=False).__enter__()
    upstream, listening = conninfo_to_dict(database_url), conninfo_to_dict(proxy.url)
    user = quote(str(upstream.get("user") or "postgres"), safe="")
    password = f":{quote(str(upstream['password']), safe='')}" if upstream.get("password") else ""
    dbname = upstream.get("dbname") or "postgres"
    return f"postgresql://{user}{password}@127.0.0.1:{listening['port']}/{dbname}", proxy


def dev_token(*, admin: bool = False) -> str:
    """The dev user's token; with `admin`, carrying the admin claim (`app_metadata.role = "admin"`)."""
    from oneai.auth import ADMIN_ROLE, mint_dev_token
    from oneai.config import Settings

    settings = Settings()
    if settings.supabase_jwt_secret is None:
        raise RuntimeError("SUPABASE_JWT_SECRET is empty")
    app_metadata = {"provider": "email", "providers": ["email"], "role": ADMIN_ROLE}
    return mint_dev_token(
        DEV_USER_ID,
        secret=settings.supabase_jwt_secret.get_secret_value(),
        issuer=str(settings.supabase_jwt_issuer),
        email=DEV_USER_EMAIL,
        extra_claims={"app_metadata": app_metadata} if admin else None,
    )


def ensure_dev_user(database_url: str) -> None:
    """The dev user exists from the start (as on Supabase after a first sign-in), so that its admin token
    works before any user route has provisioned it."""
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(
            "insert into auth.users (id, email) values (%s, %s) on conflict (id) do nothing",
            (DEV_USER_ID, DEV_USER_EMAIL),
        )


def banner(base_url: str, database_url: str, routes: list[Route], token: str | None, admin_token: str = "") -> str:
    """What `make dev` prints at start. `token` is None against a Supabase project: no token is printed."""
    width = max(len(r.method) for r in routes) if routes else 0
    lines = [
        "",
        f"OneAI local API   {base_url}",
        f"  database        {redact(database_url)}",
        f"  routes          {len(routes)} from template.yaml",
        *(f"    {r.method:<{width}} {r.path}  -> {r.function_id}" for r in routes),
    ]
    if token is None:
        lines += [
            "  tokens          none printed: against a Supabase project SUPABASE_JWT_SECRET is the project's own;",
            "                  sign in through Supabase and use that access token",
            "",
        ]
        return "\n".join(lines)
    lines += [
        f"  dev user        {DEV_USER_ID} <{DEV_USER_EMAIL}>",
        "  token (7 days, signed with SUPABASE_JWT_SECRET):",
        f"export ONEAI_TOKEN={token}",
        f'curl -H "Authorization: Bearer $ONEAI_TOKEN" {base_url}/conversations',
        *(
            [
                "  admin token (the same user with app_metadata.role = admin, for /admin/...):",
                f"export ONEAI_ADMIN_TOKEN={admin_token}",
            ]
            if admin_token
            else []
        ),
        "",
    ]
    return "\n".join(lines)


def _exit_on_sigterm(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(128 + signum)


def _stop_all(*services: Any) -> None:
    """Stop each local service that was started (None: not started here)."""
    for service in services:
        if service is not None:
            service.stop()


def main() -> int:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("oneai").setLevel(logging.INFO)
    port = int(os.environ.get("PORT") or DEFAULT_PORT)
    template = load_template()
    offline = prepare_openrouter()
    fake_razorpay = prepare_razorpay()
    local_s3 = prepare_s3()
    local_kms = prepare_kms(local_s3)
    apply_dev_environment(port, template)
    database_url, pg_handle = prepare_database()
    pg_tcp = None
    if pg_handle is not None and os.environ.get("ONEAI_PG_TCP_PORT"):
        tcp_url, pg_tcp = expose_database_over_tcp(database_url, int(os.environ["ONEAI_PG_TCP_PORT"]))

    api = rest_api_settings(template)
    routes = list_routes(template)
    event_bus = start_event_bus(template)
    ingest_queue = start_ingest_queue(template, local_s3)
    analytics_schedule = start_analytics_schedule(template)
    ingest_sweep = start_ingest_sweep(template)
    app = LocalApiGateway(
        routes, stage=api.stage, binary_media_types=api.binary_media_types, cors=cors_from_template(api.cors)
    )
    base_url = f"http://127.0.0.1:{port}"
    if is_supabase_host(database_url):
        # A real project: no dev user is created in it, and no token is minted with its JWT secret (an
        # admin token printed to a terminal or a CI log would work against the deployed API).
        print(banner(base_url, database_url, routes, None), flush=True)
    else:
        ensure_dev_user(database_url)
        print(banner(base_url, database_url, routes, dev_token(), dev_token(admin=True)), flush=True)
    if offline is not None:
        print(
            f"  OpenRouter      offline: every offered model is a local stand-in at {offline.base_url} (set OPENROUTER_API_KEY for the real API)\n",
            flush=True,
        )
    if pg_tcp is not None:
        print(
            f"  database (TCP)  {redact(tcp_url)} (ONEAI_PG_TCP_PORT; for sam local invoke, see the README)\n",
            flush=True,
        )
    if local_s3 is not None:
        print(
            f"  S3              moto's server at {local_s3.endpoint_url}, bucket {os.environ['ONEAI_ATTACHMENTS_BUCKET']}"
            " (files kept in .oneai/s3 between runs; set ONEAI_S3_ENDPOINT_URL to use another)\n",
            flush=True,
        )
    if local_kms:
        print(
            f"  KMS             moto's, in the same server: provider keys sealed under {os.environ['ONEAI_PROVIDER_KEYS_KMS_KEY_ID']}"
            " (its material kept in .oneai/kms between runs; set ONEAI_PROVIDER_KEYS_KMS_KEY_ID to use another)\n",
            flush=True,
        )
    if event_bus is not None:
        print(f"  notifications   emails written to {os.environ['ONEAI_MAIL_OUTBOX']} (.eml files)\n", flush=True)
    if fake_razorpay is not None:
        print(
            f"  Razorpay        fake API at {fake_razorpay.base_url}, dev keys and plans (set RAZORPAY_KEY_ID for the real API)\n",
            flush=True,
        )
    # uvicorn re-raises SIGTERM after its graceful shutdown; as an exception it still runs the atexit
    # hooks, and with them the embedded PostgreSQL's stop.
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    try:
        # The protocol answers API Gateway's 414/431 to a request head too large to parse (local/request_limits.py).
        uvicorn.run(app, host="127.0.0.1", port=port, lifespan="on", log_level="info", http=GatewayH11Protocol)
    finally:
        _stop_all(
            offline, fake_razorpay, analytics_schedule, ingest_sweep, ingest_queue, local_s3, event_bus, pg_tcp
        )
        del pg_handle  # the embedded server stops with its last handle
    return 0


if __name__ == "__main__":
    sys.exit(main())
