"""Invite codes that link a member of staff's chat account to their person record."""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import func, update
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from bot.models import AuditLog, Contact, Invite, Person, Role, Unit
from bot.services.errors import InvalidInput, NotFound, PermissionDenied
from bot.services.org import audit
from bot.services.org.access import Actor, require
from bot.services.org.names import by_name

PREFIX = "inv_"
CODE_CHARS = 22
MAX_WRONG_CODES = 10  # unknown codes one chat account may send in a day, on any channel
WRONG_CODE = "invite_wrong_code"  # the audit action of an unknown code


@dataclass(frozen=True)
class IssuedInvite:
    """A freshly made invite, with its code in clear (shown once, stored hashed)."""

    person_code: str
    full_name: str
    unit_code: str | None
    code: str
    expires_at: datetime


@dataclass(frozen=True)
class InviteBatch:
    """What one invite request produced."""

    issued: list[IssuedInvite]
    skipped_linked: int


def hash_code(code: str) -> str:
    """Return the stored form of an invite code."""
    return hashlib.sha256(code.encode("utf-8")).hexdigest()


def new_code() -> str:
    """Return a fresh, unguessable invite code that fits a Telegram deep link."""
    return PREFIX + secrets.token_urlsafe(32)[:CODE_CHARS]


def is_invite_payload(payload: str) -> bool:
    """Tell whether a /start payload is an invite code."""
    return payload.startswith(PREFIX)


def deep_link(username: str, code: str) -> str:
    """Return the t.me link that opens the bot with the invite code."""
    return f"https://t.me/{username}?start={code}"


async def _targets(
    session: AsyncSession, *, person_code: str | None, unit_code: str | None, all_unlinked: bool
) -> list[Person]:
    """Return the active people an invite request names."""
    stmt = select(Person).where(col(Person.active).is_(True))
    if person_code:
        person = (await session.exec(stmt.where(Person.code == person_code.upper()))).first()
        if person is None:
            raise NotFound("invite.unknown_person", code=person_code)
        return [person]
    if unit_code:
        unit = (await session.exec(select(Unit).where(Unit.code == unit_code.upper()))).first()
        if unit is None:
            raise NotFound("errors.unknown_unit", code=unit_code)
        stmt = stmt.where(Person.unit_id == unit.id)
    elif not all_unlinked:
        raise InvalidInput("invite.no_target")
    return by_name(
        (await session.exec(stmt.order_by(col(Person.code)))).all(), lambda p: p.full_name
    )


async def _linked_ids(session: AsyncSession, channel: str) -> set[int]:
    """Return the ids of people already linked on a channel."""
    stmt = select(Contact.person_id).where(
        Contact.channel == channel, col(Contact.person_id).is_not(None)
    )
    return {pid for pid in (await session.exec(stmt)).all() if pid is not None}


async def create_invites(
    session: AsyncSession,
    *,
    actor: Actor,
    now: datetime,
    valid_days: int,
    person_code: str | None = None,
    unit_code: str | None = None,
    all_unlinked: bool = False,
    channel: str = "telegram",
) -> InviteBatch:
    """Make invites for a person, a unit's people, or everyone not linked; revoke older ones."""
    require(actor, Role.ADMIN)
    people = await _targets(
        session, person_code=person_code, unit_code=unit_code, all_unlinked=all_unlinked
    )
    linked = await _linked_ids(session, channel) if not person_code else set()
    chosen = [p for p in people if p.id not in linked]
    ids = [p.id for p in chosen]
    if ids:
        await session.exec(
            update(Invite)
            .where(col(Invite.person_id).in_(ids), col(Invite.used_at).is_(None))
            .where(col(Invite.revoked_at).is_(None))
            .values(revoked_at=now)
        )
    units = {u.id: u.code for u in (await session.exec(select(Unit))).all()}
    expires = now + timedelta(days=valid_days)
    issued = []
    for person in chosen:
        code = new_code()
        assert person.id is not None
        session.add(
            Invite(
                code_hash=hash_code(code), person_id=person.id, created_at=now, expires_at=expires
            )
        )
        issued.append(
            IssuedInvite(person.code, person.full_name, units.get(person.unit_id), code, expires)
        )
    target = person_code or unit_code or "all_unlinked"
    audit.record(
        session,
        actor=actor.label,
        action="invite.create",
        now=now,
        subject=target,
        count=len(issued),
    )
    return InviteBatch(issued=issued, skipped_linked=len(people) - len(chosen))


async def _claim(session: AsyncSession, invite: Invite, contact: Contact, now: datetime) -> bool:
    """Mark an invite used by this contact, unless another request got there first."""
    result = await session.exec(
        update(Invite)
        .where(col(Invite.id) == invite.id, col(Invite.used_at).is_(None))
        .values(used_at=now, used_by_contact_id=contact.id)
    )
    return bool(result.rowcount)


def _check_usable(invite: Invite | None, contact: Contact, now: datetime) -> Invite:
    """Raise the right error for an invite that cannot be used now."""
    if invite is None or (invite.revoked_at is not None and invite.used_at is None):
        raise InvalidInput("invite.invalid")
    if invite.used_at is not None:
        key = "invite.already_yours" if invite.used_by_contact_id == contact.id else "invite.used"
        raise InvalidInput(key)
    if invite.expires_at <= now:
        raise InvalidInput("invite.expired")
    return invite


async def wrong_codes(session: AsyncSession, *, contact: Contact, now: datetime) -> int:
    """Count the unknown invite codes a chat account sent in the last day."""
    query = (
        select(func.count())
        .select_from(AuditLog)
        .where(
            AuditLog.actor == f"contact:{contact.id}",
            AuditLog.action == WRONG_CODE,
            col(AuditLog.at) > now - timedelta(days=1),
        )
    )
    return int((await session.exec(query)).one())


async def redeem(session: AsyncSession, *, contact: Contact, code: str, now: datetime) -> Person:
    """Link a chat account to the invite's person; change nothing when the code is not usable.

    An unknown code is recorded before InvalidInput is raised (commit the session when catching
    it); after MAX_WRONG_CODES in a day every code is refused, the right one too.
    """
    if await wrong_codes(session, contact=contact, now=now) >= MAX_WRONG_CODES:
        raise PermissionDenied("invite.too_many", limit=MAX_WRONG_CODES)
    row = (await session.exec(select(Invite).where(Invite.code_hash == hash_code(code)))).first()
    if row is None:
        actor, subject = f"contact:{contact.id}", f"{contact.channel}:{contact.id}"
        audit.record(session, actor=actor, action=WRONG_CODE, now=now, subject=subject)
        await session.flush()
    invite = _check_usable(row, contact, now)
    person = await session.get(Person, invite.person_id)
    if person is None or not person.active:
        raise InvalidInput("invite.person_inactive")
    if contact.person_id not in (None, person.id):
        raise InvalidInput("invite.contact_linked_other")
    if not await _claim(session, invite, contact, now):
        raise InvalidInput("invite.used")
    await session.exec(
        update(Contact)
        .where(col(Contact.person_id) == person.id, col(Contact.channel) == contact.channel)
        .where(col(Contact.id) != contact.id)
        .values(person_id=None)
    )
    contact.person_id = person.id
    contact.locale = person.locale
    contact.opted_out = False
    session.add(contact)
    audit.record(
        session,
        actor=f"person:{person.code}",
        action="invite.redeem",
        now=now,
        subject=f"{contact.channel}:{contact.id}",
    )
    return person
