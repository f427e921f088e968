"""Directive notices: targeting, pushing through the outbox, acknowledgement and status."""

from __future__ import annotations

import statistics
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime

from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from bot.i18n.formats import FormalTime
from bot.messages import Button, OutboundMessage
from bot.models import (
    Audience,
    Contact,
    Directive,
    DirectiveRecipient,
    DirectiveUnit,
    Outbox,
    OutboxStatus,
    Person,
    PersonRole,
    Role,
    Unit,
    UnitKind,
)
from bot.services.calendar import WorkCalendar
from bot.services.delivery import outbox
from bot.services.delivery.contacts import reachable
from bot.services.errors import InvalidInput, NotFound, PermissionDenied
from bot.services.org import audit
from bot.services.org.access import Actor, require, require_unit_scope
from bot.services.org.names import by_name

KIND = "directive"
NUMBER_MAX, TITLE_MAX, SUMMARY_MAX = 64, 500, 3000
NOTICE_PRIORITY = 10


@dataclass(frozen=True)
class Target:
    """Which units a directive goes to: all, kinds of unit, a subtree, or picked units."""

    all: bool = False
    kinds: tuple[UnitKind, ...] = ()
    subtree: str | None = None
    units: tuple[str, ...] = ()

    def describe(self) -> str:
        """Return a short, language-neutral description for the record."""
        parts = ["all"] if self.all else []
        parts += [f"kind:{k.value}" for k in self.kinds]
        parts += [f"subtree:{self.subtree}"] if self.subtree else []
        parts += [f"unit:{u}" for u in self.units]
        return ", ".join(parts)[:500]


@dataclass(frozen=True)
class Draft:
    """A directive as the admin wrote it, before it is issued."""

    number: str
    issued_on: date
    title: str
    summary: str
    target: Target
    audience: Audience = Audience.EVERYONE
    ack_deadline: datetime | None = None
    attachment_id: int | None = None


@dataclass(frozen=True)
class Recipient:
    """One person the directive reaches, and the chat account it goes to (None: unreachable)."""

    person: Person
    unit: Unit
    contact: Contact | None


@dataclass(frozen=True)
class Plan:
    """Who a draft reaches, before anything is written."""

    units: list[Unit]
    recipients: list[Recipient]

    @property
    def reachable(self) -> list[Recipient]:
        """Return those with a usable chat account."""
        return [r for r in self.recipients if r.contact is not None]

    @property
    def unreachable(self) -> list[Recipient]:
        """Return those with no linked (or a blocked) chat account."""
        return [r for r in self.recipients if r.contact is None]


@dataclass(frozen=True)
class Issued:
    """What issuing a directive did."""

    directive: Directive
    queued: int
    unreachable: list[Recipient]


@dataclass(frozen=True)
class Reached:
    """One recipient: the channel the notice reached them on, and the one they acknowledged on."""

    name: str
    sent_on: str | None
    acked_on: str | None

    @property
    def channel(self) -> str | None:
        """Return the channel the person was reached on (an acknowledgement proves one too)."""
        return self.sent_on or self.acked_on


@dataclass(frozen=True)
class UnitStatus:
    """Acknowledgement of one directive in one unit."""

    unit: Unit
    total: int
    acked: int
    median_seconds: float | None
    missing: list[str] = field(default_factory=list)  # got the notice, not yet acknowledged
    unreached: list[str] = field(default_factory=list)  # no account, blocked, or delivery failed
    people: list[Reached] = field(default_factory=list)  # everyone, in name order

    def channel_of(self, name: str) -> str | None:
        """Return the channel a recipient of this name was reached on."""
        return next((p.channel for p in self.people if p.name == name), None)


