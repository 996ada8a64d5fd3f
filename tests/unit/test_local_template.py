"""The local server's view of template.yaml: routes, matching, API Gateway events and responses."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
from fastapi import FastAPI, Request, Response
from mangum import Mangum
from pydantic import SecretStr

from local import DEV_USER_ID
from local.apigw import (
    HttpRequest,
    InvalidLambdaResponseError,
    build_function_url_event,
    build_rest_event,
    http_response_from_function_url,
    http_response_from_lambda,
    media_type_matches,
)
from local.events import (
    DEV_RAZORPAY_WEBHOOK_SECRET,
    EVENTS_DIR,
    SAMPLE_CONVERSATION_ID,
    SAMPLE_MESSAGE_ID,
    WEBHOOK_SAMPLES,
    event_file_name,
)
from local.server import CorsPreflight, LambdaContext, LocalApiGateway, RouteTable, load_asgi_app, load_handler
from local.template_routes import (
    FUNCTION_URL_EVENT_TYPE,
    REPO_ROOT,
    Function,
    Route,
    TemplateError,
    list_functions,
    list_routes,
    load_template,
    rest_api_settings,
)
from oneai.auth import authenticate
from oneai.config import DEV_JWT_SECRET, override_settings

CONVERSATIONS_ROUTES = {
    ("GET", "/conversations", "ListConversations"),
    ("POST", "/conversations", "CreateConversation"),
    ("GET", "/conversations/openapi.json", "GetConversationsOpenApi"),
    ("GET", "/conversations/{id}", "GetConversation"),
    ("PATCH", "/conversations/{id}", "UpdateConversation"),
    ("DELETE", "/conversations/{id}", "DeleteConversation"),
    ("GET", "/conversations/{id}/messages", "ListMessages"),
    ("GET", "/conversations/{id}/messages/{message_id}/revisions", "ListMessageRevisions"),
    ("POST", "/conversations/{id}/messages/{message_id}/activate", "ActivateMessageRevision"),
    ("POST", "/conversations/{id}/share", "CreateShareLink"),
    ("DELETE", "/conversations/{id}/share", "RevokeShareLink"),
    ("GET", "/conversations/{id}/export", "ExportConversation"),
    ("GET", "/shared/{token}", "GetSharedConversation"),
    ("GET", "/chat/history", "SearchChatHistory"),
    ("POST", "/attachments", "CreateAttachment"),
    ("GET", "/attachments/{id}", "GetAttachment"),
    ("GET", "/attachments/{id}/content", "GetAttachmentContent"),
    ("GET", "/shared/{token}/attachments/{id}", "GetSharedAttachment"),
}
CHAT_STREAM_ROUTES = {
    ("POST", "/chat/stream", "StreamChat"),
    ("GET", "/chat/models", "ListChatModels"),
    ("GET", "/chat/openapi.json", "GetChatOpenApi"),
    ("POST", "/v1/chat/completions", "V1ChatCompletions"),
    ("GET", "/v1/models", "V1ListModels"),
    ("GET", "/chat/stream/{conversation_id}/stream", "ResumeChatStream"),
    ("POST", "/chat/stream/{conversation_id}/stop", "StopChatStream"),
}
ACCOUNT_ROUTES = {
    ("GET", "/user/quota", "GetQuota"),
    ("POST", "/user/quota/check", "CheckQuota"),
    ("GET", "/user/usage", "GetUsage"),
    ("GET", "/user/profile", "GetProfile"),
    ("PATCH", "/user/profile", "UpdateProfile"),
    ("POST", "/user/api-keys", "CreateApiKey"),
    ("GET", "/user/api-keys", "ListApiKeys"),
    ("DELETE", "/user/api-keys/{id}", "RevokeApiKey"),
    ("GET", "/user/openapi.json", "GetAccountOpenApi"),
    ("DELETE", "/user", "DeleteAccount"),
    ("GET", "/user/export", "ExportAccount"),
    ("GET", "/notifications/unsubscribe", "ShowUnsubscribe"),
    ("POST", "/notifications/unsubscribe", "Unsubscribe"),
}
BILLING_ROUTES = {
    ("GET", "/subscription/plans", "ListPlans"),
    ("POST", "/subscription/create", "CreateSubscription"),
    ("POST", "/subscription/verify", "VerifySubscription"),
    ("POST", "/subscription/cancel", "CancelSubscription"),
    ("POST", "/subscription/update", "UpdateSubscription"),
    ("GET", "/subscription/invoices", "ListInvoices"),
    ("GET", "/subscription", "GetSubscription"),
    ("GET", "/subscription/openapi.json", "GetBillingOpenApi"),
    ("GET", "/subscription/portal", "GetPaymentMethodPortal"),
}
# Served behind the function's URL in AWS (`OneAILocalRoutes`), with Function URL (v2) events.
WEBHOOK_ROUTES = {("POST", "/webhooks/razorpay", "PostWebhooksRazorpay")}
ADMIN_ROUTES = {
    ("GET", "/admin/users", "ListUsers"),
    ("GET", "/admin/users/{id}", "GetUser"),
    ("DELETE", "/admin/users/{id}", "EraseUser"),
    ("POST", "/admin/users/{id}/suspend", "SuspendUser"),
    ("POST", "/admin/users/{id}/unsuspend", "UnsuspendUser"),
    ("PUT", "/admin/users/{id}/quotas/{quota_key}", "SetQuotaOverride"),
    ("DELETE", "/admin/users/{id}/quotas/{quota_key}", "RemoveQuotaOverride"),
    ("GET", "/admin/subscriptions", "ListSubscriptions"),
    ("POST", "/admin/subscriptions/{id}/sync", "SyncSubscription"),
    ("GET", "/admin/workspaces", "ListAllWorkspaces"),
    ("POST", "/admin/workspaces/{id}/suspend", "SuspendWorkspace"),
    ("POST", "/admin/workspaces/{id}/unsuspend", "UnsuspendWorkspace"),
    ("POST", "/admin/workspaces/{id}/credits/grant", "GrantWorkspaceCredits"),
    ("POST", "/admin/workspaces/{id}/credits/adjust", "AdjustWorkspaceCredits"),
    ("GET", "/admin/analytics", "GetAnalytics"),
    ("GET", "/admin/audit-log", "ListAuditLog"),
    ("GET", "/admin/docs/feedback", "GetGuideFeedbackSummary"),
    ("GET", "/admin/openapi.json", "GetAdminOpenApi"),
}
DOCS_ROUTES = {
    ("GET", "/docs/search", "SearchGuide"),
    ("GET", "/docs/{slug}", "GetGuidePage"),
    ("POST", "/docs/feedback", "LeaveGuideFeedback"),
    ("GET", "/docs/openapi.json", "GetDocsOpenApi"),
}
WORKSPACES_ROUTES = {
    ("POST", "/workspaces", "CreateWorkspace"),
    ("GET", "/workspaces", "ListWorkspaces"),
    ("GET", "/workspaces/{workspace_id}", "GetWorkspace"),
    ("PATCH", "/workspaces/{workspace_id}", "UpdateWorkspace"),
    ("DELETE", "/workspaces/{workspace_id}", "DeleteWorkspace"),
    ("POST", "/workspaces/{workspace_id}/restore", "RestoreWorkspace"),
    ("GET", "/workspaces/{workspace_id}/members", "ListWorkspaceMembers"),
    ("PATCH", "/workspaces/{workspace_id}/members/{user_id}", "ChangeWorkspaceMemberRole"),
    ("DELETE", "/workspaces/{workspace_id}/members/{user_id}", "RemoveWorkspaceMember"),
    ("POST", "/workspaces/{workspace_id}/invitations", "InviteToWorkspace"),
    ("GET", "/workspaces/{workspace_id}/invitations", "ListWorkspaceInvitations"),
    ("DELETE", "/workspaces/{workspace_id}/invitations/{invitation_id}", "WithdrawWorkspaceInvitation"),
    ("POST", "/invitations/{token}/accept", "AcceptWorkspaceInvitation"),
    ("GET", "/workspaces/openapi.json", "GetWorkspacesOpenApi"),
    ("PUT", "/workspaces/{workspace_id}/webhook", "SaveWorkspaceWebhook"),
    ("GET", "/workspaces/{workspace_id}/webhook", "GetWorkspaceWebhook"),
    ("DELETE", "/workspaces/{workspace_id}/webhook", "DeleteWorkspaceWebhook"),
    ("POST", "/workspaces/{workspace_id}/webhook/rotate-secret", "RotateWorkspaceWebhookSecret"),
    ("POST", "/workspaces/{workspace_id}/webhook/test", "TestWorkspaceWebhook"),
    ("GET", "/workspaces/{workspace_id}/webhook/deliveries", "ListWorkspaceWebhookDeliveries"),
    ("GET", "/workspaces/{workspace_id}/analytics", "GetWorkspaceAnalytics"),  # issue 28: the chatbots' analytics
    # issue 24: the knowledge base
    ("POST", "/workspaces/{workspace_id}/documents", "CreateDocument"),
    ("POST", "/workspaces/{workspace_id}/documents/bulk", "CreateDocumentsBulk"),
    ("GET", "/workspaces/{workspace_id}/documents", "ListDocuments"),
    ("POST", "/workspaces/{workspace_id}/documents/bulk-delete", "BulkDeleteDocuments"),
    ("POST", "/workspaces/{workspace_id}/documents/bulk-reprocess", "BulkReprocessDocuments"),
    ("POST", "/workspaces/{workspace_id}/knowledge/search", "SearchKnowledge"),
    ("GET", "/documents/{document_id}", "GetDocument"),
    ("PATCH", "/documents/{document_id}", "UpdateDocument"),
    ("DELETE", "/documents/{document_id}", "DeleteDocument"),
    ("POST", "/documents/{document_id}/reprocess", "ReprocessDocument"),
    ("GET", "/documents/{document_id}/download", "DownloadDocument"),
    ("GET", "/documents/{document_id}/chunks", "ListDocumentChunks"),
}
CHATBOTS_ROUTES = {
    ("POST", "/workspaces/{workspace_id}/chatbots", "CreateChatbot"),
    ("GET", "/workspaces/{workspace_id}/chatbots", "ListChatbots"),
    ("GET", "/chatbots/{chatbot_id}", "GetChatbot"),
    ("PATCH", "/chatbots/{chatbot_id}", "UpdateChatbot"),
    ("DELETE", "/chatbots/{chatbot_id}", "DeleteChatbot"),
    ("POST", "/chatbots/{chatbot_id}/duplicate", "DuplicateChatbot"),
    ("POST", "/chatbots/{chatbot_id}/toggle", "ToggleChatbot"),
    ("POST", "/chatbots/{chatbot_id}/reset-stats", "ResetChatbotStats"),
    ("GET", "/chatbots/{chatbot_id}/embed-code", "GetChatbotEmbedCode"),
    ("GET", "/chatbots/{chatbot_id}/stats", "GetChatbotStats"),
    ("POST", "/chatbots/{chatbot_id}/retrieve", "RetrieveChatbotChunks"),
    ("GET", "/chatbot-templates", "ListChatbotTemplates"),
    ("GET", "/chatbots/{chatbot_id}/conversations", "ListChatbotConversations"),
    ("GET", "/chatbots/{chatbot_id}/conversations/stats", "GetChatbotConversationStats"),
    ("POST", "/chatbots/{chatbot_id}/conversations/bulk-delete", "BulkDeleteChatbotConversations"),
    ("GET", "/chatbots/{chatbot_id}/conversations/export", "ExportChatbotConversations"),
    ("GET", "/chatbot-conversations/{conversation_id}", "GetChatbotConversation"),
    ("PATCH", "/chatbot-conversations/{conversation_id}", "UpdateChatbotConversation"),
    ("DELETE", "/chatbot-conversations/{conversation_id}", "DeleteChatbotConversation"),
    ("GET", "/chatbots/openapi.json", "GetChatbotsOpenApi"),
}

CREDITS_ROUTES = {
    ("GET", "/workspaces/{workspace_id}/credits", "GetWorkspaceCredits"),
    ("POST", "/workspaces/{workspace_id}/credits/purchase", "PurchaseWorkspaceCredits"),
    ("GET", "/workspaces/{workspace_id}/credits/transactions", "ListCreditTransactions"),
    ("GET", "/workspaces/{workspace_id}/credits/usage", "GetCreditUsage"),
    ("GET", "/credits/openapi.json", "GetCreditsOpenApi"),
    ("POST", "/workspaces/{workspace_id}/provider-keys", "CreateProviderKey"),
    ("GET", "/workspaces/{workspace_id}/provider-keys", "ListProviderKeys"),
    ("GET", "/provider-keys/{provider_key_id}", "GetProviderKey"),
    ("PATCH", "/provider-keys/{provider_key_id}", "UpdateProviderKey"),
    ("DELETE", "/provider-keys/{provider_key_id}", "DeleteProviderKey"),
    ("POST", "/provider-keys/{provider_key_id}/test", "TestProviderKey"),
}

_PUBLIC = "/public/chatbots/{public_id}"
# issue 27: the embeddable widget (the script, the public routes and their CORS preflights)
WIDGET_ROUTES = {
    ("GET", "/widget.js", "GetWidgetScript"),
    ("GET", "/public/openapi.json", "GetWidgetOpenApi"),
    ("GET", _PUBLIC, "GetWidgetSettings"),
    ("OPTIONS", _PUBLIC, "PreflightWidgetSettings"),
    ("POST", f"{_PUBLIC}/sessions", "OpenWidgetSession"),
    ("OPTIONS", f"{_PUBLIC}/sessions", "PreflightWidgetSession"),
    ("POST", f"{_PUBLIC}/chat", "VisitorChat"),
    ("OPTIONS", f"{_PUBLIC}/chat", "PreflightVisitorChat"),
    ("GET", f"{_PUBLIC}/conversations/{{conversation_id}}/messages", "ListVisitorMessages"),
    ("OPTIONS", f"{_PUBLIC}/conversations/{{conversation_id}}/messages", "PreflightVisitorMessages"),
    ("POST", f"{_PUBLIC}/conversations/{{conversation_id}}/rating", "RateVisitorConversation"),
    ("OPTIONS", f"{_PUBLIC}/conversations/{{conversation_id}}/rating", "PreflightVisitorRating"),
}


@pytest.fixture(scope="module")
def template() -> dict[str, Any]:
    return load_template()


@pytest.fixture(scope="module")
def table(template: dict[str, Any]) -> RouteTable:
    return RouteTable(list_routes(template))


# The Supabase pooler admits 200 clients on the smallest compute sizes; each container holds one connection.
POOLER_CLIENTS = 200
HEADROOM_FOR_MIGRATIONS_AND_DASHBOARD = 10


def test_the_reserved_concurrency_of_every_function_fits_the_pooler_and_the_readme_says_the_sum(
    template: dict[str, Any],
) -> None:
    def reserved(value: Any) -> int:
        if isinstance(value, dict) and "Ref" in value:  # a parameter: its default is what deploys
            return int(template["Parameters"][value["Ref"]]["Default"])
        return int(value)

    total = sum(
        reserved(resource["Properties"]["ReservedConcurrentExecutions"])
        for resource in template["Resources"].values()
        if resource.get("Type") == "AWS::Serverless::Function"
        and "ReservedConcurrentExecutions" in resource.get("Properties", {})
    )
    assert total <= POOLER_CLIENTS - HEADROOM_FOR_MIGRATIONS_AND_DASHBOARD
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    assert f"= **{total}**" in readme


def fake_function(code_uri: str = "functions/fake/", handler: str = "fake.handler.lambda_handler") -> Function:
    return Function("FakeFunction", code_uri, handler, memory_mb=256, timeout_seconds=5, environment={})


def routes_for(*specs: tuple[str, str]) -> list[Route]:
    fn = fake_function()
    return [Route(method, path, f"E{i}", "Api", fn) for i, (method, path) in enumerate(specs)]


# ---------------------------------------------------------------- template.yaml


def test_given_the_template_then_every_conversations_route_is_parsed_with_its_function(
    template: dict[str, Any],
) -> None:
    routes = [r for r in list_routes(template) if r.function_id == "ConversationsFunction"]
    assert {(r.method, r.path, r.event_name) for r in routes} == CONVERSATIONS_ROUTES
    assert len(routes) == len(CONVERSATIONS_ROUTES)
    for route in routes:
        assert route.code_uri == "functions/conversations/"
        assert route.handler == "conversations.handler.lambda_handler"
        assert route.event_type == "Api" and not route.streaming


def test_given_the_template_then_the_chat_stream_routes_stream_from_the_asgi_app(template: dict[str, Any]) -> None:
    routes = [r for r in list_routes(template) if r.function_id == "ChatStreamFunction"]
    assert {(r.method, r.path, r.event_name) for r in routes} == CHAT_STREAM_ROUTES
    for route in routes:
        assert route.streaming, route.event_name  # ResponseTransferMode: RESPONSE_STREAM
        assert route.function.asgi_app == "chat_stream.app:app" and route.handler == "run.sh"
    assert len(list_routes(template)) == (
        len(CONVERSATIONS_ROUTES)
        + len(CHAT_STREAM_ROUTES)
        + len(ACCOUNT_ROUTES)
        + len(BILLING_ROUTES)
        + len(WEBHOOK_ROUTES)
        + len(ADMIN_ROUTES)
        + len(DOCS_ROUTES)
        + len(WORKSPACES_ROUTES)
        + len(CHATBOTS_ROUTES)
        + len(CREDITS_ROUTES)
        + len(WIDGET_ROUTES)
    )


def test_given_the_template_then_the_widget_routes_stream_from_their_own_asgi_app(
    template: dict[str, Any],
) -> None:
    routes = [r for r in list_routes(template) if r.function_id == "WidgetFunction"]
    assert {(r.method, r.path, r.event_name) for r in routes} == WIDGET_ROUTES
    for route in routes:
        assert route.streaming, route.event_name
        assert route.function.asgi_app == "widget.app:app" and route.handler == "run.sh"


def test_given_the_template_then_every_credits_route_is_parsed_with_its_function_and_sample_event(
    template: dict[str, Any],
) -> None:
    routes = [r for r in list_routes(template) if r.function_id == "CreditsFunction"]
    assert {(r.method, r.path, r.event_name) for r in routes} == CREDITS_ROUTES
    for route in routes:
        assert route.code_uri == "functions/credits/"
        assert route.handler == "credits.handler.lambda_handler"
        assert route.event_type == "Api" and not route.streaming
    for method, path, event_name in CREDITS_ROUTES:
        event = json.loads((EVENTS_DIR / "credits" / event_file_name(event_name)).read_text())
        assert (event["httpMethod"], event["resource"]) == (method, path)
        assert ("Authorization" not in (event["headers"] or {})) is (event_name == "GetCreditsOpenApi")


def test_given_the_template_then_every_workspaces_route_is_parsed_with_its_function_and_sample_event(
    template: dict[str, Any],
) -> None:
    routes = [r for r in list_routes(template) if r.function_id == "WorkspacesFunction"]
    assert {(r.method, r.path, r.event_name) for r in routes} == WORKSPACES_ROUTES
    assert len(routes) == len(WORKSPACES_ROUTES)
    for route in routes:
        assert route.code_uri == "functions/workspaces/"
        assert route.handler == "workspaces.handler.lambda_handler"
        assert route.event_type == "Api" and not route.streaming
    for method, path, event_name in WORKSPACES_ROUTES:
        event = json.loads((EVENTS_DIR / "workspaces" / event_file_name(event_name)).read_text())
        assert (event["httpMethod"], event["resource"]) == (method, path)
        assert ("Authorization" not in (event["headers"] or {})) is (event_name == "GetWorkspacesOpenApi")


def test_given_the_template_then_every_chatbots_route_is_parsed_with_its_function_and_sample_event(
    template: dict[str, Any],
) -> None:
    routes = [r for r in list_routes(template) if r.function_id == "ChatbotsFunction"]
    assert {(r.method, r.path, r.event_name) for r in routes} == CHATBOTS_ROUTES
    assert len(routes) == len(CHATBOTS_ROUTES)
    for route in routes:
        assert route.code_uri == "functions/chatbots/"
        assert route.handler == "chatbots.handler.lambda_handler"
        assert route.event_type == "Api" and not route.streaming
    for method, path, event_name in CHATBOTS_ROUTES:
        event = json.loads((EVENTS_DIR / "chatbots" / event_file_name(event_name)).read_text())
        assert (event["httpMethod"], event["resource"]) == (method, path)
        assert ("Authorization" not in (event["headers"] or {})) is (event_name == "GetChatbotsOpenApi")


def test_given_the_template_then_every_admin_route_is_parsed_with_its_function(template: dict[str, Any]) -> None:
    routes = [r for r in list_routes(template) if r.function_id == "AdminFunction"]
    assert {(r.method, r.path, r.event_name) for r in routes} == ADMIN_ROUTES
    assert len(routes) == len(ADMIN_ROUTES)
    for route in routes:
        assert route.code_uri == "functions/admin/"
        assert route.handler == "admin.handler.lambda_handler"
        assert route.event_type == "Api" and not route.streaming
    # every sample event is on disk with its method; all but the document carry a token
    for method, path, event_name in ADMIN_ROUTES:
        event = json.loads((EVENTS_DIR / "admin" / event_file_name(event_name)).read_text())
        assert (event["httpMethod"], event["resource"]) == (method, path)
        assert ("Authorization" not in (event["headers"] or {})) is (event_name == "GetAdminOpenApi")


def test_given_the_template_then_every_account_route_is_parsed_with_its_function(
    template: dict[str, Any],
) -> None:
    routes = [r for r in list_routes(template) if r.function_id == "AccountFunction"]
    assert {(r.method, r.path, r.event_name) for r in routes} == ACCOUNT_ROUTES
    assert len(routes) == len(ACCOUNT_ROUTES)
    for route in routes:
        assert route.code_uri == "functions/account/"
        assert route.handler == "account.handler.lambda_handler"
        assert route.event_type == "Api" and not route.streaming
        assert route.function.events_dir_name == "account"
    # every sample event is on disk, with the route's method
    for method, path, event_name in ACCOUNT_ROUTES:
        event = json.loads((EVENTS_DIR / "account" / event_file_name(event_name)).read_text())
        assert (event["httpMethod"], event["resource"]) == (method, path)


def test_given_the_template_then_every_billing_route_is_parsed_with_its_function(
    template: dict[str, Any],
) -> None:
    routes = [r for r in list_routes(template) if r.function_id == "BillingFunction"]
    assert {(r.method, r.path, r.event_name) for r in routes} == BILLING_ROUTES
    assert len(routes) == len(BILLING_ROUTES)
    for route in routes:
        assert route.code_uri == "functions/billing/"
        assert route.handler == "billing.handler.lambda_handler"
        assert route.event_type == "Api" and not route.streaming
        assert route.function.events_dir_name == "billing"
    # every sample event is on disk, with the route's method; only the plans and the document are public
    for method, path, event_name in BILLING_ROUTES:
        event = json.loads((EVENTS_DIR / "billing" / event_file_name(event_name)).read_text())
        assert (event["httpMethod"], event["resource"]) == (method, path)
        public = event_name in {"ListPlans", "GetBillingOpenApi"}
        assert ("Authorization" not in (event["headers"] or {})) is public, event_name


def test_given_the_template_then_every_docs_route_is_parsed_with_its_function(template: dict[str, Any]) -> None:
    routes = [r for r in list_routes(template) if r.function_id == "DocsFunction"]
    assert {(r.method, r.path, r.event_name) for r in routes} == DOCS_ROUTES
    for route in routes:
        assert (route.code_uri, route.handler) == ("functions/docs/", "docs.handler.lambda_handler")
        assert route.event_type == "Api" and not route.streaming
    # every sample event is on disk; only feedback carries a token (it attributes the feedback)
    for method, path, event_name in DOCS_ROUTES:
        event = json.loads((EVENTS_DIR / "docs" / event_file_name(event_name)).read_text())
        assert (event["httpMethod"], event["resource"]) == (method, path)
        assert ("Authorization" in (event["headers"] or {})) is (event_name == "LeaveGuideFeedback"), event_name


def test_given_the_template_then_globals_merge_into_each_function(template: dict[str, Any]) -> None:
    functions = {f.logical_id: f for f in list_functions(template)}
    fn = functions["ConversationsFunction"]
    assert (fn.memory_mb, fn.timeout_seconds) == (512, 15)
    # a function's own values win over Globals
    assert (functions["ChatStreamFunction"].memory_mb, functions["ChatStreamFunction"].timeout_seconds) == (
        1024,
        300,
    )
    # literal values only: parameter-driven ones (and the SSM path) exist in AWS alone
    assert fn.environment["POWERTOOLS_SERVICE_NAME"] == "oneai"
    assert "ONEAI_SSM_PATH" not in fn.environment and "SUPABASE_URL" not in fn.environment
    assert fn.events_dir_name == "conversations"


def test_given_the_template_then_the_api_settings_resolve_parameter_defaults(template: dict[str, Any]) -> None:
    api = rest_api_settings(template)
    assert api.stage == "default"
    assert api.cors["AllowOrigin"] == "'*'"
    assert api.binary_media_types == ()


def test_given_every_function_then_its_handler_imports_from_its_code_uri(template: dict[str, Any]) -> None:
    for fn in list_functions(template):
        # a Lambda Web Adapter function's handler is run.sh; locally its ASGI app is served instead
        loaded = load_asgi_app(fn) if fn.asgi_app else load_handler(fn)
        assert callable(loaded), fn.logical_id


def test_given_cloudformation_short_tags_then_the_loader_keeps_them_in_long_form(tmp_path: Path) -> None:
    path = tmp_path / "t.yaml"
    path.write_text(
        textwrap.dedent(
            """
            Resources:
              R:
                Properties:
                  A: !Ref Stage
                  B: !Sub "x-${Stage}"
                  C: !GetAtt Fn.Arn
                  D: !If [Cond, 1, 2]
                  E: !Sub
                    - "${P}*"
                    - P: !Ref SecretsPath
                  F: !Select [0, !Split [",", "a,b"]]
            """
        )
    )
    props = load_template(path)["Resources"]["R"]["Properties"]
    assert props["A"] == {"Ref": "Stage"}
    assert props["B"] == {"Fn::Sub": "x-${Stage}"}
    assert props["C"] == {"Fn::GetAtt": ["Fn", "Arn"]}
    assert props["D"] == {"Fn::If": ["Cond", 1, 2]}
    assert props["E"] == {"Fn::Sub": ["${P}*", {"P": {"Ref": "SecretsPath"}}]}
    assert props["F"] == {"Fn::Select": [0, {"Fn::Split": [",", "a,b"]}]}


# ---------------------------------------------------------------- matching


@pytest.mark.parametrize(
    ("path", "resource", "params"),
    [
        ("/conversations", "/conversations", {}),
        ("/conversations/", "/conversations", {}),
        ("/conversations/openapi.json", "/conversations/openapi.json", {}),  # static beats {id}
        ("/conversations/abc", "/conversations/{id}", {"id": "abc"}),
        (
            f"/conversations/{SAMPLE_CONVERSATION_ID}/messages/{SAMPLE_MESSAGE_ID}/revisions",
            "/conversations/{id}/messages/{message_id}/revisions",
            {"id": SAMPLE_CONVERSATION_ID, "message_id": SAMPLE_MESSAGE_ID},
        ),
        ("/shared/tok%20en", "/shared/{token}", {"token": "tok%20en"}),
    ],
)
def test_given_a_path_then_the_most_specific_template_resource_matches(
    table: RouteTable, path: str, resource: str, params: dict[str, str]
) -> None:
    match = table.match(path)
    assert match is not None
    assert (match.resource.path, match.path_parameters) == (resource, params)


@pytest.mark.parametrize("path", ["/", "/nowhere", "/conversations/a/b", "/shared", "/chat/history/x"])
def test_given_an_unknown_path_then_nothing_matches(table: RouteTable, path: str) -> None:
    assert table.match(path) is None


def test_given_static_param_and_greedy_resources_then_static_wins_then_param_then_greedy() -> None:
    table = RouteTable(
        routes_for(("ANY", "/files/{proxy+}"), ("GET", "/files/special"), ("GET", "/files/{name}/meta"))
    )

    def resolved(path: str) -> tuple[str, dict[str, str]] | None:
        match = table.match(path)
        return (match.resource.path, match.path_parameters) if match else None

    assert resolved("/files/special") == ("/files/special", {})
    assert resolved("/files/x/meta") == ("/files/{name}/meta", {"name": "x"})
    assert resolved("/files/a/b/c") == ("/files/{proxy+}", {"proxy": "a/b/c"})
    assert resolved("/files/special/meta") == ("/files/{name}/meta", {"name": "special"})
    assert resolved("/files/special/other") == ("/files/{proxy+}", {"proxy": "special/other"})
    assert resolved("/files") is None  # {proxy+} needs at least one segment
    match = table.match("/files/a")
    assert match is not None and match.resource.route_for("DELETE") is not None  # ANY


def test_given_a_method_declared_twice_then_the_table_refuses_it() -> None:
    with pytest.raises(ValueError, match="declared twice"):
        RouteTable(routes_for(("GET", "/a"), ("GET", "/a")))


# ---------------------------------------------------------------- events


def test_given_repeated_query_keys_and_headers_then_last_value_and_multi_value_maps() -> None:
    request = HttpRequest(
        method="get",
        path="/conversations",
        query_string="q=a&q=b&empty=&flag&sp=hello%20world",
        headers=[("Accept", "application/json"), ("X-Multi", "1"), ("x-multi", "2"), ("host", "h:3000")],
    )
    event = build_rest_event(request, resource="/conversations", path_parameters={}, stage="default")
    assert event["httpMethod"] == "GET"
    assert event["queryStringParameters"] == {"q": "b", "empty": "", "flag": "", "sp": "hello world"}
    assert event["multiValueQueryStringParameters"]["q"] == ["a", "b"]
    # names keep the case they arrived in; repeats group case-insensitively under the first spelling
    assert event["headers"] == {"Accept": "application/json", "X-Multi": "2", "host": "h:3000"}
    assert event["multiValueHeaders"]["X-Multi"] == ["1", "2"]
    assert event["pathParameters"] is None and event["stageVariables"] is None
    assert (event["body"], event["isBase64Encoded"]) == (None, False)
    context = event["requestContext"]
    assert context["resourcePath"] == "/conversations" and context["path"] == "/default/conversations"
    assert context["stage"] == "default" and context["domainName"] == "h:3000"
    assert context["identity"]["sourceIp"] == "127.0.0.1" and context["protocol"] == "HTTP/1.1"
    assert isinstance(context["requestTimeEpoch"], int) and context["requestId"]
    assert "version" not in event  # REST events have none; Mangum would treat it as an HTTP API event


def test_given_no_query_or_headers_then_the_maps_are_null() -> None:
    event = build_rest_event(HttpRequest("GET", "/x"), resource="/x", path_parameters=None, stage="s")
    assert event["queryStringParameters"] is None and event["multiValueQueryStringParameters"] is None
    assert event["headers"] is None and event["multiValueHeaders"] is None


@pytest.mark.parametrize(
    ("body", "content_type", "binary_types", "base64_expected"),
    [
        (b'{"title": "h\xc3\xa9"}', "application/json", (), False),
        (b"\xff\xfe\x00binary", "application/octet-stream", (), True),  # not UTF-8
        (b"plain text", "image/png", ("image~1*",), True),  # a binary media type (SAM's ~1 escape)
    ],
)
def test_given_a_body_then_it_is_text_or_base64_like_api_gateway(
    body: bytes, content_type: str, binary_types: tuple[str, ...], base64_expected: bool
) -> None:
    request = HttpRequest("POST", "/x", headers=[("Content-Type", content_type)], body=body)
    event = build_rest_event(
        request, resource="/x", path_parameters=None, stage="s", binary_media_types=binary_types
    )
    assert event["isBase64Encoded"] is base64_expected
    decoded = base64.b64decode(event["body"]) if base64_expected else event["body"].encode()
    assert decoded == body


def test_given_media_type_patterns_then_wildcards_and_parameters_are_understood() -> None:
    assert media_type_matches("image/png; q=1", ["image/*"])
    assert media_type_matches("anything/else", ["*/*"])
    assert not media_type_matches("text/plain", ["image/*", "application/octet-stream"])
    assert not media_type_matches("", ["*/*"])


def echo_app() -> FastAPI:
    app = FastAPI()

    @app.post("/echo/{item}")
    async def echo(item: str, request: Request) -> Response:
        body = await request.body()
        response = Response(
            content=json.dumps(
                {
                    "item": item,
                    "q": request.query_params.getlist("q"),
                    "x_case": request.headers.get("x-case"),
                    "body": base64.b64encode(body).decode(),
                    "scheme": request.url.scheme,
                }
            ),
            media_type="application/json",
        )
        response.set_cookie("a", "1")
        response.set_cookie("b", "2")
        return response

    return app


def test_given_an_event_through_mangum_then_the_app_sees_the_request_and_the_response_comes_back() -> None:
    # GIVEN a request with repeated query keys, a mixed-case header and a binary body
    request = HttpRequest(
        "POST",
        "/echo/thing",
        query_string="q=1&q=2",
        headers=[("X-Case", "MiXeD"), ("Host", "127.0.0.1:3000"), ("X-Forwarded-Proto", "http")],
        body=b"\x00\xffraw",
    )
    event = build_rest_event(request, resource="/echo/{item}", path_parameters={"item": "thing"}, stage="s")
    # WHEN the real Lambda adapter runs it
    result = Mangum(echo_app(), lifespan="off")(event, LambdaContext("Echo", 128, 3))
    response = http_response_from_lambda(result)
    # THEN the app saw everything and both cookies survive as separate headers
    seen = json.loads(response.body)
    assert seen == {"item": "thing", "q": ["1", "2"], "x_case": "MiXeD", "body": "AP9yYXc=", "scheme": "http"}
    cookies = [v for k, v in response.headers if k.lower() == "set-cookie"]
    assert len(cookies) == 2 and cookies[0].startswith("a=1") and cookies[1].startswith("b=2")


def test_given_headers_and_multi_value_headers_then_multi_values_win_per_name() -> None:
    response = http_response_from_lambda(
        {
            "statusCode": 201,
            "headers": {"Content-Type": "application/json", "X-One": "single", "x-two": "dropped"},
            "multiValueHeaders": {"X-Two": ["a", "b"]},
            "body": "{}",
        }
    )
    assert response.status == 201
    assert sorted(response.headers) == [
        ("Content-Type", "application/json"),
        ("X-One", "single"),
        ("X-Two", "a"),
        ("X-Two", "b"),
    ]


def test_given_a_base64_result_then_it_is_decoded_only_for_an_accepted_binary_media_type() -> None:
    result = {"statusCode": 200, "body": base64.b64encode(b"\x89PNG").decode(), "isBase64Encoded": True}
    assert (
        http_response_from_lambda(result, accept="image/png", binary_media_types=["image/png"]).body == b"\x89PNG"
    )
    # without binary media types API Gateway passes the base64 text through
    assert http_response_from_lambda(result, accept="image/png").body == result["body"].encode()


@pytest.mark.parametrize(
    "result",
    [
        None,
        "text",
        {"statusCode": "abc"},
        {"statusCode": 700},
        {"statusCode": 200, "body": {"a": 1}},
        {"headers": []},
    ],
)
def test_given_a_malformed_result_then_it_is_refused(result: Any) -> None:
    with pytest.raises(InvalidLambdaResponseError):
        http_response_from_lambda(result)


def test_given_the_events_on_disk_then_they_match_the_template_and_the_builder() -> None:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(["layers/common", "."])}
    run = subprocess.run(
        [sys.executable, "-m", "local.events", "--check"],
        check=False,
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    for method, _, event_name in CONVERSATIONS_ROUTES:
        event = json.loads((EVENTS_DIR / "conversations" / event_file_name(event_name)).read_text())
        assert event["httpMethod"] == method


def test_given_a_sample_event_then_its_token_is_the_dev_users_under_the_dev_secret() -> None:
    event = json.loads((EVENTS_DIR / "conversations" / "list-conversations.json").read_text())
    with override_settings(
        supabase_jwt_secret=SecretStr(DEV_JWT_SECRET), supabase_jwt_issuer="http://127.0.0.1:54321/auth/v1"
    ):
        principal = authenticate(event["headers"]["Authorization"])
    assert str(principal.user_id) == DEV_USER_ID


# ---------------------------------------------------------------- the gateway, with a throwaway function

ECHO_HANDLER = """
import json

