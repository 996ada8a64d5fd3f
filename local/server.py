"""The `make dev` gateway: an ASGI app that serves every route of template.yaml the way API Gateway does.

For each request: find the template route (API Gateway's precedence: per segment, a static segment beats
`{param}`, which beats `{proxy+}`; the resource is chosen first, then the method), build the REST API
proxy event (`local.apigw`), call the function's `Handler` in a worker thread with a Lambda-shaped context,
and turn its proxy result back into HTTP. No route, or no such method on the route: 404 in the API's error
envelope (the deployed API maps API Gateway's "Missing Authentication Token" 403 to the same 404).

Handlers are imported once, by adding the function's CodeUri directory to `sys.path` and importing
`module.attr` from `Handler`, as the Lambda runtime does. All functions share this process, so invocations
run one at a time: in AWS a container serves one event at a time and the code relies on that (one lazily
opened database connection per container, module-level caches).

Function URL functions (`OneAILocalRoutes` in the function's Metadata, e.g. the Razorpay webhooks): the
listed routes invoke the handler with a Function URL (payload format 2.0) event instead of a REST one, and
its result is read the way a Function URL reads it.

Streaming functions (extension point): a function whose template Metadata has
`OneAILocalAsgiApp: "package.module:app"` is not invoked through a Lambda event; its ASGI app receives the
request directly, so its response streams without buffering (in AWS the Lambda Web Adapter plays that
part). Its routes are still taken from the template. Such apps get no lifespan events from here.
"""

from __future__ import annotations

import asyncio
import importlib
import json
import logging
import sys
import threading
import time
import traceback
import uuid
from collections.abc import Awaitable, Callable, Iterable, Mapping, MutableMapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, TypeVar

import anyio
import anyio.to_thread

from local.apigw import (
    HttpRequest,
    HttpResponse,
    InvalidLambdaResponseError,
    build_function_url_event,
    build_rest_event,
    http_response_from_function_url,
    http_response_from_lambda,
)
from local.request_limits import envelope, refusal
from local.template_routes import Function, Route, path_param, split_path

logger = logging.getLogger("oneai.local")

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
AsgiApp = Callable[[Scope, Receive, Send], Awaitable[None]]
LambdaHandler = Callable[[dict[str, Any], Any], Any]
T = TypeVar("T")

# API Gateway's payload quota for REST APIs.
MAX_BODY_BYTES = 10 * 1024 * 1024
_DROPPED_RESPONSE_HEADERS = frozenset({"content-length", "transfer-encoding", "connection"})


# ---------------------------------------------------------------------------------------------- routing


@dataclass
class Resource:
    """One API Gateway resource (path template) with the routes of its methods."""

    path: str
    segments: tuple[str, ...]
    methods: dict[str, Route] = field(default_factory=dict)

    def route_for(self, method: str) -> Route | None:
        return self.methods.get(method.upper()) or self.methods.get("ANY")


@dataclass(frozen=True)
class Match:
    resource: Resource
    path_parameters: dict[str, str]


def _match_segments(
    template: tuple[str, ...], parts: tuple[str, ...]
) -> tuple[tuple[int, ...], dict[str, str]] | None:
    """(rank, path parameters) if `parts` fits `template`; a lower rank is more specific."""
    rank: list[int] = []
    params: dict[str, str] = {}
    for index, segment in enumerate(template):
        param = path_param(segment)
        if param is not None and param[1]:  # {proxy+}: one or more remaining segments
            if index >= len(parts) or index != len(template) - 1:
                return None
            params[param[0]] = "/".join(parts[index:])
            rank.append(2)
            return tuple(rank), params
        if index >= len(parts):
            return None
        if param is not None:
            params[param[0]] = parts[index]
            rank.append(1)
        elif segment == parts[index]:
            rank.append(0)
        else:
            return None
    if len(parts) != len(template):
        return None
    return tuple(rank), params


class RouteTable:
    def __init__(self, routes: Iterable[Route]) -> None:
        self.resources: dict[str, Resource] = {}
        for route in routes:
            resource = self.resources.setdefault(route.path, Resource(route.path, route.segments))
            if route.method in resource.methods:
                raise ValueError(f"{route.method} {route.path} is declared twice")
            resource.methods[route.method] = route

    def match(self, path: str) -> Match | None:
        parts = split_path(path)
        best: tuple[tuple[int, ...], Match] | None = None
        for resource in self.resources.values():
            found = _match_segments(resource.segments, parts)
            if found is not None and (best is None or found[0] < best[0]):
                best = (found[0], Match(resource, found[1]))
        return best[1] if best else None

    @property
    def routes(self) -> list[Route]:
        return [route for resource in self.resources.values() for route in resource.methods.values()]


