"""Apologies for late dossiers: ask the unit's head, then send the slip to the citizen."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import func
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from bot.i18n.formats import FormalTime
from bot.messages import Button, OutboundMessage
from bot.models import (
    Apology,
    ApologyStatus,
    Attachment,
    Contact,
    Dossier,
    DossierStatus,
    Outbox,
    Person,
    PersonRole,
    Procedure,
    Role,
    Unit,
)
from bot.services.calendar import WorkCalendar
from bot.services.delivery import outbox
from bot.services.delivery.contacts import reachable
from bot.services.directives import attachments
from bot.services.dossiers.apology_slip import TZ, Issuer, SlipData, render_docx
from bot.services.dossiers.dossiers import OPEN, followers
from bot.services.errors import InvalidInput, NotFound, PermissionDenied
from bot.services.org import audit
from bot.services.org.access import Actor, for_admins, heads_or_admins
from bot.services.org.names import by_name

PRIORITY = 30
REASON_MAX = 1000
FILE_UNSAFE = re.compile(r"[^A-Za-z0-9.\-]+")
WAITING_ON_CITIZEN = (DossierStatus.ADDITIONAL,)  # chờ bổ sung: the delay is not the unit's


async def sweep(
    session: AsyncSession, *, now: datetime, cal: WorkCalendar, lead_days: int = 1
) -> int:
    """Ask for an apology for each open dossier due within `lead_days` working days (or late).

    A dossier waiting on the citizen (chờ bổ sung) is not the unit's delay: nobody is asked.
    """
    horizon = cal.add_working_days(cal.local(now).date(), lead_days)
    cutoff = cal.at_local(horizon + timedelta(days=1), "00:00")
    due = (
        await session.exec(
            select(Dossier).where(
                col(Dossier.status).in_([s.value for s in OPEN if s not in WAITING_ON_CITIZEN]),
                col(Dossier.appointment_at) < cutoff,
            )
        )
    ).all()
    asked = await _asked(session, [d.id for d in due if d.id is not None])
    created = 0
    for dossier in due:
        if (dossier.id, dossier.appointment_at) not in asked:
            await _ask(session, dossier=dossier, now=now, cal=cal)
            created += 1
    return created


async def _asked(session: AsyncSession, ids: list[int]) -> set[tuple[int | None, datetime]]:
    """Return the (dossier, appointment) pairs that already have an apology."""
    if not ids:
        return set()
    rows = await session.exec(
        select(Apology.dossier_id, Apology.original_appointment_at).where(
            col(Apology.dossier_id).in_(ids)
        )
    )
    return {(d, at) for d, at in rows.all()}


async def _new_apology(session: AsyncSession, *, dossier: Dossier, now: datetime) -> Apology:
    """Store an apology asked for the dossier's current appointment."""
    apology = Apology(
        dossier_id=dossier.id or 0,
        unit_id=dossier.unit_id,
        original_appointment_at=dossier.appointment_at,
        status=ApologyStatus.ASKED,
        asked_at=now,
    )
    session.add(apology)
    await session.flush()
    return apology


async def _ask(
    session: AsyncSession, *, dossier: Dossier, now: datetime, cal: WorkCalendar
) -> None:
    """Create an apology for the dossier's appointment and ask the unit's heads for it."""
    apology = await _new_apology(session, dossier=dossier, now=now)
    message = await ask_message(session, apology=apology, dossier=dossier)
    contacts, fallback = await heads_or_admins(session, unit_id=dossier.unit_id)
    if fallback:
        message = await for_admins(session, message, unit_id=dossier.unit_id)
    for contact in contacts:
        await outbox.enqueue(
            session,
            contact=contact,
            message=message,
            kind="apology_ask",
            ref_id=apology.id,
            now=now,
            due_at=cal.deliverable_at(now),
            priority=PRIORITY,
        )


async def ask_message(
    session: AsyncSession, *, apology: Apology, dossier: Dossier
) -> OutboundMessage:
    """Return the request to a head: the dossier, its appointment, and the answer button."""
    unit = await session.get(Unit, dossier.unit_id)
    params = {
        "code": dossier.code,
        "citizen": dossier.citizen_name,
        "procedure": await _procedure_name(session, dossier) or "—",
        "unit": unit.name if unit else "",
        "received": dossier.received_on,
        "appointment": apology.original_appointment_at,
    }
    button = Button("apology.answer_button", f"apology:{apology.id}")
    return OutboundMessage("apology.ask", params, buttons=((button,),))