def lambda_handler(event, context):
    if event["path"].endswith("/boom"):
        raise RuntimeError("boom")
    if event["path"].endswith("/malformed"):
        return {"statusCode": 200, "body": {"not": "a string"}}
    return {
        "statusCode": 200,
        "multiValueHeaders": {"X-Seen": ["1", "2"]},
        "body": json.dumps({
            "resource": event["resource"],
            "pathParameters": event["pathParameters"],
            "stage": event["requestContext"]["stage"],
            "function": context.function_name,
            "remaining_ok": 0 < context.get_remaining_time_in_millis() <= 5000,
            "arn": context.invoked_function_arn,
            "forwarded_proto": event["headers"].get("X-Forwarded-Proto"),
        }),
    }
"""


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> LocalApiGateway:
    code_dir = tmp_path_factory.mktemp("fn")
    (code_dir / "local_gateway_echo").mkdir()
    (code_dir / "local_gateway_echo" / "__init__.py").write_text("")
    (code_dir / "local_gateway_echo" / "handler.py").write_text(ECHO_HANDLER)
    echo = fake_function(str(code_dir), "local_gateway_echo.handler.lambda_handler")
    broken = Function("BrokenFunction", str(code_dir), "no_such_module.handler.h", 128, 3, {})
    routes = [
        Route("GET", "/things/{id}", "GetThing", "Api", echo),
        Route("GET", "/things/boom", "Boom", "Api", echo),
        Route("GET", "/things/malformed", "Malformed", "Api", echo),
        Route("GET", "/broken", "Broken", "Api", broken),
    ]
    return LocalApiGateway(routes, stage="local", cors=CorsPreflight(allow_origin="*", max_age="600"))


def call(gateway: LocalApiGateway, method: str, path: str, **kwargs: Any) -> httpx.Response:
    async def run() -> httpx.Response:
        transport = httpx.ASGITransport(app=gateway)
        async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1:3000") as client:
            return await client.request(method, path, **kwargs)

    return anyio.run(run)


def test_given_a_template_route_then_the_handler_gets_the_event_and_a_lambda_context(
    gateway: LocalApiGateway,
) -> None:
    response = call(gateway, "GET", "/things/abc")
    assert response.status_code == 200
    assert response.json() == {
        "resource": "/things/{id}",
        "pathParameters": {"id": "abc"},
        "stage": "local",
        "function": "FakeFunction",
        "remaining_ok": True,
        "arn": "arn:aws:lambda:local:123456789012:function:FakeFunction",
        "forwarded_proto": "http",
    }
    assert response.headers.get_list("x-seen") == ["1", "2"]
    assert response.headers["content-type"] == "application/json"  # API Gateway's default
    assert response.headers["x-amzn-requestid"]


@pytest.mark.parametrize(
    ("method", "path"), [("GET", "/nowhere"), ("POST", "/things/abc"), ("HEAD", "/things/abc")]
)
def test_given_no_route_or_method_then_404_in_the_error_envelope(
    gateway: LocalApiGateway, method: str, path: str
) -> None:
    response = call(gateway, method, path)
    assert response.status_code == 404
    if method != "HEAD":
        assert response.json()["error"]["code"] == "NOT_FOUND"
        assert response.json()["error"]["details"] == {}


def test_given_a_preflight_then_the_api_cors_answers_it(gateway: LocalApiGateway) -> None:
    response = call(gateway, "OPTIONS", "/things/abc", headers={"Origin": "http://localhost:5173"})
    assert response.status_code == 200
    assert response.headers["access-control-allow-origin"] == "*"
    assert response.headers["access-control-allow-methods"] == "GET,OPTIONS"


@pytest.mark.parametrize("path", ["/things/boom", "/things/malformed", "/broken"])
def test_given_a_failing_or_missing_handler_then_502_like_api_gateway(gateway: LocalApiGateway, path: str) -> None:
    response = call(gateway, "GET", path)
    assert response.status_code == 502
    assert response.json()["error"]["code"] == "INTERNAL_ERROR"
    assert "Traceback" not in response.text


def test_given_a_broken_function_then_load_all_reports_it_and_keeps_the_others(gateway: LocalApiGateway) -> None:
    failures = gateway.load_all()
    assert set(failures) == {"BrokenFunction"}
    assert "ModuleNotFoundError" in failures["BrokenFunction"]


# ---------------------------------------------------------------- the streaming extension point

STREAMING_TEMPLATE = """
Globals:
  Function:
    Runtime: python3.11
    Environment:
      Variables:
        AWS_LWA_INVOKE_MODE: response_stream
        FROM_PARAM: !Ref Stage