# ---------------------------------------------------------------------------------------------- Lambda


@dataclass
class LambdaContext:
    """The attributes of the Python runtime's context object that handlers and Powertools read."""

    function_name: str
    memory_limit_in_mb: int
    timeout_seconds: int
    aws_request_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    function_version: str = "$LATEST"
    identity: Any = None
    client_context: Any = None
    _deadline: float = field(default=0.0, repr=False)

    def __post_init__(self) -> None:
        self._deadline = time.monotonic() + self.timeout_seconds
        self.log_group_name = f"/aws/lambda/{self.function_name}"
        self.log_stream_name = f"local/[$LATEST]{self.aws_request_id.replace('-', '')}"
        self.invoked_function_arn = f"arn:aws:lambda:local:123456789012:function:{self.function_name}"

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self._deadline - time.monotonic()) * 1000))


def _import_from_code_dir(function: Function, module_name: str, attr: str) -> Any:
    code_dir = str(function.code_dir)
    if code_dir not in sys.path:
        sys.path.insert(0, code_dir)
    return getattr(importlib.import_module(module_name), attr)


def load_handler(function: Function) -> LambdaHandler:
    """`conversations.handler.lambda_handler` from the function's CodeUri, as the Lambda runtime does."""
    module_name, _, attr = function.handler.rpartition(".")
    handler = _import_from_code_dir(function, module_name, attr)
    if not callable(handler):
        raise TypeError(f"{function.handler} is not callable")
    return handler  # type: ignore[no-any-return]


def load_asgi_app(function: Function) -> AsgiApp:
    assert function.asgi_app is not None
    module_name, _, attr = function.asgi_app.partition(":")
    return _import_from_code_dir(function, module_name, attr)  # type: ignore[no-any-return]


# ---------------------------------------------------------------------------------------------- HTTP


def error_response(status: int, code: str, message: str, headers: Sequence[tuple[str, str]] = ()) -> HttpResponse:
    return HttpResponse(status, [("content-type", "application/json"), *headers], envelope(code, message))


@dataclass(frozen=True)
class CorsPreflight:
    """What the REST API's OPTIONS mock integration (SAM `Cors`) answers."""

    allow_origin: str
    allow_headers: str | None = None
    allow_methods: str | None = None
    max_age: str | None = None

    def response(self, resource: Resource) -> HttpResponse:
        methods = self.allow_methods or ",".join(sorted({*resource.methods, "OPTIONS"}))
        headers = [("access-control-allow-origin", self.allow_origin), ("access-control-allow-methods", methods)]
        if self.allow_headers:
            headers.append(("access-control-allow-headers", self.allow_headers))
        if self.max_age:
            headers.append(("access-control-max-age", self.max_age))
        return HttpResponse(200, headers, b"")


async def _read_body(receive: Receive, limit: int) -> bytes | None:
    """The whole request body, or None once it exceeds `limit`."""
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            break
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
        if not message.get("more_body", False):
            break
    return b"".join(chunks)


async def _send_response(send: Send, response: HttpResponse) -> None:
    headers = [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in response.headers]
    headers.append((b"content-length", str(len(response.body)).encode()))
    await send({"type": "http.response.start", "status": response.status, "headers": headers})
    await send({"type": "http.response.body", "body": response.body})


async def _refused_as_too_large(
    scope: Scope, receive: Receive, send: Send, raw_path: bytes, *, function_url: bool
) -> bool:
    """Answer 414/431 (and return True) for a URL or headers over API Gateway's limits; it refuses them
    before routing. The body is read first, so that the client's send completes."""
    limit = refusal(raw_path, scope.get("query_string", b""), scope["headers"], function_url=function_url)
    if limit is None:
        return False
    await _read_body(receive, MAX_BODY_BYTES)
    await _send_response(send, error_response(*limit))
    return True


def _request_from_scope(scope: Scope, body: bytes) -> HttpRequest:
    raw_path = scope.get("raw_path") or scope["path"].encode("utf-8")
    headers = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in scope["headers"]]
    names = {name.lower() for name, _ in headers}
    client = scope.get("client") or ("127.0.0.1", 0)
    server = scope.get("server") or ("127.0.0.1", 80)
    # API Gateway adds these; Mangum reads the scheme and port from them.
    if "x-forwarded-for" not in names:
        headers.append(("X-Forwarded-For", client[0]))
    if "x-forwarded-proto" not in names:
        headers.append(("X-Forwarded-Proto", scope.get("scheme", "http")))
    if "x-forwarded-port" not in names:
        headers.append(("X-Forwarded-Port", str(server[1])))
    return HttpRequest(
        method=scope["method"],
        path=raw_path.decode("utf-8", "replace"),
        query_string=scope.get("query_string", b"").decode("latin-1"),
        headers=headers,
        body=body,
        source_ip=client[0],
        protocol=f"HTTP/{scope.get('http_version', '1.1')}",
    )


