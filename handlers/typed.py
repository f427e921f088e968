"""Typed answers on channels without buttons (Zalo): a number, a label or a catalog word

becomes the button action a press would have sent; a start code becomes '/start <code>'.

The list a chat saw last is kept in the database (bot.services.delivery.choices), so an
answer maps the same after a restart or on another worker.
"""

from __future__ import annotations

from dataclasses import replace
from functools import cache

from sqlmodel.ext.asyncio.session import AsyncSession

from bot.channels.render import numbered, plain, render_key
from bot.db import transaction
from bot.i18n import LOCALES
from bot.messages import Button, InboundEvent, OutboundMessage
from bot.services.delivery import choices, contacts
from bot.services.directives import directives
from bot.services.org import invites
from bot.services.ratings import service_points
from handlers.context import Deps, msg
from handlers.flows import catalog_words, fold, unaccented

TYPED_CHANNELS = frozenset({"zalo", "zalo_oa"})  # people answer by typing (or quick replies)
ACK = "ack:"


@cache
def _words(key: str) -> frozenset[str]:
    """Return a catalog entry's words (cached)."""
    return catalog_words(key)


def start_code(text: str) -> bool:
    """Tell whether a message is a start code (a QR's rating code or an invite code)."""
    code = text.strip()
    if not code or " " in code:
        return False
    return service_points.parse_payload(code) is not None or invites.is_invite_payload(code)


def _labels(button: Button) -> set[str]:
    """Return a button's label in every language, folded and without marks."""
    labels = {fold(render_key(button.key, button.params, loc, escape=plain)) for loc in LOCALES}
    return labels | {unaccented(label) for label in labels}


def pick(text: str, shown: OutboundMessage) -> str | None:
    """Return the action a typed answer names in a list: its number, label or a catalog word."""
    folded, bare = fold(text), unaccented(text)
    entries = numbered(shown)
    if folded.isascii() and folded.isdigit():
        return next((b.action for n, b in entries if n == int(folded)), None)
    for _, b in entries:
        if folded in _labels(b) or bare in _labels(b):
            return b.action
    acks = [b.action for _, b in entries if b.action.startswith(ACK)]
    return acks[0] if len(acks) == 1 and _is_word(text, "typed.ack_words") else None


def _is_word(text: str, key: str) -> bool:
    """Tell whether a text is one of a catalog's words (any language, with or without marks)."""
    words = _words(key)
    return fold(text) in words or unaccented(text) in words


def _ok_number(text: str) -> str | None:
    """Return the number of 'OK <số>' (any catalog word for 'OK' first), else None."""
    parts = text.split()
    for k in range(len(parts) - 1, 0, -1):
        if _is_word(" ".join(parts[:k]), "typed.ok_words"):
            return " ".join(parts[k:])
    return None


async def _ack_action(
    session: AsyncSession, event: InboundEvent, number: str | None
) -> tuple[str | None, OutboundMessage | None]:
    """Find the directive a typed acknowledgement names (the newest one for a bare word)."""
    contact = await contacts.find(session, channel=event.channel, external_id=event.external_id)
    if contact is None or contact.person_id is None:
        return None, None
    waiting = await directives.awaiting_ack(session, person_id=contact.person_id)
    if number is not None:
        waiting = [w for w in waiting if directives.same_number(w[1], number)]
        if not waiting:
            return None, msg("typed.no_directive", number=number[:64])
    return (f"{ACK}{waiting[0][0]}", None) if waiting else (None, None)


async def resolve(event: InboundEvent, deps: Deps) -> tuple[InboundEvent, OutboundMessage | None]:
    """Turn a typed answer into the press (or '/start') it stands for; or refuse it with a reason.

    Only for channels without buttons, in private chats, for text that is not a command.
    """
    if (
        event.channel not in TYPED_CHANNELS
        or event.chat_type != "private"
        or event.action is not None
        or event.command is not None
        or not (event.text or "").strip()
    ):
        return event, None
    text = (event.text or "").strip()
    if start_code(text):
        return replace(event, command="start", args=(text,)), None
    async with transaction(deps.maker) as session:
        shown = await choices.last(session, channel=event.channel, chat_id=event.chat_id)
        number = _ok_number(text)
        if number is not None:
            action, refusal = await _ack_action(session, event, number)
            if action is None and shown is not None:
                action = pick(number, shown)  # 'OK 1': the list's first entry
            if action is None:
                return event, refusal
            return replace(event, action=action), None
        action = pick(text, shown) if shown is not None else None
        if action is None and _is_word(text, "typed.ack_words"):
            action, _ = await _ack_action(session, event, None)
    return (event if action is None else replace(event, action=action)), None