async def _procedure_name(session: AsyncSession, dossier: Dossier) -> str | None:
    """Return the name of a dossier's procedure, if it has one."""
    if dossier.procedure_id is None:
        return None
    procedure = await session.get(Procedure, dossier.procedure_id)
    return procedure.name if procedure else None


async def _holders(session: AsyncSession, role: Role, unit_id: int | None = None) -> list[Person]:
    """Return the active people holding a role (in a unit, when given), by name."""
    query = (
        select(Person)
        .join(PersonRole, col(PersonRole.person_id) == Person.id)
        .where(PersonRole.role == role.value, col(Person.active).is_(True))
        .order_by(col(Person.id))
    )
    if unit_id is not None:
        query = query.where(Person.unit_id == unit_id)
    return by_name((await session.exec(query)).all(), lambda p: p.full_name)


async def responsible_contacts(session: AsyncSession, *, unit_id: int) -> list[Contact]:
    """Return the chat accounts of the unit's heads, or of the admins when it has none."""
    people = await _holders(session, Role.UNIT_HEAD, unit_id)
    contacts = await _contacts(session, [p.id for p in people if p.id is not None])
    if contacts:
        return contacts
    admins = await _holders(session, Role.ADMIN)
    return await _contacts(session, [p.id for p in admins if p.id is not None])


async def _contacts(session: AsyncSession, person_ids: list[int]) -> list[Contact]:
    """Return the usable chat accounts of some people."""
    if not person_ids:
        return []
    found = await reachable(session, person_ids)
    return sorted(found.values(), key=lambda c: c.id or 0)


async def answer(
    session: AsyncSession,
    *,
    actor: Actor,
    apology_id: int,
    reason: str,
    new_return_at: datetime,
    now: datetime,
    cal: WorkCalendar,
    place: str | None = None,
    issuer: Issuer | None = None,
) -> Apology:
    """Record the head's reason and new date, render the slip and send it to the followers."""
    apology = await session.get(Apology, apology_id)
    if apology is None:
        raise NotFound("apology.not_found", id=apology_id)
    if apology.status == ApologyStatus.SENT:
        raise InvalidInput("apology.already_sent", id=apology_id)
    _check_actor(actor, apology)
    apology.reason = _check_reason(reason)
    apology.new_return_at = check_new_date(apology, new_return_at, now=now, cal=cal)
    dossier = await session.get(Dossier, apology.dossier_id)
    if dossier is None:
        raise NotFound("apology.not_found", id=apology_id)
    apology.signed_by = await _signer(session, actor=actor, unit_id=apology.unit_id)
    apology.number_year = now.astimezone(TZ).year
    apology.number = await next_number(session, apology.number_year)
    document = await _store_slip(
        session,
        apology=apology,
        dossier=dossier,
        now=now,
        place=place,
        issuer=issuer or Issuer(),
    )
    message = citizen_message(
        apology=apology,
        dossier=dossier,
        document_id=document.id,
        symbol=(issuer or Issuer()).symbol,
    )
    sent = await _send(session, apology=apology, dossier=dossier, message=message, now=now)
    apology.status, apology.sent_at, apology.answered_by = ApologyStatus.SENT, now, actor.label
    apology.document_id = document.id
    session.add(apology)
    audit.record(
        session, actor=actor.label, action="apology.sent", now=now, subject=dossier.code, count=sent
    )
    await session.flush()
    return apology


async def next_number(session: AsyncSession, year: int) -> int:
    """Return the next slip number of a calendar year (from 1 each year)."""
    last = (
        await session.exec(select(func.max(Apology.number)).where(Apology.number_year == year))
    ).one()
    return (last or 0) + 1


def _check_actor(actor: Actor, apology: Apology) -> None:
    """Allow an admin, or a head of the apology's unit."""
    if Role.ADMIN in actor.roles:
        return
    unit_id = actor.person.unit_id if actor.person is not None else None
    if Role.UNIT_HEAD in actor.roles and unit_id == apology.unit_id:
        return
    raise PermissionDenied("apology.forbidden")


