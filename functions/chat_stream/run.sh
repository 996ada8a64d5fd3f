#!/bin/sh
# Handler of ChatStreamFunction. The Lambda Web Adapter (AWS_LAMBDA_EXEC_WRAPPER=/opt/bootstrap) runs this
# and proxies each invocation to the app, streaming the response back (AWS_LWA_INVOKE_MODE=response_stream).
# The layer (/opt/python) comes first, so its pinned boto3/botocore win over the runtime's; the runtime's
# own directory stays on the path as the managed runtime has it.
export PYTHONPATH="/opt/python:${LAMBDA_TASK_ROOT}:${LAMBDA_RUNTIME_DIR}${PYTHONPATH:+:${PYTHONPATH}}"
exec python3 -m uvicorn chat_stream.app:app --host 127.0.0.1 --port "${PORT:-8000}" --no-access-log --timeout-graceful-shutdown 2
