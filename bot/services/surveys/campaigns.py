"""Campaigns: a questionnaire or a material sent to an audience, opened, reminded, closed.

The audience is units (by code), roles, everyone, or the citizens who rated a unit. Reminders go
to those who have not answered (or read), at most `reminders_max` times, in working hours.
"""

from __future__ import annotations

import secrets
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from sqlalchemy import bindparam
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from bot.messages import Button, OutboundMessage
from bot.models import (
    Campaign,
    CampaignRecipient,
    CampaignStatus,
    Contact,
    Person,
    PersonRole,
    Questionnaire,
    Rating,
    Role,
    Unit,
)
from bot.services.delivery import outbox
from bot.services.delivery.contacts import reachable
from bot.services.directives.directives import Target, resolve_units
from bot.services.errors import InvalidInput, NotFound
from bot.services.org import audit
from bot.services.org.access import Actor, require, require_unit_scope
from bot.services.org.imports.values import FieldError, parse_role
from bot.services.surveys.memo import memo

KIND_INVITE = "survey_invite"
KIND_REMINDER = "survey_reminder"
PRIORITY = 30
TITLE_MAX = 500
MATERIAL_MAX = 3500
CHECK_QUESTIONS_MAX = 3


class WorkingTime(Protocol):
    """The calendar operations reminders need."""

    def working_hours_between(self, a: datetime, b: datetime) -> float:
        """Return working hours from a to b."""
        ...

    def is_working_time(self, t: datetime) -> bool:
        """Tell whether a moment is in working hours of a working day."""
        ...


@dataclass(frozen=True)
class Audience:
    """Who a campaign goes to: everyone, or units and/or roles, or citizens who rated a unit."""

    everyone: bool = False
    units: tuple[str, ...] = ()
    roles: tuple[Role, ...] = ()
    raters_of: str | None = None

    @classmethod
    def parse(cls, text: str) -> Audience:
        """Read 'all', 'units:A,B', 'roles:unit_head', 'raters:UNIT' (parts joined by ';')."""
        everyone, units, roles, raters = False, [], [], None
        for part in (p.strip() for p in text.split(";") if p.strip()):
            name, _, value = part.partition(":")
            values = [v.strip() for v in value.split(",") if v.strip()]
            match name.strip().lower():
                case "all" | "everyone" if not value:
                    everyone = True
                case "units" | "unit" if values:
                    units += [v.upper() for v in values]
                case "roles" | "role" if values:
                    try:
                        roles += [parse_role(v) for v in values]
                    except FieldError as exc:
                        raise InvalidInput("survey.error.audience", value=part[:60]) from exc
                case "raters" if len(values) == 1:
                    raters = values[0].upper()
                case _:
                    raise InvalidInput("survey.error.audience", value=part[:60])
        audience = cls(everyone, tuple(dict.fromkeys(units)), tuple(dict.fromkeys(roles)), raters)
        if not (everyone or units or roles or raters) or (raters and (everyone or units or roles)):
            raise InvalidInput("survey.error.audience", value=text[:60])
        return audience

    def describe(self) -> str:
        """Return the audience as stored (and as parse reads it back)."""
        if self.raters_of:
            return f"raters:{self.raters_of}"
        parts = ["all"] if self.everyone else []
        parts += [f"units:{','.join(self.units)}"] if self.units else []
        parts += [f"roles:{','.join(r.value for r in self.roles)}"] if self.roles else []
        return ";".join(parts)


@dataclass(frozen=True)
class Draft:
    """What an admin asks for when launching a campaign."""

    title: str
    audience: Audience
    opens_at: datetime
    closes_at: datetime
    questionnaire: str | None = None  # its code
    material: str | None = None
    attachment_id: int | None = None
    media: str = "text"
    anonymous: bool = True
    results_open: bool = False
    min_group: int = 5
    reminders_max: int = 2
    remind_every_hours: int = 16


@dataclass
class SweepResult:
    """What one sweep did."""

    opened: int = 0
    invites: int = 0
    reminders: int = 0
    closed: int = 0


@dataclass
class UnitRate:
    """How far one unit's people are: answered (or read) out of reached."""

    unit: str
    done: int
    total: int
    code: str = ""

    @property
    def percent(self) -> float:
        """Return the completion rate in percent."""
        return 100.0 * self.done / self.total if self.total else 0.0


