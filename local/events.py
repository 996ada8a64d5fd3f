"""Sample API Gateway events, one per route of template.yaml, for `sam local invoke -e` and for tests.

    python -m local.events --write   # (re)write events/<function>/<event-name>.json
    python -m local.events --check   # exit 1 when the files differ from what --write would write

The events come from the same builder as the local server (`local.apigw.build_rest_event`), for a
request to `make dev` on port 3000. Everything in them is fixed (ids, times, the token), so the files
change only when the template or the samples do. The bearer token is signed with the dev JWT secret
for the dev user and expires 2099-01-01: it works only against a dev database and a function that
runs with SUPABASE_JWT_SECRET set to the dev secret.

Routes served by a Function URL (`OneAILocalRoutes`) get Function URL (payload v2) events from
`local.apigw.build_function_url_event`; the Razorpay webhook route gets one file per sample delivery
(`events/webhooks/subscription-activated.json`, ...), each body signed with the dev webhook secret
`DEV_RAZORPAY_WEBHOOK_SECRET` (what `make dev` uses unless RAZORPAY_WEBHOOK_SECRET is set; a function
invoked with these events needs RAZORPAY_WEBHOOK_SECRET set to it). The subscription's notes name the dev
user and tier pro, so the activation is adopted and upgrades the dev user; `bad-signature.json` is
answered 400.

The notifications function gets SQS batches, not HTTP: `events/notifications/<name>.json` are batches of one
record whose body is a sample domain event as EventBridge delivers it (a quota warning, a payment failure, a
receipt, all for the dev user), and `usage-summary-sweep.json` is the monthly schedule's event for
UsageSummaryFunction; `events/analytics/rollup.json` is the analytics schedule's input. The account function's unsubscribe samples carry the dev user's quota-warning link,
signed with `DEV_UNSUBSCRIBE_SECRET` (what `make dev` uses unless UNSUBSCRIBE_SECRET is set).
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
import json
import re
import sys
import uuid
from dataclasses import dataclass
from pathlib import Path

from local import DEFAULT_PORT, DEV_USER_EMAIL, DEV_USER_ID, LOCAL_SUPABASE_URL
from local.apigw import HttpRequest, build_function_url_event, build_rest_event
from local.event_bus import NOTIFICATIONS_HANDLER, eventbridge_event, sqs_record
from local.template_routes import (
    REPO_ROOT,
    Route,
    list_functions,
    list_routes,
    load_template,
    path_param,
    rest_api_settings,
)
from oneai.events import DomainEvent
from oneai.notifications.unsubscribe import sign_token

EVENTS_DIR = REPO_ROOT / "events"
SAMPLE_CONVERSATION_ID = "11111111-1111-4111-8111-111111111111"
SAMPLE_MESSAGE_ID = "22222222-2222-4222-8222-222222222222"
SAMPLE_SHARE_TOKEN = "c2FtcGxlLXNoYXJlLXRva2Vu"  # noqa: S105 - a sample path value, not a secret
SAMPLE_PATH_PARAMETERS = {
    "id": SAMPLE_CONVERSATION_ID,
    "message_id": SAMPLE_MESSAGE_ID,
    "token": SAMPLE_SHARE_TOKEN,
    "quota_key": "large_messages",
    "slug": "getting-started",
    "workspace_id": "55555555-5555-4555-8555-555555555555",
    "user_id": "66666666-6666-4666-8666-666666666666",
    "invitation_id": "77777777-7777-4777-8777-777777777777",
    "document_id": "88888888-8888-4888-8888-888888888888",
    "chatbot_id": "99999999-9999-4999-8999-999999999999",
    "public_id": "cb_0123456789abcdef0123456789abcdef",
    "conversation_id": SAMPLE_CONVERSATION_ID,
    "provider_key_id": "aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa",
}

TOKEN_ISSUED_AT = 1735689600  # 2025-01-01T00:00:00Z
TOKEN_EXPIRES_AT = 4070908800  # 2099-01-01T00:00:00Z
REQUEST_TIME_EPOCH_MS = 1735732800000  # 2025-01-01T12:00:00Z
SAMPLE_SESSION_ID = "33333333-3333-4333-8333-333333333333"


@dataclass(frozen=True)
class Sample:
    query: str = ""
    body: object | None = None  # JSON-encoded into the request body
    public: bool = False  # no Authorization header (a route that needs none)
    admin: bool = False  # the dev user's token with the admin claim (app_metadata.role = "admin")


# Dev only: `make dev` signs unsubscribe links with it unless UNSUBSCRIBE_SECRET is set. Never deployed.
DEV_UNSUBSCRIBE_SECRET = "oneai-local-dev-unsubscribe-secret-change-me"  # noqa: S105 - dev only
# Dev only: `make dev` derives workspace invitations' accept tokens with it unless INVITATION_SECRET is set.
DEV_INVITATION_SECRET = "oneai-local-dev-invitation-secret-change-me"  # noqa: S105 - dev only
# Dev only: `make dev` signs widget visitor sessions with it unless WIDGET_SESSION_SECRET is set.
DEV_WIDGET_SESSION_SECRET = "oneai-local-dev-widget-session-secret-change-me"  # noqa: S105 - dev only
SAMPLE_UNSUBSCRIBE_TOKEN = sign_token(DEV_UNSUBSCRIBE_SECRET.encode(), uuid.UUID(DEV_USER_ID), "quota_warnings")

# Realistic inputs per template event; a route without an entry gets a bare authenticated request.
SAMPLES: dict[str, Sample] = {
    "ListConversations": Sample(query="limit=20&q=lisbon"),
    "CreateConversation": Sample(body={"title": "Trip to Lisbon", "metadata": {"pinned": False}}),
    "GetConversationsOpenApi": Sample(public=True),
    "CreateAttachment": Sample(body={"filename": "photo.png", "media_type": "image/png", "size": 1024}),
    "UpdateConversation": Sample(body={"title": "Lisbon in three days", "metadata": {"pinned": True}}),
    "ListMessages": Sample(query="limit=50"),
    "ExportConversation": Sample(query="format=markdown"),
    "GetSharedConversation": Sample(public=True),
    "SearchChatHistory": Sample(query="q=tram%2028&model=openai%2Fgpt-4o-mini&limit=20"),
    "StreamChat": Sample(
        body={"conversation_id": None, "model": "oneai/offline", "action": "send", "content": "Hello!"}
    ),
    "GetChatOpenApi": Sample(public=True),
    "CheckQuota": Sample(body={"quota_key": "small_messages", "units": 1}),
    "GetUsage": Sample(query="group_by=model"),
    "UpdateProfile": Sample(body={"name": "Dev User", "preferences": {"theme": "dark"}}),
    "GetAccountOpenApi": Sample(public=True),
    "ListPlans": Sample(public=True),
    "CreateSubscription": Sample(body={"tier": "pro"}),
    # Signed with the dev key secret of `make dev`'s fake Razorpay (local/fake_razorpay.py) for this pair.
    "VerifySubscription": Sample(
        body={
            "razorpay_payment_id": "pay_29QQoUBi66xm2f",
            "razorpay_subscription_id": "sub_00000000000001",
            "razorpay_signature": "8f8a916ca1bfdac918ac1e77dee8190bc1d6c938a557d3f131ef87f080d39301",
        }
    ),
    "CancelSubscription": Sample(body={"at_cycle_end": True}),
    "UpdateSubscription": Sample(body={"tier": "enterprise"}),
    "GetBillingOpenApi": Sample(public=True),
    "ListUsers": Sample(query="q=example.com&tier=pro&limit=20", admin=True),
    "GetUser": Sample(admin=True),
    "EraseUser": Sample(admin=True),
    "SuspendUser": Sample(body={"reason": "Chargeback fraud, ticket 4711"}, admin=True),
    "UnsuspendUser": Sample(admin=True),
    "SetQuotaOverride": Sample(
        body={"limit": 50, "reason": "Outage credit, ticket 4712", "expires_at": "2099-01-01T00:00:00Z"},
        admin=True,
    ),
    "RemoveQuotaOverride": Sample(admin=True),
    "ListSubscriptions": Sample(query="status=active&limit=20", admin=True),
    "SyncSubscription": Sample(admin=True),
    "ListAllWorkspaces": Sample(query="q=acme&status=active&limit=20", admin=True),
    "SuspendWorkspace": Sample(body={"reason": "Phishing chatbot, ticket 4713"}, admin=True),
    "UnsuspendWorkspace": Sample(admin=True),
    "GetAnalytics": Sample(query="from=2025-01-01&to=2025-01-31", admin=True),
    "ListAuditLog": Sample(query="target_type=user&limit=20", admin=True),
    "GetGuideFeedbackSummary": Sample(query="comments=3", admin=True),
    "CreateWorkspace": Sample(body={"name": "Acme Support", "industry": "retail"}),
    "ListWorkspaces": Sample(query="limit=20"),
    "UpdateWorkspace": Sample(body={"name": "Acme Support EU", "settings": {"timezone": "Europe/Lisbon"}}),
    "ChangeWorkspaceMemberRole": Sample(body={"role": "editor"}),
    "InviteToWorkspace": Sample(body={"email": "teammate@example.com", "role": "editor"}),
    "GetWorkspacesOpenApi": Sample(public=True),
    # issue 26: workspace credits
    "PurchaseWorkspaceCredits": Sample(body={"amount": "500.00"}),
    "ListCreditTransactions": Sample(query="type=purchase&limit=20"),
    "GetCreditUsage": Sample(query="group_by=model&from=2025-01-01&to=2025-02-01"),
    "GetCreditsOpenApi": Sample(public=True),
    # issue 26: a workspace's own provider keys (a sample key, not a real one)
    "CreateProviderKey": Sample(
        body={
            "provider": "openai",
            "name": "Production",
            "key": "sk-proj-sample-not-a-real-key",
            "monthly_limit": "5000.00",
        }
    ),
    "UpdateProviderKey": Sample(body={"name": "Production (EU)", "monthly_limit": None}),
    "GrantWorkspaceCredits": Sample(
        body={"amount": "250.00", "reason": "Launch partner, ticket 5120"}, admin=True
    ),
    "AdjustWorkspaceCredits": Sample(body={"amount": "-20.50", "reason": "Double grant, ticket 5121"}, admin=True),
    # issue 28: outbound webhooks
    "SaveWorkspaceWebhook": Sample(
        body={"url": "https://hooks.example.com/oneai", "events": ["document.processed", "credits.low"]}
    ),
    "ListWorkspaceWebhookDeliveries": Sample(query="status=failed&limit=20"),
    # issue 24: the knowledge base
    "CreateDocument": Sample(
        body={"filename": "refund-policy.pdf", "media_type": "application/pdf", "size": 48213, "tags": ["policy"]}
    ),
    "CreateDocumentsBulk": Sample(
        body={"documents": [{"filename": "faq.md", "media_type": "text/markdown", "size": 2048}]}
    ),
    "ListDocuments": Sample(query="status=ready&q=refund&sort=-created_at&limit=20"),
    "BulkDeleteDocuments": Sample(body={"ids": ["88888888-8888-4888-8888-888888888888"]}),
    "SearchKnowledge": Sample(body={"query": "How long do refunds take?", "top_k": 5, "min_score": 0.2}),
    "UpdateDocument": Sample(body={"filename": "refund-policy-2026.pdf", "tags": ["policy", "billing"]}),
    # issue 25: chatbots
    "CreateChatbot": Sample(
        body={
            "name": "Refunds helper",
            "use_case": "support",
            "model": "openai/gpt-4o-mini",
            "temperature": 0.2,
            "max_tokens": 800,
            "system_prompt": "You answer questions about refunds from the documents.",
            "document_ids": ["88888888-8888-4888-8888-888888888888"],
            "retrieval": {"top_k": 5, "min_score": 0.3},
            "fallback": {"mode": "message", "message": "Sorry, I don't know that yet."},
            "widget": {"title": "Refunds", "color": "#0a7cff", "allowed_origins": ["https://shop.example.com"]},
            "status": "active",
        }
    ),
    "ListChatbots": Sample(query="q=refund&use_case=support&status=active&limit=20"),
    "UpdateChatbot": Sample(body={"name": "Refunds and returns helper", "retrieval": {"top_k": 8}}),
    "DeleteChatbot": Sample(query="keep_conversations=true&keep_documents=true"),
    "GetChatbotStats": Sample(query="from=2025-01-01&to=2025-01-31"),
    "ListChatbotTemplates": Sample(query="use_case=support"),
    "RetrieveChatbotChunks": Sample(body={"query": "How long do refunds take?"}),
    # issue 28: the inbox (the sample conversation id names a visitor conversation of the sample chatbot)
    "ListChatbotConversations": Sample(query="status=open&q=refund&limit=20"),
    "GetChatbotConversationStats": Sample(query="from=2025-01-01&to=2025-01-31"),
    "BulkDeleteChatbotConversations": Sample(body={"ids": [SAMPLE_CONVERSATION_ID]}),
    "ExportChatbotConversations": Sample(query="format=json"),
    "UpdateChatbotConversation": Sample(body={"tags": ["billing"], "status": "resolved", "notes": "Refund sent"}),
    "GetChatbotsOpenApi": Sample(public=True),
    "GetAdminOpenApi": Sample(public=True),
    # The dev user's quota-warning unsubscribe link (signed with DEV_UNSUBSCRIBE_SECRET, below).
    "ShowUnsubscribe": Sample(query=f"token={SAMPLE_UNSUBSCRIBE_TOKEN}", public=True),
    "Unsubscribe": Sample(query=f"token={SAMPLE_UNSUBSCRIBE_TOKEN}", public=True),
    "SearchGuide": Sample(query="q=reset%20my%20quota", public=True),
    "GetGuidePage": Sample(public=True),
    "LeaveGuideFeedback": Sample(body={"slug": "quotas-and-resets", "helpful": True, "comment": "Clear, thanks."}),
    "GetDocsOpenApi": Sample(public=True),
    # The widget (issue 27): public; the conversation routes take a visitor session token, not a user's.
    "GetWidgetScript": Sample(public=True),
    "GetWidgetOpenApi": Sample(public=True),
    "GetWidgetSettings": Sample(public=True),
    "PreflightWidgetSettings": Sample(public=True),
    "OpenWidgetSession": Sample(
        body={"visitor_id": "3f9c2a7e-8b1d-4c5e-9f60-1a2b3c4d5e6f", "page_url": "https://shop.example/help"},
        public=True,
    ),
    "PreflightWidgetSession": Sample(public=True),
    "ListVisitorMessages": Sample(public=True),
    "PreflightVisitorMessages": Sample(public=True),
    "RateVisitorConversation": Sample(body={"score": 5, "comment": "Quick and clear"}, public=True),
    "PreflightVisitorRating": Sample(public=True),
}


# Dev only: `make dev` verifies webhooks with it unless RAZORPAY_WEBHOOK_SECRET is set
# (`local.__main__.apply_dev_environment`). Never a deployed value.
DEV_RAZORPAY_WEBHOOK_SECRET = "oneai-local-dev-razorpay-webhook-secret-0123"  # noqa: S105 - dev only
SAMPLE_SUBSCRIPTION_ID = "sub_OneAIDevSample1"
SAMPLE_CUSTOMER_ID = "cust_OneAIDevSample"
SAMPLE_PLAN_ID = "plan_OneAIDevPro01"
PERIOD_START = 1735689600  # 2025-01-01T00:00:00Z
PERIOD_END = 1738368000  # 2025-02-01T00:00:00Z
WEBHOOK_TIME = REQUEST_TIME_EPOCH_MS // 1000


@dataclass(frozen=True)
class WebhookSample:
    event_id: str
    body: dict[str, object]
    valid_signature: bool = True


def _subscription_entity(status: str, **changes: object) -> dict[str, object]:
    return {
        "id": SAMPLE_SUBSCRIPTION_ID,
        "entity": "subscription",
        "plan_id": SAMPLE_PLAN_ID,
        "customer_id": SAMPLE_CUSTOMER_ID,
        "status": status,
        "current_start": PERIOD_START,
        "current_end": PERIOD_END,
        "ended_at": None,
        "quantity": 1,
        "notes": {"user_id": DEV_USER_ID, "tier": "pro", "source": "OneAI – make dev"},
        "charge_at": PERIOD_END,
        "start_at": PERIOD_START,
        "end_at": None,
        "auth_attempts": 0,
        "total_count": 120,
        "paid_count": 1,
        "customer_notify": True,
        "created_at": PERIOD_START - 600,
        **changes,
    }


def _webhook_body(event: str, created_at: int, **payload: object) -> dict[str, object]:
    return {
        "entity": "event",
        "account_id": "acc_OneAIDevAccount",
        "event": event,
        "contains": list(payload),
        "payload": {name: {"entity": entity} for name, entity in payload.items()},
        "created_at": created_at,
    }


_ACTIVATED = _webhook_body("subscription.activated", WEBHOOK_TIME, subscription=_subscription_entity("active"))
WEBHOOK_SAMPLES: dict[str, WebhookSample] = {
    "subscription-activated": WebhookSample("evt_OneAIDevActivated", _ACTIVATED),
    "subscription-cancelled": WebhookSample(
        "evt_OneAIDevCancelled",
        _webhook_body(
            "subscription.cancelled",
            WEBHOOK_TIME + 3600,
            subscription=_subscription_entity("cancelled", ended_at=WEBHOOK_TIME + 3600, charge_at=None),
        ),
    ),
    "payment-failed": WebhookSample(
        "evt_OneAIDevPaymentFailed",
        _webhook_body(
            "payment.failed",
            WEBHOOK_TIME + 60,
            payment={
                "id": "pay_OneAIDevFailed1",
                "entity": "payment",
                "amount": 99900,
                "currency": "INR",
                "status": "failed",
                "method": "upi",
                "captured": False,
                "customer_id": SAMPLE_CUSTOMER_ID,
                "notes": [],
                "error_code": "BAD_REQUEST_ERROR",
                "error_description": "Payment was unsuccessful as the UPI app declined it",
                "error_reason": "payment_failed",
                "created_at": WEBHOOK_TIME + 55,
            },
        ),
    ),
    "bad-signature": WebhookSample("evt_OneAIDevBadSignature", _ACTIVATED, valid_signature=False),
}
# Function URL routes -> their sample deliveries (a route without an entry gets one bare request).
FUNCTION_URL_SAMPLES: dict[str, dict[str, WebhookSample]] = {"PostWebhooksRazorpay": WEBHOOK_SAMPLES}


def webhook_body_bytes(sample: WebhookSample) -> bytes:
    """The body as sent: UTF-8 JSON, non-ASCII kept (the signature is over these exact bytes)."""
    return json.dumps(sample.body, ensure_ascii=False).encode("utf-8")


def function_url_event(route: Route, name: str, sample: WebhookSample | None) -> dict[str, object]:
    headers = [
        ("Host", f"127.0.0.1:{DEFAULT_PORT}"),
        ("User-Agent", "Razorpay-Webhook/v1"),
        ("Content-Type", "application/json"),
        ("Accept-Encoding", "gzip"),
    ]
    body = b""
    if sample is not None:
        body = webhook_body_bytes(sample)
        secret = DEV_RAZORPAY_WEBHOOK_SECRET if sample.valid_signature else "not-the-webhook-secret"
        headers += [
            ("X-Razorpay-Event-Id", sample.event_id),
            ("X-Razorpay-Signature", hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()),
        ]
    headers += [
        ("X-Forwarded-For", "127.0.0.1"),
        ("X-Forwarded-Port", str(DEFAULT_PORT)),
        ("X-Forwarded-Proto", "http"),
    ]
    request = HttpRequest(method=route.method, path=route.path, headers=headers, body=body)
    return build_function_url_event(
        request,
        request_id=str(uuid.uuid5(uuid.NAMESPACE_URL, f"oneai:{route.function_id}:{route.event_name}:{name}")),
        time_epoch_ms=REQUEST_TIME_EPOCH_MS,
    )


def sample_token(*, admin: bool = False) -> str:
    """The dev user's token, identical on every run (fixed times and session id); with `admin`, it carries
    the admin claim (`app_metadata.role = "admin"`)."""
    from oneai.auth import ADMIN_ROLE, mint_dev_token
    from oneai.config import DEV_JWT_SECRET

    admin_claims = {"app_metadata": {"provider": "email", "providers": ["email"], "role": ADMIN_ROLE}}
    return mint_dev_token(
        DEV_USER_ID,
        secret=DEV_JWT_SECRET,
        issuer=f"{LOCAL_SUPABASE_URL}/auth/v1",
        email=DEV_USER_EMAIL,
        extra_claims={
            "iat": TOKEN_ISSUED_AT,
            "exp": TOKEN_EXPIRES_AT,
            "amr": [{"method": "password", "timestamp": TOKEN_ISSUED_AT}],
            "session_id": SAMPLE_SESSION_ID,
            **(admin_claims if admin else {}),
        },
    )


def event_file_name(event_name: str) -> str:
    """`ListConversations` -> `list-conversations.json`."""
    return re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "-", event_name).lower() + ".json"


def sample_path(route: Route) -> tuple[str, dict[str, str]]:
    """The route's path with sample values for its parameters, and those parameters."""
    params: dict[str, str] = {}
    parts: list[str] = []
    for segment in route.segments:
        param = path_param(segment)
        if param is None:
            parts.append(segment)
            continue
        value = SAMPLE_PATH_PARAMETERS.get(param[0], "sample")
        params[param[0]] = value
        parts.append(value)
    return "/" + "/".join(parts), params


