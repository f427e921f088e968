"""The organisation: units, their people, and what the bot knows of a person."""

from __future__ import annotations

from dataclasses import dataclass

from sqlmodel import col, func, select
from sqlmodel.ext.asyncio.session import AsyncSession

from bot.models import Contact, Person, PersonRole, Role, Unit
from bot.services.errors import NotFound
from bot.services.org.access import Actor, require, require_staff, require_unit_scope
from bot.services.org.names import by_name


@dataclass(frozen=True)
class UnitLine:
    """One unit in an indented listing."""

    unit: Unit
    depth: int
    people: int
    linked: int


@dataclass(frozen=True)
class PersonLine:
    """One person in a unit listing."""

    person: Person
    roles: frozenset[Role]
    channels: tuple[str, ...]


@dataclass(frozen=True)
class Profile:
    """What /me shows."""

    person: Person
    unit: Unit | None
    roles: frozenset[Role]
    channels: tuple[str, ...]


async def unit_by_code(session: AsyncSession, code: str) -> Unit:
    """Return an active unit by its code, or raise NotFound."""
    unit = (await session.exec(select(Unit).where(Unit.code == code.strip().upper()))).first()
    if unit is None:
        raise NotFound("errors.unknown_unit", code=code[:32])
    return unit


async def unit_of(session: AsyncSession, person: Person) -> Unit | None:
    """Return the unit a person belongs to."""
    return await session.get(Unit, person.unit_id) if person.unit_id else None


async def _counts(session: AsyncSession) -> tuple[dict[int, int], dict[int, int]]:
    """Return the number of active people, and of those linked to a chat, per unit id."""
    active = col(Person.active).is_(True)
    people = await session.exec(
        select(Person.unit_id, func.count()).where(active).group_by(col(Person.unit_id))
    )
    linked = await session.exec(
        select(Person.unit_id, func.count(func.distinct(Person.id)))
        .join(Contact, col(Contact.person_id) == Person.id)
        .where(active)
        .group_by(col(Person.unit_id))
    )
    return (
        {u: n for u, n in people.all() if u is not None},
        {u: n for u, n in linked.all() if u is not None},
    )


async def unit_tree(session: AsyncSession, *, actor: Actor) -> list[UnitLine]:
    """List every active unit depth-first under its parent, with head counts."""
    require(actor, Role.ADMIN, Role.LEADER)
    units = list((await session.exec(select(Unit).where(col(Unit.active).is_(True)))).all())
    children: dict[int | None, list[Unit]] = {}
    ids = {u.id for u in units}
    for u in sorted(units, key=lambda u: u.code):
        parent = u.parent_id if u.parent_id in ids else None
        children.setdefault(parent, []).append(u)
    people, linked = await _counts(session)
    out: list[UnitLine] = []

    def walk(parent: int | None, depth: int) -> None:
        for u in children.get(parent, []):
            assert u.id is not None
            out.append(UnitLine(u, depth, people.get(u.id, 0), linked.get(u.id, 0)))
            walk(u.id, depth + 1)

    walk(None, 0)
    return out


async def unit_people(
    session: AsyncSession, *, actor: Actor, unit_code: str | None
) -> tuple[Unit, list[PersonLine]]:
    """List a unit's active people; heads see only their own unit."""
    require(actor, Role.ADMIN, Role.LEADER, Role.UNIT_HEAD)
    if unit_code:
        unit = await unit_by_code(session, unit_code)
    elif actor.unit is not None:
        unit = actor.unit
    else:
        raise NotFound("people.no_unit")
    require_unit_scope(actor, unit)
    people = by_name(
        (
            await session.exec(
                select(Person).where(Person.unit_id == unit.id, col(Person.active).is_(True))
            )
        ).all(),
        lambda p: p.full_name,
    )
    ids = [p.id for p in people]
    roles: dict[int, set[Role]] = {}
    for pid, role in (
        await session.exec(
            select(PersonRole.person_id, PersonRole.role).where(col(PersonRole.person_id).in_(ids))
        )
    ).all():
        roles.setdefault(pid, set()).add(Role(role))
    channels: dict[int, set[str]] = {}
    for cpid, channel in (
        await session.exec(
            select(Contact.person_id, Contact.channel).where(col(Contact.person_id).in_(ids))
        )
    ).all():
        if cpid is not None:
            channels.setdefault(cpid, set()).add(str(channel))
    return unit, [
        PersonLine(
            p, frozenset(roles.get(p.id or 0, ())), tuple(sorted(channels.get(p.id or 0, ())))
        )
        for p in people
    ]


async def profile(session: AsyncSession, *, actor: Actor) -> Profile:
    """Return what the bot holds about the acting member of staff."""
    require_staff(actor)
    assert actor.person is not None
    rows = await session.exec(select(Contact.channel).where(Contact.person_id == actor.person.id))
    return Profile(
        actor.person, actor.unit, actor.roles, tuple(sorted({str(c) for c in rows.all()}))
    )