def _check_reason(reason: str) -> str:
    """Return the reason with spaces tidied, refusing an empty or over-long one."""
    text = " ".join(reason.split())
    if not text:
        raise InvalidInput("apology.reason_required")
    if len(text) > REASON_MAX:
        raise InvalidInput("apology.reason_too_long", max=REASON_MAX)
    return text


def check_new_date(
    apology: Apology, new_return_at: datetime, *, now: datetime, cal: WorkCalendar
) -> datetime:
    """Refuse a new return date not after now and the appointment, or not on a working day."""
    check_after(apology, new_return_at, now=now)
    return cal.require_working_day(new_return_at)


def check_after(apology: Apology, new_return_at: datetime, *, now: datetime) -> None:
    """Refuse a new return date that is not after now and after the original appointment."""
    if new_return_at.tzinfo is None:
        raise ValueError("new_return_at must be an aware datetime")
    latest = max(now, apology.original_appointment_at)
    if new_return_at <= latest:
        raise InvalidInput("apology.bad_new_date", after=latest)


async def get(session: AsyncSession, *, apology_id: int) -> Apology:
    """Return an apology by id, or raise NotFound."""
    apology = await session.get(Apology, apology_id)
    if apology is None:
        raise NotFound("apology.not_found", id=apology_id)
    return apology


async def queued_count(session: AsyncSession, *, apology_id: int) -> int:
    """Return how many apology messages were queued to the dossier's followers."""
    stmt = select(func.count()).where(Outbox.kind == "apology", Outbox.ref_id == apology_id)
    return int((await session.exec(stmt)).one())


async def _signer(session: AsyncSession, *, actor: Actor, unit_id: int) -> str:
    """Return the name that signs the slip: the unit's head, else the answering person."""
    person = actor.person
    if Role.UNIT_HEAD in actor.roles and person is not None and person.unit_id == unit_id:
        return person.full_name
    heads = await _holders(session, Role.UNIT_HEAD, unit_id)
    if heads:
        return heads[0].full_name
    return actor.person.full_name if actor.person is not None else actor.name


async def slip_data(
    session: AsyncSession,
    *,
    apology: Apology,
    dossier: Dossier,
    now: datetime,
    place: str | None,
    issuer: Issuer | None = None,
) -> SlipData:
    """Gather what the slip prints."""
    unit = await session.get(Unit, apology.unit_id)
    parent = await session.get(Unit, unit.parent_id) if unit and unit.parent_id else None
    return SlipData(
        unit_name=unit.name if unit else "",
        parent_name=parent.name if parent else None,
        citizen_name=dossier.citizen_name,
        code=dossier.code,
        procedure=await _procedure_name(session, dossier),
        received_on=dossier.received_on,
        original_appointment_at=apology.original_appointment_at,
        reason=apology.reason or "",
        new_return_at=apology.new_return_at or now,
        issued_on=now.astimezone(TZ).date(),
        signer=apology.signed_by or "",
        place=place or (issuer.place if issuer else None),
        agency_name=issuer.name if issuer else None,
        number=apology.number,
        symbol=issuer.symbol if issuer else "",
    )


async def _store_slip(
    session: AsyncSession,
    *,
    apology: Apology,
    dossier: Dossier,
    now: datetime,
    place: str | None,
    issuer: Issuer,
) -> Attachment:
    """Render the slip and keep it as an attachment."""
    data = await slip_data(
        session, apology=apology, dossier=dossier, now=now, place=place, issuer=issuer
    )
    name = f"phieu-xin-loi-{FILE_UNSAFE.sub('-', dossier.code)}.docx"
    document = attachments.store(session, name=name, data=render_docx(data), now=now)
    await session.flush()
    return document


async def _send(
    session: AsyncSession,
    *,
    apology: Apology,
    dossier: Dossier,
    message: OutboundMessage,
    now: datetime,
) -> int:
    """Queue the apology with its slip to every follower; return how many were queued."""
    sent = 0
    for contact in await followers(session, dossier_id=dossier.id or 0):
        row = await outbox.enqueue(
            session,
            contact=contact,
            message=message,
            kind="apology",
            ref_id=apology.id,
            now=now,
            priority=PRIORITY,
        )
        sent += row is not None
    return sent


