"""Write (or check) the OpenAPI document of every FastAPI function into docs/openapi/<name>.json.

python -m local.openapi --write    # regenerate after changing routes or models
python -m local.openapi --check    # exit 1 when a committed document is stale (tests call this)
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parent.parent
DOCS_DIR = REPO_ROOT / "docs" / "openapi"
# Function package -> module holding `build_app()`.
FASTAPI_FUNCTIONS = {
    "conversations": "conversations.app",
    "chat_stream": "chat_stream.app",
    "account": "account.app",
    "billing": "billing.app",
    "admin": "admin.app",
    "docs": "docs.app",
    "workspaces": "workspaces.app",
    "chatbots": "chatbots.app",
    "credits": "credits.app",
    "widget": "widget.app",
}


def documents() -> dict[str, dict[str, Any]]:
    found = {}
    for name, module_name in FASTAPI_FUNCTIONS.items():
        function_dir = str(REPO_ROOT / "functions" / name)
        if function_dir not in sys.path:
            sys.path.insert(0, function_dir)
        found[name] = importlib.import_module(module_name).build_app().openapi()
    return found


def rendered(document: dict[str, Any]) -> str:
    return json.dumps(document, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m local.openapi")
    parser.add_argument("--write", action="store_true")
    parser.add_argument("--check", action="store_true")
    args = parser.parse_args(argv)
    stale = []
    for name, document in documents().items():
        path = DOCS_DIR / f"{name}.json"
        text = rendered(document)
        if args.write:
            DOCS_DIR.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
            print(f"wrote {path.relative_to(REPO_ROOT)}")
        elif not path.exists() or path.read_text(encoding="utf-8") != text:
            stale.append(name)
    if stale:
        print(f"stale OpenAPI documents: {', '.join(stale)}; run `make openapi`", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
