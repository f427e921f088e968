"""The demo's past: three months of ratings, directives, tasks and dossiers, played back in order.

Every row is made by the service that makes it in real use, at the moment it happened: a
fixed random seed and the demo's "now" decide the moments, so two runs on the same day give
the same history. Nobody has a chat account yet while the past plays (the personas link
afterwards), so no message from the past waits in the outbox when the bot starts; staff
acknowledge by typing, as they can once they link.
"""

from __future__ import annotations

import heapq
import random
import tomllib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from bot.config import Settings
from bot.db import SessionMaker, transaction
from bot.models import (
    Audience,
    Channel,
    Contact,
    Directive,
    DirectiveRecipient,
    Dossier,
    FollowUpCase,
    Person,
    PersonRole,
    Procedure,
    Questionnaire,
    Role,
    ServiceCounter,
    Unit,
    UnitKind,
)
from bot.services.calendar import WorkCalendar
from bot.services.directives import chasing, directives
from bot.services.dossiers import apologies
from bot.services.dossiers.dossiers import DOSSIERS, import_dossiers
from bot.services.org.access import Actor, roles_of, system_actor
from bot.services.org.imports.table import Table
from bot.services.ratings import cases, ratings
from bot.services.tasks import tasks

HISTORY = Path(__file__).resolve().parents[2] / "examples" / "history.toml"
SEED = 2026
DAYS = 91  # thirteen weeks
ACTOR = "demo"
CITIZEN_IDS = 7300000000  # the chat ids ratings are hashed with (anonymous: no account kept)
OPEN_LOCAL, CLOSE_LOCAL = 7.5, 16.5  # office hours, local
LATE_EVERY = 5  # dossiers: every fifth is returned late
STATUS_PROCESSING, STATUS_RETURNED = "Đang xử lý", "Đã trả kết quả"

Run = Callable[[datetime], Awaitable[None]]


@dataclass(order=True)
class _Event:
    """Something that happens at a moment; ties keep the order they were planned in."""

    at: datetime
    seq: int
    run: Run = field(compare=False)


@dataclass
class _Dossier:
    """A dossier of the past, as the one-stop register lists it."""

    code: str
    procedure: str
    name: str
    received_on: date
    appointment: date

    def row(self, status: str) -> dict[str, str]:
        """Return the register row of the dossier in a status."""
        return {
            "code": self.code,
            "procedure_code": self.procedure,
            "citizen_name": self.name,
            "received_on": f"{self.received_on:%d/%m/%Y}",
            "appointment_at": f"{self.appointment:%d/%m/%Y}",
            "status": status,
        }


