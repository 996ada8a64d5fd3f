"""The routes of template.yaml, read the way SAM reads them, so the local server cannot drift from AWS.

Only what the local server needs: for every function, its CodeUri, Handler, memory, timeout and plain-string
environment (Globals merged under the function's own values), and for every `Api`/`HttpApi` event one
`Route` (plus one per `OneAILocalRoutes` entry of a function served by its Function URL). Values that are
intrinsic functions (`!Ref`, `!Sub`, ...) are kept as CloudFormation's long form (`{"Ref": ...}`) and
resolved only where a parameter default makes that safe (`resolve`).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

REPO_ROOT = Path(__file__).resolve().parent.parent
TEMPLATE_PATH = REPO_ROOT / "template.yaml"

# The function Metadata key that marks a function whose ASGI app the local server mounts directly
# instead of invoking a Lambda handler (streaming functions behind the Lambda Web Adapter), e.g.
# `Metadata: {OneAILocalAsgiApp: "chat_stream.app:app"}`.
LOCAL_ASGI_METADATA_KEY = "OneAILocalAsgiApp"
# The function Metadata key that lists the local routes of a function AWS serves behind its Function URL
# (which has no paths or methods of its own), e.g. `OneAILocalRoutes: ["POST /webhooks/razorpay"]`. The
# local server invokes the handler with a Function URL (payload v2) event for each.
LOCAL_ROUTES_METADATA_KEY = "OneAILocalRoutes"
FUNCTION_URL_EVENT_TYPE = "FunctionUrl"

_API_EVENT_TYPES = frozenset({"Api", "HttpApi"})
_PARAM_SEGMENT = re.compile(r"^\{([A-Za-z0-9_.-]+)(\+?)\}$")


class TemplateError(ValueError):
    """template.yaml does not have the shape the local server relies on."""


class _CloudFormationLoader(yaml.SafeLoader):
    """A safe loader that turns short-form tags (`!Ref X`, `!GetAtt A.B`, `!Sub ...`) into long form."""


def _construct_tag(loader: yaml.SafeLoader, tag_suffix: str, node: yaml.Node) -> dict[str, Any]:
    value: Any
    if isinstance(node, yaml.ScalarNode):
        value = loader.construct_scalar(node)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        assert isinstance(node, yaml.MappingNode)
        value = loader.construct_mapping(node, deep=True)
    if tag_suffix == "Ref":
        return {"Ref": value}
    if tag_suffix == "GetAtt" and isinstance(value, str):
        return {"Fn::GetAtt": value.split(".", 1)}
    if tag_suffix == "Condition":
        return {"Condition": value}
    return {f"Fn::{tag_suffix}": value}


_CloudFormationLoader.add_multi_constructor("!", _construct_tag)  # type: ignore[no-untyped-call]


def load_template(path: Path = TEMPLATE_PATH) -> dict[str, Any]:
    with path.open(encoding="utf-8") as handle:
        document = yaml.load(handle, Loader=_CloudFormationLoader)  # noqa: S506 - a SafeLoader subclass
    if not isinstance(document, dict) or not isinstance(document.get("Resources"), dict):
        raise TemplateError(f"{path} has no Resources")
    return document


def parameter_defaults(template: Mapping[str, Any]) -> dict[str, str]:
    params = template.get("Parameters") or {}
    return {name: str(spec["Default"]) for name, spec in params.items() if "Default" in spec}


def resolve(value: Any, parameters: Mapping[str, str]) -> str | None:
    """A plain string for `value` if it is one, or a `Ref`/`Sub` of known parameters; else None."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str | int | float):
        return str(value)
    if isinstance(value, dict) and len(value) == 1:
        if "Ref" in value:
            return parameters.get(str(value["Ref"]))
        if "Fn::Sub" in value and isinstance(value["Fn::Sub"], str):
            missing = False

            def substitute(match: re.Match[str]) -> str:
                nonlocal missing
                name = match.group(1)
                if name not in parameters:
                    missing = True
                    return ""
                return parameters[name]

            result = re.sub(r"\$\{([A-Za-z0-9_:.]+)\}", substitute, value["Fn::Sub"])
            return None if missing else result
    return None


@dataclass(frozen=True)
class Function:
    logical_id: str
    code_uri: str
    handler: str
    memory_mb: int
    timeout_seconds: int
    # Only literal strings: values that come from parameters, conditions or secrets are AWS-only.
    environment: dict[str, str]
    asgi_app: str | None = None
    local_routes: tuple[str, ...] = ()  # "METHOD /path" entries of OneAILocalRoutes

    @property
    def code_dir(self) -> Path:
        return (REPO_ROOT / self.code_uri).resolve()

    @property
    def events_dir_name(self) -> str:
        """`functions/conversations/` -> `conversations` (the folder under events/)."""
        return Path(self.code_uri.rstrip("/")).name


@dataclass(frozen=True)
class Route:
    method: str  # upper case; "ANY" matches every method
    path: str  # the API Gateway path template, e.g. /conversations/{id} or /files/{proxy+}
    event_name: str
    event_type: str
    function: Function
    streaming: bool = False  # the event asks for ResponseTransferMode: RESPONSE_STREAM
    segments: tuple[str, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "segments", split_path(self.path))

    @property
    def function_id(self) -> str:
        return self.function.logical_id

    @property
    def code_uri(self) -> str:
        return self.function.code_uri

    @property
    def handler(self) -> str:
        return self.function.handler

    @property
    def function_url(self) -> bool:
        """Served behind the function's URL in AWS: the handler gets a Function URL (v2) event."""
        return self.event_type == FUNCTION_URL_EVENT_TYPE


