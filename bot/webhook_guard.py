"""What every webhook checks before reading a body: the method, the secret header, the size."""

from __future__ import annotations

import hmac
from http import HTTPStatus

from aiohttp import hdrs, web


def refuse(status: HTTPStatus) -> web.Response:
    """Answer with `status` and close the connection, leaving the body unread."""
    response = web.Response(status=status, text=status.phrase)
    response.force_close()
    return response


def refusal(
    request: web.Request, *, header: str, secret: bytes, max_body: int
) -> web.Response | None:
    """Return the answer to a request refused on its headers alone, or None to go on.

    The secret is compared in constant time, before the size, so a forger learns nothing else.
    """
    if request.method != hdrs.METH_POST:
        return refuse(HTTPStatus.METHOD_NOT_ALLOWED)
    given = request.headers.get(header, "").encode("utf-8", "replace")
    if not hmac.compare_digest(given, secret):
        return refuse(HTTPStatus.FORBIDDEN)
    length = request.content_length
    if length is not None and length > max_body:
        return refuse(HTTPStatus.REQUEST_ENTITY_TOO_LARGE)
    return None