class _Past:
    """Plays the planned events in time order in one session; events may plan more."""

    def __init__(
        self, session: AsyncSession, *, now: datetime, settings: Settings, spec: dict[str, Any]
    ) -> None:
        self.session = session
        self.now = now
        self.settings = settings
        self.spec = spec
        self.texts: dict[str, list[str]] = spec["texts"]
        self.cal = WorkCalendar.from_settings(settings)
        self.rng = random.Random(SEED)
        today = self.cal.local(now).date()
        self.first_day = today - timedelta(days=DAYS)
        self.queue: list[_Event] = []
        self.seq = 0
        self.admin = system_actor(ACTOR)
        self.heads: dict[int, Actor] = {}
        self.units: dict[str, Unit] = {}
        self.imports: dict[date, list[dict[str, str]]] = {}
        self.citizen = 0

    # Playing.

    def plan(self, at: datetime, run: Run) -> None:
        """Plan an event, unless it would happen after now."""
        if at < self.now:
            self.seq += 1
            heapq.heappush(self.queue, _Event(at, self.seq, run))

    async def play(self) -> None:
        """Run every planned event, earliest first."""
        while self.queue:
            event = heapq.heappop(self.queue)
            await event.run(event.at)

    def day(self, index: int) -> date:
        """Return the working day on or after the index-th day of the past."""
        d = self.first_day + timedelta(days=index)
        return d if self.cal.is_working_day(d) else self.cal.next_working_day(d)

    def working_days(self) -> list[date]:
        """Return the working days of the past, today included."""
        days = (self.first_day + timedelta(days=i) for i in range(DAYS + 1))
        return [d for d in days if self.cal.is_working_day(d)]

    def at(self, d: date, hours: float) -> datetime:
        """Return a local day's moment, hours after midnight."""
        h, m = divmod(round(hours * 60), 60)
        return self.cal.at_local(d, f"{h:02d}:{m:02d}")

    def office_time(self, d: date) -> datetime:
        """Return a random moment in a day's office hours."""
        return self.at(d, self.rng.uniform(OPEN_LOCAL, CLOSE_LOCAL))

    def later(self, start: datetime, working_days: int) -> datetime:
        """Return a random office moment some working days after a moment."""
        d = self.cal.add_working_days(self.cal.local(start).date(), working_days)
        moment = self.office_time(d)
        return moment if moment > start else start + timedelta(minutes=self.rng.randint(20, 90))

    # Who acts.

    async def load(self) -> None:
        """Read the units and each unit's head, who acts for it."""
        units = (await self.session.exec(select(Unit))).all()
        self.units = {u.code: u for u in units}
        by_id = {u.id: u for u in units}
        heads = await self.session.exec(
            select(Person)
            .join(PersonRole, col(PersonRole.person_id) == col(Person.id))
            .where(PersonRole.role == Role.UNIT_HEAD.value, col(Person.active).is_(True))
            .order_by(col(Person.code))
        )
        for person in heads.all():
            if person.unit_id is not None and person.unit_id not in self.heads:
                roles = await roles_of(self.session, person)
                unit = by_id.get(person.unit_id)
                self.heads[person.unit_id] = Actor(person.full_name, roles, person, unit=unit)

    def head(self, unit_id: int) -> Actor:
        """Return the unit's head, or the administrator when it has none."""
        return self.heads.get(unit_id, self.admin)

    # Ratings and their follow-up.

    async def plan_ratings(self) -> None:
        """Plan each rated unit's ratings, spread evenly over the working days."""
        # Ordered: the same draws pick the same rows on every backend.
        counters = (
            await self.session.exec(select(ServiceCounter).order_by(col(ServiceCounter.code)))
        ).all()
        procedures = (
            await self.session.exec(select(Procedure).order_by(col(Procedure.code)))
        ).all()
        days = self.working_days()
        for item in self.spec["rated"]:
            unit = self.units[item["unit"]]
            assert unit.id is not None
            at_counters = [c.id for c in counters if c.unit_id == unit.id]
            its_procedures = [p.id for p in procedures if p.unit_id == unit.id]
            per_day = item["per_month"] * 12 / len(days) * DAYS / 365
            owed = self.rng.random()
            for d in days:
                owed += per_day
                while owed >= 1:
                    owed -= 1
                    draft = ratings.Draft(
                        unit_id=unit.id,
                        counter_id=self.rng.choice(at_counters) if at_counters else None,
                        procedure_id=self.rng.choice(its_procedures) if its_procedures else None,
                    )
                    self.fill(draft, item["quality"])
                    self.plan(self.office_time(d), self.rating(draft))

    def fill(self, draft: ratings.Draft, quality: float) -> None:
        """Choose a rating's levels and words for a unit that serves this well."""
        rng = self.rng
        weights = [
            70 * quality,
            30 * quality,
            45 * (1 - quality),
            25 * (1 - quality),
            10 * (1 - quality),
        ]
        overall = rng.choices(ratings.LEVELS, weights)[0]
        draft.overall = overall
        draft.scores = {
            name: max(1, min(5, overall + rng.choice((-1, 0, 0, 0, 1))))
            for name in ratings.ELEMENTS
            if rng.random() < 0.85
        }
        if overall <= ratings.BAD:
            draft.comment = rng.choice(self.texts["bad_comments"])
            draft.officer = rng.choice(self.texts["officers"])
        elif overall == 5 and rng.random() < 0.2:
            draft.comment = rng.choice(self.texts["good_comments"])

    def rating(self, draft: ratings.Draft) -> Run:
        """Return the event of a citizen sending a rating (a bad one opens a case)."""

        async def run(at: datetime) -> None:
            self.citizen += 1
            who = Contact(
                channel=Channel.TELEGRAM,
                external_id=str(CITIZEN_IDS + self.citizen),
                created_at=at,
            )
            days = self.settings.ratings.case_working_days
            due = self.cal.close_of_business(at, days)
            row = await ratings.save(
                self.session, draft=draft, contact=who, now=at, case_due_at=due
            )
            if row.overall <= ratings.BAD:
                await self.follow_up(row, at, due)

        return run

    async def follow_up(self, rating: Any, opened: datetime, due: datetime) -> None:
        """Plan the head closing the case: mostly in time, some late, a few still open."""
        found = await self.session.exec(
            select(FollowUpCase.id).where(FollowUpCase.rating_id == rating.id)
        )
        case_id, unit_id = found.one(), rating.unit_id
        assert case_id is not None
        draw = self.rng.random()
        if draw >= 0.6:  # still open when the next morning's sweep looks: escalated
            morning = self.cal.next_working_day(self.cal.local(due).date())
            self.plan(self.at(morning, 8.0), self.sweep)
        if draw < 0.6:
            when = opened + (due - opened) * self.rng.uniform(0.1, 0.9)
        elif draw < 0.85:
            when = self.later(due, self.rng.randint(1, 4))
        else:
            return
        note = self.rng.choice(self.texts["case_notes"])

        async def close(at: datetime) -> None:
            await cases.close(
                self.session, actor=self.head(unit_id), case_id=case_id, note=note, now=at
            )

        self.plan(when, close)

    # Directives and their acknowledgement.

    def plan_directives(self) -> None:
        """Plan the past directives."""
        for item in self.spec["directives"]:
            self.plan(self.at(self.day(item["day"]), self.rng.uniform(8, 10)), self.directive(item))

    def directive(self, item: dict[str, Any]) -> Run:
        """Return the event of issuing a directive; plan each recipient's acknowledgement."""

        async def run(at: datetime) -> None:
            deadline = self.cal.close_of_business(at, item["ack_days"])
            draft = directives.Draft(
                number=item["number"],
                issued_on=self.cal.local(at).date(),
                title=item["title"],
                summary=item["summary"],
                target=directives.Target(
                    all=item.get("all", False),
                    kinds=tuple(UnitKind(k) for k in item.get("kinds", ())),
                    units=tuple(item.get("units", ())),
                ),
                audience=Audience(item.get("audience", Audience.EVERYONE.value)),
            )
            issued = await directives.issue(
                self.session,
                actor=self.admin,
                draft=draft,
                now=at,
                default_deadline=deadline,
                cal=self.cal,
            )
            found = await self.session.exec(
                select(DirectiveRecipient)
                .where(DirectiveRecipient.directive_id == issued.directive.id)
                .order_by(col(DirectiveRecipient.id))
            )
            for row in found.all():
                self.plan_ack(row, at, deadline)

        return run

    def plan_ack(self, row: DirectiveRecipient, issued: datetime, deadline: datetime) -> None:
        """Plan one recipient's acknowledgement: soon, after the deadline, or never."""
        diligence = 0.7 + 0.3 * (((row.unit_id or 0) * 7919) % 11) / 10  # steady per unit
        draw = self.rng.random()
        if draw < 0.88 * diligence:
            when = issued + min(
                timedelta(hours=self.rng.expovariate(1 / 5)), (deadline - issued) * 0.95
            )
        elif draw < diligence:
            when = self.later(deadline, self.rng.randint(1, 3))
        else:
            return
        person_id, recipient_id = row.person_id, row.id
        assert recipient_id is not None
        who = Contact(
            channel=Channel.TELEGRAM,
            external_id=f"p{person_id}",
            person_id=person_id,
            created_at=issued,
        )

        async def ack(at: datetime) -> None:
            await directives.acknowledge(
                self.session, contact=who, recipient_id=recipient_id, now=at
            )

        self.plan(when, ack)

    # Tasks.

    def plan_tasks(self) -> None:
        """Plan the past tasks."""
        for item in self.spec["tasks"]:
            self.plan(self.at(self.day(item["day"]), self.rng.uniform(8, 9)), self.task(item))

    def task(self, item: dict[str, Any]) -> Run:
        """Return the event of assigning a task; plan each unit's report: on time, late, never."""

        async def run(at: datetime) -> None:
            due = self.cal.close_of_business(at, item["due_days"])
            new = tasks.NewTask(title=item["title"], units=tuple(item["units"]), due_at=due)
            _, rows = await tasks.create(
                self.session,
                actor=self.admin,
                new=new,
                now=at,
                cal=self.cal,
                settings=self.settings.tasks,
            )
            for row in rows:
                draw = self.rng.random()
                if draw < 0.62:
                    when = at + (due - at) * self.rng.uniform(0.3, 0.98)
                elif draw < 0.85:
                    when = self.later(due, self.rng.randint(1, 5))
                else:
                    continue
                self.plan(when, self.task_done(row.id, row.unit_id))

        return run

    def task_done(self, assignment_id: int | None, unit_id: int) -> Run:
        """Return the event of a unit's head reporting its part done."""
        note = self.rng.choice(self.texts["task_notes"])

        async def run(at: datetime) -> None:
            assert assignment_id is not None
            await tasks.mark_done(
                self.session,
                actor=self.head(unit_id),
                assignment_id=assignment_id,
                now=at,
                note=note,
            )

        return run

    # Dossiers, their return, their rating and apologies.

    async def plan_dossiers(self) -> None:
        """Plan dossiers at the procedures' units: most returned on time, a few late."""
        rated = {self.units[item["unit"]].id for item in self.spec["rated"]}
        found = await self.session.exec(select(Procedure).order_by(col(Procedure.code)))
        procedures = [p for p in found.all() if p.unit_id in rated]
        serial = 1000
        for d in self.working_days():
            if self.rng.random() < 0.6:
                continue
            serial += 1
            procedure = self.rng.choice(procedures)
            assert procedure.unit_id is not None
            appointment = self.cal.add_working_days(d, self.rng.randint(4, 9))
            item = _Dossier(
                code=f"000.00.12.H10-{d:%y%m%d}-{serial:04d}",
                procedure=procedure.code,
                name=self.rng.choice(self.texts["citizens"]),
                received_on=d,
                appointment=appointment,
            )
            self.register(d, item.row(STATUS_PROCESSING))
            if serial % LATE_EVERY:
                back = self.cal.add_working_days(d, self.rng.randint(3, (appointment - d).days))
                back = min(back, appointment)
            else:  # one in five late; most of those with an apology sent the day before
                back = self.cal.add_working_days(appointment, self.rng.randint(1, 4))
                if serial % (3 * LATE_EVERY):
                    self.plan_apology(item, unit_id=procedure.unit_id)
            self.register(back, item.row(STATUS_RETURNED))
            if self.rng.random() < 0.5:
                self.plan_dossier_rating(item, back, procedure)

    def register(self, d: date, row: dict[str, str]) -> None:
        """Put a row into the register import of a day."""
        self.imports.setdefault(d, []).append(row)

    def plan_imports(self) -> None:
        """Plan the one-stop register's import at the end of each day that changed it."""
        for d, rows in sorted(self.imports.items()):
            table = Table.from_records(DOSSIERS, rows)

            async def run(at: datetime, table: Table = table) -> None:
                report = await import_dossiers(
                    self.session, table=table, actor=ACTOR, now=at, cal=self.cal
                )
                if not report.ok:
                    raise RuntimeError(f"history dossiers: {report.problems[:3]}")

            self.plan(self.at(d, CLOSE_LOCAL + 0.25), run)

    def plan_apology(self, item: _Dossier, *, unit_id: int) -> None:
        """Plan the head sending the apology the day before the appointment."""
        ask = self.at(self.cal.add_working_days(item.appointment, 0) - timedelta(days=1), 9.0)
        ask = max(ask, self.at(item.received_on, CLOSE_LOCAL + 0.5))
        new_date = self.cal.add_working_days(item.appointment, 5)
        reason = self.rng.choice(self.texts["apology_reasons"])

        async def run(at: datetime) -> None:
            await apologies.make_for_dossier(
                self.session,
                actor=self.head(unit_id),
                code=item.code,
                reason=reason,
                new_return_at=self.at(new_date, 16.5),
                now=at,
                cal=self.cal,
            )

        self.plan(ask, run)

    def plan_dossier_rating(self, item: _Dossier, back: date, procedure: Procedure) -> None:
        """Plan the citizen rating the dossier soon after getting the result."""
        quality = 0.85 if back <= item.appointment else 0.3
        when = self.at(back, CLOSE_LOCAL + self.rng.uniform(0.5, 3))

        async def run(at: datetime) -> None:
            found = await self.session.exec(select(Dossier).where(Dossier.code == item.code))
            dossier = found.one()
            assert dossier.id is not None
            unit_id = dossier.unit_id or procedure.unit_id
            assert unit_id is not None
            draft = ratings.Draft(
                unit_id=unit_id,
                procedure_id=procedure.id,
                dossier_id=dossier.id,
            )
            self.fill(draft, quality)
            await self.rating(draft)(at)

        self.plan(when, run)

    # The sweeps the job runner would have run each morning.

    async def sweep(self, at: datetime) -> None:
        """Tell leadership about the cases still open past their due time (nobody to tell yet)."""
        await cases.escalate(self.session, now=at)

    async def catch_up(self) -> None:
        """Run the other sweeps once, now: each takes its current step, as after a downtime.

        Their past steps (reminders, alerts to leadership) reached nobody; without this the
        bot would send them all when it starts.
        """
        session, at, cal, settings = self.session, self.now, self.cal, self.settings
        await chasing.chase(session, now=at, calendar=cal, settings=settings.directives)
        await tasks.sweep(session, now=at, cal=cal, settings=settings.tasks)
        await apologies.sweep(
            session, now=at, cal=cal, lead_days=settings.dossiers.apology_lead_days
        )
        await cases.escalate(session, now=at)


