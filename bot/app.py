"""Wiring: the channels that are on (Telegram's Application among them), and running them."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import text
from telegram import BotCommand, Update
from telegram.ext import (
    Application,
    ApplicationBuilder,
    BaseUpdateProcessor,
    ContextTypes,
    TypeHandler,
)
from telegram.request import BaseRequest

from bot import dashboard_app as dashboard
from bot import webhook, zalo_app, zalo_oa_app
from bot.channels import telegram as telegram_channel
from bot.channels import zalo as zalo_channel
from bot.channels.contract import Channel
from bot.channels.http import AiohttpRequest
from bot.channels.replies import Replies
from bot.channels.telegram import TelegramChannel, blocked_change, limits_of, to_event
from bot.clock import Clock, SystemClock
from bot.config import Settings
from bot.db import SessionMaker, create_engine, session_maker, transaction
from bot.i18n import LOCALES, t
from bot.messages import OutboundMessage
from bot.polling import PollingLeader
from bot.runtime import Runtime, settle_heap
from bot.services.delivery import contacts
from bot.services.delivery.lease import POLLING, POLLING_KEY, Lease
from bot.services.org import bootstrap
from bot.startup import OptionalCalls, StartupFault, TolerantUpdater, classify
from bot.webhook_server import WebhookServer
from handlers import router
from handlers.context import Deps
from handlers.registry import EVERYONE
from handlers.routes import COMMAND_LIST
from jobs import runner as job_runner
from jobs import sweeps
from jobs.pacing import PACERS_KEY, Pacer

log = logging.getLogger(__name__)
ALLOWED_UPDATES = ["message", "callback_query", "my_chat_member"]
POLL_TIMEOUT = 10
# Between two getUpdates. Telegram forgets updates only when the next call confirms them, so a
# pause leaves handled updates unconfirmed that long: a poller killed meanwhile has its successor
# handle them again (tests/e2e/test_scale_e2e.py). A pause of 0.02 s gave about +20 % updates/s
# under load in bench.ratings; not at that price.
POLL_INTERVAL = 0.0
REPLY_POOL = 64  # connections for replies: 16 chats at once, a few calls each
CONCURRENT_UPDATES = 16  # updates of different chats handled at once (one chat's: in order)
UNBOUNDED = 1_000_000  # updates waiting for their chat's turn or a slot (each one is a task)
SERVER_KEY = "webhook_server"  # the worker's webhook server, in runtime.extra once listening
AnyApp = Application[Any, Any, Any, Any, Any, Any]


class NoToken(Exception):
    """No bot token is configured."""


class PerChatUpdates(BaseUpdateProcessor):
    """Handle updates of different chats at once, each chat's one after the other, in order.

    A person waiting for a reply is not queued behind everyone else's updates: an update takes
    its chat's turn first and one of the `max_concurrent_updates` slots only then, so one chat
    sending many updates holds one slot, never all of them.
    """

    def __init__(self, max_concurrent_updates: int) -> None:
        # python-telegram-bot's own semaphore is taken before do_process_update: never let it bind
        super().__init__(UNBOUNDED)
        self.slots = asyncio.Semaphore(max_concurrent_updates)
        self._locks: dict[int, tuple[asyncio.Lock, int]] = {}

    async def do_process_update(self, update: object, coroutine: Awaitable[Any]) -> None:
        """Run the update's handling once the chat's earlier updates are done and a slot is free."""
        chat = update.effective_chat if isinstance(update, Update) else None
        if chat is None:
            async with self.slots:
                await coroutine
            return
        lock, users = self._locks.get(chat.id) or (asyncio.Lock(), 0)
        self._locks[chat.id] = (lock, users + 1)
        try:
            async with lock, self.slots:
                await coroutine
        finally:
            lock, users = self._locks[chat.id]
            if users <= 1:
                del self._locks[chat.id]
            else:
                self._locks[chat.id] = (lock, users - 1)

    async def initialize(self) -> None:
        """Nothing to set up."""

    async def shutdown(self) -> None:
        """Nothing to release."""


@dataclass
class BotRuntime(Runtime):
    """The runtime plus the Telegram side (when Telegram is on): kept in the Application's
    bot_data, and `app` is that Application."""

    deps: Deps | None = None
    replies: Replies | None = None
    optional: OptionalCalls = field(default_factory=OptionalCalls)
    app: AnyApp | None = None


def runtime_of(context: ContextTypes.DEFAULT_TYPE) -> BotRuntime:
    """Return the runtime stored in the application."""
    rt = context.application.bot_data["runtime"]
    assert isinstance(rt, BotRuntime)
    return rt


async def on_update(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """Turn an update into an event, route it, and deliver the replies."""
    rt = runtime_of(context)
    assert rt.deps is not None
    assert rt.replies is not None
    blocked = blocked_change(update)
    if blocked is not None and update.effective_user is not None:
        await _note_blocked(rt, str(update.effective_user.id), blocked)
        return
    event = to_event(update, context.bot.username)
    if event is None:
        return
    answering = rt.replies.answer_soon(event)  # answered while the update is handled
    try:
        contact, replies = await router.handle(event, rt.deps)
    except BaseException:
        if answering is not None:  # done before the chat's next update is handled
            await asyncio.wait([answering])
        raise
    outcome = await rt.replies.deliver(event, replies, contact.locale, answering=answering)
    if outcome.kind == "blocked" and event.chat_type == "private":
        log.info("contact %s blocked the bot; marking it", contact.id)
        await _note_blocked(rt, event.external_id, True)


async def _note_blocked(rt: BotRuntime, external_id: str, blocked: bool) -> None:
    """Record that a user blocked the bot, or started it again."""
    async with transaction(rt.maker) as session:
        if blocked:
            await contacts.mark_blocked(
                session, channel="telegram", external_id=external_id, now=rt.clock.now()
            )
        else:
            contact = await contacts.find(session, channel="telegram", external_id=external_id)
            if contact is not None:
                contact.blocked_at = None
                session.add(contact)


async def on_error(update: object, context: ContextTypes.DEFAULT_TYPE) -> None:
    """Log the failure and tell the user, without leaking internals."""
    update_id = update.update_id if isinstance(update, Update) else None
    log.error("update %s failed", update_id, exc_info=context.error)
    if not isinstance(update, Update) or update.effective_chat is None:
        return
    rt = runtime_of(context)
    if rt.replies is None:
        return
    try:
        await rt.replies.send(
            str(update.effective_chat.id),
            OutboundMessage("errors.internal"),
            await _locale_of(rt, update),
        )
    except Exception:  # the platform may be what failed; the log already has it
        log.warning("could not tell chat about the failure of update %s", update_id)


async def _locale_of(rt: BotRuntime, update: Update) -> str:
    """Return the language the person behind an update chose (the default when unknown)."""
    user = update.effective_user
    if user is None:
        return rt.settings.i18n.default_locale
    try:
        async with transaction(rt.maker) as session:
            contact = await contacts.find(session, channel="telegram", external_id=str(user.id))
        if contact is not None:
            return contact.locale
    except Exception:  # the database may be what failed; fall back to the app's language
        log.warning("could not read the language of user %s", user.id)
    return rt.settings.i18n.default_locale


async def _set_commands(app: AnyApp) -> None:
    """Publish the commands open to everyone in the chat menu, in each language."""
    public = [c for c in COMMAND_LIST if c.audience == EVERYONE]
    for locale in LOCALES:
        commands = [BotCommand(c.name, t(c.help_key, locale)[:256]) for c in public]
        await app.bot.set_my_commands(commands, language_code=None if locale == "vi" else locale)


def _file_fetcher(app: AnyApp) -> Callable[[str], Awaitable[bytes]]:
    """Return a function that downloads a file a user sent, by its Telegram file id."""

    async def fetch(file_id: str) -> bytes:
        file = await app.bot.get_file(file_id)
        return bytes(await file.download_as_bytearray())

    return fetch


async def _post_init(app: AnyApp) -> None:
    """Finish start-up once the bot knows who it is."""
    rt: BotRuntime = app.bot_data["runtime"]
    rt.deps = Deps(
        rt.maker,
        rt.settings,
        rt.clock,
        bot_username=app.bot.username,
        fetch_file=_file_fetcher(app),
    )
    channel = TelegramChannel(app.bot, rt.settings.scheduler.tz, limits_of(rt.settings.delivery))
    pacers = rt.extra.get(PACERS_KEY, {})
    rt.replies = Replies(channel, budget=pacers.get(telegram_channel.CHANNEL))
    await rt.optional.attempt("setMyCommands", lambda: _set_commands(app))


async def _bootstrap_admins(rt: BotRuntime) -> None:
    """Make sure the configured administrators exist, whichever channels are on."""
    async with transaction(rt.maker) as session:
        for admin in rt.settings.bootstrap.admins:
            await bootstrap.ensure_admin(
                session, admin=admin, now=rt.clock.now(), locale=rt.settings.i18n.default_locale
            )


def _runtime(
    settings: Settings, maker: SessionMaker, clock: Clock | None, rate_limit: bool
) -> BotRuntime:
    """Return the runtime; with `rate_limit`, one pacer per channel that is on."""
    rt = BotRuntime(settings=settings, maker=maker, clock=clock or SystemClock())
    if rate_limit:
        pacers: dict[str, Pacer] = {}
        if settings.telegram.enabled:
            pacers[telegram_channel.CHANNEL] = Pacer(limits_of(settings.delivery))
        if settings.zalo.enabled:
            pacers[zalo_channel.CHANNEL] = Pacer(zalo_channel.limits_of(settings.zalo))
        rt.extra[PACERS_KEY] = pacers  # the Official Account's is added when it starts
    return rt


def build_application(
    settings: Settings,
    *,
    maker: SessionMaker,
    clock: Clock | None = None,
    request: BaseRequest | None = None,
    rate_limit: bool = True,
) -> AnyApp:
    """Build Telegram's Application: one handler that routes every update, and the error handler.

    With `rate_limit`, replies and the outbox share one pacer per channel (replies first);
    without, replies go at once (tests).
    """
    if settings.telegram.token is None:
        raise NoToken
    builder = (
        ApplicationBuilder()
        .token(settings.telegram.token.get_secret_value())
        .base_url(settings.telegram.api_base_url)
        .base_file_url(settings.telegram.api_file_url)
        .post_init(_post_init)
        .job_queue(None)  # the job runner (jobs/runner.py) has its own scheduler
        .concurrent_updates(PerChatUpdates(CONCURRENT_UPDATES))
    )
    if request is None:  # aiohttp: httpx's pool costs milliseconds of CPU per request
        request = AiohttpRequest(connection_pool_size=REPLY_POOL, pool_timeout=10.0)
        builder = builder.get_updates_request(AiohttpRequest(connection_pool_size=1))
    else:
        builder = builder.get_updates_request(request)
    app = builder.request(request).build()
    rt = _runtime(settings, maker, clock, rate_limit)
    rt.app = app
    app.bot_data["runtime"] = rt
    # deleteWebhook and setWebhook at start are retried in the background, never fatal.
    app.updater = TolerantUpdater(app.bot, app.update_queue, rt.optional)
    app.add_handler(TypeHandler(Update, on_update))
    app.add_error_handler(on_error)
    return app


def build(settings: Settings, *, maker: SessionMaker, clock: Clock | None = None) -> BotRuntime:
    """Build what `serve` runs: the runtime, with Telegram's Application when Telegram is on."""
    if settings.telegram.enabled:
        runtime: BotRuntime = build_application(settings, maker=maker, clock=clock).bot_data[
            "runtime"
        ]
        return runtime
    return _runtime(settings, maker, clock, rate_limit=True)