@dataclass
class Completion:
    """A campaign's completion per unit (and overall)."""

    campaign: Campaign
    units: list[UnitRate] = field(default_factory=list)

    @property
    def done(self) -> int:
        """Return how many answered (or read)."""
        return sum(u.done for u in self.units)

    @property
    def total(self) -> int:
        """Return how many were reached."""
        return sum(u.total for u in self.units)


def _check(draft: Draft, *, now: datetime) -> None:
    """Refuse a draft whose dates, title, content or limits do not make sense."""
    if not draft.title.strip() or len(draft.title) > TITLE_MAX:
        raise InvalidInput("survey.error.title", max=TITLE_MAX)
    if draft.closes_at <= max(draft.opens_at, now):
        raise InvalidInput("survey.error.dates")
    if draft.questionnaire is None and not (draft.material or draft.attachment_id):
        raise InvalidInput("survey.error.empty")
    if draft.material is not None and len(draft.material) > MATERIAL_MAX:
        raise InvalidInput("survey.error.material_long", max=MATERIAL_MAX)
    if not 1 <= draft.min_group <= 100 or not 0 <= draft.reminders_max <= 10:
        raise InvalidInput("survey.error.limits")


async def unit_by_code(session: AsyncSession, code: str) -> Unit:
    """Return an active unit by its code, or raise NotFound naming it."""
    return (await resolve_units(session, Target(units=(code,))))[0]


async def questionnaire_by_code(session: AsyncSession, code: str) -> Questionnaire:
    """Return a questionnaire by its code, or raise NotFound naming it."""
    code = code.strip().upper()
    row = (await session.exec(select(Questionnaire).where(Questionnaire.code == code))).first()
    if row is None:
        raise NotFound("survey.error.no_questionnaire", code=code[:32])
    return row


async def _questionnaire(session: AsyncSession, draft: Draft) -> Questionnaire | None:
    """Return the questionnaire a draft names (a material's check has at most three questions)."""
    if draft.questionnaire is None:
        return None
    row = await questionnaire_by_code(session, draft.questionnaire)
    if (draft.material or draft.attachment_id) and row.questions > CHECK_QUESTIONS_MAX:
        raise InvalidInput("survey.error.check_long", max=CHECK_QUESTIONS_MAX)
    return row


async def _people(session: AsyncSession, audience: Audience) -> list[tuple[int, int | None]]:
    """Return (person id, unit id) of the active staff an audience names."""
    stmt = select(Person.id, Person.unit_id).where(col(Person.active).is_(True))
    if audience.units:
        units = await resolve_units(session, Target(units=audience.units))
        stmt = stmt.where(col(Person.unit_id).in_([u.id for u in units]))
    if audience.roles:
        holders = select(PersonRole.person_id).where(
            col(PersonRole.role).in_([r.value for r in audience.roles])
        )
        stmt = stmt.where(col(Person.id).in_(holders))
    return [(pid, uid) for pid, uid in (await session.exec(stmt)).all() if pid is not None]


async def _raters(session: AsyncSession, code: str) -> tuple[Unit, list[int]]:
    """Return a unit and the chat accounts of the citizens who rated it (and left a contact)."""
    units = await resolve_units(session, Target(units=(code,)))
    stmt = select(Rating.contact_id).where(
        Rating.unit_id == units[0].id, col(Rating.contact_id).is_not(None)
    )
    ids = {cid for cid in (await session.exec(stmt)).all() if cid is not None}
    return units[0], sorted(ids)


async def launch(
    session: AsyncSession, draft: Draft, *, actor: Actor, now: datetime, floor: int = 5
) -> Campaign:
    """Create a campaign and its recipients; send it now when it opens now.

    `floor` is the installation's smallest group shown: a campaign may ask for more, not less.
    """
    require(actor, Role.ADMIN)
    _check(draft, now=now)
    form = await _questionnaire(session, draft)
    campaign = Campaign(
        title=draft.title.strip(),
        questionnaire_id=form.id if form else None,
        material=draft.material,
        attachment_id=draft.attachment_id,
        media=draft.media,
        audience=draft.audience.describe(),
        audience_label=draft.audience.describe(),
        anonymous=draft.anonymous,
        min_group=max(draft.min_group, floor),
        results_open=draft.results_open,
        opens_at=draft.opens_at,
        closes_at=draft.closes_at,
        reminders_max=draft.reminders_max,
        remind_every_hours=draft.remind_every_hours,
        status=CampaignStatus.SCHEDULED,
        salt=secrets.token_hex(16) if draft.anonymous else None,
        created_by=actor.label,
        created_at=now,
    )
    session.add(campaign)
    await session.flush()
    assert campaign.id is not None
    if draft.audience.raters_of:
        unit, contact_ids = await _raters(session, draft.audience.raters_of)
        rows = [
            CampaignRecipient(campaign_id=campaign.id, contact_id=c, unit_id=unit.id)
            for c in contact_ids
        ]
    else:
        people = await _people(session, draft.audience)
        rows = [
            CampaignRecipient(campaign_id=campaign.id, person_id=p, unit_id=u) for p, u in people
        ]
    if not rows:
        raise InvalidInput("survey.error.no_one")
    session.add_all(rows)
    audit.record(
        session,
        actor=actor.label,
        action="survey.launch",
        now=now,
        subject=f"campaign:{campaign.id}",
        count=len(rows),
        detail=campaign.audience,
    )
    if campaign.opens_at <= now:
        await _open(session, campaign, now=now)
    return campaign