def sample_event(route: Route, *, stage: str, token: str, admin_token: str = "") -> dict[str, object]:
    sample = SAMPLES.get(route.event_name, Sample())
    token = admin_token if sample.admin else token
    path, params = sample_path(route)
    headers = [
        ("Host", f"127.0.0.1:{DEFAULT_PORT}"),
        ("User-Agent", "curl/8.5.0"),
        ("Accept", "application/json"),
    ]
    body = b""
    if sample.body is not None:
        body = json.dumps(sample.body).encode()
        headers.append(("Content-Type", "application/json"))
    if not sample.public:
        headers.append(("Authorization", f"Bearer {token}"))
    headers += [
        ("X-Forwarded-For", "127.0.0.1"),
        ("X-Forwarded-Port", str(DEFAULT_PORT)),
        ("X-Forwarded-Proto", "http"),
    ]
    request = HttpRequest(method=route.method, path=path, query_string=sample.query, headers=headers, body=body)
    return build_rest_event(
        request,
        resource=route.path,
        path_parameters=params,
        stage=stage,
        request_id=str(uuid.uuid5(uuid.NAMESPACE_URL, f"oneai:{route.function_id}:{route.event_name}")),
        time_epoch_ms=REQUEST_TIME_EPOCH_MS,
    )


# The notifications function's inputs: SQS batches whose bodies are the EventBridge events of the
# notification rule, and the monthly schedule's event (UsageSummaryFunction, the same package).
NOTIFICATION_SAMPLES: dict[str, DomainEvent] = {
    "quota-warning": DomainEvent(
        "oneai.quota",
        "QuotaWarning",
        {
            "user_id": DEV_USER_ID,
            "quota_key": "small_messages",
            "threshold": 80,
            "used": 16,
            "limit": 20,
            "resets_at": "2025-01-02T00:00:00Z",
            "tier": "free",
        },
    ),
    "payment-failed": DomainEvent(
        "oneai.billing",
        "PaymentFailed",
        {
            "user_id": DEV_USER_ID,
            "payment_id": "pay_OneAIDevFailed1",
            "amount": 49900,
            "currency": "INR",
            "failed_at": "2025-01-01T12:00:00+00:00",
            "grace_until": "2025-01-04T12:00:00+00:00",
        },
    ),
    "payment-received": DomainEvent(
        "oneai.billing",
        "PaymentReceived",
        {
            "user_id": DEV_USER_ID,
            "payment_id": "pay_OneAIDevCharged1",
            "amount": 49900,
            "currency": "INR",
            "tier": "pro",
            "period_start": "2025-01-01T00:00:00+00:00",
            "period_end": "2025-02-01T00:00:00+00:00",
        },
    ),
    # An invitation's email: the invitation is read (and its link derived) when the email is sent.
    # A workspace's balance fell under its threshold (issue 26): the owner's email, once per crossing.
    "credits-low": DomainEvent(
        "oneai.credits",
        "CreditsLow",
        {
            "user_id": DEV_USER_ID,
            "workspace_id": SAMPLE_PATH_PARAMETERS["workspace_id"],
            "balance": "84.50",
            "threshold": "100.00",
            "crossing": 1,
        },
    ),
    "workspace-invitation": DomainEvent(
        "oneai.workspaces",
        "WorkspaceInvitationCreated",
        {"user_id": DEV_USER_ID, "invitation_id": SAMPLE_PATH_PARAMETERS["invitation_id"]},
    ),
}
USAGE_SUMMARY_SCHEDULE_EVENT: dict[str, object] = {
    "version": "0",
    "id": "44444444-4444-4444-8444-444444444444",
    "detail-type": "UsageSummarySweep",
    "source": "oneai.scheduler",
    "account": "123456789012",
    "time": "2025-02-01T00:00:00Z",
    "region": "ap-south-1",
    "resources": [
        "arn:aws:scheduler:ap-south-1:123456789012:schedule/default/oneai-default-usage-summary-monthly"
    ],
    "detail": {"month": "2025-01"},
}