@dataclass(frozen=True)
class Status:
    """Acknowledgement of one directive, unit by unit."""

    directive: Directive
    units: list[UnitStatus]

    @property
    def total(self) -> int:
        """Return the number of recipients."""
        return sum(u.total for u in self.units)

    @property
    def acked(self) -> int:
        """Return the number who acknowledged."""
        return sum(u.acked for u in self.units)

    @property
    def unreached(self) -> int:
        """Return the number the notice could not reach."""
        return sum(len(u.unreached) for u in self.units)


def validate(draft: Draft, *, now: datetime) -> None:
    """Refuse a draft with a missing or oversize field, or a deadline in the past."""
    for name, value, limit in (
        ("number", draft.number, NUMBER_MAX),
        ("title", draft.title, TITLE_MAX),
        ("summary", draft.summary, SUMMARY_MAX),
    ):
        if not value.strip():
            raise InvalidInput("directive.error.required", field=name)
        if len(value) > limit:
            raise InvalidInput("directive.error.too_long", field=name, limit=limit)
    if draft.ack_deadline is not None and draft.ack_deadline <= now:
        raise InvalidInput("directive.error.deadline_past")
    if not (draft.target.all or draft.target.kinds or draft.target.subtree or draft.target.units):
        raise InvalidInput("directive.error.no_target")


async def _subtree(session: AsyncSession, root: Unit) -> list[Unit]:
    """Return a unit and every unit below it."""
    units = list((await session.exec(select(Unit).where(col(Unit.active).is_(True)))).all())
    children: dict[int | None, list[Unit]] = defaultdict(list)
    for u in units:
        children[u.parent_id].append(u)
    out, todo = [], [root]
    while todo:
        unit = todo.pop()
        out.append(unit)
        todo.extend(children.get(unit.id, []))
    return out


async def resolve_units(session: AsyncSession, target: Target) -> list[Unit]:
    """Return the active units a target names; unknown codes are an error naming them."""
    active = col(Unit.active).is_(True)
    if target.all:
        return list((await session.exec(select(Unit).where(active).order_by(col(Unit.code)))).all())
    found: dict[int | None, Unit] = {}
    if target.kinds:
        stmt = select(Unit).where(active, col(Unit.kind).in_([k.value for k in target.kinds]))
        found.update({u.id: u for u in (await session.exec(stmt)).all()})
    codes = [c.strip().upper() for c in target.units if c.strip()]
    if target.subtree:
        codes.append(target.subtree.strip().upper())
    known = {
        u.code: u
        for u in (await session.exec(select(Unit).where(col(Unit.code).in_(codes), active))).all()
    }
    unknown = [c for c in codes if c not in known]
    if unknown:
        raise NotFound("directive.error.unknown_units", codes=", ".join(unknown[:10]))
    picked = [c.strip().upper() for c in target.units]
    found.update({known[c].id: known[c] for c in picked if c in known})
    if target.subtree:
        found.update({u.id: u for u in await _subtree(session, known[target.subtree.upper()])})
    return sorted(found.values(), key=lambda u: u.code)


async def plan(session: AsyncSession, draft: Draft) -> Plan:
    """Resolve a draft's units and people, and the chat account each is reached on."""
    units = await resolve_units(session, draft.target)
    by_id = {u.id: u for u in units}
    stmt = select(Person).where(col(Person.unit_id).in_(list(by_id)), col(Person.active).is_(True))
    people = by_name((await session.exec(stmt)).all(), lambda p: p.full_name)
    if draft.audience == Audience.HEADS:
        heads = set(
            (
                await session.exec(
                    select(PersonRole.person_id).where(PersonRole.role == Role.UNIT_HEAD.value)
                )
            ).all()
        )
        people = [p for p in people if p.id in heads]
    found = await reachable(session, [p.id for p in people])
    recipients = [Recipient(p, by_id[p.unit_id], found.get(p.id or 0)) for p in people]
    return Plan(units, recipients)


