"""Run one inbox export in this process and print what it cost, as JSON (the export memory test runs it in
a fresh interpreter, so that the process's peak RSS is the export's own):
`python -m tests.inbox_export_probe <database url> <user id> <chatbot id> <format>`.

The parts go to a store that only counts them (the object store's network is not what is measured)."""

from __future__ import annotations

import json
import resource
import sys
import time
import uuid
from typing import Any

from pydantic import SecretStr

from oneai.auth import authenticate
from oneai.config import override_settings
from oneai.db.connection import Database
from oneai.inbox import service
from tests.conftest import TEST_ISSUER, TEST_JWT_SECRET, TEST_SUPABASE_URL, token_for


class CountingStore:
    def __init__(self) -> None:
        self.parts = 0
        self.largest_part = 0

    def start_upload(self, key: str, *, media_type: str, attached: bool) -> str:
        return "upload"

    def upload_part(self, key: str, upload_id: str, number: int, body: bytes) -> dict[str, Any]:
        self.parts += 1
        self.largest_part = max(self.largest_part, len(body))
        return {"PartNumber": number, "ETag": str(number)}

    def finish_upload(self, key: str, upload_id: str, parts: list[dict[str, Any]]) -> None:
        pass

    def abort_upload(self, key: str, upload_id: str) -> None:
        pass

    def presigned_get(
        self, key: str, *, media_type: str, filename: str, expires_in: int, download: bool = False
    ) -> str:
        return "https://bucket.example/" + key


def rss_mib() -> float:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * resource.getpagesize() / 2**20


def peak_rss_mib() -> float:
    """The peak RSS of this address space (VmHWM). Not getrusage's ru_maxrss: Linux keeps that across
    execve, so a probe started by a large pytest process (500 MiB late in the full suite) would report its
    parent's size as its own peak."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError("no VmHWM in /proc/self/status")


def reset_peak_rss() -> None:
    # Linux >= 4.0: "5" resets VmHWM to the current RSS, so the peak read after is the export's alone.
    with open("/proc/self/clear_refs", "w") as clear_refs:
        clear_refs.write("5")


def main(url: str, user_id: str, chatbot_id: str, fmt: str) -> None:
    store = CountingStore()
    settings = {
        "database_url": SecretStr(url),
        "supabase_url": TEST_SUPABASE_URL,
        "supabase_jwt_issuer": TEST_ISSUER,
        "supabase_jwt_secret": SecretStr(TEST_JWT_SECRET),
    }
    with override_settings(**settings) as current:
        database = Database(current)
        principal = authenticate(f"Bearer {token_for(uuid.UUID(user_id))}")
        with database.user_transaction(principal) as conn:  # warm: imports, connection, catalog
            service.export_conversations(conn, uuid.UUID(chatbot_id), fmt, [uuid.uuid4()], lambda: store)  # type: ignore[arg-type]
        reset_peak_rss()
        before = rss_mib()
        started = time.perf_counter()
        with database.user_transaction(principal) as conn:
            result = service.export_conversations(conn, uuid.UUID(chatbot_id), fmt, None, lambda: store)  # type: ignore[arg-type]
        seconds = time.perf_counter() - started
        peak = peak_rss_mib()
        database.close()
    print(
        json.dumps(
            {
                "format": fmt,
                "bytes": result.size,
                "direct": result.body is not None,
                "parts": store.parts,
                "largest_part": store.largest_part,
                "seconds": round(seconds, 2),
                "rss_before_mib": round(before, 1),
                "peak_rss_mib": round(peak, 1),
                "growth_mib": round(max(0.0, peak - before), 1),
            }
        )
    )


if __name__ == "__main__":
    main(*sys.argv[1:5])
