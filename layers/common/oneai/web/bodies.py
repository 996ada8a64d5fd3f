"""Bodies a route reads itself (when one route accepts more than one shape, like `POST /chat/stream`)."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request

from oneai.web.inputs import check_json_body, decode_json


async def json_body(request: Request) -> Any:
    """The parsed JSON body, held to the input guard's rules whatever its content type says (the guard
    checks only bodies declared JSON): 400 in the envelope when it is not UTF-8 JSON or nests too deep, 422
    for NaN or text the database cannot store."""
    body = await request.body()
    error = check_json_body(body)
    if error is not None:
        raise error
    return decode_json(body)
