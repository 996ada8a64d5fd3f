"""Run the benchmarks in order and print their reports: `python -m bench [--quick] [name ...]`."""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from collections.abc import Callable

from bench import (
    admin_analytics,
    analytics,
    chat_stream,
    chatbot_turn,
    credit_reserve,
    current_branch,
    docs_search,
    embeddings,
    feedback_rate_limit,
    import_time,
    input_guard,
    knowledge_ingest,
    knowledge_search,
    message_attachments,
    notifications,
    plan_change,
    quota_reserve,
    quota_sweep,
    rate_limit,
    webhooks,
    widget_chat,
    widget_size,
    workspace_rls,
)

BENCHMARKS: dict[str, Callable[..., None]] = {
    "admin_analytics": admin_analytics.run,
    # issue 28: a workspace's chatbot analytics from the rollups vs the raw rows, same run
    "analytics": analytics.run,
    "chat_stream": chat_stream.run,
    "chatbot_turn": chatbot_turn.run,
    "current_branch": current_branch.run,
    "docs_search": docs_search.run,
    "embeddings": embeddings.run,
    "feedback_rate_limit": feedback_rate_limit.run,
    "import_time": import_time.run,
    "message_attachments": message_attachments.run,
    "plan_change": plan_change.run,
    "notifications": notifications.run,
    "input_guard": input_guard.run,
    "knowledge_ingest": knowledge_ingest.run,
    "knowledge_search": knowledge_search.run,
    "quota_reserve": quota_reserve.run,
    # issue 26: a reply paid from credits next to the quota's reserve, same run
    "credit_reserve": credit_reserve.run,
    "quota_sweep": quota_sweep.run,
    "rate_limit": rate_limit.run,
    "webhooks": webhooks.run,
    "widget_size": widget_size.run,
    # issue 27: a widget visitor's turn next to a member's in-app chatbot turn, same run
    "widget_chat": widget_chat.run,
    "workspace_rls": workspace_rls.run,
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="fewer repetitions (a smoke run)")
    parser.add_argument("names", nargs="*", metavar="name", help=f"run only these: {', '.join(BENCHMARKS)}")
    args = parser.parse_args(argv)
    unknown = [name for name in args.names if name not in BENCHMARKS]
    if unknown:
        parser.error(f"unknown benchmark(s): {', '.join(unknown)}; known: {', '.join(BENCHMARKS)}")
    selected = args.names or list(BENCHMARKS)

    started = time.perf_counter()
    print(
        f"OneAI benchmarks{' (quick)' if args.quick else ''}: Python {platform.python_version()},"
        f" {platform.system()} {platform.machine()}, {os.cpu_count()} CPUs"
    )
    for name in selected:
        print()
        BENCHMARKS[name](quick=args.quick)
        sys.stdout.flush()
    print(f"\nall benchmarks done in {time.perf_counter() - started:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
