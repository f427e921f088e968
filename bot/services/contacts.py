"""Chat accounts: first contact, last seen, language, opting out, blocking."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.exc import IntegrityError
from sqlmodel import select
from sqlmodel.ext.asyncio.session import AsyncSession

from bot.i18n import LOCALES
from bot.models import Channel, Contact, Person
from bot.services.errors import InvalidInput

DISPLAY_NAME_MAX = 255


@dataclass(frozen=True)
class Identity:
    """Who wrote, as the channel names them."""

    channel: str
    external_id: str
    display_name: str | None = None


async def find(session: AsyncSession, *, channel: str, external_id: str) -> Contact | None:
    """Return the contact of a channel account, if known."""
    stmt = select(Contact).where(Contact.channel == channel, Contact.external_id == external_id)
    return (await session.exec(stmt)).first()


async def touch(
    session: AsyncSession, *, identity: Identity, now: datetime, default_locale: str
) -> Contact:
    """Return the contact for an identity, creating it on first contact; note when it was seen."""
    contact = await arrive(session, identity=identity, now=now, default_locale=default_locale)
    seen(session, contact, identity=identity, now=now)
    return contact


async def arrive(
    session: AsyncSession, *, identity: Identity, now: datetime, default_locale: str
) -> Contact:
    """Return the contact of an identity, created on first contact, unblocked since it wrote."""
    contact = await find(session, channel=identity.channel, external_id=identity.external_id)
    if contact is not None:
        if contact.blocked_at is not None:
            contact.blocked_at = None
            session.add(contact)
        return contact
    contact = Contact(
        channel=Channel(identity.channel),
        external_id=identity.external_id,
        display_name=_name(identity),
        locale=default_locale,
        created_at=now,
    )
    try:
        async with session.begin_nested():
            session.add(contact)
    except IntegrityError:
        contact = await find(session, channel=identity.channel, external_id=identity.external_id)
        assert contact is not None
    return contact


def seen(session: AsyncSession, contact: Contact, *, identity: Identity, now: datetime) -> None:
    """Note that the contact wrote just now: it is reachable again, under its current name."""
    contact.last_seen_at = now
    contact.blocked_at = None
    name = _name(identity)
    if name:
        contact.display_name = name
    session.add(contact)


def _name(identity: Identity) -> str | None:
    """Return the display name to store (cut to the column's size), if any."""
    return (identity.display_name or "")[:DISPLAY_NAME_MAX] or None


async def set_locale(session: AsyncSession, *, contact: Contact, locale: str) -> Contact:
    """Change a contact's language (and its person's, when linked)."""
    if locale not in LOCALES:
        raise InvalidInput("lang.unknown", value=locale[:16], choices=", ".join(LOCALES))
    contact.locale = locale
    session.add(contact)
    if contact.person_id is not None:
        person = await session.get(Person, contact.person_id)
        if person is not None:
            person.locale = locale
            session.add(person)
    return contact


def set_opted_out(session: AsyncSession, *, contact: Contact, opted_out: bool) -> Contact:
    """Opt a contact out of (or back into) optional messages."""
    contact.opted_out = opted_out
    session.add(contact)
    return contact


async def mark_blocked(
    session: AsyncSession, *, channel: str, external_id: str, now: datetime
) -> Contact | None:
    """Record that the user blocked the bot, so nothing more is sent to them."""
    contact = await find(session, channel=channel, external_id=external_id)
    if contact is not None and contact.blocked_at is None:
        contact.blocked_at = now
        session.add(contact)
    return contact