class LocalApiGateway:
    """The ASGI app served by uvicorn under `make dev`."""

    def __init__(
        self,
        routes: Iterable[Route],
        *,
        stage: str,
        binary_media_types: Sequence[str] = (),
        cors: CorsPreflight | None = None,
        handler_loader: Callable[[Function], LambdaHandler] = load_handler,
        asgi_loader: Callable[[Function], AsgiApp] = load_asgi_app,
    ) -> None:
        self.table = RouteTable(routes)
        self.stage = stage
        self.binary_media_types = tuple(binary_media_types)
        self.cors = cors
        self._handler_loader = handler_loader
        self._asgi_loader = asgi_loader
        self._handlers: dict[str, LambdaHandler] = {}
        self._asgi_apps: dict[str, AsgiApp] = {}
        self._load_errors: dict[str, str] = {}
        self._import_lock = threading.Lock()
        # One thread per function, like one warm Lambda container: a handler always runs on the same
        # thread (so it keeps one database connection) and one invocation at a time.
        self._containers: dict[str, ThreadPoolExecutor] = {}

    # -- loading

    def load_all(self) -> dict[str, str]:
        """Import every function now (a broken one is reported, not fatal); returns the failures."""
        seen: set[str] = set()
        for route in self.table.routes:
            if route.function_id not in seen:
                seen.add(route.function_id)
                self._target(route.function)
        return dict(self._load_errors)

    def _target(self, function: Function) -> None:
        if function.asgi_app:
            self._asgi(function)
        else:
            self._handler(function)

    def _handler(self, function: Function) -> LambdaHandler | None:
        return self._load(function, self._handlers, self._handler_loader)

    def _asgi(self, function: Function) -> AsgiApp | None:
        return self._load(function, self._asgi_apps, self._asgi_loader)

    def _load(self, function: Function, cache: dict[str, T], loader: Callable[[Function], T]) -> T | None:
        key = function.logical_id
        with self._import_lock:
            if key not in cache:
                try:
                    cache[key] = loader(function)
                except Exception as exc:  # any import error: report it per request, keep serving the rest
                    self._load_errors[key] = f"{type(exc).__name__}: {exc}"
                    logger.exception("could not load %s", key)
                    return None
                self._load_errors.pop(key, None)
            return cache[key]

    # -- ASGI

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
            return
        if scope["type"] == "http":  # no websockets: API Gateway REST has none
            await self._serve_http(scope, receive, send)

    async def _serve_http(self, scope: Scope, receive: Receive, send: Send) -> None:
        raw_path_bytes = scope.get("raw_path") or scope["path"].encode()
        raw_path = raw_path_bytes.decode("utf-8", "replace")
        match = self.table.match(raw_path)
        method = scope["method"].upper()
        route = match.resource.route_for(method) if match is not None else None
        function_url = route is not None and route.function_url
        if await _refused_as_too_large(scope, receive, send, raw_path_bytes, function_url=function_url):
            return
        if match is None:
            await _send_response(send, error_response(404, "NOT_FOUND", f"No route for {raw_path}"))
            return
        if route is None and method == "OPTIONS" and self.cors is not None:
            await _send_response(send, self.cors.response(match.resource))
            return
        if route is None:
            message = f"No route for {method} {raw_path}"
            await _send_response(send, error_response(404, "NOT_FOUND", message))
            return
        if route.function.asgi_app:
            await self._serve_asgi(route, scope, receive, send)
            return
        body = await _read_body(receive, MAX_BODY_BYTES)
        if body is None:
            response = error_response(413, "PAYLOAD_TOO_LARGE", "The request body is too large")
        else:
            response = await self._invoke(route, match, _request_from_scope(scope, body))
        await _send_response(send, response)

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await anyio.to_thread.run_sync(self.load_all)
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def _serve_asgi(self, route: Route, scope: Scope, receive: Receive, send: Send) -> None:
        app = self._asgi(route.function)
        if app is None:
            await _send_response(send, self._load_error(route))
            return
        await app(_with_adapter_headers(scope, route.function), receive, send)

    def _load_error(self, route: Route) -> HttpResponse:
        detail = self._load_errors.get(route.function_id, "not loaded")
        logger.error("%s %s -> %s is not loadable: %s", route.method, route.path, route.function_id, detail)
        return error_response(502, "INTERNAL_ERROR", "Internal server error")

    async def _invoke(self, route: Route, match: Match, request: HttpRequest) -> HttpResponse:
        handler = self._handler(route.function)
        if handler is None:
            return self._load_error(route)
        if route.function_url:
            event = build_function_url_event(request)
        else:
            event = build_rest_event(
                request,
                resource=route.path,
                path_parameters=match.path_parameters,
                stage=self.stage,
                binary_media_types=self.binary_media_types,
            )
        fn = route.function
        context = LambdaContext(fn.logical_id, fn.memory_mb, fn.timeout_seconds)
        request_id = event["requestContext"]["requestId"]
        started = time.monotonic()
        container = self._containers.get(fn.logical_id)
        if container is None:
            container = ThreadPoolExecutor(
                max_workers=1, thread_name_prefix=fn.logical_id, initializer=_give_thread_an_event_loop
            )
            self._containers[fn.logical_id] = container
        try:
            result = await asyncio.wrap_future(container.submit(handler, event, context))
        except Exception:
            # The Lambda runtime would log this and API Gateway answer 502; the template maps that
            # to the envelope below.
            traceback.print_exc()
            return error_response(502, "INTERNAL_ERROR", "Internal server error")
        elapsed = time.monotonic() - started
        if elapsed > fn.timeout_seconds:
            logger.warning("%s took %.1f s, over its %d s timeout", fn.logical_id, elapsed, fn.timeout_seconds)
        accept = next((v for k, v in request.headers if k.lower() == "accept"), None)
        try:
            if route.function_url:
                response = http_response_from_function_url(result)
            else:
                response = http_response_from_lambda(
                    result, accept=accept, binary_media_types=self.binary_media_types
                )
        except InvalidLambdaResponseError as exc:
            logger.error("%s returned a malformed proxy response: %s", fn.logical_id, exc)
            return error_response(502, "INTERNAL_ERROR", "Internal server error")
        return _finish_headers(response, request_id)