def _channels_on(settings: Settings) -> str:
    """Name the channels on and how each receives, for the log: "telegram webhook, zalo…"."""
    on = []
    if settings.telegram.enabled:
        on.append(f"telegram {settings.telegram.mode}")
    if settings.zalo.enabled:
        on.append(f"zalo {settings.zalo.mode}")
    if settings.zalo.oa.enabled:
        on.append("zalo_oa webhook")
    return ", ".join(on)


async def serve(
    target: AnyApp | BotRuntime, stop: asyncio.Event, ready: asyncio.Event | None = None
) -> None:
    """Start each channel that is on, the webhook server and the jobs; run until `stop` is set.

    `target` is built by `build` (or is Telegram's Application). Every channel in webhook mode
    is a path of one server on telegram.webhook_listen:webhook_port. Updates already received
    are handled before the bot exits; a signal that arrives while the bot is still starting is
    honoured once start-up has finished.
    """
    rt: BotRuntime = target if isinstance(target, BotRuntime) else target.bot_data["runtime"]
    settings, app = rt.settings, rt.app
    tg = settings.telegram
    server = WebhookServer(tg.webhook_listen, tg.webhook_port)
    if app is not None:
        await app.initialize()
    try:
        await _bootstrap_admins(rt)
        if app is not None:
            await _start_telegram(app, rt, server)
        if settings.zalo.enabled:
            budgets = rt.extra.get(PACERS_KEY)
            rt.extra["zalo"] = await zalo_app.start(
                settings, rt.maker, rt.clock, budgets=budgets, server=server
            )
        if settings.zalo.oa.enabled:
            await zalo_oa_app.start(rt, server)
        if server.needed:
            await _listen(server)
            rt.extra[SERVER_KEY] = server
            await server.announce()
        await _start_jobs(rt)
        if settings.dashboard.enabled:
            rt.extra[dashboard.KEY] = await dashboard.start(rt)
        settle_heap()
        leader = rt.extra.get("polling")
        waiting = leader is not None and not leader.polling
        log.info(
            "bot%s ready (%s%s)",
            f" @{app.bot.username}" if app is not None else "",
            _channels_on(settings),
            "; waiting: another process polls" if waiting else "",
        )
        if ready is not None:
            ready.set()
        await stop.wait()
        log.info("stopping: finishing the updates already received")
    finally:
        await _stop_all(rt)