def _notice(
    d: Directive | Draft, *, action: str, units: str, deadline: datetime | None
) -> OutboundMessage:
    """Return the notice of a directive (or of a draft) with its acknowledge button."""
    return OutboundMessage(
        "directive.notice",
        {
            "number": d.number.strip(),
            "date": d.issued_on,
            "title": d.title.strip(),
            "summary": d.summary.strip(),
            "units": units,
            "deadline": FormalTime(deadline) if deadline else "",
        },
        buttons=((Button("directive.ack_button", action),),),
        attachment_id=d.attachment_id,
    )


def notice(directive: Directive, *, recipient_id: int, units: str) -> OutboundMessage:
    """Return the notice exactly as a recipient sees it."""
    return _notice(
        directive, action=f"ack:{recipient_id}", units=units, deadline=directive.ack_deadline
    )


def preview(draft: Draft, *, units: str) -> OutboundMessage:
    """Return the notice of a draft as recipients will see it (its button does nothing)."""
    return _notice(draft, action="ack:preview", units=units, deadline=draft.ack_deadline)


async def units_of(session: AsyncSession, directive: Directive) -> list[Unit]:
    """Return the units a directive targets."""
    stmt = (
        select(Unit)
        .join(DirectiveUnit, col(DirectiveUnit.unit_id) == Unit.id)
        .where(DirectiveUnit.directive_id == directive.id)
        .order_by(col(Unit.code))
    )
    return list((await session.exec(stmt)).all())


def units_label(units: list[Unit]) -> str:
    """Return the target units as one line (abridged when long)."""
    names = [u.name for u in units]
    return "; ".join(names) if len(names) <= 5 else "; ".join(names[:5]) + f" (+{len(names) - 5})"


def _directive_row(draft: Draft, *, actor: Actor, now: datetime, deadline: datetime) -> Directive:
    """Build the directive row from a draft."""
    return Directive(
        number=draft.number.strip(),
        issued_on=draft.issued_on,
        title=draft.title.strip(),
        summary=draft.summary.strip(),
        attachment_id=draft.attachment_id,
        audience=draft.audience,
        target=draft.target.describe(),
        ack_deadline=deadline,
        created_by=actor.label,
        created_at=now,
    )


async def issue(
    session: AsyncSession,
    *,
    actor: Actor,
    draft: Draft,
    now: datetime,
    default_deadline: datetime,
    cal: WorkCalendar,
) -> Issued:
    """Record a directive and queue its notice to every reachable recipient, in one transaction."""
    require(actor, Role.ADMIN)
    validate(draft, now=now)
    if draft.ack_deadline is not None:
        cal.require_working_day(draft.ack_deadline)
    the_plan = await plan(session, draft)
    if not the_plan.recipients:
        raise InvalidInput("directive.error.nobody")
    directive = _directive_row(
        draft, actor=actor, now=now, deadline=draft.ack_deadline or default_deadline
    )
    session.add(directive)
    await session.flush()
    assert directive.id is not None
    for unit in the_plan.units:
        assert unit.id is not None
        session.add(DirectiveUnit(directive_id=directive.id, unit_id=unit.id))
    label = units_label(the_plan.units)
    queued = 0
    for r in the_plan.recipients:
        assert r.person.id is not None
        row = DirectiveRecipient(
            directive_id=directive.id,
            person_id=r.person.id,
            unit_id=r.unit.id,
            contact_id=r.contact.id if r.contact else None,
        )
        session.add(row)
        await session.flush()
        assert row.id is not None
        if r.contact is not None:
            message = notice(directive, recipient_id=row.id, units=label)
            if await outbox.enqueue(
                session,
                contact=r.contact,
                message=message,
                kind=KIND,
                ref_id=row.id,
                now=now,
                priority=NOTICE_PRIORITY,
            ):
                queued += 1
    audit.record(
        session,
        actor=actor.label,
        action="directive.issue",
        now=now,
        subject=directive.number,
        count=len(the_plan.recipients),
        detail=f"queued={queued} unreachable={len(the_plan.unreachable)}",
    )
    return Issued(directive, queued, the_plan.unreachable)


