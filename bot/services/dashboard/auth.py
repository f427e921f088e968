"""Signing in to the web dashboard: one-time links sent by the bot, passwords, sessions.

Only admins, leaders and unit heads (with a unit) may sign in. A link's token, a session's
cookie key and a password are never stored: the first two as SHA-256, the password as argon2.
A session ends when signed out, after `idle` without a request, and after `longest` in any case;
each carries a CSRF token that every form posts back.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import Row
from sqlmodel import col, select, update
from sqlmodel.ext.asyncio.session import AsyncSession

from bot.i18n import normalize_locale
from bot.models import (
    DashboardLogin,
    DashboardPassword,
    DashboardSession,
    Person,
    Role,
    Unit,
)
from bot.services.errors import InvalidInput, NotFound, PermissionDenied
from bot.services.org import audit
from bot.services.org.access import Actor, require, roles_of

DASHBOARD_ROLES = frozenset({Role.ADMIN, Role.LEADER, Role.UNIT_HEAD})
WIDE_ROLES = frozenset({Role.ADMIN, Role.LEADER})
MIN_PASSWORD = 12
MAX_PASSWORD = 256
MAX_FAILURES = 5  # wrong passwords in a row before the account waits
LOCK = timedelta(minutes=15)
_hasher = PasswordHasher()


def digest(secret: str) -> str:
    """Return the SHA-256 of a random secret, as stored."""
    return hashlib.sha256(secret.encode()).hexdigest()


def may_sign_in(actor: Actor) -> bool:
    """Tell whether an actor may use the dashboard: leadership, or the head of a unit."""
    if not actor.is_staff:
        return False
    if actor.has_any(WIDE_ROLES):
        return True
    return Role.UNIT_HEAD in actor.roles and actor.unit is not None


def require_dashboard(actor: Actor) -> None:
    """Raise PermissionDenied unless the actor may use the dashboard."""
    if not may_sign_in(actor):
        raise PermissionDenied("dashboard.error.no_access")


async def person_actor(session: AsyncSession, person: Person) -> Actor:
    """Build the actor of a person signed in to the dashboard."""
    unit = await session.get(Unit, person.unit_id) if person.unit_id else None
    roles = await roles_of(session, person)
    return Actor(name=person.full_name, roles=roles, person=person, unit=unit)


async def issue_link(session: AsyncSession, *, actor: Actor, now: datetime, minutes: int) -> str:
    """Store a one-time sign-in token for the actor (hashed); return the token."""
    require_dashboard(actor)
    assert actor.person is not None and actor.person.id is not None
    token = secrets.token_urlsafe(32)
    session.add(
        DashboardLogin(
            token_hash=digest(token),
            person_id=actor.person.id,
            created_at=now,
            expires_at=now + timedelta(minutes=minutes),
        )
    )
    await session.flush()
    return token


@dataclass(frozen=True)
class Opened:
    """A session just opened: the cookie's key (given once) and the session's CSRF token."""

    key: str
    csrf: str
    locale: str


async def _open(session: AsyncSession, person: Person, now: datetime, how: str) -> Opened:
    """Open a session for a person allowed to sign in; the audit trail says how they did."""
    actor = await person_actor(session, person)
    require_dashboard(actor)
    audit.record(session, actor=actor.label, action="dashboard_sign_in", now=now, detail=how)
    assert person.id is not None
    key, csrf = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
    locale = normalize_locale(person.locale)
    session.add(
        DashboardSession(
            key_hash=digest(key),
            person_id=person.id,
            csrf=csrf,
            locale=locale,
            created_at=now,
            last_seen_at=now,
        )
    )
    await session.flush()
    return Opened(key, csrf, locale)


async def redeem_link(session: AsyncSession, *, token: str, now: datetime) -> Opened:
    """Spend a one-time link and open a session; refuse a used, expired or unknown one."""
    if not token or len(token) > 128:
        raise InvalidInput("dashboard.error.link")
    spent = await session.exec(
        update(DashboardLogin)
        .where(
            col(DashboardLogin.token_hash) == digest(token),
            col(DashboardLogin.used_at).is_(None),
            col(DashboardLogin.expires_at) > now,
        )
        .values(used_at=now)
        .returning(col(DashboardLogin.person_id))
    )
    found = spent.first()
    person_id = found[0] if isinstance(found, tuple | Row) else found
    person = await session.get(Person, person_id) if person_id is not None else None
    if person is None:
        raise InvalidInput("dashboard.error.link")
    return await _open(session, person, now, "link")


def hash_password(password: str) -> str:
    """Check a new password's length and return its argon2 hash."""
    if not MIN_PASSWORD <= len(password) <= MAX_PASSWORD:
        raise InvalidInput("dashboard.error.password_length", min=MIN_PASSWORD)
    return _hasher.hash(password)


