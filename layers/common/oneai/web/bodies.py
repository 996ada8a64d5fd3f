"""Bodies a route reads itself (when one route accepts more than one shape, like `POST /chat/stream`)."""

from __future__ import annotations

import json
from typing import Any

from starlette.requests import Request

from oneai.errors import BadRequestError


async def json_body(request: Request) -> Any:
    """The parsed JSON body; 400 in the envelope when it is not JSON."""
    try:
        return json.loads(await request.body())
    except (ValueError, UnicodeDecodeError):
        raise BadRequestError("The request body is not valid JSON") from None
