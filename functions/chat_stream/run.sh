#!/bin/sh
# Handler of ChatStreamFunction. The Lambda Web Adapter (AWS_LAMBDA_EXEC_WRAPPER=/opt/bootstrap) runs this
# and proxies each invocation to the app, streaming the response back (AWS_LWA_INVOKE_MODE=response_stream).
export PYTHONPATH="/opt/python:${LAMBDA_TASK_ROOT}:${PYTHONPATH}"
exec python -m uvicorn chat_stream.app:app --host 127.0.0.1 --port "${PORT:-8000}" --no-access-log --timeout-graceful-shutdown 2
