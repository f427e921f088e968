"""The Zalo Official Account channel: customer-service messages over aiohttp, and its tokens.

Messages go to POST <api_base>/v3.0/oa/message/cs with the access token in the `access_token`
header. Zalo answers HTTP 200 even for errors: `error` != 0 says what went wrong, and is mapped
to the neutral outcome. A person whose last message (the contact's last-seen time) is older
than the messaging window is not written to at all: the row fails with OUTSIDE_WINDOW.

The access token is refreshed here (POST <oauth_base>/v4/oa/access_token) under the rules of
bot.services.delivery.zalo_oa_tokens: one process at a time, the journal written before the
refresh token is spent, the answer saved with the new pair even when the caller is cancelled.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import logging
from collections.abc import Awaitable, Callable, Collection
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import aiohttp

from bot.channels import shown
from bot.channels.contract import Limits, Outcome, Part, Progress
from bot.channels.render import numbered, plain, plain_text, render_key, split_text
from bot.channels.shown import OnChoices
from bot.clock import Clock
from bot.config import ZaloOASettings
from bot.db import SessionMaker, transaction
from bot.i18n import t
from bot.logs import mask
from bot.messages import Button, OutboundMessage, StoredFile
from bot.services.delivery import contacts
from bot.services.delivery import zalo_oa_tokens as tokens
from bot.services.delivery.lease import make_owner

log = logging.getLogger(__name__)
CHANNEL = "zalo_oa"
OUTSIDE_WINDOW = "outside_window"
NO_TOKEN = "no_token"
TEXT_MAX = 2000  # characters of one customer-service text message
TEMPLATE_TEXT_MAX = 640  # characters of the text above quick-reply buttons
BUTTONS_MAX = 5  # quick-reply buttons in one message
LIMITS = Limits(overall=10.0, per_chat=1.0, per_group=1.0, text_max=TEXT_MAX, caption_max=TEXT_MAX)
REFRESH_MARGIN = timedelta(hours=12)  # refresh this long before the access token expires
LEASE = timedelta(seconds=60)  # a refresh under way holds the journal this long
WAIT_STEP = 0.5  # seconds between looks at the row while another process refreshes
WAIT_MAX = 30.0
SEEN_KEPT = 10_000  # last-seen times kept from claimed batches
HTTP_TIMEOUT = 15.0
TOKEN_ERRORS = {-216, -220, -124}  # the access token is invalid or expired
BLOCKED_ERRORS = {-213, -244}  # not (or no longer) following; restricted this OA's messages
WINDOW_ERRORS = {-230, -232}  # no interaction in the window
FLOOD_ERRORS = {-32}  # calls per minute
QUOTA_ERRORS = {-211, -218}  # the OA's or the person's quota is used up
FLOOD_DELAY = 60.0
QUOTA_DELAY = 3600.0
TZ = ZoneInfo("Asia/Ho_Chi_Minh")
Post = Callable[..., Awaitable[tuple[int, str]]]
Hook = Callable[[str], Awaitable[None]]


async def _nothing(_raw: str) -> None:
    """Do nothing (the default hook after Zalo's answer)."""


class Http:
    """One aiohttp session for the OA's API and OAuth calls."""

    def __init__(self, timeout: float = HTTP_TIMEOUT) -> None:
        self.timeout = timeout
        self.session: aiohttp.ClientSession | None = None

    async def open(self) -> None:
        """Open the session (once)."""
        if self.session is None or self.session.closed:
            self.session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=self.timeout))

    async def close(self) -> None:
        """Close the session."""
        if self.session is not None and not self.session.closed:
            await self.session.close()

    async def post(
        self,
        url: str,
        *,
        headers: dict[str, str],
        json_body: dict[str, Any] | None = None,
        form: dict[str, str] | None = None,
    ) -> tuple[int, str]:
        """POST JSON or a form; return the status and the body's text."""
        await self.open()
        assert self.session is not None
        async with self.session.post(url, headers=headers, json=json_body, data=form) as answer:
            return answer.status, await answer.text()


