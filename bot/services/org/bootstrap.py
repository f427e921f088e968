"""Accounts the configuration names as administrators before any staff import."""

from __future__ import annotations

from datetime import datetime

from sqlmodel import select
from sqlmodel.ext.asyncio.session import AsyncSession

from bot.config import BootstrapAdmin
from bot.models import Channel, Contact, Person, PersonRole, Role
from bot.services.delivery import contacts


def person_code(admin: BootstrapAdmin) -> str:
    """Return the staff code a bootstrap admin gets."""
    return f"BOOT-{admin.channel[:2].upper()}-{admin.external_id}"[:32].upper()


async def ensure_admin(
    session: AsyncSession, *, admin: BootstrapAdmin, now: datetime, locale: str
) -> Person:
    """Create or refresh a bootstrap admin: a person with the admin role, linked to the account."""
    code = person_code(admin)
    person = (await session.exec(select(Person).where(Person.code == code))).first()
    if person is None:
        person = Person(
            code=code, full_name=admin.full_name, locale=locale, created_at=now, updated_at=now
        )
        session.add(person)
        await session.flush()
    person.active = True
    role = await session.get(PersonRole, (person.id, Role.ADMIN.value))
    if role is None:
        assert person.id is not None
        session.add(PersonRole(person_id=person.id, role=Role.ADMIN))
    contact = await contacts.find(session, channel=admin.channel, external_id=admin.external_id)
    if contact is None:
        contact = Contact(
            channel=Channel(admin.channel),
            external_id=admin.external_id,
            locale=locale,
            created_at=now,
        )
    contact.person_id = person.id
    session.add(contact)
    return person
