"""Chat accounts: first contact, last seen, language, opting out, blocking."""

from __future__ import annotations

import functools
import time
import weakref
from collections import OrderedDict
from collections.abc import Callable, Collection, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Table, Update, bindparam, event, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import instrumentation, make_transient_to_detached
from sqlalchemy.orm.attributes import set_committed_value
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from bot.i18n import LOCALES
from bot.models import Channel, Contact, Person, PersonRole, Role
from bot.services.errors import InvalidInput, PermissionDenied

DISPLAY_NAME_MAX = 255
CACHE_SECONDS = 900.0
CACHE_SIZE = 10_000


@dataclass(frozen=True)
class Identity:
    """Who wrote, as the channel names them."""

    channel: str
    external_id: str
    display_name: str | None = None


# Built once: every update reuses the statement, and SQLAlchemy its cache key.
FIND = select(Contact).where(
    Contact.channel == bindparam("channel"), Contact.external_id == bindparam("external_id")
)


async def find(session: AsyncSession, *, channel: str, external_id: str) -> Contact | None:
    """Return the contact of a channel account, if known."""
    params = {"channel": channel, "external_id": external_id}
    return (await session.exec(FIND, params=params)).first()


async def last_seen(
    session: AsyncSession, *, channel: str, external_ids: Collection[str]
) -> dict[str, datetime | None]:
    """Return when each of a channel's accounts last wrote (None: never, or no such contact)."""
    if not external_ids:
        return {}
    found: dict[str, datetime | None] = dict.fromkeys(external_ids)
    stmt = select(Contact.external_id, Contact.last_seen_at).where(
        Contact.channel == channel, col(Contact.external_id).in_(list(found))
    )
    for external_id, seen_at in (await session.exec(stmt)).all():
        found[external_id] = seen_at
    return found


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
    values = {
        "channel": Channel(identity.channel),
        "external_id": identity.external_id,
        "display_name": _name(identity),
        "locale": default_locale,
        "created_at": now,
        "last_seen_at": now,  # noting the visit then changes nothing: no second write
    }
    conn = await session.connection()
    module = postgresql if conn.dialect.name == "postgresql" else sqlite
    stmt = (
        module.insert(Contact)
        .values(values)
        .on_conflict_do_nothing(index_elements=["channel", "external_id"])
        .returning(Contact)
    )
    # One statement, no savepoint: a contact another update created meanwhile is read instead.
    created: Contact | None = (await session.exec(stmt)).scalars().first()
    if created is not None:
        return created
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
        contact = _MANAGER.new_instance()  # as the ORM builds a loaded row: no validation
        contact.__dict__.update(values)
        make_transient_to_detached(contact)
        session.add(contact)
        return contact

    async def seen(
        self, session: AsyncSession, contact: Contact, *, identity: Identity, now: datetime
    ) -> None:
        """Note a cached contact's visit if its row is as the handler saw it, else StaleContact."""
        await session.flush()  # the handler's own changes to the contact first
        name = _name(identity)
        params: dict[str, Any] = {
            "c_id": contact.id,
            "c_locale": contact.locale,
            "c_opted_out": contact.opted_out,
            "c_person": contact.person_id,
            "last_seen_at": now,
            "display_name": name,
        }
        stmt = _seen_statement(contact.person_id is not None, bool(name))
        result = await (await session.connection()).execute(stmt, params)
        if result.rowcount != 1:
            self.forget(identity.channel, identity.external_id)
            raise StaleContact
        set_committed_value(contact, "last_seen_at", now)
        set_committed_value(contact, "blocked_at", None)
        if name:
            set_committed_value(contact, "display_name", name)

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


CONTACTS: Table = Contact.__table__  # type: ignore[attr-defined]
COLUMNS = tuple(column.key for column in CONTACTS.columns)
_MANAGER = instrumentation.manager_of_class(Contact)


@functools.cache
def _seen_statement(linked: bool, named: bool) -> Update:
    """Return the visit's UPDATE of a cached contact, built once per shape (Core, bound later)."""
    c = CONTACTS.c
    person = c.person_id == bindparam("c_person") if linked else c.person_id.is_(None)
    values: dict[str, Any] = {
        "last_seen_at": bindparam("last_seen_at", type_=c.last_seen_at.type),
        "blocked_at": None,
    }
    if named:
        values["display_name"] = bindparam("display_name", type_=c.display_name.type)
    return (
        update(CONTACTS)
        .where(c.id == bindparam("c_id"), c.locale == bindparam("c_locale"))
        .where(c.opted_out == bindparam("c_opted_out"), person)
        .values(values)
    )


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