def addressed(key: str, *, citizen: bool) -> str:
    """Return a message's wording for a citizen («Ông/Bà») or for staff («đồng chí»)."""
    return f"{key}_citizen" if citizen else key


def invite(campaign: Campaign, *, citizen: bool = False) -> OutboundMessage:
    """Return the message that brings a campaign to a person, with its button."""
    assert campaign.id is not None
    params: dict[str, Any] = {"title": campaign.title, "closes": campaign.closes_at}
    if campaign.material is not None or campaign.attachment_id is not None:
        button = Button("survey.read_button", f"svread:{campaign.id}")
        key = "survey.material_check" if campaign.questionnaire_id else "survey.material"
        return OutboundMessage(
            addressed(key, citizen=citizen),
            {**params, "text": campaign.material or ""},
            buttons=((button,),),
            attachment_id=campaign.attachment_id,
            media=campaign.media if campaign.media != "text" else "document",
        )
    key = "survey.invite_anonymous" if campaign.anonymous else "survey.invite_named"
    button = Button("survey.answer_button", f"survey:{campaign.id}")
    return OutboundMessage(addressed(key, citizen=citizen), params, buttons=((button,),))


def reminder(campaign: Campaign, *, citizen: bool) -> OutboundMessage:
    """Return the reminder of a campaign, with the invitation's button."""
    params = {"title": campaign.title, "closes": campaign.closes_at}
    buttons = invite(campaign).buttons
    return OutboundMessage(addressed("survey.reminder", citizen=citizen), params, buttons=buttons)


async def _targets(session: AsyncSession, rows: list[CampaignRecipient]) -> dict[int, Contact]:
    """Return each recipient's chat account by recipient id (those with none left out)."""
    people = await reachable(session, [r.person_id for r in rows if r.person_id is not None])
    contact_ids = [r.contact_id for r in rows if r.contact_id is not None]
    citizens = (
        {
            c.id: c
            for c in (
                await session.exec(select(Contact).where(col(Contact.id).in_(contact_ids)))
            ).all()
        }
        if contact_ids
        else {}
    )
    found: dict[int, Contact] = {}
    for r in rows:
        contact = people.get(r.person_id) if r.person_id is not None else citizens.get(r.contact_id)
        if contact is not None and r.id is not None and not contact.opted_out:
            found[r.id] = contact
    return found


async def _open(session: AsyncSession, campaign: Campaign, *, now: datetime) -> int:
    """Open a campaign and queue its invitations; return how many were queued."""
    campaign.status = CampaignStatus.OPEN
    session.add(campaign)
    rows = list(
        (
            await session.exec(
                select(CampaignRecipient).where(CampaignRecipient.campaign_id == campaign.id)
            )
        ).all()
    )
    messages = {citizen: invite(campaign, citizen=citizen) for citizen in (False, True)}
    contacts = await _targets(session, rows)
    queued = 0
    for r in rows:
        contact = contacts.get(r.id or 0)
        if contact is None:
            continue
        row = await outbox.enqueue(
            session,
            contact=contact,
            message=messages[r.person_id is None],
            kind=KIND_INVITE,
            ref_id=campaign.id,
            now=now,
            priority=PRIORITY,
        )
        r.sent = row is not None
        session.add(r)
        queued += r.sent
    return queued