def read_history(path: Path = HISTORY) -> dict[str, Any]:
    """Return the sample history's units, texts, directives and tasks."""
    return tomllib.loads(path.read_text(encoding="utf-8"))


async def seed_history(
    maker: SessionMaker,
    *,
    now: datetime,
    settings: Settings | None = None,
    path: Path = HISTORY,
) -> bool:
    """Play three months of the department's past into a fresh demo database, once.

    Return False (and change nothing) when the database already holds it.
    """
    spec = read_history(path)
    first = spec["directives"][0]["number"]
    async with transaction(maker) as session:
        if (await session.exec(select(Directive.id).where(Directive.number == first))).first():
            return False
        await ratings.salt(session)  # made and committed first: then read once, not per rating
    async with transaction(maker) as session:
        past = _Past(session, now=now, settings=settings or Settings(), spec=spec)
        await past.load()
        await past.plan_ratings()
        past.plan_directives()
        past.plan_tasks()
        await past.plan_dossiers()
        past.plan_imports()
        await past.play()
        await past.catch_up()
        await past_survey(session, now=now, settings=settings or Settings(), spec=spec)
    return True


async def past_survey(
    session: AsyncSession, *, now: datetime, settings: Settings, spec: dict[str, Any]
) -> int | None:
    """Run the history's closed survey: launched to all staff, answered, closed; return its id.

    Nothing when the questionnaire is not imported. Its own random numbers, so the rest of the
    past stays as it was. Nobody has a chat account yet: no invitation waits to be sent.
    """
    from bot.services.surveys import answers, campaigns

    item = spec.get("survey")
    code = item["questionnaire"] if item else ""
    if (
        not item
        or not (await session.exec(select(Questionnaire).where(Questionnaire.code == code))).first()
    ):
        return None
    rng, cal, admin = (
        random.Random(SEED + 1),
        WorkCalendar.from_settings(settings),
        system_actor(ACTOR),
    )
    day = cal.local(now).date() - timedelta(days=int(item["opened_days_ago"]))
    opened = cal.at_local(day if cal.is_working_day(day) else cal.next_working_day(day), "08:00")
    closes = opened + timedelta(days=int(item["open_days"]))
    draft = campaigns.Draft(
        item["title"],
        campaigns.Audience(everyone=True),
        opened,
        closes,
        code,
        min_group=settings.surveys.min_group,
    )
    campaign = await campaigns.launch(
        session, draft, actor=admin, now=opened, floor=settings.surveys.min_group
    )
    form = await answers.definition(session, campaign)
    units = {u.id: u.code for u in (await session.exec(select(Unit))).all()}
    at = opened
    for row in sorted(await campaigns.recipients_of(session, campaign), key=lambda r: r.id or 0):
        if units.get(row.unit_id) not in item["all_answer"] and rng.random() > item["answer_share"]:
            continue
        given: dict[str, Any] = {}
        for q in form.questions:
            if q in form.asked(given):
                given[q.id] = _past_answer(q, rng, item["ideas"])
        at += timedelta(minutes=rng.randint(5, 90))
        who = answers.Respondent(row.person_id, None)
        await answers.save(session, campaign, row, who, given, now=at, complete=True)
    await campaigns.close(session, campaign.id or 0, actor=admin, now=closes)
    return campaign.id


def _past_answer(question: Any, rng: random.Random, ideas: list[str]) -> Any:
    """Return a plausible answer of the past survey (None: an optional question skipped)."""
    if question.optional and rng.random() < (0.7 if question.kind == "text" else 0.4):
        return None
    if question.kind == "scale":
        return str(min(question.scale, max(1, round(rng.gauss(question.scale * 0.6, 1.2)))))
    if question.kind == "yes_no":
        return "yes" if rng.random() < 0.55 else "no"
    if question.kind == "single":
        return str(rng.randint(1, len(question.options)))
    if question.kind == "multiple":
        return sorted({str(rng.randint(1, len(question.options))) for _ in range(2)}, key=int)
    return rng.choice(ideas)