class TokenKeeper:
    """Give the OA's current access token, refreshing it (once across processes) when due."""

    def __init__(
        self,
        maker: SessionMaker,
        clock: Clock,
        settings: ZaloOASettings,
        post: Post,
        *,
        owner: str | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        after_answer: Hook = _nothing,
        margin: timedelta = REFRESH_MARGIN,
        lease: timedelta = LEASE,
        wait_max: float = WAIT_MAX,
    ) -> None:
        assert settings.oa_id is not None
        self.maker, self.clock, self.settings, self.post = maker, clock, settings, post
        self.oa_id = settings.oa_id
        self.owner = owner or make_owner()
        self.sleep, self.after_answer = sleep, after_answer
        self.margin, self.lease, self.wait_max = margin, lease, wait_max
        self.refreshes = 0  # refresh calls this keeper made (tests, logs)
        self._cached: tuple[str, int, datetime] | None = None  # token, version, expiry

    async def start(self) -> None:
        """Store the configured refresh token; finish a refresh a crash left behind."""
        seed = self.settings.refresh_token
        async with transaction(self.maker) as session:
            row = await tokens.seed(
                session,
                oa_id=self.oa_id,
                refresh_token=seed.get_secret_value() if seed else None,
                now=self.clock.now(),
            )
        if row is not None and row.refreshing_owner is not None:
            until = row.refreshing_until
            if until is not None and until > self.clock.now():  # another keeper, under way
                log.info("zalo_oa: a token refresh is under way (%s)", row.refreshing_owner)
            else:
                log.warning("zalo_oa: a token refresh was left unfinished; resuming it")
            await self._refresh_once()
        elif row is not None and row.needs_reauth:
            self._tell_operator(row.last_error or "")

    async def access_token(self) -> tuple[str, int] | None:
        """Return a usable access token and its pair's version, refreshing first when due."""
        cached = self._cached
        if cached is not None and cached[2] - self.clock.now() > self.margin:
            return cached[0], cached[1]
        waited = 0.0
        while True:
            row = await self._row()
            if row is None:
                return None
            now = self.clock.now()
            valid = row.access_token is not None and (
                row.access_expires_at is None or row.access_expires_at > now
            )
            due = not valid or (
                row.access_expires_at is not None and row.access_expires_at - now <= self.margin
            )
            if not due and row.access_token and row.access_expires_at is not None:
                self._cached = (row.access_token, row.version, row.access_expires_at)
            if not due or row.needs_reauth:
                return (row.access_token, row.version) if valid and row.access_token else None
            if await self._refresh_once():
                continue
            if valid and row.access_token:
                return row.access_token, row.version  # another process refreshes meanwhile
            if waited >= self.wait_max:
                return None
            await self.sleep(WAIT_STEP)
            waited += WAIT_STEP

    async def token_refused(self, version: int) -> None:
        """Note that Zalo refused the access token of a pair: the next use refreshes."""
        self._cached = None
        async with transaction(self.maker) as session:
            await tokens.expire_access(
                session, oa_id=self.oa_id, version=version, now=self.clock.now()
            )

    async def _row(self) -> Any:
        """Read the OA's row; its tokens are masked in every log from now on."""
        async with self.maker() as session:
            row = await tokens.read(session, self.oa_id)
        if row is not None:
            mask(*(v for v in (row.access_token, row.refresh_token) if v))
        return row

    async def _refresh_once(self) -> bool:
        """Refresh if no other process is doing it; tell whether this keeper tried."""
        async with transaction(self.maker) as session:
            claim = await tokens.claim(
                session,
                oa_id=self.oa_id,
                owner=self.owner,
                now=self.clock.now(),
                lease=self.lease,
            )
        if claim is None:
            return False
        await self._refresh(claim)
        return True

    async def _refresh(self, claim: tokens.Claim) -> None:
        """Spend the claimed refresh token; save Zalo's answer whatever happens after it came."""
        self.refreshes += 1
        raw: str | None = None
        status = 0
        try:
            status, raw = await self.post(
                self.settings.oauth_base.rstrip("/") + "/v4/oa/access_token",
                headers={"secret_key": self._secret()},
                form={
                    "refresh_token": claim.refresh_token,
                    "app_id": self.settings.app_id or "",
                    "grant_type": "refresh_token",
                },
            )
            await self.after_answer(raw)
        except (aiohttp.ClientError, TimeoutError) as exc:
            log.warning("zalo_oa: the token refresh got no answer (%s)", type(exc).__name__)
        finally:
            # shielded: a cancellation or an error after the answer must not lose the new pair
            await asyncio.shield(self._record(claim, status, raw))

    async def _record(self, claim: tokens.Claim, status: int, raw: str | None) -> None:
        """Store the outcome of a refresh: the new pair, a refusal, or no answer at all."""
        now = self.clock.now()
        answer = tokens.read_answer(raw) if raw is not None else None
        if answer is not None and answer.ok:
            mask(answer.access_token or "", answer.refresh_token or "")
        async with transaction(self.maker) as session:
            if answer is not None and answer.ok:
                await tokens.save(session, claim, answer, raw=raw or "", now=now)
                log.info("zalo_oa: access token refreshed")
                return
            if answer is None or status >= 500:
                error = "no answer" if answer is None else f"HTTP {status}"
                await tokens.unanswered(session, claim, error=error, now=now)
                return
            await tokens.refused(session, claim, answer, raw=raw or "", now=now)
        self._tell_operator(answer.error)

    def _tell_operator(self, error: str) -> None:
        """Log, in the configured words, that the OA must authorise the app again."""
        log.error("%s", t("zalo_oa.reauth_needed", "en", oa_id=self.oa_id, error=error))

    def _secret(self) -> str:
        """Return the app's secret key."""
        key = self.settings.secret_key
        return key.get_secret_value() if key is not None else ""


