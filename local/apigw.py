"""API Gateway REST API (v1 proxy integration) events from HTTP requests, and HTTP responses from the
Lambda proxy results, shaped the way API Gateway does it, so a handler sees locally what it sees in AWS.

Fidelity notes (each one is how API Gateway behaves, or says where we differ and why):
- `headers`/`queryStringParameters` hold the last value of a repeated name, the `multiValue*` maps all of
  them; `None` (not `{}`) when there are none.
- `path` and `pathParameters` keep the request's percent-encoding (Mangum unquotes the path itself);
  query values are decoded.
- There is no top-level `version` key: REST APIs do not send one (HTTP APIs' payload 1.0 does), and
  Mangum would take such an event for an HTTP API one.
- The body is base64 when its content type is one of the API's binary media types, like API Gateway, and
  also when it is not UTF-8 (API Gateway would mangle those bytes; locally we would rather not).
- A base64 response body is decoded only when the request's `Accept` matches a binary media type; else
  the base64 text is returned as is. That is API Gateway's rule, and the usual surprise when deploying.

Lambda Function URLs (payload format 2.0: `build_function_url_event`, `http_response_from_function_url`):
- header names are lower-cased and repeated values joined with commas; `Cookie` moves to `cookies`;
  repeated query values are joined with commas too; maps that would be empty are left out;
- the body is text when its content type is textual (text/*, JSON, XML, JavaScript, form data) and it is
  UTF-8, otherwise base64 with `isBase64Encoded`; a handler verifying a signature over the raw bytes
  must decode it;
- a result with `statusCode` is a response (`cookies` become Set-Cookie headers, a base64 body is always
  decoded); any other result is the JSON body of a 200.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import time
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qsl

ACCOUNT_ID = "123456789012"
LOCAL_API_ID = "oneailocal"
# A Function URL's id is the first label of its domain (<url-id>.lambda-url.<region>.on.aws).
LOCAL_FUNCTION_URL_ID = "oneailocalurl"
_TEXT_MEDIA_TYPES = (
    "text/*",
    "application/json",
    "application/javascript",
    "application/xml",
    "application/yaml",
    "application/x-www-form-urlencoded",
)


class InvalidLambdaResponseError(ValueError):
    """The function returned something API Gateway would answer with 502 "Internal server error"."""


@dataclass(frozen=True)
class HttpRequest:
    method: str
    path: str  # as received, percent-encoding kept
    query_string: str = ""
    headers: Sequence[tuple[str, str]] = ()
    body: bytes = b""
    source_ip: str = "127.0.0.1"
    protocol: str = "HTTP/1.1"


@dataclass(frozen=True)
class HttpResponse:
    status: int
    headers: list[tuple[str, str]] = field(default_factory=list)
    body: bytes = b""


def media_type_matches(media_type: str, patterns: Iterable[str]) -> bool:
    """`image/png` against `image/*`, `*/*` or `image/png` (parameters such as charset are ignored)."""
    main = media_type.split(";", 1)[0].strip().lower()
    if not main:
        return False
    kind = main.split("/", 1)[0]
    for pattern in patterns:
        p = pattern.strip().lower().replace("~1", "/")  # SAM escapes "/" as "~1" in BinaryMediaTypes
        if p in ("*/*", main) or (p.endswith("/*") and p[:-2] == kind):
            return True
    return False


def _group_headers(headers: Iterable[tuple[str, str]]) -> dict[str, list[str]]:
    """Group repeated headers case-insensitively, keeping the first spelling of each name."""
    grouped: dict[str, list[str]] = {}
    spelling: dict[str, str] = {}
    for name, value in headers:
        key = spelling.setdefault(name.lower(), name)
        grouped.setdefault(key, []).append(value)
    return grouped


def _header(headers: Mapping[str, list[str]], name: str) -> str | None:
    for key, values in headers.items():
        if key.lower() == name.lower():
            return values[-1]
    return None


def _utf8_or_none(data: bytes) -> str | None:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return None


def _resource_id(resource: str) -> str:
    # API Gateway ids are opaque and stable per resource; a short digest gives the same property.
    return hashlib.sha256(resource.encode()).hexdigest()[:6]


def build_rest_event(
    request: HttpRequest,
    *,
    resource: str,
    path_parameters: Mapping[str, str] | None,
    stage: str,
    binary_media_types: Sequence[str] = (),
    request_id: str | None = None,
    time_epoch_ms: int | None = None,
) -> dict[str, Any]:
    """The event API Gateway REST sends to a Lambda proxy integration for `request` on `resource`."""
    request_id = request_id or str(uuid.uuid4())
    time_epoch_ms = time_epoch_ms if time_epoch_ms is not None else int(time.time() * 1000)
    multi_headers = _group_headers(request.headers)
    query_pairs = parse_qsl(request.query_string, keep_blank_values=True)
    multi_query: dict[str, list[str]] = {}
    for key, value in query_pairs:
        multi_query.setdefault(key, []).append(value)

    content_type = _header(multi_headers, "content-type") or ""
    body: str | None = None
    is_base64 = False
    if request.body:
        if not media_type_matches(content_type, binary_media_types):
            body = _utf8_or_none(request.body)
        if body is None:
            body, is_base64 = base64.b64encode(request.body).decode("ascii"), True

    host = _header(multi_headers, "host") or "localhost"
    request_time = datetime.fromtimestamp(time_epoch_ms / 1000, tz=UTC)
    return {
        "resource": resource,
        "path": request.path,
        "httpMethod": request.method.upper(),
        "headers": {k: v[-1] for k, v in multi_headers.items()} or None,
        "multiValueHeaders": multi_headers or None,
        "queryStringParameters": {k: v[-1] for k, v in multi_query.items()} or None,
        "multiValueQueryStringParameters": multi_query or None,
        "pathParameters": dict(path_parameters) if path_parameters else None,
        "stageVariables": None,
        "requestContext": {
            "resourceId": _resource_id(resource),
            "resourcePath": resource,
            "httpMethod": request.method.upper(),
            "extendedRequestId": base64.urlsafe_b64encode(uuid.UUID(request_id).bytes[:12]).decode(),
            "requestTime": request_time.strftime("%d/%b/%Y:%H:%M:%S +0000"),
            "path": f"/{stage}{request.path}",
            "accountId": ACCOUNT_ID,
            "protocol": request.protocol,
            "stage": stage,
            "domainPrefix": host.split(":", 1)[0].split(".", 1)[0],
            "requestTimeEpoch": time_epoch_ms,
            "requestId": request_id,
            "identity": {
                "cognitoIdentityPoolId": None,
                "accountId": None,
                "cognitoIdentityId": None,
                "caller": None,
                "sourceIp": request.source_ip,
                "principalOrgId": None,
                "accessKey": None,
                "cognitoAuthenticationType": None,
                "cognitoAuthenticationProvider": None,
                "userArn": None,
                "userAgent": _header(multi_headers, "user-agent"),
                "user": None,
            },
            "domainName": host,
            "deploymentId": "local",
            "apiId": LOCAL_API_ID,
        },
        "body": body,
        "isBase64Encoded": is_base64,
    }


def _str_map(value: Any, what: str) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict) or not all(isinstance(k, str) for k in value):
        raise InvalidLambdaResponseError(f"{what} must be an object")
    return value


def http_response_from_lambda(
    result: Any,
    *,
    accept: str | None = None,
    binary_media_types: Sequence[str] = (),
) -> HttpResponse:
    """Turn a Lambda proxy result into the HTTP response API Gateway would send.

    `multiValueHeaders` and `headers` are merged; for a name in both, only the multi values are kept.
    """
    if not isinstance(result, dict):
        raise InvalidLambdaResponseError("the result is not an object")
    status = result.get("statusCode", 200)
    try:
        status = int(status)
    except (TypeError, ValueError):
        raise InvalidLambdaResponseError("statusCode is not an integer") from None
    if not 100 <= status <= 599:
        raise InvalidLambdaResponseError(f"statusCode {status} is out of range")

    single = _str_map(result.get("headers"), "headers")
    multi = _str_map(result.get("multiValueHeaders"), "multiValueHeaders")
    headers: list[tuple[str, str]] = []
    multi_names = {name.lower() for name in multi}
    for name, values in multi.items():
        if not isinstance(values, list):
            raise InvalidLambdaResponseError("multiValueHeaders values must be lists")
        headers.extend((name, str(v)) for v in values)
    headers.extend((name, str(v)) for name, v in single.items() if name.lower() not in multi_names)

    raw_body = result.get("body")
    if raw_body is None:
        body = b""
    elif not isinstance(raw_body, str):
        raise InvalidLambdaResponseError("body must be a string")
    elif result.get("isBase64Encoded") and accept is not None and _accepts_binary(accept, binary_media_types):
        try:
            body = base64.b64decode(raw_body, validate=True)
        except binascii.Error:
            raise InvalidLambdaResponseError("isBase64Encoded but the body is not base64") from None
    else:
        body = raw_body.encode("utf-8")
    return HttpResponse(status=status, headers=headers, body=body)


def _accepts_binary(accept: str, binary_media_types: Sequence[str]) -> bool:
    return any(media_type_matches(part, binary_media_types) for part in accept.split(","))


def _is_text_media_type(content_type: str) -> bool:
    main = content_type.split(";", 1)[0].strip().lower()
    return media_type_matches(main, _TEXT_MEDIA_TYPES) or main.endswith(("+json", "+xml"))


def build_function_url_event(
    request: HttpRequest,
    *,
    request_id: str | None = None,
    time_epoch_ms: int | None = None,
    url_id: str = LOCAL_FUNCTION_URL_ID,
) -> dict[str, Any]:
    """The event a Lambda Function URL (payload format 2.0) sends to the function for `request`."""
    request_id = request_id or str(uuid.uuid4())
    time_epoch_ms = time_epoch_ms if time_epoch_ms is not None else int(time.time() * 1000)
    grouped: dict[str, list[str]] = {}
    for name, value in request.headers:
        grouped.setdefault(name.lower(), []).append(value)
    cookies = [part.strip() for value in grouped.pop("cookie", []) for part in value.split(";") if part.strip()]
    query: dict[str, list[str]] = {}
    for key, value in parse_qsl(request.query_string, keep_blank_values=True):
        query.setdefault(key, []).append(value)

    content_type = grouped.get("content-type", [""])[-1]
    body: str | None = None
    is_base64 = False
    if request.body:
        if _is_text_media_type(content_type):
            body = _utf8_or_none(request.body)
        if body is None:
            body, is_base64 = base64.b64encode(request.body).decode("ascii"), True

    host = grouped.get("host", [f"{url_id}.lambda-url.local.on.aws"])[-1]
    request_time = datetime.fromtimestamp(time_epoch_ms / 1000, tz=UTC)
    raw_path = request.path.split("?", 1)[0] or "/"
    event: dict[str, Any] = {
        "version": "2.0",
        "routeKey": "$default",
        "rawPath": raw_path,
        "rawQueryString": request.query_string,
    }
    if cookies:
        event["cookies"] = cookies
    event["headers"] = {name: ",".join(values) for name, values in grouped.items()}
    if query:
        event["queryStringParameters"] = {key: ",".join(values) for key, values in query.items()}
    event["requestContext"] = {
        "accountId": "anonymous",
        "apiId": url_id,
        "domainName": host,
        "domainPrefix": host.split(":", 1)[0].split(".", 1)[0],
        "http": {
            "method": request.method.upper(),
            "path": raw_path,
            "protocol": request.protocol,
            "sourceIp": request.source_ip,
            "userAgent": grouped.get("user-agent", [""])[-1],
        },
        "requestId": request_id,
        "routeKey": "$default",
        "stage": "$default",
        "time": request_time.strftime("%d/%b/%Y:%H:%M:%S +0000"),
        "timeEpoch": time_epoch_ms,
    }
    if body is not None:
        event["body"] = body
    event["isBase64Encoded"] = is_base64
    return event


def http_response_from_function_url(result: Any) -> HttpResponse:
    """The HTTP response a Function URL sends for the function's result (payload format 2.0)."""
    if not (isinstance(result, dict) and "statusCode" in result):
        # Anything else is the body of a 200, as JSON (a string is sent as it is).
        text = result if isinstance(result, str) else json.dumps(result)
        return HttpResponse(200, [("content-type", "application/json")], text.encode("utf-8"))
    try:
        status = int(result["statusCode"])
    except (TypeError, ValueError):
        raise InvalidLambdaResponseError("statusCode is not an integer") from None
    if not 100 <= status <= 599:
        raise InvalidLambdaResponseError(f"statusCode {status} is out of range")
    headers = [(name, str(value)) for name, value in _str_map(result.get("headers"), "headers").items()]
    cookies = result.get("cookies") or []
    if not isinstance(cookies, list):
        raise InvalidLambdaResponseError("cookies must be a list")
    headers.extend(("set-cookie", str(cookie)) for cookie in cookies)
    raw_body = result.get("body")
    if raw_body is None:
        body = b""
    elif not isinstance(raw_body, str):
        raise InvalidLambdaResponseError("body must be a string")
    elif result.get("isBase64Encoded"):
        try:
            body = base64.b64decode(raw_body, validate=True)
        except binascii.Error:
            raise InvalidLambdaResponseError("isBase64Encoded but the body is not base64") from None
    else:
        body = raw_body.encode("utf-8")
    return HttpResponse(status=status, headers=headers, body=body)
