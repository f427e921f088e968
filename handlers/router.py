"""Route one inbound event to its command, button or fallback, inside one transaction."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass

from sqlmodel.ext.asyncio.session import AsyncSession

from bot.db import transaction
from bot.messages import MAX_INBOUND_TEXT, InboundEvent, OutboundMessage
from bot.models import Contact
from bot.services import flows
from bot.services.delivery import contacts
from bot.services.errors import ServiceError
from bot.services.org import access
from handlers.context import Context, Deps, msg
from handlers.flows import proceed
from handlers.registry import Handler
from handlers.routes import ACTIONS, COMMANDS, FLOWS
from handlers.typed import resolve as resolve_typed

log = logging.getLogger(__name__)
CACHED = "cached"  # session.info: this attempt may take the contact and its flow from caches


def _identity(event: InboundEvent) -> contacts.Identity:
    """Return who wrote, as the channel names them."""
    return contacts.Identity(event.channel, event.external_id, event.display_name)


async def _touch_alone(event: InboundEvent, deps: Deps) -> Contact:
    """Record the contact in its own transaction (when there is no handler's, or it failed)."""
    async with transaction(deps.maker) as session:
        return await contacts.touch(
            session,
            identity=_identity(event),
            now=deps.clock.now(),
            default_locale=deps.settings.i18n.default_locale,
        )


def _gate(event: InboundEvent, handler: Handler) -> Handler:
    """Check a command's roles before its handler runs (services check again)."""
    cmd = COMMANDS.get(event.command or "")
    if cmd is None or not cmd.roles:
        return handler

    async def gated(ctx: Context) -> list[OutboundMessage]:
        access.require(ctx.actor, *cmd.roles)
        return await handler(ctx)

    return gated


def _pick(event: InboundEvent) -> tuple[Handler | None, OutboundMessage | None]:
    """Choose the handler for an event, or the message that explains why there is none."""
    if event.text is not None and len(event.text) > MAX_INBOUND_TEXT:
        return None, msg("errors.too_long", limit=MAX_INBOUND_TEXT)
    if event.action is not None:
        if event.action.startswith("flow:"):
            return None, None
        handler = ACTIONS.get(event.action.partition(":")[0])
        return handler, None if handler else msg("errors.unknown_action", edit=False)
    if event.command is not None:
        if event.chat_type != "private":
            return None, msg("errors.private_only")
        cmd = COMMANDS.get(event.command)
        return (
            (_gate(event, cmd.handler), None)
            if cmd
            else (None, msg("errors.unknown_command", command=event.command[:32]))
        )
    return None, None


async def _fallback(ctx: Context) -> list[OutboundMessage]:
    """Give plain text (or a flow button) to the open flow, else answer with a hint."""
    assert ctx.contact.id is not None
    cache = ctx.deps.flows if ctx.session.info.get(CACHED) else None
    flow = await flows.current(ctx.session, contact_id=ctx.contact.id, now=ctx.now, cache=cache)
    if flow is not None:
        return await proceed(ctx, flow, FLOWS)
    if ctx.event.action is not None:
        return [msg("flow.expired")]
    return [msg("text.hint_staff" if ctx.actor.is_staff else "text.hint_citizen")]


@contextlib.asynccontextmanager
async def _noting_flows(deps: Deps) -> AsyncIterator[AsyncSession]:
    """Open the update's transaction; then keep the flows it committed, or forget those it
    touched when it failed."""
    async with deps.maker() as session:
        try:
            yield session
            await session.commit()
        except BaseException:
            deps.flows.failed(session)
            await session.rollback()
            raise
        deps.flows.committed(session)


@dataclass
class _Attempt:
    """One try at handling an event: what a cached contact looked like to the handler."""

    cached: bool
    view: tuple[object, ...] | None = None


async def _run(
    event: InboundEvent, deps: Deps, handler: Handler | None, attempt: _Attempt
) -> tuple[Contact, list[OutboundMessage]]:
    """Run the handler and note the contact's visit, in one transaction."""
    identity, now = _identity(event), deps.clock.now()  # a new contact is created seen at `now`
    async with _noting_flows(deps) as session:
        session.info[CACHED] = attempt.cached  # cached flows too (a stale one is caught)
        hit = deps.contacts.attach(session, identity) if attempt.cached else None
        attempt.view = None if hit is None else contacts.view(hit)
        contact = hit or await contacts.arrive(
            session,
            identity=identity,
            now=now,
            default_locale=deps.settings.i18n.default_locale,
        )
        actor = await access.actor_for(session, contact)
        ctx = Context(event=event, session=session, actor=actor, contact=contact, deps=deps)
        replies = await (handler or _fallback)(ctx)
        # noted last: on SQLite the write lock is then held only while committing
        if hit is not None:
            await deps.contacts.seen(session, contact, identity=identity, now=now)
        else:
            contacts.seen(session, contact, identity=identity, now=now)
    deps.contacts.remember(contact)
    return contact, replies


async def _handle(
    event: InboundEvent, deps: Deps, handler: Handler | None, *, cached: bool
) -> tuple[Contact, list[OutboundMessage]]:
    """Handle an event; again from the database when a cached contact turns out stale."""
    attempt = _Attempt(cached)
    try:
        return await _run(event, deps, handler, attempt)
    except (contacts.StaleContact, flows.StaleFlow):  # changed by another process meanwhile
        return await _handle(event, deps, handler, cached=False)
    except ServiceError as err:
        contact = await _touch_alone(event, deps)
        if attempt.view is not None and attempt.view != contacts.view(contact):
            return await _handle(event, deps, handler, cached=False)  # refused on a stale view
        log.info("refused %s: %s", event.command or event.action or "text", err.key)
        return contact, [msg(err.key, **err.params)]
    except Exception:
        with contextlib.suppress(Exception):  # the database may be what failed
            await _touch_alone(event, deps)
        raise


async def handle(event: InboundEvent, deps: Deps) -> tuple[Contact, list[OutboundMessage]]:
    """Handle one event in one transaction; return the contact (current locale) and the replies.

    A refused or failed request rolls its work back but still records that the contact wrote.
    """
    event, typed_refusal = await resolve_typed(event, deps)  # channels without buttons
    handler, refusal = (None, typed_refusal) if typed_refusal else _pick(event)
    if refusal is not None:
        return await _touch_alone(event, deps), [refusal]
    if handler is None and event.chat_type != "private":
        return await _touch_alone(event, deps), []
    return await _handle(event, deps, handler, cached=True)
