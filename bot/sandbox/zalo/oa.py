"""The Official Account endpoints the bot uses: customer-service messages
(POST /zalo/oa/v3.0/oa/message/cs) and the OAuth token refresh
(POST /zalo/oauth/v4/oa/access_token), with Zalo's error codes and the messaging window."""

from __future__ import annotations

import asyncio
import hmac
import json
from http import HTTPStatus
from typing import Any

from aiohttp import web

from bot.sandbox.errors import JsonDict
from bot.sandbox.zalo.engine import MAX_TEXT, ZaloSandbox
from bot.sandbox.zalo.errors import (
    OA_BAD_PARAMS,
    OA_BAD_TOKEN,
    OA_NOT_FOLLOWER,
    OA_OUTSIDE_WINDOW,
    OA_RATE_LIMITED,
    OA_TOO_LONG,
    OAUTH_BAD_APP,
    OAUTH_BAD_GRANT,
    OAUTH_BAD_REFRESH,
    OAUTH_BAD_SECRET,
    OAUTH_EXPIRED_REFRESH,
    OaError,
    OAuthError,
)
from bot.sandbox.zalo.world import ZaloMessage, flood_key

MAX_BUTTONS = 5
MAX_BUTTON_TITLE = 100


def _json(data: Any, status: int = 200) -> web.Response:
    """Answer JSON keeping Vietnamese letters."""
    return web.json_response(data, status=status, dumps=lambda d: json.dumps(d, ensure_ascii=False))


class OaApi:
    """The HTTP face of the Official Account endpoints."""

    def __init__(self, zalo: ZaloSandbox) -> None:
        self.zalo = zalo

    # customer-service messages ---------------------------------------------

    async def message_cs(self, request: web.Request) -> web.StreamResponse:
        """Send a customer-service message to a user who interacted within the window."""
        oa = self.zalo.oa
        oa.counters.requests_total += 1
        oa.counters.by_method["message/cs"] += 1
        try:
            status = self.zalo.injector.method_fault("message/cs")
            if status is not None:
                oa.counters.method_faults_total += 1
                return self._fault(status)
            self._check_token(request.headers.get("access_token", ""))
            user_id, text, buttons = _parse_cs(await _body(request))
            if await self._faults(user_id, request):
                return web.Response()
            self._check_recipient(user_id)
            message = self._deliver(user_id, text, buttons)
        except OaError as exc:
            return _json(exc.to_json(), exc.status)
        data = {"message_id": message.message_id, "user_id": user_id}
        return _json({"error": 0, "message": "Success", "data": data})

    def _check_token(self, token: str) -> None:
        """Refuse a missing, unknown or expired access token."""
        expires = self.zalo.oa.access.get(token)
        if not token or expires is None or expires <= self.zalo.wall():
            raise OaError(OA_BAD_TOKEN, "Access token is invalid")

    def _check_recipient(self, user_id: str) -> None:
        """Refuse an unknown user, one who unfollowed or blocked, or one outside the window."""
        zalo, oa = self.zalo, self.zalo.oa
        follower = oa.followers.get(user_id)
        if user_id not in zalo.users or follower is None:
            raise OaError(OA_BAD_PARAMS, "user_id is invalid")
        if zalo.injector.rule_for(flood_key(user_id)).blocked or follower.unfollowed:
            oa.counters.forbidden_total += 1
            raise OaError(OA_NOT_FOLLOWER, "User has not followed OA")
        if zalo.wall() - follower.last_interaction > oa.settings.window:
            oa.counters.refused_window_total += 1
            raise OaError(
                OA_OUTSIDE_WINDOW, "User has not interacted with the OA in the past 7 days"
            )
        wait = oa.flood.admit(flood_key(user_id), False)
        if wait:
            oa.counters.rate_limited_total += 1
            raise OaError(OA_RATE_LIMITED, f"Request limit exceeded, retry after {wait}s")

    def _deliver(self, user_id: str, text: str, buttons: list[JsonDict]) -> ZaloMessage:
        """Store the message in the user's conversation."""
        zalo = self.zalo
        oa = zalo.oa
        oa.counters.accepted_total += 1
        oa.counters.accepted_by_chat[user_id] += 1
        message = ZaloMessage(
            zalo.new_message_id(),
            True,
            oa.settings.oa_id,
            zalo.now_ms(),
            text=text,
            buttons=buttons,
        )
        return zalo.oa_log(user_id).add(message)

    async def _faults(self, user_id: str, request: web.Request) -> bool:
        """Apply the user's faults; return True when the connection was dropped."""
        zalo, counters = self.zalo, self.zalo.oa.counters
        rule = zalo.injector.rule_for(flood_key(user_id))
        if zalo.injector.roll(rule.drop_rate):
            counters.dropped_total += 1
            if request.transport is not None:
                request.transport.close()
            return True
        if rule.delay_ms:
            counters.delayed_total += 1
            await asyncio.sleep(rule.delay_ms / 1000)
        if zalo.injector.roll(rule.error_rate):
            counters.server_errors_total += 1
            raise self._fault_error(500)
        return False

    def _fault_error(self, status: int) -> OaError:
        """Return an injected failure: HTTP status, or an error body in HTTP 200 when soft."""
        if self.zalo.soft_faults:
            self.zalo.oa.counters.soft_errors_total += 1
            return OaError(-status, HTTPStatus(status).phrase)
        return OaError(-status, HTTPStatus(status).phrase, status=status)

    def _fault(self, status: int) -> web.Response:
        """Answer an injected method failure."""
        exc = self._fault_error(status)
        return _json(exc.to_json(), exc.status)

    # OAuth refresh ----------------------------------------------------------

    async def access_token(self, request: web.Request) -> web.Response:
        """Trade a refresh token (it works once) for a new access/refresh pair."""
        oa = self.zalo.oa
        oa.counters.requests_total += 1
        oa.counters.by_method["oauth/access_token"] += 1
        status = self.zalo.injector.method_fault("oauth/access_token")
        if status is not None:
            oa.counters.method_faults_total += 1
            return self._fault(status)
        form = await request.post()
        try:
            self._check_app(form.get("app_id"), request.headers.get("secret_key", ""))
            if form.get("grant_type") != "refresh_token":
                raise OAuthError(OAUTH_BAD_GRANT, "invalid_grant", "grant_type is invalid")
            token = form.get("refresh_token")
            self._spend(token if isinstance(token, str) else "")
        except OAuthError as exc:
            return _json(exc.to_json())
        return _json(oa.issue(self.zalo.wall()))

    def _check_app(self, app_id: Any, secret: str) -> None:
        """Refuse a wrong app id or secret key."""
        settings = self.zalo.oa.settings
        if app_id != settings.app_id:
            raise OAuthError(OAUTH_BAD_APP, "invalid_app_id", "app_id is invalid")
        if not hmac.compare_digest(secret.encode(), settings.app_secret.encode()):
            raise OAuthError(OAUTH_BAD_SECRET, "invalid_secret_key", "secret_key is invalid")

    def _spend(self, token: str) -> None:
        """Mark a refresh token used; refuse an unknown, used or expired one."""
        record = self.zalo.oa.refresh.get(token)
        if record is None or record.used:
            raise OAuthError(OAUTH_BAD_REFRESH, "invalid_refresh_token", "Invalid refresh token")
        if record.expires_at <= self.zalo.wall():
            raise OAuthError(
                OAUTH_EXPIRED_REFRESH, "expired_refresh_token", "Refresh token has expired"
            )
        record.used = True