async def acknowledge(
    session: AsyncSession, *, contact: Contact, recipient_id: int, now: datetime
) -> tuple[Directive, DirectiveRecipient, bool]:
    """Record that a recipient acknowledged; a repeated tap changes nothing."""
    row = await session.get(DirectiveRecipient, recipient_id)
    if row is None:
        raise NotFound("directive.error.unknown")
    if contact.person_id is None or contact.person_id != row.person_id:
        raise PermissionDenied("directive.error.not_yours")
    directive = await session.get(Directive, row.directive_id)
    assert directive is not None
    if row.acked_at is not None:
        return directive, row, False
    row.acked_at = now
    row.ack_channel = str(contact.channel)
    session.add(row)
    return directive, row, True


async def awaiting_ack(session: AsyncSession, *, person_id: int) -> list[tuple[int, str]]:
    """Return (recipient id, directive number) of what a person has not acknowledged, newest first.

    Typed acknowledgements ('OK 15', 'đã nhận') on channels without buttons pick from these.
    """
    rows = await session.exec(
        select(DirectiveRecipient.id, Directive.number)
        .join(Directive, col(Directive.id) == col(DirectiveRecipient.directive_id))
        .where(
            col(DirectiveRecipient.person_id) == person_id,
            col(DirectiveRecipient.acked_at).is_(None),
            col(Directive.closed_at).is_(None),
        )
        .order_by(col(Directive.created_at).desc(), col(DirectiveRecipient.id).desc())
    )
    return [(rid, number) for rid, number in rows.all() if rid is not None]


def same_number(number: str, typed: str) -> bool:
    """Tell whether a typed number names a directive: '15' or '15/CT-UBND' for '15/CT-UBND'."""
    full, wanted = "".join(number.split()).casefold(), "".join(typed.split()).casefold()
    return bool(wanted) and (wanted == full or wanted == full.partition("/")[0])


async def get_directive(session: AsyncSession, directive_id: int) -> Directive:
    """Return a directive by id, or raise NotFound."""
    directive = await session.get(Directive, directive_id)
    if directive is None:
        raise NotFound("directive.error.unknown")
    return directive


async def status(session: AsyncSession, *, actor: Actor, directive_id: int) -> Status:
    """Return acknowledgement per unit: admins and leaders see all, heads their own unit."""
    require(actor, Role.ADMIN, Role.LEADER, Role.UNIT_HEAD)
    directive = await get_directive(session, directive_id)
    rows = (
        await session.exec(
            select(DirectiveRecipient, Person, Unit)
            .join(Person, col(Person.id) == DirectiveRecipient.person_id)
            .join(Unit, col(Unit.id) == DirectiveRecipient.unit_id)
            .where(DirectiveRecipient.directive_id == directive_id)
            .order_by(col(Unit.code))
        )
    ).all()
    grouped: dict[int, list[tuple[DirectiveRecipient, Person]]] = defaultdict(list)
    units: dict[int, Unit] = {}
    for rec, person, unit in rows:
        assert unit.id is not None
        grouped[unit.id].append((rec, person))
        units[unit.id] = unit
    manager = actor.has_any(frozenset({Role.ADMIN, Role.LEADER}))
    if not manager:
        if actor.unit is None or actor.unit.id not in units:
            raise PermissionDenied("errors.forbidden")
        require_unit_scope(actor, actor.unit)
        units = {actor.unit.id: units[actor.unit.id]}
    lost = await unreached_ids(session, [r for r, _, _ in rows if r.acked_at is None])
    sent = await sent_channels(session, [r.id for r, _, _ in rows if r.id is not None])
    return Status(
        directive,
        [_unit_status(units[uid], grouped[uid], directive, lost, sent) for uid in units],
    )