# One contact per person --------------------------------------------------------------------

EPOCH = datetime.min.replace(tzinfo=UTC)


def _rank(contact: Contact, preferred: str | None) -> tuple[bool, bool, datetime, int]:
    """Order a person's contacts: not opted out, then the preferred channel, then seen last."""
    return (
        not contact.opted_out,
        preferred is not None and str(contact.channel) == preferred,
        contact.last_seen_at or EPOCH,
        contact.id or 0,
    )


async def reachable(
    session: AsyncSession,
    person_ids: Iterable[int | None],
    *,
    optional: bool = False,
    exclude: Collection[int] = (),
) -> dict[int, Contact]:
    """Return, per person, the one contact to deliver to (people with none are left out).

    Blocked contacts never count. The preferred channel's contact wins if it has not opted out,
    else the one seen most recently; a contact that opted out is taken only for a mandatory
    message (`optional` False) when the person has no other. `exclude` leaves contacts out by id.
    """
    ids = sorted({p for p in person_ids if p is not None})
    if not ids:
        return {}
    stmt = (
        select(Contact, Person.preferred_channel)
        .join(Person, col(Person.id) == Contact.person_id)
        .where(col(Contact.person_id).in_(ids), col(Contact.blocked_at).is_(None))
    )
    if optional:
        stmt = stmt.where(col(Contact.opted_out).is_(False))
    if exclude:
        stmt = stmt.where(col(Contact.id).not_in(list(exclude)))
    best: dict[int, tuple[tuple[bool, bool, datetime, int], Contact]] = {}
    for contact, preferred in (await session.exec(stmt)).all():
        assert contact.person_id is not None
        rank = _rank(contact, preferred)
        held = best.get(contact.person_id)
        if held is None or rank > held[0]:
            best[contact.person_id] = (rank, contact)
    return {person_id: contact for person_id, (_, contact) in best.items()}


async def linked(session: AsyncSession, person_id: int) -> list[Contact]:
    """Return every contact linked to a person, by channel."""
    stmt = select(Contact).where(Contact.person_id == person_id)
    rows = (await session.exec(stmt)).all()
    return sorted(rows, key=lambda c: (str(c.channel), c.id or 0))


@dataclass(frozen=True)
class Channels:
    """A person's linked channels (by name), and the one messages go to now (None: none)."""

    linked: tuple[str, ...]
    current: str | None


async def channels_of(session: AsyncSession, person_id: int) -> Channels:
    """Return the channels a person is linked on and the one their messages go to."""
    names = tuple(sorted({str(c.channel) for c in await linked(session, person_id)}))
    chosen = (await reachable(session, [person_id])).get(person_id)
    return Channels(names, str(chosen.channel) if chosen else None)


async def set_preferred(session: AsyncSession, *, person: Person | None, channel: str) -> Person:
    """Make one of the person's linked channels the one messages go to first (staff only)."""
    if person is None:
        raise PermissionDenied("errors.staff_only")
    choices = sorted({str(c.channel) for c in await linked(session, person.id or 0)})
    name = channel.strip().lower()
    if name not in choices:
        raise InvalidInput("channel.error.unknown", value=channel[:16], choices=", ".join(choices))
    person.preferred_channel = name
    session.add(person)
    return person


async def unit_head_contacts(session: AsyncSession) -> list[tuple[int, Contact]]:
    """Return (unit id, chat account) of every active unit head who can be reached."""
    stmt = (
        select(Person.id, Person.unit_id)
        .join(PersonRole, col(PersonRole.person_id) == Person.id)
        .where(
            PersonRole.role == Role.UNIT_HEAD.value,
            col(Person.active).is_(True),
            col(Person.unit_id).is_not(None),
        )
    )
    heads = {p: u for p, u in (await session.exec(stmt)).all() if p is not None and u}
    found = await reachable(session, heads)
    return sorted(((heads[p], c) for p, c in found.items()), key=lambda pair: pair[1].id or 0)


async def leadership_contacts(session: AsyncSession) -> list[Contact]:
    """Return the reachable chat accounts of active leaders and administrators, once each."""
    roles = [Role.LEADER.value, Role.ADMIN.value]
    people = select(PersonRole.person_id).where(col(PersonRole.role).in_(roles))
    stmt = select(Person.id).where(col(Person.id).in_(people), col(Person.active).is_(True))
    found = await reachable(session, (await session.exec(stmt)).all())
    return sorted(found.values(), key=lambda c: c.id or 0)