Resources:
  ChatStreamFunction:
    Type: AWS::Serverless::Function
    Metadata:
      OneAILocalAsgiApp: "chat_stream.app:app"
    Properties:
      CodeUri: functions/chat_stream/
      Handler: run.sh
      Events:
        Stream:
          Type: Api
          Properties:
            Path: /chat/stream
            Method: post
            ResponseTransferMode: RESPONSE_STREAM
"""


def test_given_a_streaming_function_then_its_asgi_app_is_served_directly(tmp_path: Path) -> None:
    # GIVEN a template function marked for direct ASGI serving
    path = tmp_path / "template.yaml"
    path.write_text(STREAMING_TEMPLATE)
    (route,) = list_routes(load_template(path))
    assert (route.method, route.streaming, route.function.asgi_app) == ("POST", True, "chat_stream.app:app")
    assert route.function.environment == {"AWS_LWA_INVOKE_MODE": "response_stream"}

    app = FastAPI()

    @app.post("/chat/stream")
    async def stream() -> Response:
        return Response("data: [DONE]\n\n", media_type="text/event-stream")

    # WHEN it is requested (the loader is the only stand-in; no Lambda event is built)
    gateway = LocalApiGateway([route], stage="local", asgi_loader=lambda fn: app)
    response = call(gateway, "POST", "/chat/stream", json={})
    # THEN the app answered itself
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/event-stream")
    assert "x-amzn-requestid" not in response.headers


# ---------------------------------------------------------------- Function URL routes (OneAILocalRoutes)


def test_given_the_template_then_the_webhooks_route_gets_function_url_events(template: dict[str, Any]) -> None:
    routes = [r for r in list_routes(template) if r.function_id == "WebhooksFunction"]
    assert {(r.method, r.path, r.event_name) for r in routes} == WEBHOOK_ROUTES
    [route] = routes
    assert route.event_type == FUNCTION_URL_EVENT_TYPE and route.function_url and not route.streaming
    assert (route.code_uri, route.handler) == ("functions/webhooks/", "webhooks.handler.lambda_handler")
    props = template["Resources"]["WebhooksFunction"]["Properties"]
    assert props["FunctionUrlConfig"] == {"AuthType": "NONE"}
    assert "Events" not in props  # no API Gateway route: Razorpay posts to the function's URL
    # the sample deliveries are on disk as Function URL events, signed with the dev secret
    for name, sample in WEBHOOK_SAMPLES.items():
        event = json.loads((EVENTS_DIR / "webhooks" / f"{name}.json").read_text(encoding="utf-8"))
        assert (event["version"], event["rawPath"], event["requestContext"]["http"]["method"]) == (
            "2.0",
            "/webhooks/razorpay",
            "POST",
        )
        body = event["body"].encode("utf-8")
        signature = hmac.new(DEV_RAZORPAY_WEBHOOK_SECRET.encode(), body, hashlib.sha256).hexdigest()
        assert (event["headers"]["x-razorpay-signature"] == signature) is sample.valid_signature, name
        assert event["headers"]["x-razorpay-event-id"] == sample.event_id


def test_given_a_request_then_the_function_url_event_is_payload_v2() -> None:
    request = HttpRequest(
        "post",
        "/webhooks/razorpay",
        query_string="a=1&a=2&b=",
        headers=[
            ("Host", "127.0.0.1:3000"),
            ("Content-Type", "application/json; charset=utf-8"),
            ("X-Multi", "1"),
            ("x-multi", "2"),
            ("Cookie", "a=1; b=2"),
            ("User-Agent", "Razorpay-Webhook/v1"),
        ],
        body='{"note": "h\u00e9"}'.encode(),
        source_ip="10.0.0.7",
    )
    event = build_function_url_event(request, request_id="req-1", time_epoch_ms=1735732800000)
    assert (event["version"], event["routeKey"], event["rawPath"], event["rawQueryString"]) == (
        "2.0",
        "$default",
        "/webhooks/razorpay",
        "a=1&a=2&b=",
    )
    # names lower-cased, repeats joined with commas, cookies apart
    assert event["headers"] == {
        "host": "127.0.0.1:3000",
        "content-type": "application/json; charset=utf-8",
        "x-multi": "1,2",
        "user-agent": "Razorpay-Webhook/v1",
    }
    assert event["cookies"] == ["a=1", "b=2"]
    assert event["queryStringParameters"] == {"a": "1,2", "b": ""}
    context = event["requestContext"]
    assert context["http"] == {
        "method": "POST",
        "path": "/webhooks/razorpay",
        "protocol": "HTTP/1.1",
        "sourceIp": "10.0.0.7",
        "userAgent": "Razorpay-Webhook/v1",
    }
    assert (context["accountId"], context["requestId"], context["timeEpoch"]) == (
        "anonymous",
        "req-1",
        1735732800000,
    )
    assert context["time"] == "01/Jan/2025:12:00:00 +0000" and context["domainName"] == "127.0.0.1:3000"
    assert (event["body"], event["isBase64Encoded"]) == ('{"note": "h\u00e9"}', False)
    assert "pathParameters" not in event and "stageVariables" not in event


@pytest.mark.parametrize(
    ("body", "content_type", "base64_expected"),
    [
        (b'{"a": 1}', "application/json", False),
        (b"<a/>", "application/soap+xml", False),
        (b"plain", "text/plain", False),
        (b"\x00\xffraw", "application/octet-stream", True),
        (b"abc", "", True),  # no content type: binary, as a Function URL sends it
        (b"\xff\xfe", "application/json", True),  # not UTF-8
    ],
)
def test_given_a_body_then_a_function_url_sends_text_or_base64(
    body: bytes, content_type: str, base64_expected: bool
) -> None:
    headers = [("Content-Type", content_type)] if content_type else []
    event = build_function_url_event(HttpRequest("POST", "/x", headers=headers, body=body))
    assert event["isBase64Encoded"] is base64_expected
    assert (base64.b64decode(event["body"]) if base64_expected else event["body"].encode()) == body
    assert "body" not in build_function_url_event(HttpRequest("GET", "/x"))


def test_given_function_url_results_then_they_become_http_responses() -> None:
    response = http_response_from_function_url(
        {
            "statusCode": 201,
            "headers": {"content-type": "text/plain"},
            "cookies": ["a=1; Path=/", "b=2"],
            "body": base64.b64encode(b"\x89PNG").decode(),
            "isBase64Encoded": True,
        }
    )
    assert response.status == 201 and response.body == b"\x89PNG"  # always decoded, whatever Accept says
    assert response.headers == [
        ("content-type", "text/plain"),
        ("set-cookie", "a=1; Path=/"),
        ("set-cookie", "b=2"),
    ]
    # anything without a statusCode is the JSON body of a 200
    inferred = http_response_from_function_url({"status": "ok"})
    assert (inferred.status, json.loads(inferred.body)) == (200, {"status": "ok"})
    assert ("content-type", "application/json") in inferred.headers
    for bad in (
        {"statusCode": "x"},
        {"statusCode": 99},
        {"statusCode": 200, "body": 1},
        {"statusCode": 200, "cookies": "a"},
    ):
        with pytest.raises(InvalidLambdaResponseError):
            http_response_from_function_url(bad)


URL_HANDLER = """
import base64, json

