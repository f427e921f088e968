"""Who is acting, and what their roles allow."""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy import bindparam
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from bot.messages import OutboundMessage, Text
from bot.models import Contact, Person, PersonRole, Role, Unit
from bot.services.delivery.contacts import reachable
from bot.services.errors import PermissionDenied

STAFF_ROLES = frozenset(Role)


@dataclass(frozen=True)
class Actor:
    """The person (or citizen, or command line) behind a request."""

    name: str
    roles: frozenset[Role] = field(default_factory=frozenset)
    person: Person | None = None
    contact: Contact | None = None
    unit: Unit | None = None

    @property
    def is_staff(self) -> bool:
        """Tell whether the actor is a linked, active member of staff."""
        return self.person is not None and self.person.active

    @property
    def is_citizen(self) -> bool:
        """Tell whether the actor is a chat account with no person behind it."""
        return self.person is None and self.contact is not None

    @property
    def label(self) -> str:
        """Return how the audit log names this actor."""
        if self.person is not None:
            return f"person:{self.person.code}"
        if self.contact is not None:
            return f"contact:{self.contact.id}"
        return self.name

    def has_any(self, roles: frozenset[Role]) -> bool:
        """Tell whether the actor holds at least one of the roles."""
        return bool(self.roles & roles)


def system_actor(name: str) -> Actor:
    """Return an actor with every role, for the command line run by the operator."""
    return Actor(name=name, roles=frozenset(Role))


def require(actor: Actor, *roles: Role) -> None:
    """Raise PermissionDenied unless the actor holds one of the roles."""
    if not actor.has_any(frozenset(roles)):
        raise PermissionDenied("errors.forbidden")


def require_staff(actor: Actor) -> None:
    """Raise PermissionDenied unless the actor is a linked member of staff."""
    if not actor.is_staff:
        raise PermissionDenied("errors.staff_only")


def require_unit_scope(actor: Actor, unit: Unit) -> None:
    """Allow admins and leaders any unit, a unit head only their own unit."""
    if actor.has_any(frozenset({Role.ADMIN, Role.LEADER})):
        return
    if Role.UNIT_HEAD in actor.roles and actor.unit is not None and actor.unit.id == unit.id:
        return
    raise PermissionDenied("errors.forbidden_unit", unit=unit.name)


ROLES = select(PersonRole.role).where(PersonRole.person_id == bindparam("person_id"))


async def roles_of(session: AsyncSession, person: Person) -> frozenset[Role]:
    """Return the roles a person holds (none when inactive)."""
    if not person.active:
        return frozenset()
    rows = await session.exec(ROLES, params={"person_id": person.id})
    return frozenset(Role(r) for r in rows.all())


async def actor_for(session: AsyncSession, contact: Contact) -> Actor:
    """Build the actor for a chat account."""
    if contact.person_id is None:
        return Actor(name=f"contact:{contact.id}", contact=contact)
    person = await session.get(Person, contact.person_id)
    if person is None:
        return Actor(name=f"contact:{contact.id}", contact=contact)
    unit = await session.get(Unit, person.unit_id) if person.unit_id else None
    roles = await roles_of(session, person)
    return Actor(name=person.full_name, roles=roles, person=person, contact=contact, unit=unit)


async def contacts_with_role(
    session: AsyncSession, role: Role, *, unit_id: int | None = None
) -> list[Contact]:
    """Return the usable chat accounts of the active people holding a role (in a unit)."""
    holders = select(PersonRole.person_id).where(PersonRole.role == role.value)
    people = select(Person.id).where(col(Person.active).is_(True), col(Person.id).in_(holders))
    if unit_id is not None:
        people = people.where(Person.unit_id == unit_id)
    found = await reachable(session, (await session.exec(people)).all())
    return sorted(found.values(), key=lambda c: c.id or 0)


async def heads_or_admins(session: AsyncSession, *, unit_id: int) -> tuple[list[Contact], bool]:
    """Return the unit's heads' chat accounts, or the admins' (and True) when none is linked."""
    heads = await contacts_with_role(session, Role.UNIT_HEAD, unit_id=unit_id)
    if heads:
        return heads, False
    return await contacts_with_role(session, Role.ADMIN), True


async def for_admins(
    session: AsyncSession, message: OutboundMessage, *, unit_id: int
) -> OutboundMessage:
    """Wrap a message meant for a unit's heads, telling the admins why it reached them."""
    unit = await session.get(Unit, unit_id)
    return OutboundMessage(
        "routing.for_admins",
        {"unit": unit.name if unit else "–", "message": Text(message.key, message.params)},
        buttons=message.buttons,
    )