async def _body(request: web.Request) -> JsonDict:
    """Read a JSON object body."""
    try:
        data = json.loads(await request.read() or b"null")
    except ValueError:
        raise OaError(OA_BAD_PARAMS, "Body is not JSON") from None
    if not isinstance(data, dict):
        raise OaError(OA_BAD_PARAMS, "Body must be a JSON object")
    return data


def _parse_cs(body: JsonDict) -> tuple[str, str, list[JsonDict]]:
    """Return the recipient, the text and the buttons of a CS message (-201/-210 when bad)."""
    recipient = body.get("recipient")
    user_id = recipient.get("user_id") if isinstance(recipient, dict) else None
    if not isinstance(user_id, str) or not user_id:
        raise OaError(OA_BAD_PARAMS, "recipient.user_id must be a string")
    message = body.get("message")
    if not isinstance(message, dict):
        raise OaError(OA_BAD_PARAMS, "message is required")
    text = message.get("text")
    attachment = message.get("attachment")
    payload = attachment.get("payload") if isinstance(attachment, dict) else None
    if text is None and isinstance(payload, dict):
        text = payload.get("text")
    if not isinstance(text, str) or not text:
        raise OaError(OA_BAD_PARAMS, "message.text is required")
    if len(text) > MAX_TEXT:
        raise OaError(OA_TOO_LONG, f"message.text exceeds {MAX_TEXT} characters")
    return user_id, text, _buttons(message)


def _buttons(message: JsonDict) -> list[JsonDict]:
    """Return the buttons of a message: quick replies or a button template's buttons."""
    items: Any = message.get("quick_replies")
    attachment = message.get("attachment")
    if items is None and isinstance(attachment, dict):
        payload = attachment.get("payload")
        items = payload.get("buttons") if isinstance(payload, dict) else None
    if items is None:
        return []
    if not isinstance(items, list) or len(items) > MAX_BUTTONS:
        raise OaError(OA_BAD_PARAMS, f"buttons must be a list of at most {MAX_BUTTONS}")
    buttons = []
    for item in items:
        title = item.get("title") if isinstance(item, dict) else None
        if not isinstance(title, str) or not 0 < len(title) <= MAX_BUTTON_TITLE:
            raise OaError(OA_BAD_PARAMS, "every button needs a title of 1-100 characters")
        payload = item.get("payload")
        text = payload if isinstance(payload, str) else title
        if isinstance(payload, dict) and isinstance(payload.get("content"), str):
            text = payload["content"]
        buttons.append({"title": title, "type": str(item.get("type") or ""), "text": text})
    return buttons