async def get(session: AsyncSession, campaign_id: int) -> Campaign:
    """Return a campaign by id, or raise NotFound."""
    key = ("campaign", campaign_id)
    campaign: Campaign | None = memo(session).get(key) or await session.get(Campaign, campaign_id)
    if campaign is None:
        raise NotFound("survey.error.no_campaign", id=campaign_id)
    memo(session)[key] = campaign
    return campaign


def forget_salt(campaign: Campaign) -> None:
    """Erase an anonymous campaign's salt: its answers can no longer be tied to anyone."""
    campaign.salt = None


async def close(
    session: AsyncSession, campaign_id: int, *, actor: Actor, now: datetime
) -> Campaign:
    """Close a campaign (answers are final, results may show); the salt is erased."""
    require(actor, Role.ADMIN)
    campaign = await get(session, campaign_id)
    if campaign.status == CampaignStatus.CLOSED:
        raise InvalidInput("survey.error.closed", title=campaign.title)
    _close(session, campaign, now=now)
    audit.record(
        session,
        actor=actor.label,
        action="survey.close",
        now=now,
        subject=f"campaign:{campaign_id}",
    )
    return campaign


def _close(session: AsyncSession, campaign: Campaign, *, now: datetime) -> None:
    """Mark a campaign closed and erase its salt."""
    campaign.status, campaign.closed_at = CampaignStatus.CLOSED, now
    forget_salt(campaign)
    session.add(campaign)


def due_reminder(
    r: CampaignRecipient, campaign: Campaign, *, now: datetime, cal: WorkingTime
) -> bool:
    """Tell whether a recipient who has not answered is due their next reminder."""
    if r.done or not r.sent or r.reminders_sent >= campaign.reminders_max:
        return False
    since = r.last_reminder_at or campaign.opens_at
    return cal.working_hours_between(since, now) >= campaign.remind_every_hours


async def _remind(
    session: AsyncSession, campaign: Campaign, *, now: datetime, cal: WorkingTime
) -> int:
    """Queue the next reminder to each recipient due one; return how many were queued."""
    rows = (
        await session.exec(
            select(CampaignRecipient).where(
                CampaignRecipient.campaign_id == campaign.id, col(CampaignRecipient.done).is_(False)
            )
        )
    ).all()
    due = [r for r in rows if due_reminder(r, campaign, now=now, cal=cal)]
    contacts = await _targets(session, due)
    messages = {citizen: reminder(campaign, citizen=citizen) for citizen in (False, True)}
    queued = 0
    for r in due:
        r.reminders_sent, r.last_reminder_at = r.reminders_sent + 1, now
        session.add(r)
        contact = contacts.get(r.id or 0)
        if contact is not None:
            sent = await outbox.enqueue(
                session,
                contact=contact,
                message=messages[r.person_id is None],
                kind=KIND_REMINDER,
                ref_id=campaign.id,
                now=now,
                priority=PRIORITY,
            )
            queued += sent is not None
    return queued


async def sweep(session: AsyncSession, *, now: datetime, cal: WorkingTime) -> SweepResult:
    """Open campaigns that are due, close those past their date, remind in working hours."""
    result = SweepResult()
    live = (
        await session.exec(
            select(Campaign).where(
                col(Campaign.status).in_([CampaignStatus.SCHEDULED, CampaignStatus.OPEN])
            )
        )
    ).all()
    for campaign in live:
        if campaign.closes_at <= now:
            _close(session, campaign, now=now)
            result.closed += 1
        elif campaign.status == CampaignStatus.SCHEDULED and campaign.opens_at <= now:
            result.invites += await _open(session, campaign, now=now)
            result.opened += 1
        elif campaign.status == CampaignStatus.OPEN and cal.is_working_time(now):
            result.reminders += await _remind(session, campaign, now=now, cal=cal)
    return result


async def completion(session: AsyncSession, campaign_id: int, *, actor: Actor) -> Completion:
    """Return the completion rate per unit: all units for admins and leaders, a head's own."""
    campaign = await get(session, campaign_id)
    rows = (
        await session.exec(
            select(CampaignRecipient.unit_id, CampaignRecipient.done).where(
                CampaignRecipient.campaign_id == campaign_id
            )
        )
    ).all()
    counts: dict[int | None, list[int]] = defaultdict(lambda: [0, 0])
    for unit_id, done in rows:
        counts[unit_id][0] += bool(done)
        counts[unit_id][1] += 1
    return await _rates(session, campaign, counts, actor=actor)