def _with_adapter_headers(scope: Scope, function: Function) -> Scope:
    """The request as the Lambda Web Adapter hands it to the app: API Gateway's request context and the
    invocation's Lambda context as JSON headers, each request with its own ids."""
    request_id = str(uuid.uuid4())
    context = LambdaContext(function.logical_id, function.memory_mb, function.timeout_seconds)
    client = scope.get("client")
    request_context = {
        "requestId": request_id,
        "stage": "local",
        "httpMethod": scope.get("method"),
        # API Gateway's view of the caller, as the adapter forwards it (the widget keys its limits by it)
        "identity": {"sourceIp": client[0] if client else None},
    }
    lambda_context = {
        "request_id": context.aws_request_id,
        "deadline": int((time.time() + function.timeout_seconds) * 1000),
        "invoked_function_arn": context.invoked_function_arn,
        "env_config": {
            "function_name": function.logical_id,
            "memory": function.memory_mb,
            "version": "$LATEST",
            "log_group": context.log_group_name,
            "log_stream": context.log_stream_name,
        },
    }
    names = {b"x-amzn-request-context", b"x-amzn-lambda-context"}
    headers = [(k, v) for k, v in scope.get("headers", []) if k.lower() not in names]
    headers.append((b"x-amzn-request-context", json.dumps(request_context).encode()))
    headers.append((b"x-amzn-lambda-context", json.dumps(lambda_context).encode()))
    return {**scope, "headers": headers}


def _give_thread_an_event_loop() -> None:
    # Like the Lambda runtime's main thread: Mangum asks asyncio for the thread's current loop.
    asyncio.set_event_loop(asyncio.new_event_loop())


def _finish_headers(response: HttpResponse, request_id: str) -> HttpResponse:
    headers = [(k, v) for k, v in response.headers if k.lower() not in _DROPPED_RESPONSE_HEADERS]
    names = {k.lower() for k, _ in headers}
    if "content-type" not in names:
        headers.append(("content-type", "application/json"))  # API Gateway's default for proxy results
    headers.append(("x-amzn-requestid", request_id))
    return HttpResponse(response.status, headers, response.body)


def cors_from_template(settings: Mapping[str, str | None] | None) -> CorsPreflight | None:
    """SAM `Cors` values are quoted header values ("'*'"); strip the quotes."""
    if not settings or not settings.get("AllowOrigin"):
        return None

    def unquote(value: str | None) -> str | None:
        return value.strip().strip("'") if value else None

    return CorsPreflight(
        allow_origin=unquote(settings["AllowOrigin"]) or "*",
        allow_headers=unquote(settings.get("AllowHeaders")),
        allow_methods=unquote(settings.get("AllowMethods")),
        max_age=unquote(settings.get("MaxAge")),
    )