def notification_files(template: dict[str, object]) -> dict[Path, str]:
    function = next((fn for fn in list_functions(template) if fn.handler == NOTIFICATIONS_HANDLER), None)
    if function is None:
        return {}
    folder = EVENTS_DIR / function.events_dir_name
    files: dict[Path, str] = {}
    for name, event in NOTIFICATION_SAMPLES.items():
        envelope = eventbridge_event(event)
        envelope.update(id=str(uuid.uuid5(uuid.NAMESPACE_URL, f"oneai:event:{name}")), time="2025-01-01T12:00:00Z")
        record = sqs_record(
            json.dumps(envelope),
            receive_count=1,
            message_id=str(uuid.uuid5(uuid.NAMESPACE_URL, f"oneai:sqs:{name}")),
        )
        record["attributes"] = {**record["attributes"], "SentTimestamp": "1735732800000"}
        record["attributes"]["ApproximateFirstReceiveTimestamp"] = "1735732800000"
        files[folder / f"{name}.json"] = json.dumps({"Records": [record]}, indent=2) + "\n"
    files[folder / "usage-summary-sweep.json"] = json.dumps(USAGE_SUMMARY_SCHEDULE_EVENT, indent=2) + "\n"
    return files


# The ingest function's inputs: the S3 notification of a document's upload (from the document uploads
# queue: its document is marked `queued` and the file passed on), the landed file's message and a
# reprocess message (from the ingest queue), SQS batches of one, and the sweep's schedule input.
INGEST_SAMPLE_DOCUMENT = "55555555-5555-4555-8555-555555555555"
INGEST_SAMPLE_WORKSPACE = "66666666-6666-4666-8666-666666666666"