def split_path(path: str) -> tuple[str, ...]:
    """Path segments; a trailing slash is ignored, as API Gateway does."""
    return tuple(part for part in path.split("/") if part)


def path_param(segment: str) -> tuple[str, bool] | None:
    """(`name`, greedy) when `segment` is `{name}` or `{name+}`, else None."""
    match = _PARAM_SEGMENT.match(segment)
    return (match.group(1), match.group(2) == "+") if match else None


def _plain_environment(variables: Any) -> dict[str, str]:
    if not isinstance(variables, dict):
        return {}
    return {str(k): v for k, v in variables.items() if isinstance(v, str)}


def _function(
    logical_id: str, props: Mapping[str, Any], metadata: Mapping[str, Any], glob: Mapping[str, Any]
) -> Function:
    merged = {**glob, **props}
    env = {
        **_plain_environment((glob.get("Environment") or {}).get("Variables")),
        **_plain_environment((props.get("Environment") or {}).get("Variables")),
    }
    code_uri, handler = merged.get("CodeUri"), merged.get("Handler")
    if not isinstance(code_uri, str) or not isinstance(handler, str):
        raise TemplateError(f"{logical_id}: CodeUri and Handler must be plain strings")
    asgi_app = metadata.get(LOCAL_ASGI_METADATA_KEY)
    local_routes = metadata.get(LOCAL_ROUTES_METADATA_KEY) or []
    if not isinstance(local_routes, list) or not all(isinstance(r, str) for r in local_routes):
        raise TemplateError(f"{logical_id}: {LOCAL_ROUTES_METADATA_KEY} must be a list of 'METHOD /path' strings")
    if local_routes and not isinstance(props.get("FunctionUrlConfig"), dict):
        raise TemplateError(f"{logical_id}: {LOCAL_ROUTES_METADATA_KEY} needs a FunctionUrlConfig")
    return Function(
        logical_id=logical_id,
        code_uri=code_uri,
        handler=handler,
        memory_mb=int(merged.get("MemorySize", 128)),
        timeout_seconds=int(merged.get("Timeout", 3)),
        environment=env,
        asgi_app=asgi_app if isinstance(asgi_app, str) else None,
        local_routes=tuple(local_routes),
    )


def list_functions(template: Mapping[str, Any]) -> list[Function]:
    glob = (template.get("Globals") or {}).get("Function") or {}
    return [
        _function(logical_id, resource.get("Properties") or {}, resource.get("Metadata") or {}, glob)
        for logical_id, resource in template["Resources"].items()
        if resource.get("Type") == "AWS::Serverless::Function"
    ]


def list_routes(template: Mapping[str, Any]) -> list[Route]:
    """Every Api/HttpApi event of every function, in template order."""
    functions = {fn.logical_id: fn for fn in list_functions(template)}
    routes: list[Route] = []
    for logical_id, fn in functions.items():
        events = (template["Resources"][logical_id].get("Properties") or {}).get("Events") or {}
        for event_name, event in events.items():
            if event.get("Type") not in _API_EVENT_TYPES:
                continue
            props = event.get("Properties") or {}
            path, method = props.get("Path"), props.get("Method")
            if not isinstance(path, str) or not isinstance(method, str):
                raise TemplateError(f"{logical_id}.{event_name}: Path and Method must be plain strings")
            routes.append(
                Route(
                    method=method.upper(),
                    path=path,
                    event_name=event_name,
                    event_type=event["Type"],
                    function=fn,
                    streaming=props.get("ResponseTransferMode") == "RESPONSE_STREAM",
                )
            )
        routes.extend(_function_url_route(fn, entry) for entry in fn.local_routes)
    return routes


def _function_url_route(function: Function, entry: str) -> Route:
    """`POST /webhooks/razorpay` -> a route named `PostWebhooksRazorpay` that gets a Function URL event."""
    method, _, path = entry.strip().partition(" ")
    path = path.strip()
    if not method.isalpha() or not path.startswith("/"):
        raise TemplateError(f"{function.logical_id}: bad {LOCAL_ROUTES_METADATA_KEY} entry {entry!r}")
    name = "".join(word.capitalize() for word in re.split(r"[^A-Za-z0-9]+", f"{method} {path}") if word)
    return Route(
        method=method.upper(), path=path, event_name=name, event_type=FUNCTION_URL_EVENT_TYPE, function=function
    )


@dataclass(frozen=True)
class ApiSettings:
    """What the local gateway needs of the REST API, resolved with the parameter defaults."""

    stage: str
    cors: dict[str, str | None]  # SAM Cors keys -> quoted header values ("'*'"); empty when no Cors
    binary_media_types: tuple[str, ...]


def rest_api_settings(template: Mapping[str, Any]) -> ApiSettings:
    """The first AWS::Serverless::Api (the project has one REST API); SAM's implicit API otherwise."""
    params = parameter_defaults(template)
    for resource in template["Resources"].values():
        if resource.get("Type") != "AWS::Serverless::Api":
            continue
        props = resource.get("Properties") or {}
        cors = props.get("Cors")
        if isinstance(cors, dict):
            resolved = {key: resolve(value, params) for key, value in cors.items()}
        else:  # the shorthand `Cors: "'*'"` is AllowOrigin alone
            resolved = {"AllowOrigin": resolve(cors, params)} if cors is not None else {}
        types = [resolve(t, params) for t in props.get("BinaryMediaTypes") or []]
        return ApiSettings(
            stage=resolve(props.get("StageName"), params) or "Prod",
            cors=resolved,
            binary_media_types=tuple(t for t in types if t),
        )
    return ApiSettings(stage="Prod", cors={}, binary_media_types=())
