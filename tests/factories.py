"""Small builders of organisation rows for tests."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlmodel.ext.asyncio.session import AsyncSession

from bot.models import Channel, Contact, Person, PersonRole, Role, Unit, UnitKind

T0 = datetime(2026, 11, 1, tzinfo=UTC)


async def unit(
    session: AsyncSession,
    code: str,
    name: str | None = None,
    *,
    kind: UnitKind = UnitKind.OFFICE,
    parent: Unit | None = None,
) -> Unit:
    """Add a unit."""
    row = Unit(
        code=code,
        name=name or f"Đơn vị {code}",
        kind=kind,
        parent_id=parent.id if parent else None,
        created_at=T0,
        updated_at=T0,
    )
    session.add(row)
    await session.flush()
    return row


async def person(
    session: AsyncSession,
    code: str,
    unit_row: Unit | None,
    *roles: Role,
    name: str | None = None,
    active: bool = True,
    locale: str = "vi",
) -> Person:
    """Add a person with roles (staff when none given)."""
    row = Person(
        code=code,
        full_name=name or f"Cán bộ {code}",
        unit_id=unit_row.id if unit_row else None,
        active=active,
        locale=locale,
        created_at=T0,
        updated_at=T0,
    )
    session.add(row)
    await session.flush()
    assert row.id is not None
    for role in roles or (Role.STAFF,):
        session.add(PersonRole(person_id=row.id, role=role))
    await session.flush()
    return row


async def contact(
    session: AsyncSession, external_id: str, person_row: Person | None = None
) -> Contact:
    """Add a Telegram contact, linked to a person when given."""
    row = Contact(
        channel=Channel.TELEGRAM,
        external_id=external_id,
        locale="vi",
        person_id=person_row.id if person_row else None,
        created_at=T0,
    )
    session.add(row)
    await session.flush()
    return row