def ingest_files(template: dict[str, object]) -> dict[Path, str]:
    from local.ingest_queue import INGEST_HANDLER, s3_object_created

    function = next((fn for fn in list_functions(template) if fn.handler == INGEST_HANDLER), None)
    if function is None:
        return {}
    folder = EVENTS_DIR / function.events_dir_name
    key = f"knowledge/{INGEST_SAMPLE_WORKSPACE}/{INGEST_SAMPLE_DOCUMENT}/Refund policy.pdf"
    bodies = {
        "s3-object-created": s3_object_created(
            "oneai-attachments-local", key, size=2048, event_time="2025-01-01T12:00:00.000Z"
        ),
        "landed": {"storage_key": key},
        "reprocess": {"document_id": INGEST_SAMPLE_DOCUMENT},
    }
    queues = {"s3-object-created": "oneai-document-uploads"}
    files: dict[Path, str] = {}
    for name, body in bodies.items():
        record = sqs_record(
            json.dumps(body), receive_count=1, message_id=str(uuid.uuid5(uuid.NAMESPACE_URL, f"oneai:sqs:{name}"))
        )
        record["attributes"] = {
            **record["attributes"],
            "SentTimestamp": "1735732800000",
            "ApproximateFirstReceiveTimestamp": "1735732800000",
        }
        record["eventSourceARN"] = f"arn:aws:sqs:ap-south-1:123456789012:{queues.get(name, 'oneai-ingest')}"
        files[folder / f"{name}.json"] = json.dumps({"Records": [record]}, indent=2) + "\n"
    files[folder / "sweep.json"] = json.dumps({"sweep": "stuck-documents"}, indent=2) + "\n"
    return files