async def _start_telegram(app: AnyApp, rt: BotRuntime, server: WebhookServer) -> None:
    """Start Telegram's side: its route on the worker's server, or polling under the lease."""
    assert app.post_init is not None
    await app.post_init(app)
    tg = rt.settings.telegram
    if tg.mode == "webhook":
        hook = webhook.TelegramWebhook(app, tg, rt.maker, rt.clock)
        hook.attach(server, ALLOWED_UPDATES, rt.optional.attempt)
        rt.extra["webhook"] = hook
    else:
        await _start_polling(app, rt)
    await app.start()


async def _listen(server: WebhookServer) -> None:
    """Open the worker's webhook port, or tell which keys to look at."""
    try:
        await server.listen()
    except OSError as exc:  # taken, not this machine's address, or a privileged port
        where = {"listen": server.host, "port": server.port}
        raise StartupFault("run.port_busy", where) from exc


async def _stop_all(rt: BotRuntime) -> None:
    """Stop in order: the dashboard, the jobs, the webhook server, each channel, Telegram's app."""
    if dashboard.KEY in rt.extra:
        await rt.extra.pop(dashboard.KEY).stop()
    jobs_runner = rt.extra.get("jobs")
    if jobs_runner is not None:
        await jobs_runner.stop()
    if SERVER_KEY in rt.extra:  # no new requests; each route then finishes what it took
        await rt.extra.pop(SERVER_KEY).stop()
    if "webhook" in rt.extra:
        await rt.extra.pop("webhook").stop()
    if "zalo" in rt.extra:
        await rt.extra.pop("zalo").stop()
    if zalo_oa_app.KEY in rt.extra:
        await rt.extra.pop(zalo_oa_app.KEY).stop()
    leader = rt.extra.pop("polling", None)
    if leader is not None:
        await leader.stop()
    await rt.optional.close()
    app = rt.app
    if app is not None:
        assert app.updater is not None
        if app.updater.running:
            await app.updater.stop()
        if app.running:
            await app.stop()
        await app.shutdown()