class ZaloOAChannel:
    """Customer-service messages of one Official Account, as the dispatcher sees a channel."""

    name = CHANNEL
    limits = LIMITS

    def __init__(
        self,
        settings: ZaloOASettings,
        maker: SessionMaker,
        clock: Clock,
        *,
        http: Http | None = None,
        keeper: TokenKeeper | None = None,
        tz: ZoneInfo = TZ,
        on_choices: OnChoices | None = None,
    ) -> None:
        self.settings, self.maker, self.clock, self.tz = settings, maker, clock, tz
        self.on_choices = on_choices
        self.http = http or Http()
        self.keeper = keeper or TokenKeeper(maker, clock, settings, self.http.post)
        self.window = timedelta(hours=settings.messaging_window_hours)
        self.url = settings.api_base.rstrip("/") + "/v3.0/oa/message/cs"
        self._seen: dict[str, datetime | None] = {}  # last seen, read with the claimed batches
        self.window_reads = 0  # contact reads outside a batch's (tests)

    async def open(self) -> None:
        """Open the HTTP session and make sure the tokens are in order."""
        await self.http.open()
        await self.keeper.start()

    async def close(self) -> None:
        """Close the HTTP session."""
        await self.http.close()

    def text(self, message: OutboundMessage, locale: str) -> str:
        """Render a message as plain text, its buttons as the list typed answers name."""
        return plain_text(message, locale, tz=self.tz)

    async def send(
        self,
        chat_id: str,
        message: OutboundMessage,
        locale: str,
        *,
        paid: bool = False,
        first: int = 0,
        progress: Progress | None = None,
    ) -> Outcome:
        """Send a message (split at 2,000 characters) from part `first`, quick replies last."""
        if not await self._in_window(chat_id):
            return Outcome("failed", error=OUTSIDE_WINDOW, attempted=False, code=OUTSIDE_WINDOW)
        parts = split_text(self.text(message, locale), TEXT_MAX) or [""]
        buttons = self._quick_replies(message, locale, parts[-1])
        calls: list[Part] = [
            functools.partial(
                self._call, chat_id, _body(part, buttons if i == len(parts) - 1 else None)
            )
            for i, part in enumerate(parts)
        ]
        return await shown.send_parts_then_tell(
            self.on_choices, CHANNEL, chat_id, message, calls, first=first, progress=progress
        )

    async def send_file(
        self,
        chat_id: str,
        message: OutboundMessage,
        locale: str,
        file: StoredFile,
        *,
        paid: bool = False,
        first: int = 0,
        progress: Progress | None = None,
    ) -> Outcome:
        """Refuse: files need Zalo's upload API, which this adapter does not use yet."""
        return Outcome.failed("zalo_oa: files are not supported", code="unsupported")

    async def edit(
        self,
        chat_id: str,
        message_id: str,
        message: OutboundMessage,
        locale: str,
        *,
        caption: bool = False,
    ) -> Outcome:
        """Send the new text as a new message: an OA cannot edit what it sent."""
        return await self.send(chat_id, message, locale)

    async def answer(self, press_id: str) -> Outcome:
        """Nothing to acknowledge: a quick reply arrives as the text the person sent."""
        return Outcome.sent(None)

    async def claimed(self, chat_ids: Collection[str]) -> None:
        """Read when each person of a claimed batch last wrote, in one query for the batch."""
        async with self.maker() as session:
            seen = await contacts.last_seen(session, channel=CHANNEL, external_ids=chat_ids)
        for chat_id in seen:
            self._seen.pop(chat_id, None)  # to the end: the oldest entries go first
        self._seen.update(seen)
        while len(self._seen) > SEEN_KEPT:
            del self._seen[next(iter(self._seen))]

    async def _in_window(self, chat_id: str) -> bool:
        """Tell whether the person wrote to the OA within the messaging window.

        The time read with the batch is used; only a person it puts outside the window is read
        again (they may have written since), and a send outside a batch (a reply) reads it.
        """
        if chat_id in self._seen and self._inside(self._seen[chat_id]):
            return True
        async with self.maker() as session:
            seen = await contacts.last_seen(session, channel=CHANNEL, external_ids=[chat_id])
        if chat_id in self._seen:
            self._seen[chat_id] = seen[chat_id]
        self.window_reads += 1
        return self._inside(seen[chat_id])

    def _inside(self, seen: datetime | None) -> bool:
        """Tell whether a last-seen time is within the messaging window now."""
        return seen is not None and self.clock.now() - seen <= self.window

    def _quick_replies(
        self, message: OutboundMessage, locale: str, text: str
    ) -> list[dict[str, Any]] | None:
        """Return the buttons as Zalo quick replies, where they fit.

        A quick reply sends back what the person could type: the entry's number, or the label
        of an entry answered by its words ('back', 'cancel').
        """
        entries: list[tuple[int | None, Button]] = numbered(message)
        if not self.settings.quick_replies or not entries or len(entries) > BUTTONS_MAX:
            return None
        if len(text) > TEMPLATE_TEXT_MAX:
            return None
        loc = message.locale or locale
        replies = []
        for number, b in entries:
            label = render_key(b.key, b.params, loc, escape=plain)
            title = label if number is None else f"{number}. {label}"
            payload = label if number is None else str(number)
            replies.append({"title": title[:100], "type": "oa.query.show", "payload": payload})
        return replies

    async def _call(self, chat_id: str, message: dict[str, Any], retried: bool = False) -> Outcome:
        """Post one message; map Zalo's answer to an outcome (refreshing a refused token once)."""
        try:
            got = await self.keeper.access_token()
        except Exception as exc:  # the database or the OAuth server failed
            log.warning("zalo_oa: no access token (%s)", type(exc).__name__)
            return Outcome.retry(f"zalo_oa: no access token ({type(exc).__name__})", delay=30.0)
        if got is None:
            return Outcome.retry("zalo_oa: no access token (the OA must authorise the app)", 300.0)
        token, version = got
        body = {"recipient": {"user_id": chat_id}, "message": message}
        try:
            status, raw = await self.http.post(
                self.url, headers={"access_token": token}, json_body=body
            )
        except (aiohttp.ClientError, TimeoutError) as exc:
            return Outcome.retry(f"zalo_oa: {type(exc).__name__}")
        outcome = _outcome(status, raw)
        if outcome.code == NO_TOKEN:
            await self.keeper.token_refused(version)
            if not retried:
                return await self._call(chat_id, message, retried=True)
            return Outcome.retry(outcome.error)
        return outcome