def webhook_delivery_files(template: dict[str, object]) -> dict[Path, str]:
    """The webhook delivery function's inputs: a DocumentProcessed event of the webhook rule and a retry
    message (SQS batches of one), and the sweep's schedule input."""
    from local.webhook_queue import WEBHOOK_HANDLER

    function = next((fn for fn in list_functions(template) if fn.handler == WEBHOOK_HANDLER), None)
    if function is None:
        return {}
    folder = EVENTS_DIR / function.events_dir_name
    processed = DomainEvent(
        "oneai.knowledge",
        "DocumentProcessed",
        {
            "workspace_id": INGEST_SAMPLE_WORKSPACE,
            "document_id": INGEST_SAMPLE_DOCUMENT,
            "filename": "Refund policy.pdf",
            "status": "ready",
            "chunks": 12,
            "pages": 3,
        },
    )
    envelope = eventbridge_event(processed)
    envelope.update(
        id=str(uuid.uuid5(uuid.NAMESPACE_URL, "oneai:event:document-processed")), time="2025-01-01T12:00:00Z"
    )
    bodies: dict[str, object] = {
        "document-processed": envelope,
        "retry": {"delivery_id": "77777777-7777-4777-8777-777777777777", "attempt": 2},
    }
    files: dict[Path, str] = {}
    for name, body in bodies.items():
        record = sqs_record(
            json.dumps(body),
            receive_count=1,
            message_id=str(uuid.uuid5(uuid.NAMESPACE_URL, f"oneai:sqs:webhook-{name}")),
        )
        record["attributes"] = {
            **record["attributes"],
            "SentTimestamp": "1735732800000",
            "ApproximateFirstReceiveTimestamp": "1735732800000",
        }
        record["eventSourceARN"] = "arn:aws:sqs:ap-south-1:123456789012:oneai-webhooks"
        files[folder / f"{name}.json"] = json.dumps({"Records": [record]}, indent=2) + "\n"
    files[folder / "sweep.json"] = json.dumps({"sweep": "overdue-webhooks"}, indent=2) + "\n"
    return files


