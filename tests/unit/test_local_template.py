"""The local server's view of template.yaml: routes, matching, API Gateway events and responses."""

from __future__ import annotations

import base64
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
    build_rest_event,
    http_response_from_lambda,
    media_type_matches,
)
from local.events import EVENTS_DIR, SAMPLE_CONVERSATION_ID, SAMPLE_MESSAGE_ID, event_file_name
from local.server import CorsPreflight, LambdaContext, LocalApiGateway, RouteTable, load_asgi_app, load_handler
from local.template_routes import (
    REPO_ROOT,
    Function,
    Route,
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
}
CHAT_STREAM_ROUTES = {
    ("POST", "/chat/stream", "StreamChat"),
    ("GET", "/chat/models", "ListChatModels"),
    ("GET", "/chat/openapi.json", "GetChatOpenApi"),
}
ACCOUNT_ROUTES = {
    ("GET", "/user/quota", "GetQuota"),
    ("POST", "/user/quota/check", "CheckQuota"),
    ("GET", "/user/usage", "GetUsage"),
    ("GET", "/user/profile", "GetProfile"),
    ("PATCH", "/user/profile", "UpdateProfile"),
    ("GET", "/user/openapi.json", "GetAccountOpenApi"),
}


@pytest.fixture(scope="module")
def template() -> dict[str, Any]:
    return load_template()


@pytest.fixture(scope="module")
def table(template: dict[str, Any]) -> RouteTable:
    return RouteTable(list_routes(template))


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
    assert len(list_routes(template)) == len(CONVERSATIONS_ROUTES) + len(CHAT_STREAM_ROUTES) + len(ACCOUNT_ROUTES)


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