def _body(text: str, buttons: list[dict[str, Any]] | None) -> dict[str, Any]:
    """Return the `message` of a text, or of a button template when there are quick replies."""
    if not buttons:
        return {"text": text}
    payload = {"template_type": "button", "text": text, "buttons": buttons}
    return {"attachment": {"type": "template", "payload": payload}}


def _outcome(status: int, raw: str) -> Outcome:
    """Map Zalo's answer (HTTP status, JSON body) to the neutral outcome."""
    if status == 429:
        return Outcome.flood(FLOOD_DELAY, scope="bot")
    if status >= 500:
        return Outcome.retry(f"zalo_oa: HTTP {status}")
    try:
        data = json.loads(raw)
    except ValueError:
        return Outcome.retry(f"zalo_oa: unreadable answer (HTTP {status})")
    if not isinstance(data, dict):
        return Outcome.retry(f"zalo_oa: unreadable answer (HTTP {status})")
    code = data.get("error", 0)
    with contextlib.suppress(TypeError, ValueError):
        code = int(code)
    reason = f"zalo_oa {code}: {str(data.get('message', ''))[:200]}"
    if code == 0:
        inner = data.get("data")
        message_id = inner.get("message_id") if isinstance(inner, dict) else None
        return Outcome.sent(str(message_id) if message_id is not None else None)
    if code in TOKEN_ERRORS:
        return Outcome.failed(reason, code=NO_TOKEN)
    if code in BLOCKED_ERRORS:
        return Outcome.blocked(reason)
    if code in WINDOW_ERRORS:
        return Outcome.failed(OUTSIDE_WINDOW, code=OUTSIDE_WINDOW)
    if code in FLOOD_ERRORS:
        return Outcome.flood(FLOOD_DELAY, scope="bot", error=reason)
    if code in QUOTA_ERRORS:
        return Outcome.retry(reason, delay=QUOTA_DELAY)
    return Outcome.failed(reason)
