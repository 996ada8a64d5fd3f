"""A built function as Lambda lays it out: which module its init imports and the environment the
template gives it. Shared by the artifact tests (tests/artifact) and the import-time bench."""

from __future__ import annotations

from pathlib import Path

from local import LOCAL_SUPABASE_URL
from local.template_routes import Function, list_functions, load_template, parameter_defaults, resolve

REGION = "ap-south-1"
STAGE = "default"
SSM_PATH = f"/oneai/{STAGE}/"
REST_API_ID = "0neai0test"  # the id API Gateway would give OneAIApi (what the notification links point at)
# The template's parameters without defaults, as `make dev` has them.
ATTACHMENTS_BUCKET = "oneai-attachments-default"
# Issue 24: the ingest queue (a resource of the stack; a sample URL in moto's account).
INGEST_QUEUE_URL = f"https://sqs.{REGION}.amazonaws.com/123456789012/oneai-ingest-{STAGE}"
# Issue 28: the outbound webhooks' queue (retries re-enter it with a delay).
WEBHOOK_QUEUE_URL = f"https://sqs.{REGION}.amazonaws.com/123456789012/oneai-webhook-{STAGE}"
PARAMETERS = {
    "SupabaseUrl": LOCAL_SUPABASE_URL,
    "ShareUrlBase": "https://oneai.test/shared",
    "InvitationUrlBase": "https://oneai.test/invitations",
}


def functions() -> list[Function]:
    return list_functions(load_template())


def init_module(function: Function) -> str:
    """The module a cold start imports: the handler's, or for the Web Adapter's run.sh the ASGI app's."""
    if function.handler.endswith(".sh"):
        if not function.asgi_app:
            raise ValueError(f"{function.logical_id}: a run.sh handler needs OneAILocalAsgiApp metadata")
        return function.asgi_app.partition(":")[0]
    return function.handler.rpartition(".")[0]


def template_environment(function: Function, *, tracing: bool = True) -> dict[str, str]:
    """Globals' and the function's environment variables, resolved with the default parameters."""
    template = load_template()
    parameters = {**parameter_defaults(template), **PARAMETERS, "AWS::Region": REGION}
    resource = template["Resources"][function.logical_id]
    variables = {
        **((template["Globals"]["Function"].get("Environment") or {}).get("Variables") or {}),
        **((resource["Properties"].get("Environment") or {}).get("Variables") or {}),
    }
    resolved = {name: resolve(value, parameters) for name, value in variables.items()}
    # The conditional values, as the template's defaults (or tracing off) make them.
    resolved["ONEAI_SSM_PATH"] = SSM_PATH
    resolved["POWERTOOLS_TRACE_DISABLED"] = "false" if tracing else "true"
    # Issue 12: the attachments bucket is a resource of the stack (named here as a sample).
    resolved["ONEAI_ATTACHMENTS_BUCKET"] = ATTACHMENTS_BUCKET
    if "ONEAI_INGEST_QUEUE_URL" in resolved:
        resolved["ONEAI_INGEST_QUEUE_URL"] = INGEST_QUEUE_URL
    if "ONEAI_WEBHOOK_QUEUE_URL" in resolved:  # issue 28: the outbound webhooks' queue (retries re-enter it)
        resolved["ONEAI_WEBHOOK_QUEUE_URL"] = WEBHOOK_QUEUE_URL
    own = (resource["Properties"].get("Environment") or {}).get("Variables") or {}
    if "ONEAI_PUBLIC_API_URL" in own:  # no PublicApiUrl: the stage's execute-api URL
        resolved["ONEAI_PUBLIC_API_URL"] = f"https://{REST_API_ID}.execute-api.{REGION}.amazonaws.com/{STAGE}"
    elif resolved.get("ONEAI_PUBLIC_API_URL", "") is None:  # Globals' (issue 12): absent without PublicApiUrl
        del resolved["ONEAI_PUBLIC_API_URL"]
    missing = sorted(name for name, value in resolved.items() if value is None)
    if missing:
        raise ValueError(f"{function.logical_id}: environment values that cannot be resolved: {missing}")
    return {name: value for name, value in resolved.items() if value is not None}


def lambda_process_environment(function: Function, code_dir: Path, *, tracing: bool = True) -> dict[str, str]:
    """What the runtime adds: LAMBDA_TASK_ROOT, the function's name and memory, the region."""
    return {
        "LANG": "C.UTF-8",
        "TZ": ":UTC",
        **template_environment(function, tracing=tracing),
        "LAMBDA_TASK_ROOT": str(code_dir),
        "AWS_LAMBDA_FUNCTION_NAME": function.logical_id,
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(function.memory_mb),
        "AWS_REGION": REGION,
        "AWS_DEFAULT_REGION": REGION,
    }
