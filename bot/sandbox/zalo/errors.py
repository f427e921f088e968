"""Error answers in the shapes Zalo uses: the Bot API's {ok, error_code, description} and the
Official Account API's {error, message}."""

from __future__ import annotations

from bot.sandbox.errors import JsonDict

# Official Account API error codes (openapi v3.0) used by the sandbox.
OA_BAD_PARAMS = -201
OA_TOO_LONG = -210
OA_NOT_FOLLOWER = -213
OA_BAD_TOKEN = -216
OA_OUTSIDE_WINDOW = -230
OA_RATE_LIMITED = -32
# OAuth v4 error codes used by the sandbox.
OAUTH_BAD_APP = -14001
OAUTH_BAD_SECRET = -14002
OAUTH_BAD_GRANT = -14003
OAUTH_BAD_REFRESH = -14014
OAUTH_EXPIRED_REFRESH = -14019


class BotApiError(Exception):
    """A Zalo Bot API error: answered with HTTP `status` (200 for most) and ok=false."""

    def __init__(self, code: int, description: str, status: int = 200) -> None:
        super().__init__(description)
        self.code = code
        self.description = description
        self.status = status

    def to_json(self) -> JsonDict:
        """Return the error body."""
        return {"ok": False, "error_code": self.code, "description": self.description}


def bad_request(detail: str) -> BotApiError:
    """Return a 400 error in the body (HTTP 200), as Zalo answers a bad parameter."""
    return BotApiError(400, f"Bad Request: {detail}")


class OaError(Exception):
    """An Official Account API error: HTTP 200 with {error: <negative code>, message}."""

    def __init__(self, code: int, message: str, status: int = 200) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.status = status

    def to_json(self) -> JsonDict:
        """Return the error body."""
        return {"error": self.code, "message": self.message}


class OAuthError(Exception):
    """An OAuth v4 error: HTTP 200 with {error, error_name, error_description}."""

    def __init__(self, code: int, name: str, description: str) -> None:
        super().__init__(description)
        self.code = code
        self.name = name
        self.description = description

    def to_json(self) -> JsonDict:
        """Return the error body."""
        return {
            "error": self.code,
            "error_name": self.name,
            "error_reason": self.description,
            "error_description": self.description,
        }