async def sent_channels(session: AsyncSession, recipient_ids: list[int]) -> dict[int, str]:
    """Return, per recipient, the channel of the last notice delivered to them."""
    if not recipient_ids:
        return {}
    stmt = (
        select(Outbox.ref_id, Outbox.channel)
        .where(Outbox.kind == KIND, col(Outbox.ref_id).in_(recipient_ids))
        .where(col(Outbox.status) == OutboxStatus.SENT)
        .order_by(col(Outbox.sent_at), col(Outbox.id))
    )
    return {ref: str(channel) for ref, channel in (await session.exec(stmt)).all() if ref}


async def unreached_ids(session: AsyncSession, rows: list[DirectiveRecipient]) -> set[int]:
    """Return the recipients the notice did not reach: no account, blocked, or failed to send."""
    ids = [r.id for r in rows if r.id is not None]
    if not ids:
        return set()
    states: dict[int, set[str]] = defaultdict(set)
    sent = select(Outbox.ref_id, Outbox.status).where(
        Outbox.kind == KIND, col(Outbox.ref_id).in_(ids)
    )
    for ref_id, state in (await session.exec(sent)).all():
        if ref_id is not None:
            states[ref_id].add(str(state))
    contacts = [r.contact_id for r in rows if r.contact_id is not None]
    blocked = set(
        (
            await session.exec(
                select(Contact.id).where(
                    col(Contact.id).in_(contacts), col(Contact.blocked_at).is_not(None)
                )
            )
        ).all()
    )
    lost = set()
    for r in rows:
        assert r.id is not None
        got = states[r.id]
        if OutboxStatus.SENT.value in got:
            continue
        pending = got & {OutboxStatus.PENDING.value, OutboxStatus.SENDING.value}
        if r.contact_id is None or r.contact_id in blocked or (got and not pending):
            lost.add(r.id)
    return lost


def _unit_status(
    unit: Unit,
    rows: list[tuple[DirectiveRecipient, Person]],
    directive: Directive,
    lost: set[int],
    sent: dict[int, str],
) -> UnitStatus:
    """Summarise one unit's acknowledgements, and the channel each person was reached on."""
    delays = [(r.acked_at - directive.created_at).total_seconds() for r, _ in rows if r.acked_at]
    waiting = [(r, p) for r, p in rows if r.acked_at is None]
    missing = by_name((p.full_name for r, p in waiting if r.id not in lost), lambda n: n)
    unreached = by_name((p.full_name for r, p in waiting if r.id in lost), lambda n: n)
    median = statistics.median(delays) if delays else None
    people = [Reached(p.full_name, sent.get(r.id or 0), r.ack_channel) for r, p in rows]
    people = by_name(people, lambda who: who.name)
    return UnitStatus(unit, len(rows), len(delays), median, missing, unreached, people)


async def open_directives(
    session: AsyncSession, *, actor: Actor
) -> list[tuple[Directive, int, int]]:
    """List open directives with recipients and acknowledgements (a head: their unit's)."""
    require(actor, Role.ADMIN, Role.LEADER, Role.UNIT_HEAD)
    stmt = (
        select(Directive, DirectiveRecipient)
        .join(DirectiveRecipient, col(DirectiveRecipient.directive_id) == Directive.id)
        .where(col(Directive.closed_at).is_(None))
    )
    if not actor.has_any(frozenset({Role.ADMIN, Role.LEADER})):
        stmt = stmt.where(DirectiveRecipient.unit_id == (actor.unit.id if actor.unit else -1))
    counts: dict[int, list[int]] = {}
    found: dict[int, Directive] = {}
    for directive, rec in (await session.exec(stmt)).all():
        assert directive.id is not None
        found[directive.id] = directive
        c = counts.setdefault(directive.id, [0, 0])
        c[0] += 1
        c[1] += rec.acked_at is not None
    return [(found[i], counts[i][0], counts[i][1]) for i in sorted(found, reverse=True)]