async def board(session: AsyncSession, *, actor: Actor, limit: int = 20) -> list[Completion]:
    """Return the latest campaigns with their completion per unit (a head: those sent to their
    unit, with their unit's rate only)."""
    require(actor, Role.ADMIN, Role.LEADER, Role.UNIT_HEAD)
    wide = actor.has_any(frozenset({Role.ADMIN, Role.LEADER}))
    stmt = select(Campaign).order_by(col(Campaign.id).desc()).limit(limit)
    if not wide:
        own = actor.unit.id if actor.unit is not None else -1
        reached = select(CampaignRecipient.campaign_id).where(CampaignRecipient.unit_id == own)
        stmt = stmt.where(col(Campaign.id).in_(reached))
    found = list((await session.exec(stmt)).all())
    rows = (
        await session.exec(
            select(
                CampaignRecipient.campaign_id, CampaignRecipient.unit_id, CampaignRecipient.done
            ).where(col(CampaignRecipient.campaign_id).in_([c.id for c in found]))
        )
    ).all()
    counts: dict[int, dict[int | None, list[int]]] = defaultdict(
        lambda: defaultdict(lambda: [0, 0])
    )
    for campaign_id, unit_id, done in rows:
        counts[campaign_id][unit_id][0] += bool(done)
        counts[campaign_id][unit_id][1] += 1
    return [await _rates(session, c, counts[c.id or 0], actor=actor) for c in found]


async def _rates(
    session: AsyncSession,
    campaign: Campaign,
    counts: dict[int | None, list[int]],
    *,
    actor: Actor,
) -> Completion:
    """Return a campaign's counts per unit as rates, as far as the actor may see them."""
    units = {
        u.id: u
        for u in (
            await session.exec(select(Unit).where(col(Unit.id).in_([k for k in counts if k])))
        ).all()
    }
    if not actor.has_any(frozenset({Role.ADMIN, Role.LEADER})):
        if actor.unit is None or actor.unit.id not in counts:
            require(actor, Role.ADMIN, Role.LEADER)
        assert actor.unit is not None
        require_unit_scope(actor, actor.unit)
        counts = {actor.unit.id: counts[actor.unit.id]}
    rates = [
        UnitRate(
            units[u].name if u in units else "–",
            done,
            total,
            code=units[u].code if u in units else "",
        )
        for u, (done, total) in sorted(
            counts.items(), key=lambda kv: units[kv[0]].code if kv[0] in units else ""
        )
    ]
    return Completion(campaign, rates)


async def open_for(
    session: AsyncSession, *, person_id: int | None, contact_id: int | None
) -> list[tuple[Campaign, CampaignRecipient]]:
    """Return the open campaigns a person (or citizen's chat account) is asked to answer."""
    who = (
        CampaignRecipient.person_id == person_id
        if person_id is not None
        else CampaignRecipient.contact_id == contact_id
    )
    stmt = (
        select(Campaign, CampaignRecipient)
        .join(CampaignRecipient, col(CampaignRecipient.campaign_id) == Campaign.id)
        .where(who, Campaign.status == CampaignStatus.OPEN)
        .order_by(col(Campaign.closes_at))
    )
    return [(c, r) for c, r in (await session.exec(stmt)).all()]


RECIPIENT = {  # by person (staff), or by chat account (citizens)
    by: select(CampaignRecipient).where(
        CampaignRecipient.campaign_id == bindparam("campaign_id"), column == bindparam("who")
    )
    for by, column in (
        ("person", col(CampaignRecipient.person_id)),
        ("contact", col(CampaignRecipient.contact_id)),
    )
}


async def recipient(
    session: AsyncSession, campaign: Campaign, *, person_id: int | None, contact_id: int | None
) -> CampaignRecipient:
    """Return the caller's recipient row of an open campaign; refuse anyone not asked, or late."""
    by, who = ("person", person_id) if person_id is not None else ("contact", contact_id)
    params = {"campaign_id": campaign.id, "who": who}
    row = (await session.exec(RECIPIENT[by], params=params)).first()
    if row is None:
        raise InvalidInput("survey.error.not_asked", title=campaign.title)
    if campaign.status != CampaignStatus.OPEN:
        raise InvalidInput("survey.error.not_open", title=campaign.title)
    return row


async def recipients_of(session: AsyncSession, campaign: Campaign) -> list[CampaignRecipient]:
    """Return a campaign's recipients."""
    stmt = select(CampaignRecipient).where(CampaignRecipient.campaign_id == campaign.id)
    return list((await session.exec(stmt)).all())