async def _start_polling(app: AnyApp, rt: BotRuntime) -> None:
    """Poll while this process holds the polling lease (one poller per database), else wait."""
    assert app.updater is not None
    lease = Lease(
        rt.maker,
        clock=rt.clock,
        seconds=rt.settings.delivery.lease_seconds,
        name=POLLING,
        key=POLLING_KEY,
    )
    leader = PollingLeader(
        app.updater,
        lease,
        allowed_updates=ALLOWED_UPDATES,
        timeout=POLL_TIMEOUT,
        interval=POLL_INTERVAL,
    )
    rt.extra["polling"] = leader
    await leader.start()


def outbox_channels(settings: Settings) -> dict[str, Channel]:
    """Return the dispatcher's Telegram lane when Telegram is on, with a client of its own."""
    if not settings.telegram.enabled:
        return {}
    return {telegram_channel.CHANNEL: telegram_channel.outbox_channel(settings)}


async def _start_jobs(rt: BotRuntime) -> None:
    """Start the job runner: the outbox dispatcher (a lane per channel on) and the sweeps,
    while this process holds the job lease."""
    channels = {
        **outbox_channels(rt.settings),
        **zalo_app.outbox_channels(rt.settings, rt.maker, rt.clock),
        **zalo_oa_app.outbox_channels(rt),
    }
    runner = job_runner.attach(rt, channels)
    sweeps.register(runner, rt)
    zalo_oa_app.register(runner, rt)
    await runner.start()


def stop_on_signals(stop: asyncio.Event) -> None:
    """Set `stop` on SIGINT or SIGTERM."""
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)


async def _run(settings: Settings) -> None:
    """Run the bot on this event loop until a stop signal."""
    engine = create_engine(settings.database.url, echo=settings.database.echo)
    try:
        async with engine.connect() as conn:  # a database fault shows now, not at the first update
            await conn.execute(text("SELECT 1"))
        rt = build(settings, maker=session_maker(engine))
        stop = asyncio.Event()
        stop_on_signals(stop)
        await serve(rt, stop)
    finally:
        await engine.dispose()


def run(settings: Settings) -> None:
    """Run the bot until SIGINT or SIGTERM, each channel that is on by polling or by webhook.

    A foreseeable fault at start (database, token, webhook port, Bot API) raises StartupFault.
    """
    try:
        if settings.database.migrate_on_start:
            from bot.migrate import upgrade_sync

            upgrade_sync(settings.database.url)
        asyncio.run(_run(settings))
    except Exception as exc:
        fault = classify(exc, settings)
        if fault is None:
            raise
        raise fault from None
