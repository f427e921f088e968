"""Bot API call parameters from the query string, form, multipart or JSON body."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from bot.sandbox.errors import ApiError, bad_request

INTEGER = re.compile(r"^-?\d+$")
TRUE_WORDS = frozenset({"true", "1", "yes", "on"})
FORM_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data")


@dataclass(frozen=True)
class Upload:
    """A file part of a multipart request."""

    file_name: str
    mime_type: str | None
    data: bytes


class Params:
    """The parameters of one call, with typed getters that answer 400 like Telegram."""

    def __init__(self, values: dict[str, Any], uploads: dict[str, Upload] | None = None) -> None:
        self.values = values
        self.uploads = uploads or {}

    @classmethod
    async def from_request(cls, request: web.Request) -> Params:
        """Merge the query string with the body of any content type Telegram accepts."""
        values: dict[str, Any] = dict(request.query)
        uploads: dict[str, Upload] = {}
        if request.content_type == "application/json":
            body = await _json_body(request)
            values.update(body)
        elif request.content_type in FORM_TYPES:
            for name, value in (await request.post()).items():
                if isinstance(value, web.FileField):
                    data = value.file.read()
                    uploads[name] = Upload(value.filename or name, value.content_type, data)
                elif isinstance(value, bytes | bytearray):
                    values[name] = bytes(value).decode("utf-8", "replace")
                else:
                    values[name] = value
        return cls(values, uploads)

    def has(self, name: str) -> bool:
        """Tell whether a parameter was given (uploads included)."""
        return name in self.values or name in self.uploads

    def raw(self, name: str) -> Any:
        """Return a parameter as sent."""
        return self.values.get(name)

    def text(self, name: str) -> str | None:
        """Return a parameter as a string."""
        value = self.values.get(name)
        if value is None or isinstance(value, str):
            return value
        if isinstance(value, bool):
            return "true" if value else "false"
        if isinstance(value, int | float):
            return str(value)
        return json.dumps(value, ensure_ascii=False)

    def integer(self, name: str) -> int | None:
        """Return an integer parameter (numbers may come as strings)."""
        value = self.values.get(name)
        if value is None or value == "":
            return None
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, str) and INTEGER.match(value.strip()):
            return int(value)
        raise bad_request(f'field "{name}" must be of type Integer')

    def number(self, name: str) -> float | None:
        """Return a numeric parameter."""
        value = self.values.get(name)
        if value is None or value == "":
            return None
        try:
            return float(value)
        except (TypeError, ValueError):
            raise bad_request(f'field "{name}" must be a number') from None

    def flag(self, name: str) -> bool:
        """Return a boolean parameter (false when absent)."""
        value = self.values.get(name)
        if isinstance(value, str):
            return value.strip().lower() in TRUE_WORDS
        return bool(value)

    def json(self, name: str) -> Any:
        """Return a parameter that holds JSON (an object in a JSON body, a string otherwise)."""
        value = self.values.get(name)
        if not isinstance(value, str):
            return value
        try:
            return json.loads(value)
        except ValueError:
            raise bad_request(f"can't parse {name} JSON object") from None

    def upload(self, name: str) -> Upload | None:
        """Return the file uploaded under a name."""
        return self.uploads.get(name)

    def chat_id(self) -> int | None:
        """Return the chat_id; a username or anything else not numeric is None."""
        value = self.values.get("chat_id")
        if value is None or value == "":
            raise bad_request("chat_id is empty")
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, str) and INTEGER.match(value.strip()):
            return int(value)
        return None

    def peek_chat_id(self) -> int | None:
        """Return the chat_id if there is a numeric one, without raising."""
        try:
            return self.chat_id() if "chat_id" in self.values else None
        except ApiError:
            return None


async def _json_body(request: web.Request) -> dict[str, Any]:
    """Read a JSON object body (anything else counts as no parameters)."""
    raw = await request.read()
    if not raw.strip():
        return {}
    try:
        body = json.loads(raw)
    except ValueError:
        raise bad_request("can't parse JSON object") from None
    return body if isinstance(body, dict) else {}
