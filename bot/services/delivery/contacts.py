"""Chat accounts: first contact, last seen, language, opting out, blocking."""

from __future__ import annotations

import time
import weakref
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from sqlalchemy import CursorResult, event, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import make_transient_to_detached
from sqlalchemy.orm.attributes import set_committed_value
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from bot.i18n import LOCALES
from bot.models import Channel, Contact, Person
from bot.services.errors import InvalidInput

DISPLAY_NAME_MAX = 255
CACHE_SECONDS = 900.0
CACHE_SIZE = 10_000


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


def view(contact: Contact) -> tuple[object, ...]:
    """Return what a handler decides by: the language, the linked person, opting out."""
    return (contact.locale, contact.person_id, contact.opted_out)


class StaleContact(Exception):
    """A cached contact's row changed in another process while its update was being handled."""


class ContactCache:
    """Recently seen citizens' contact rows by (channel, external id), checked when committing.

    Only contacts linked to no person are kept, so a stale entry never grants a staff role. An
    entry is dropped when this process changes the contact; a change made by another process (a
    language, a link, opting out) is caught by `seen`, which records the visit only if the row
    still holds what the handler was given, and otherwise asks for the update to be handled again
    from the database. Entries live CACHE_SECONDS at most (memory, not correctness).
    """

    def __init__(
        self,
        seconds: float = CACHE_SECONDS,
        size: int = CACHE_SIZE,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.seconds, self.size, self.clock = seconds, size, clock
        self.rows: OrderedDict[tuple[str, str], tuple[float, dict[str, Any]]] = OrderedDict()
        _watch(self)

    def attach(self, session: AsyncSession, identity: Identity) -> Contact | None:
        """Return the cached contact, attached to the session without a query; None on a miss."""
        key = (identity.channel, identity.external_id)
        entry = self.rows.get(key)
        if entry is None:
            return None
        until, values = entry
        if until <= self.clock():
            del self.rows[key]
            return None
        contact = Contact(**values)
        make_transient_to_detached(contact)
        session.add(contact)
        return contact

    async def seen(
        self, session: AsyncSession, contact: Contact, *, identity: Identity, now: datetime
    ) -> None:
        """Note a cached contact's visit if its row is as the handler saw it, else StaleContact."""
        await session.flush()  # the handler's own changes to the contact first
        name = _name(identity)
        values: dict[str, Any] = {"last_seen_at": now, "blocked_at": None}
        if name:
            values["display_name"] = name
        person = col(Contact.person_id)
        stmt = (
            update(Contact)
            .where(col(Contact.id) == contact.id, col(Contact.locale) == contact.locale)
            .where(col(Contact.opted_out) == contact.opted_out)
            .where(person.is_(None) if contact.person_id is None else person == contact.person_id)
            .values(**values)
            .execution_options(synchronize_session=False)
        )
        result = cast(CursorResult[Any], await session.exec(stmt))
        if result.rowcount != 1:
            self.forget(identity.channel, identity.external_id)
            raise StaleContact
        for field, value in values.items():
            set_committed_value(contact, field, value)

    def remember(self, contact: Contact) -> None:
        """Keep a committed contact's row, when it is linked to no person."""
        key = (str(contact.channel), contact.external_id)
        if contact.id is None or contact.person_id is not None:
            self.rows.pop(key, None)
            return
        values = {name: getattr(contact, name) for name in COLUMNS}
        self.rows[key] = (self.clock() + self.seconds, values)
        self.rows.move_to_end(key)
        while len(self.rows) > self.size:
            self.rows.popitem(last=False)

    def forget(self, channel: str, external_id: str) -> None:
        """Drop a contact's entry (it changed)."""
        self.rows.pop((channel, external_id), None)


COLUMNS = tuple(column.key for column in Contact.__table__.columns)  # type: ignore[attr-defined]
CACHES: weakref.WeakSet[ContactCache] = weakref.WeakSet()


CHANGES = ("after_update", "after_delete")


def _changed(_mapper: Any, _conn: Any, contact: Contact) -> None:
    """Drop a contact changed through the ORM from every cache of this process."""
    for cache in CACHES:
        cache.forget(str(contact.channel), contact.external_id)


def _watch(cache: ContactCache) -> None:
    """Keep a cache told of ORM changes to contacts (the listener is added with the first cache)."""
    for change in CHANGES:
        if not event.contains(Contact, change, _changed):
            event.listen(Contact, change, _changed)
    CACHES.add(cache)
