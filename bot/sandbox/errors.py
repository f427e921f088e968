"""Bot API error answers in Telegram's shape."""

from __future__ import annotations

from typing import Any

JsonDict = dict[str, Any]


class ApiError(Exception):
    """An error answer with Telegram's error code, description and optional parameters."""

    def __init__(self, code: int, description: str, parameters: JsonDict | None = None) -> None:
        super().__init__(description)
        self.code = code
        self.description = description
        self.parameters = parameters

    def to_json(self) -> JsonDict:
        """Return the JSON body Telegram would send for this error."""
        body: JsonDict = {"ok": False, "error_code": self.code, "description": self.description}
        if self.parameters:
            body["parameters"] = self.parameters
        return body


def bad_request(detail: str) -> ApiError:
    """Return a 400 error with Telegram's "Bad Request: ..." description."""
    return ApiError(400, f"Bad Request: {detail}")


def not_found(detail: str) -> ApiError:
    """Return a 404 error for the user API (unknown user, chat, message...)."""
    return ApiError(404, f"Not Found: {detail}")
