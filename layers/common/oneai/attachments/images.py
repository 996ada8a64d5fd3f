"""Image bytes: what type they really are (by their signature, never by what a client claims), and
`data:` URLs in and out."""

from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass
from typing import Final

from oneai.attachments.models import ACCEPTED_MEDIA_TYPES

_DATA_URL: Final = re.compile(
    r"^data:(?P<type>[\w.+-]+/[\w.+-]+)(?P<params>(?:;[^;,]*)*?);base64,(?P<data>.*)$", re.S
)


class NotAnImageError(ValueError):
    """A `data:` URL that is not an accepted image (the message says why, for a 422)."""


@dataclass(frozen=True, slots=True)
class InlineImage:
    media_type: str
    data: bytes

    @property
    def extension(self) -> str:
        return self.media_type.removeprefix("image/").replace("jpeg", "jpg")


def sniff_media_type(data: bytes) -> str | None:
    """The accepted image type `data` is, by its leading bytes; None for anything else."""
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if data.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if data[:6] in (b"GIF87a", b"GIF89a"):
        return "image/gif"
    if len(data) >= 12 and data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    return None


def parse_data_url(url: str, *, max_bytes: int) -> InlineImage:
    """The image of a base64 `data:` URL whose declared type is accepted and whose bytes are that type."""
    match = _DATA_URL.match(url)
    if match is None:
        raise NotAnImageError("must be a base64 data: URL or the url of one of your attachments")
    media_type = match.group("type").lower()
    if media_type not in ACCEPTED_MEDIA_TYPES:
        raise NotAnImageError(
            f"{media_type} is not an accepted image type ({', '.join(sorted(ACCEPTED_MEDIA_TYPES))})"
        )
    encoded = match.group("data")
    if len(encoded) * 3 // 4 > max_bytes + 3:
        raise NotAnImageError(f"the image is larger than {max_bytes} bytes")
    try:
        data = base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError):
        raise NotAnImageError("the data: URL is not valid base64") from None
    if not data or len(data) > max_bytes:
        raise NotAnImageError(f"the image must be 1 to {max_bytes} bytes")
    actual = sniff_media_type(data)
    if actual != media_type:
        raise NotAnImageError(f"the bytes are not a {media_type} image")
    return InlineImage(media_type=media_type, data=data)


def data_url(media_type: str, data: bytes) -> str:
    return f"data:{media_type};base64,{base64.b64encode(data).decode('ascii')}"
