"""A python-telegram-bot request backend on aiohttp: the same calls, a far cheaper client.

httpx's connection pool checks every pooled connection on each request (httpcore asks the socket
whether it is readable and builds anyio's attribute table each time), which costs a bulk sender
milliseconds of CPU per message; aiohttp's connector does not.
"""

from __future__ import annotations

import json
from typing import Any

import aiohttp
from telegram._utils.defaultvalue import DefaultValue
from telegram._utils.types import ODVInput
from telegram.error import NetworkError, TimedOut
from telegram.request import BaseRequest, RequestData

DEFAULT_POOL = 256
JSON_HEADERS = {"Content-Type": "application/json"}


class AiohttpRequest(BaseRequest):
    """Send Bot API requests with aiohttp, keeping up to `connection_pool_size` connections."""

    def __init__(
        self,
        connection_pool_size: int = DEFAULT_POOL,
        *,
        read_timeout: float | None = 5.0,
        write_timeout: float | None = 5.0,
        connect_timeout: float | None = 5.0,
        pool_timeout: float | None = 1.0,
        media_write_timeout: float | None = 20.0,
    ) -> None:
        self._pool_size = connection_pool_size
        self._timeouts = {
            "read": read_timeout,
            "write": write_timeout,
            "connect": connect_timeout,
            "pool": pool_timeout,
            "media": media_write_timeout,
        }
        self._session: aiohttp.ClientSession | None = None
        self._plain_timeout: aiohttp.ClientTimeout | None = None

    @property
    def read_timeout(self) -> float | None:
        """Return the default read timeout in seconds."""
        return self._timeouts["read"]

    async def initialize(self) -> None:
        """Open the client session (once)."""
        if self._session is None or self._session.closed:
            connector = aiohttp.TCPConnector(limit=self._pool_size, limit_per_host=0)
            self._session = aiohttp.ClientSession(
                connector=connector, headers={"User-Agent": self.USER_AGENT}
            )

    @property
    def session(self) -> aiohttp.ClientSession | None:
        """Return the open client session (None before `initialize` or after `shutdown`)."""
        session = self._session
        return None if session is None or session.closed else session

    async def post_json(self, url: str, body: bytes) -> tuple[int, bytes]:
        """POST a JSON body encoded already; return the status and the answer (bulk sends).

        Network faults raise python-telegram-bot's errors, as `do_request` does.
        """
        session = self.session
        if session is None:
            raise RuntimeError("This AiohttpRequest is not initialized!")
        try:
            async with session.post(
                url, data=body, headers=JSON_HEADERS, timeout=self._json_timeout()
            ) as answer:
                return answer.status, await answer.read()
        except TimeoutError as err:
            raise TimedOut from err
        except aiohttp.ClientError as err:
            raise NetworkError(f"aiohttp.{type(err).__name__}: {err}") from err
        except Exception as err:  # as python-telegram-bot wraps a backend's other errors
            raise NetworkError(f"Unknown error in HTTP implementation: {err!r}") from err

    def _json_timeout(self) -> aiohttp.ClientTimeout:
        """Return the timeouts of a request without files (built once)."""
        if self._plain_timeout is None:
            read, write = self._timeouts["read"], self._timeouts["write"]
            self._plain_timeout = aiohttp.ClientTimeout(
                total=None,
                connect=self._timeouts["pool"],
                sock_connect=self._timeouts["connect"],
                sock_read=max((t for t in (read, write) if t is not None), default=None),
            )
        return self._plain_timeout

    async def shutdown(self) -> None:
        """Close the client session."""
        if self._session is not None and not self._session.closed:
            await self._session.close()

    def _timeout(self, name: str, value: ODVInput[float]) -> float | None:
        """Return a timeout: the one given, or this request's default."""
        if isinstance(value, DefaultValue):
            return self._timeouts[name]
        return value

    async def do_request(
        self,
        url: str,
        method: str,
        request_data: RequestData | None = None,
        read_timeout: ODVInput[float] = BaseRequest.DEFAULT_NONE,
        write_timeout: ODVInput[float] = BaseRequest.DEFAULT_NONE,
        connect_timeout: ODVInput[float] = BaseRequest.DEFAULT_NONE,
        pool_timeout: ODVInput[float] = BaseRequest.DEFAULT_NONE,
    ) -> tuple[int, bytes]:
        """Make one request; return the status and the body."""
        if self._session is None or self._session.closed:
            raise RuntimeError("This AiohttpRequest is not initialized!")
        files = request_data.multipart_data if request_data else None
        write = self._timeout("media" if files else "write", write_timeout)
        read = self._timeout("read", read_timeout)
        timeout = aiohttp.ClientTimeout(
            total=None,
            connect=self._timeout("pool", pool_timeout),
            sock_connect=self._timeout("connect", connect_timeout),
            sock_read=max((t for t in (read, write) if t is not None), default=None),
        )
        try:
            async with self._session.request(
                method, url, data=_body(request_data), timeout=timeout
            ) as answer:
                return answer.status, await answer.read()
        except TimeoutError as err:
            raise TimedOut from err
        except aiohttp.ClientError as err:
            raise NetworkError(f"aiohttp.{type(err).__name__}: {err}") from err


def _dumps(value: Any) -> str:
    """Encode a request body compactly."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def _body(request_data: RequestData | None) -> Any:
    """Return the body of a request: JSON, or a multipart form when it carries files."""
    if request_data is None:
        return None
    files = request_data.multipart_data
    if not files:  # JSON, as the Bot API accepts it: far cheaper to encode than a url-encoded form
        return aiohttp.JsonPayload(request_data.parameters, dumps=_dumps)
    fields = request_data.json_parameters
    form = aiohttp.FormData(quote_fields=False)
    for name, value in fields.items():
        form.add_field(name, value)
    for name, part in files.items():
        filename, content, mime = part if len(part) == 3 else (*part, None)
        form.add_field(name, content, filename=filename, content_type=mime)
    return form
