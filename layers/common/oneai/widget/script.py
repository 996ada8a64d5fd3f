"""How `GET /widget.js` is served: a content hash for the ETag and the versioned URL, and the cache rules.

The unversioned URL (what the embed code names) may be cached for 5 minutes and served stale for a day
while revalidating, so a new script reaches every site within minutes; `/widget.js?v=<hash>` names one
version for ever (`immutable`, a year). A `v` that is not the current hash gets the short rule, since its
answer is today's script, not the one it named.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

SHORT_CACHE = "public, max-age=300, stale-while-revalidate=86400"
IMMUTABLE_CACHE = "public, max-age=31536000, immutable"
CONTENT_TYPE = "text/javascript; charset=utf-8"


@dataclass(frozen=True, slots=True)
class Script:
    body: bytes
    version: str  # the first 16 hex digits of the body's sha256

    @classmethod
    def of(cls, body: bytes) -> Script:
        return cls(body=body, version=hashlib.sha256(body).hexdigest()[:16])

    @property
    def etag(self) -> str:
        return f'"{self.version}"'

    def headers(self, requested_version: str | None) -> dict[str, str]:
        return {
            "content-type": CONTENT_TYPE,
            "etag": self.etag,
            "cache-control": IMMUTABLE_CACHE if requested_version == self.version else SHORT_CACHE,
            # Any page may load it (a script tag needs no CORS; these keep fetch() and COEP pages working).
            "access-control-allow-origin": "*",
            "cross-origin-resource-policy": "cross-origin",
            "x-content-type-options": "nosniff",
        }

    def not_modified(self, if_none_match: str | None) -> bool:
        if not if_none_match:
            return False
        tags = {tag.strip().removeprefix("W/") for tag in if_none_match.split(",")}
        return "*" in tags or self.etag in tags