def citizen_message(
    *, apology: Apology, dossier: Dossier, document_id: int | None, symbol: str = ""
) -> OutboundMessage:
    """Return the apology as a chat message, with the slip attached."""
    params = {
        "number": f"{apology.number or 0:02d}/PXL-{symbol or '…'}",
        "code": dossier.code,
        "name": dossier.citizen_name,
        "appointment": FormalTime(apology.original_appointment_at),
        "reason": apology.reason or "",
        "new_date": FormalTime(apology.new_return_at) if apology.new_return_at else "",
        "signer": apology.signed_by or "",
    }
    return OutboundMessage("apology.to_citizen", params, attachment_id=document_id)


async def queue_slip_copy(
    session: AsyncSession, *, apology: Apology, contact: Contact, now: datetime
) -> None:
    """Queue the stored slip to a staff member (the one who answered) to print and hand over."""
    dossier = await session.get(Dossier, apology.dossier_id)
    assert dossier is not None and apology.document_id is not None
    message = OutboundMessage(
        "apology.slip_copy",
        {"id": apology.id, "code": dossier.code, "name": dossier.citizen_name},
        attachment_id=apology.document_id,
    )
    await outbox.enqueue(
        session,
        contact=contact,
        message=message,
        kind="apology_copy",
        ref_id=apology.id,
        now=now,
        priority=0,
    )


async def slip_document(session: AsyncSession, *, apology_id: int) -> Attachment:
    """Return the stored slip of an answered apology, to print."""
    apology = await session.get(Apology, apology_id)
    if apology is None:
        raise NotFound("apology.not_found", id=apology_id)
    document = await session.get(Attachment, apology.document_id) if apology.document_id else None
    if document is None:
        raise InvalidInput("apology.not_answered", id=apology_id)
    return document


async def counts_by_unit(
    session: AsyncSession, *, since: datetime, until: datetime
) -> list[tuple[Unit, int]]:
    """Return how many apologies each unit was asked for in [since, until), most first."""
    total = func.count(col(Apology.id))
    rows = await session.exec(
        select(Unit, total)
        .join(Apology, col(Apology.unit_id) == Unit.id)
        .where(col(Apology.asked_at) >= since, col(Apology.asked_at) < until)
        .group_by(col(Unit.id))
        .order_by(total.desc(), col(Unit.name))
    )
    return [(unit, int(count)) for unit, count in rows.all()]


@dataclass(frozen=True)
class Made:
    """An apology made for a dossier, and how many followers it was queued to by chat."""

    apology: Apology
    dossier: Dossier
    queued: int


async def make_for_dossier(
    session: AsyncSession,
    *,
    actor: Actor,
    code: str,
    reason: str,
    new_return_at: datetime,
    now: datetime,
    cal: WorkCalendar,
    move_to_working_day: bool = False,
    place: str | None = None,
    issuer: Issuer | None = None,
) -> Made:
    """Make and send the apology for a dossier's current appointment, on a working day."""
    wanted = code.strip().upper()
    dossier = (await session.exec(select(Dossier).where(Dossier.code == wanted))).first()
    if dossier is None:
        raise NotFound("apology.dossier_not_found", code=wanted)
    new_return_at = cal.require_working_day(new_return_at, move=move_to_working_day)
    apology = (
        await session.exec(
            select(Apology).where(
                Apology.dossier_id == dossier.id,
                Apology.original_appointment_at == dossier.appointment_at,
            )
        )
    ).first()
    if apology is None:
        apology = await _new_apology(session, dossier=dossier, now=now)
    assert apology.id is not None
    done = await answer(
        session,
        actor=actor,
        apology_id=apology.id,
        reason=reason,
        new_return_at=new_return_at,
        now=now,
        cal=cal,
        place=place,
        issuer=issuer,
    )
    queued = await session.exec(
        select(func.count())
        .select_from(Outbox)
        .where(Outbox.kind == "apology", Outbox.ref_id == done.id)
    )
    return Made(done, dossier, queued.one())
