"""The demo's department: the current two-tier structure, personas that can play every side."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlmodel import SQLModel, col, select

from bot.cli import demo, demo_history
from bot.cli.directives import read_file
from bot.config import Settings
from bot.db import create_engine, session_maker
from bot.models import (
    Apology,
    ApologyStatus,
    Directive,
    DirectiveRecipient,
    Dossier,
    FollowUpCase,
    Outbox,
    Person,
    PersonRole,
    Role,
    ServiceCounter,
    TaskAssignment,
    TaskStatus,
    Unit,
    UnitKind,
)
from bot.services.reports import stats
from bot.services.reports.scoreboard import Scoreboard, Window, scoreboard


async def test_demo_offers_the_current_structure_and_a_rating_link_to_a_persona_s_unit(maker):
    await demo.seed(maker)
    async with maker() as s:
        units = {u.code: u for u in (await s.exec(select(Unit))).all()}
        counter = (
            await s.exec(select(ServiceCounter).where(ServiceCounter.code == demo.RATING_COUNTER))
        ).one()
        heads = (
            await s.exec(
                select(Person.code)
                .join(PersonRole, PersonRole.person_id == Person.id)
                .where(Person.unit_id == counter.unit_id, PersonRole.role == Role.UNIT_HEAD.value)
            )
        ).all()
    kinds = [u.kind for u in units.values()]
    assert UnitKind.DISTRICT_OFFICE not in kinds
    assert kinds.count(UnitKind.COMMUNE) == 11
    by_id = {u.id: u for u in units.values()}
    school_parents = {by_id[u.parent_id].kind for u in units.values() if u.kind == UnitKind.SCHOOL}
    assert school_parents == {UnitKind.DEPARTMENT, UnitKind.COMMUNE}
    head = next(p for p in demo.PERSONAS if p.id == "head")
    assert head.person_code in heads
    assert by_id[counter.unit_id].name == head.unit


# The demo's past -------------------------------------------------------------------------------

NOW = datetime(2026, 12, 5, 3, 0, tzinfo=UTC)  # a Saturday morning in Hanoi


async def _history(maker) -> None:
    """Seed the demo with its past, as of NOW."""
    await demo.seed(maker, now=NOW)


async def _board(maker, token: str = "30d") -> Scoreboard:
    settings = Settings()
    tz = settings.scheduler.tz
    period = stats.parse_period(token, now=NOW, tz=tz)
    async with maker() as s:
        return await scoreboard(
            s, window=Window(period.since, period.until, tz), now=NOW, settings=settings.reports
        )


async def test_the_past_ranks_most_rated_units_and_marks_one_short_of_ratings(maker):
    await _history(maker)
    board = await _board(maker)
    minimum = Settings().reports.min_ratings
    rated = [r for r in board.rows if r.figures.ratings]
    short = [r.unit.code for r in rated if r.figures.ratings < minimum]
    assert short == ["UBND.HNINH"]
    assert all(r.standing.rank is None for r in board.rows if r.unit.code == "UBND.HNINH")
    ranked = board.ranked
    assert len(ranked) >= 5
    scores = [r.standing.score for r in ranked]
    assert len(set(scores)) == len(scores)  # varied levels: a meaningful ranking
    assert all(r.previous.rank is not None for r in ranked)  # the month before counts too
    head_unit = next(p.unit for p in demo.PERSONAS if p.id == "head")
    assert head_unit in {r.unit.name for r in ranked}


async def test_the_past_has_late_and_missing_work_as_well_as_work_done_on_time(maker):
    await _history(maker)
    async with maker() as s:
        cases = (await s.exec(select(FollowUpCase))).all()
        recipients = (await s.exec(select(DirectiveRecipient))).all()
        assignments = (await s.exec(select(TaskAssignment))).all()
        sent = (
            await s.exec(select(Apology).where(Apology.status == ApologyStatus.SENT.value))
        ).all()
        late_dossiers = (
            await s.exec(select(Dossier).where(col(Dossier.returned_at) > Dossier.appointment_at))
        ).all()
        outbox = (
            await s.exec(
                select(Outbox.kind, Directive.number)
                .join(DirectiveRecipient, col(DirectiveRecipient.id) == Outbox.ref_id)
                .join(Directive, col(Directive.id) == DirectiveRecipient.directive_id)
            )
        ).all()
        queued = len((await s.exec(select(Outbox.id))).all())
    closed = [c for c in cases if c.closed_at is not None]
    assert any(c.closed_at <= c.due_at for c in closed)
    assert any(c.closed_at > c.due_at for c in closed)
    assert any(c.closed_at is None and c.due_at < NOW for c in cases)
    assert any(c.escalated_at is not None for c in cases)
    acked = [r for r in recipients if r.acked_at is not None]
    assert len(acked) > len(recipients) / 2
    assert any(r.acked_at is None for r in recipients)
    done = [a for a in assignments if a.status == TaskStatus.DONE]
    assert any(not a.late for a in done)
    assert any(a.late for a in done)
    assert any(a.status == TaskStatus.OPEN and a.due_at < NOW for a in assignments)
    assert len(sent) >= 2
    assert len(late_dossiers) > len(sent)
    # Nobody had a chat account in the past: only today's example directive waits to be sent.
    example = read_file(demo.EXAMPLES / "directive.toml").number
    assert len(outbox) == queued
    assert set(outbox) == {("directive", example)}


async def test_the_past_is_the_same_each_run_and_is_played_once(maker, tmp_path):
    await _history(maker)
    first = await _board(maker, "90d")
    assert not await demo_history.seed_history(maker, now=NOW)
    again = await _board(maker, "90d")
    assert [(r.unit.code, r.figures) for r in again.rows] == [
        (r.unit.code, r.figures) for r in first.rows
    ]
    other = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'other.db'}")
    async with other.begin() as conn:
        await conn.run_sync(SQLModel.metadata.create_all)
    try:
        await _history(session_maker(other))
        twin = await _board(session_maker(other), "90d")
    finally:
        await other.dispose()
    assert [(r.unit.code, r.figures) for r in twin.rows] == [
        (r.unit.code, r.figures) for r in first.rows
    ]


async def test_the_demo_has_the_example_survey_ready_and_a_closed_one_to_compare_with(maker):
    from bot.models import Campaign, CampaignStatus, Questionnaire, SurveyResponse
    from bot.services.org.access import system_actor
    from bot.services.surveys import results

    await _history(maker)
    async with maker() as s:
        (form,) = (await s.exec(select(Questionnaire))).all()
        (past,) = (await s.exec(select(Campaign))).all()
        answers = (await s.exec(select(SurveyResponse))).all()
        invites = (await s.exec(select(Outbox).where(Outbox.kind == "survey_invite"))).all()
        res = await results.results(s, past.id, actor=system_actor("test"))
    assert form.code == demo.SURVEY_CODE
    assert past.status == CampaignStatus.CLOSED
    assert past.salt is None  # erased at the close: the answers name no one
    assert past.closed_at < NOW
    assert len(answers) == res.overall.respondents >= 20
    assert {(r.person_id, r.answered_at) for r in answers} == {(None, None)}
    assert invites == []  # nobody had a chat account then: nothing waits to be sent
    shown = {g.name: g.respondents for g in res.units if not g.hidden}
    assert shown == {"Văn phòng Sở": 5}  # the only unit of five; the others are held back
    assert "Văn phòng Sở" in demo.survey_hint(Settings(), before=past.id)
    assert f"/compare {past.id}" in demo.survey_hint(Settings(), before=past.id)


async def test_each_unit_the_demo_survey_goes_to_has_five_linked_people_one_on_zalo(maker):
    from bot.models import Channel, Contact

    await demo.seed(maker, history=False)
    async with maker() as s:
        linked = (
            await s.exec(
                select(Unit.code, Contact.channel, Person.code)
                .join(Person, col(Person.unit_id) == col(Unit.id))
                .join(Contact, col(Contact.person_id) == col(Person.id))
                .where(col(Unit.code).in_(demo.SURVEY_UNITS), col(Person.active).is_(True))
            )
        ).all()
    by_unit = {u: sorted(code for unit, _, code in linked if unit == u) for u in demo.SURVEY_UNITS}
    assert by_unit == {
        "SGD.VP": ["CB004", "CB005", "CB006", "CB007", "CB008"],  # the admin among them
        "UBND.VKHANG": ["CB033", "CB034", "CB061", "CB062", "CB063"],
    }
    assert {(c, ch) for _, ch, c in linked if ch != Channel.TELEGRAM} == {("CB034", Channel.ZALO)}
    hint = demo.survey_hint(Settings())
    listed = {p["label"] for p in demo.sandbox_personas()}
    for persona in demo.COMMUNE_PERSONAS:
        assert persona.name in hint
        assert persona.name in listed