async def set_password(
    session: AsyncSession, *, person_code: str, password: str, now: datetime, actor: Actor
) -> Person:
    """Set (or replace) a person's dashboard password: an admin (or the operator) does it."""
    require(actor, Role.ADMIN)
    person = (await session.exec(select(Person).where(Person.code == person_code))).first()
    if person is None:
        raise NotFound("dashboard.error.unknown_person", code=person_code)
    require_dashboard(await person_actor(session, person))
    assert person.id is not None
    row = await session.get(DashboardPassword, person.id)
    hashed = hash_password(password)
    if row is None:
        row = DashboardPassword(person_id=person.id, password_hash=hashed, set_at=now)
    row.password_hash, row.set_at, row.failures, row.locked_until = hashed, now, 0, None
    session.add(row)
    audit.record(
        session, actor=actor.label, action="dashboard_password", now=now, subject=person.code
    )
    await session.flush()
    return person


async def password_login(
    session: AsyncSession, *, person_code: str, password: str, now: datetime
) -> Opened:
    """Open a session for a person code and password; refuse (alike) anything wrong.

    A wrong password is counted before the refusal is raised: the caller commits it anyway.
    """
    refused = InvalidInput("dashboard.error.password")
    code = person_code.strip()
    if not code or len(code) > 32 or len(password) > MAX_PASSWORD:
        raise refused
    person = (await session.exec(select(Person).where(Person.code == code))).first()
    row = await session.get(DashboardPassword, person.id) if person is not None else None
    if person is None or row is None:
        _hasher.hash(password)  # the same work as a real check: no timing hint of who exists
        raise refused
    if row.locked_until is not None and row.locked_until > now:
        raise InvalidInput("dashboard.error.locked")
    try:
        _hasher.verify(row.password_hash, password)
    except (VerificationError, InvalidHashError):
        row.failures += 1
        if row.failures >= MAX_FAILURES:
            row.failures, row.locked_until = 0, now + LOCK
        session.add(row)
        raise refused from None
    row.failures, row.locked_until = 0, None
    if _hasher.check_needs_rehash(row.password_hash):
        row.password_hash = _hasher.hash(password)
    session.add(row)
    return await _open(session, person, now, "password")


@dataclass(frozen=True)
class Signed:
    """A live session: who, in which language, and the token its forms must carry."""

    actor: Actor
    csrf: str
    locale: str
    row_id: int


async def find_session(
    session: AsyncSession,
    *,
    key: str | None,
    now: datetime,
    idle: timedelta,
    longest: timedelta,
) -> Signed | None:
    """Return the live session of a cookie key (and note it was used), or None."""
    if not key or len(key) > 128:
        return None
    row = (
        await session.exec(select(DashboardSession).where(DashboardSession.key_hash == digest(key)))
    ).first()
    if row is None or row.ended_at is not None:
        return None
    if now - row.last_seen_at > idle or now - row.created_at > longest:
        row.ended_at = now
        session.add(row)
        return None
    person = await session.get(Person, row.person_id)
    if person is None:
        return None
    actor = await person_actor(session, person)
    if not may_sign_in(actor):  # roles taken away since: the session ends now
        row.ended_at = now
        session.add(row)
        return None
    row.last_seen_at = now
    session.add(row)
    assert row.id is not None
    return Signed(actor, row.csrf, row.locale, row.id)


def csrf_ok(signed: Signed, sent: str | None) -> bool:
    """Tell whether a form carried the session's CSRF token (compared in constant time)."""
    return bool(sent) and hmac.compare_digest(signed.csrf.encode(), (sent or "").encode())


async def end_session(session: AsyncSession, *, row_id: int, now: datetime) -> None:
    """Sign a session out."""
    row = await session.get(DashboardSession, row_id)
    if row is not None and row.ended_at is None:
        row.ended_at = now
        session.add(row)


async def set_locale(session: AsyncSession, *, row_id: int, locale: str) -> str:
    """Change a session's language; return the one kept."""
    row = await session.get(DashboardSession, row_id)
    chosen = normalize_locale(locale)
    if row is not None:
        row.locale = chosen
        session.add(row)
    return chosen
