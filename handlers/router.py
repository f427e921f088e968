"""Route one inbound event to its command, button or fallback, inside one transaction."""

from __future__ import annotations

import logging

from bot.db import transaction
from bot.messages import MAX_INBOUND_TEXT, InboundEvent, OutboundMessage
from bot.models import Contact
from bot.services import access, contacts, flows
from bot.services.errors import ServiceError
from handlers.context import Context, Deps, msg
from handlers.flows import proceed
from handlers.registry import Handler
from handlers.routes import ACTIONS, COMMANDS

log = logging.getLogger(__name__)


async def _touch(event: InboundEvent, deps: Deps) -> Contact:
    """Record the contact in its own transaction, so a refused request still knows them."""
    identity = contacts.Identity(event.channel, event.external_id, event.display_name)
    async with transaction(deps.maker) as session:
        return await contacts.touch(
            session,
            identity=identity,
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
    flow = await flows.current(ctx.session, contact_id=ctx.contact.id, now=ctx.now)
    if flow is not None:
        return await proceed(ctx, flow)
    if ctx.event.action is not None:
        return [msg("flow.expired")]
    return [msg("text.hint_staff" if ctx.actor.is_staff else "text.hint_citizen")]


async def handle(event: InboundEvent, deps: Deps) -> tuple[Contact, list[OutboundMessage]]:
    """Handle one event; return the contact (with its current locale) and the replies."""
    touched = await _touch(event, deps)
    handler, refusal = _pick(event)
    if refusal is not None:
        return touched, [refusal]
    if handler is None and event.chat_type != "private":
        return touched, []
    try:
        async with transaction(deps.maker) as session:
            contact = await session.merge(touched)
            actor = await access.actor_for(session, contact)
            ctx = Context(event=event, session=session, actor=actor, contact=contact, deps=deps)
            replies = await (handler or _fallback)(ctx)
    except ServiceError as err:
        log.info("refused %s: %s", event.command or event.action or "text", err.key)
        return touched, [msg(err.key, **err.params)]
    return contact, replies