def analytics_files(template: dict[str, object]) -> dict[Path, str]:
    """The analytics function's input: what its schedule sends (the template's ScheduleV2 `Input`)."""
    from local.analytics_schedule import analytics_function, schedule_input

    function = analytics_function(list_functions(template))
    if function is None:
        return {}
    event = schedule_input(template, function)
    return {EVENTS_DIR / function.events_dir_name / "rollup.json": json.dumps(event, indent=2) + "\n"}


def render_all() -> dict[Path, str]:
    """Every events file as it should be on disk, keyed by path."""
    template = load_template()
    stage = rest_api_settings(template).stage
    token = sample_token()
    admin_token = sample_token(admin=True)
    files: dict[Path, str] = {}
    for route in list_routes(template):
        if route.method == "ANY":
            continue  # nothing to sample without a concrete method
        if route.function_url:
            folder = EVENTS_DIR / route.function.events_dir_name
            samples: dict[str, WebhookSample | None] = {event_file_name(route.event_name)[:-5]: None}
            samples = dict(FUNCTION_URL_SAMPLES.get(route.event_name) or samples)
            for name, sample in samples.items():
                files[folder / f"{name}.json"] = (
                    json.dumps(function_url_event(route, name, sample), indent=2) + "\n"
                )
            continue
        path = EVENTS_DIR / route.function.events_dir_name / event_file_name(route.event_name)
        files[path] = (
            json.dumps(sample_event(route, stage=stage, token=token, admin_token=admin_token), indent=2) + "\n"
        )
    files.update(notification_files(template))
    files.update(ingest_files(template))
    files.update(webhook_delivery_files(template))
    files.update(analytics_files(template))
    return files


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m local.events", description=__doc__.split("\n\n")[0])
    mode = parser.add_mutually_exclusive_group(required=True)
    mode.add_argument("--write", action="store_true", help="write the events files")
    mode.add_argument("--check", action="store_true", help="exit 1 if any events file is missing or differs")
    args = parser.parse_args(argv)

    files = render_all()
    if args.write:
        for path, text in files.items():
            path.parent.mkdir(parents=True, exist_ok=True)
            if not path.exists() or path.read_text(encoding="utf-8") != text:
                path.write_text(text, encoding="utf-8")
                print(f"wrote {path.relative_to(REPO_ROOT)}")
        return 0
    stale = [p for p, text in files.items() if not p.exists() or p.read_text(encoding="utf-8") != text]
    for path in stale:
        print(f"out of date: {path.relative_to(REPO_ROOT)} (run `python -m local.events --write`)")
    return 1 if stale else 0


if __name__ == "__main__":
    sys.exit(main())
