#!/bin/sh
# Handler of WidgetFunction: the same Lambda Web Adapter start as ChatStreamFunction's run.sh (see there),
# for this function's app. The Handler must sit in the function's own artifact, so it is this one line
# rather than a build-time copy of the chat function's script.
export PYTHONPATH="/opt/python:${LAMBDA_TASK_ROOT}:${LAMBDA_RUNTIME_DIR}${PYTHONPATH:+:${PYTHONPATH}}"
exec python3 -m uvicorn widget.app:app --host 127.0.0.1 --port "${PORT:-8000}" --no-access-log --timeout-graceful-shutdown 2