def lambda_handler(event, context):
    body = base64.b64decode(event["body"]) if event["isBase64Encoded"] else event["body"].encode()
    return {
        "statusCode": 202,
        "headers": {"content-type": "application/json"},
        "cookies": ["seen=1"],
        "body": json.dumps({
            "version": event["version"],
            "method": event["requestContext"]["http"]["method"],
            "rawPath": event["rawPath"],
            "signature": event["headers"].get("x-razorpay-signature"),
            "forwarded_proto": event["headers"].get("x-forwarded-proto"),
            "body": body.decode(),
            "function": context.function_name,
        }),
    }
"""

URL_TEMPLATE = """
Resources:
  HooksFunction:
    Type: AWS::Serverless::Function
    Metadata:
      OneAILocalRoutes: ["POST /hooks/in", "GET /hooks/in"]
    Properties:
      CodeUri: {code_uri}
      Handler: local_gateway_url_echo.handler.lambda_handler
      FunctionUrlConfig:
        AuthType: NONE
"""


def test_given_a_function_url_route_then_the_gateway_invokes_it_with_a_v2_event(tmp_path: Path) -> None:
    # GIVEN a template function served by its URL, with two local routes
    (tmp_path / "local_gateway_url_echo").mkdir()
    (tmp_path / "local_gateway_url_echo" / "__init__.py").write_text("")
    (tmp_path / "local_gateway_url_echo" / "handler.py").write_text(URL_HANDLER)
    path = tmp_path / "template.yaml"
    path.write_text(URL_TEMPLATE.format(code_uri=tmp_path))
    routes = list_routes(load_template(path))
    assert [(r.method, r.path, r.event_name, r.function_url) for r in routes] == [
        ("POST", "/hooks/in", "PostHooksIn", True),
        ("GET", "/hooks/in", "GetHooksIn", True),
    ]
    gateway = LocalApiGateway(routes, stage="local")
    # WHEN it is requested over HTTP
    response = call(
        gateway,
        "POST",
        "/hooks/in",
        content='{"x": "é"}'.encode(),
        headers={"X-Razorpay-Signature": "ab", "Content-Type": "application/json"},
    )
    # THEN the handler saw a Function URL event and its v2 result came back
    assert response.status_code == 202
    assert response.json() == {
        "version": "2.0",
        "method": "POST",
        "rawPath": "/hooks/in",
        "signature": "ab",
        "forwarded_proto": "http",
        "body": '{"x": "é"}',
        "function": "HooksFunction",
    }
    assert response.headers["set-cookie"] == "seen=1" and response.headers["x-amzn-requestid"]


@pytest.mark.parametrize(
    ("metadata", "url_config", "message"),
    [
        ('"POST /x"', True, "must be a list"),
        ('["POST"]', True, "bad OneAILocalRoutes entry"),
        ('["POST x"]', True, "bad OneAILocalRoutes entry"),
        ('["POST /x"]', False, "needs a FunctionUrlConfig"),
    ],
)
def test_given_malformed_local_routes_then_the_template_is_refused(
    tmp_path: Path, metadata: str, url_config: bool, message: str
) -> None:
    text = URL_TEMPLATE.format(code_uri=tmp_path).replace('["POST /hooks/in", "GET /hooks/in"]', metadata)
    if not url_config:
        text = text.replace("      FunctionUrlConfig:\n        AuthType: NONE\n", "")
    path = tmp_path / "template.yaml"
    path.write_text(text)
    with pytest.raises(TemplateError, match=message):
        list_routes(load_template(path))
