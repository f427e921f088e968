"""The per-unit scoreboard on both backends, against figures worked out by hand.

November 2026 in Hanoi (since 31/10 17:00 UTC, until 30/11 17:00 UTC); the previous period is
the 30 days before (02/10–31/10). Weights 15/25/25/15/20 (ack, tasks, satisfaction, feedback,
dossiers), at least 2 ratings to be ranked.

Unit A: notices 4, acked 2 (after 1 h and 3 h: median 2 h; one acked after the period);
tasks 3 due, 1 on time, 1 done late, 1 overdue; ratings 5, 4, 2, 1 (satisfied 2/4);
follow-up cases 2, 1 closed on time; dossiers 6 (2 late, 1 rated unsatisfied and complained
about, 3 clean), apology sent 1.
Score A = 15·1/2 + 25·1/3 + 25·1/2 + 15·1/2 + 20·3/6 = 45.8333… → 45.83 (weights sum 100).
Units B and C: everything they have is 100 % → 100.00, tied first; A third.
Unit E: one rating (5): 100.00 but not enough data, not ranked. Unit D: nothing at all.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from typer.testing import CliRunner

from bot.cli.main import app
from bot.config import ConfigError, ReportSettings, ReportWeights, load_settings
from bot.models import (
    Apology,
    ApologyStatus,
    Audience,
    CaseStatus,
    Directive,
    DirectiveRecipient,
    Dossier,
    DossierStatus,
    FollowUpCase,
    Rating,
    Role,
    Task,
    TaskAssignment,
    TaskStatus,
    Unit,
)
from bot.services.errors import PermissionDenied
from bot.services.org.access import Actor, system_actor
from bot.services.ratings import daily
from bot.services.reports.scoreboard import Figures, Window, score, scoreboard, scoreboard_for
from tests import factories as f

ROOT = Path(__file__).resolve().parents[1]
HANOI = ZoneInfo("Asia/Ho_Chi_Minh")
NOVEMBER = Window.month(2026, 11, HANOI)
SETTINGS = ReportSettings(min_ratings=2)


def local(*parts: int) -> datetime:
    """Return a Hanoi wall-clock time as UTC."""
    return datetime(*parts, tzinfo=HANOI).astimezone(UTC)


NOW = local(2026, 12, 5, 9, 0)
HOUR = timedelta(hours=1)


class Seeder:
    """Adds the rows of the small dataset."""

    def __init__(self, s) -> None:
        self.s = s
        self.n = 0

    def _next(self) -> int:
        self.n += 1
        return self.n

    async def rating(self, unit: Unit, at: datetime, overall: int, **fields) -> Rating:
        row = Rating(
            unit_id=unit.id,
            channel="telegram",
            voter_hash=f"v{self._next()}",
            overall=overall,
            created_at=at,
            **fields,
        )
        self.s.add(row)
        await self.s.flush()
        await daily.record(self.s, row)  # as ratings.save does
        return row

    async def directive(self, at: datetime, acks: list[tuple[object, datetime | None]]) -> None:
        row = Directive(
            number=f"{self._next()}/SGDĐT",
            issued_on=at.date(),
            title="Công văn",
            summary="…",
            audience=Audience.EVERYONE,
            target="all",
            ack_deadline=at + timedelta(days=2),
            created_by="test",
            created_at=at,
        )
        self.s.add(row)
        await self.s.flush()
        for person, acked in acks:
            self.s.add(
                DirectiveRecipient(
                    directive_id=row.id, person_id=person.id, unit_id=person.unit_id, acked_at=acked
                )
            )
        await self.s.flush()

    async def task(self, unit: Unit, due: datetime, done: datetime | None = None) -> None:
        task = Task(title=f"Việc {self._next()}", created_by="test", created_at=f.T0)
        self.s.add(task)
        await self.s.flush()
        status = TaskStatus.DONE if done else TaskStatus.OPEN
        self.s.add(
            TaskAssignment(
                task_id=task.id, unit_id=unit.id, due_at=due, status=status, done_at=done
            )
        )
        await self.s.flush()

    async def dossier(
        self,
        unit: Unit,
        received: date,
        appointment: datetime,
        status: DossierStatus,
        returned: datetime | None = None,
    ) -> Dossier:
        row = Dossier(
            code=f"HS-{self._next()}",
            unit_id=unit.id,
            citizen_name="Ông Lê Văn Công",
            received_on=received,
            appointment_at=appointment,
            status=status,
            returned_at=returned,
            created_at=f.T0,
            updated_at=f.T0,
        )
        self.s.add(row)
        await self.s.flush()
        return row

    async def case(self, rating: Rating, opened: datetime, due: datetime, closed: datetime) -> None:
        self.s.add(
            FollowUpCase(
                rating_id=rating.id,
                unit_id=rating.unit_id,
                status=CaseStatus.CLOSED,
                opened_at=opened,
                due_at=due,
                closed_at=closed,
            )
        )
        await self.s.flush()

    async def apology(self, dossier: Dossier, status: ApologyStatus, sent: datetime | None) -> None:
        self.s.add(
            Apology(
                dossier_id=dossier.id,
                unit_id=dossier.unit_id,
                original_appointment_at=dossier.appointment_at,
                status=status,
                asked_at=dossier.appointment_at - timedelta(days=1),
                sent_at=sent,
            )
        )
        await self.s.flush()


@pytest.fixture
async def seeded(maker):
    """The dataset described at the top of this file."""
    async with maker() as s:
        seed = Seeder(s)
        a, b, c = [await f.unit(s, code) for code in "ABC"]
        d, e = await f.unit(s, "D"), await f.unit(s, "E")
        a1, a2, a3 = [await f.person(s, f"a{i}", a) for i in (1, 2, 3)]
        b1, c1 = await f.person(s, "b1", b), await f.person(s, "c1", c)

        issued = local(2026, 11, 2, 8, 0)
        await seed.directive(
            issued,
            [
                (a1, issued + HOUR),
                (a2, issued + 3 * HOUR),
                (a3, None),
                (b1, issued + 2 * HOUR),
                (c1, issued + 4 * HOUR),
            ],
        )
        late_issue = local(2026, 11, 30, 20, 0)  # acknowledged after the period
        await seed.directive(late_issue, [(a1, local(2026, 12, 1, 8, 0))])
        october = local(2026, 10, 30, 8, 0)
        await seed.directive(october, [(a1, october + HOUR), (a2, None)])

        await seed.task(a, local(2026, 11, 10, 17, 0), done=local(2026, 11, 9, 10, 0))
        await seed.task(a, local(2026, 11, 20, 17, 0), done=local(2026, 11, 22, 10, 0))
        await seed.task(a, local(2026, 11, 25, 17, 0))
        await seed.task(a, local(2026, 12, 1, 0, 0))  # due at the period's end: not counted
        await seed.task(b, local(2026, 11, 15, 17, 0), done=local(2026, 11, 15, 16, 0))
        await seed.task(c, local(2026, 11, 15, 17, 0), done=local(2026, 11, 14, 16, 0))

        d1 = await seed.dossier(
            a,
            date(2026, 11, 3),
            local(2026, 11, 10, 17),
            DossierStatus.RETURNED,
            local(2026, 11, 9),
        )
        d2 = await seed.dossier(
            a,
            date(2026, 11, 5),
            local(2026, 11, 12, 17),
            DossierStatus.RETURNED,
            local(2026, 11, 15),
        )
        d3 = await seed.dossier(
            a,
            date(2026, 11, 6),
            local(2026, 11, 30, 17),
            DossierStatus.RETURNED,
            local(2026, 11, 20),
        )
        d4 = await seed.dossier(
            a, date(2026, 11, 7), local(2026, 11, 20, 17), DossierStatus.PROCESSING
        )
        await seed.dossier(a, date(2026, 11, 8), local(2026, 12, 20, 17), DossierStatus.PROCESSING)
        await seed.dossier(a, date(2026, 11, 9), local(2026, 11, 20, 17), DossierStatus.CANCELLED)
        await seed.dossier(a, date(2026, 11, 10), local(2026, 11, 15, 17), DossierStatus.ADDITIONAL)
        await seed.dossier(
            a,
            date(2026, 10, 31),
            local(2026, 10, 31, 17),
            DossierStatus.RETURNED,
            local(2026, 11, 2),
        )
        await seed.apology(d4, ApologyStatus.SENT, local(2026, 11, 19, 9))
        await seed.apology(d2, ApologyStatus.ASKED, None)

        await seed.rating(a, local(2026, 11, 1, 0, 0), 5, dossier_id=d1.id, access=5)
        bad = await seed.rating(a, local(2026, 11, 20, 9), 2, dossier_id=d3.id, access=3)
        worse = await seed.rating(a, local(2026, 11, 21, 9), 1, officer_score=4)
        await seed.rating(a, local(2026, 11, 30, 23, 59, 59), 4)
        await seed.rating(a, local(2026, 10, 31, 23, 59), 3)  # the previous period
        await seed.rating(a, local(2026, 12, 1, 0, 0), 1)  # after the period
        await seed.case(
            bad, local(2026, 11, 20, 9, 5), local(2026, 11, 27, 17), local(2026, 11, 25)
        )
        await seed.case(
            worse, local(2026, 11, 21, 9, 5), local(2026, 11, 28, 17), local(2026, 12, 2)
        )
        for unit, levels in ((b, (4, 4)), (c, (5, 4)), (e, (5,))):
            for level in levels:
                await seed.rating(unit, local(2026, 11, 15, 10), level)
        await s.commit()
        return {u.code: u for u in (a, b, c, d, e)}


async def board(maker, settings: ReportSettings = SETTINGS):
    async with maker() as s:
        return await scoreboard(s, window=NOVEMBER, now=NOW, settings=settings)


def test_windows_are_local_months_and_the_previous_has_the_same_length():
    assert NOVEMBER.since == datetime(2026, 10, 31, 17, tzinfo=UTC)
    assert NOVEMBER.until == datetime(2026, 11, 30, 17, tzinfo=UTC)
    assert (NOVEMBER.first_day, NOVEMBER.last_day) == (date(2026, 11, 1), date(2026, 11, 30))
    before = NOVEMBER.previous()
    assert (before.first_day, before.last_day) == (date(2026, 10, 2), date(2026, 10, 31))
    assert Window.month(2026, 12, HANOI).last_day == date(2026, 12, 31)


async def test_unit_a_figures_match_the_hand_count(maker, seeded):
    result = await board(maker)
    a = result.row_for(seeded["A"].id).figures
    assert (a.notices, a.acked, a.ack_rate, a.ack_median_seconds) == (4, 2, Decimal("50.0"), 7200)
    assert (a.tasks_due, a.tasks_counted, a.tasks_on_time, a.tasks_overdue) == (3, 3, 1, 1)
    assert a.on_time_rate == Decimal("33.3")
    assert a.levels == {5: 1, 4: 1, 3: 0, 2: 1, 1: 1}
    assert (a.ratings, a.satisfied, a.satisfied_share) == (4, 2, Decimal("50.0"))
    assert a.level_share(1) == Decimal("25.0")
    assert a.element_average("access") == Decimal("4.00")
    assert a.element_average("officer_score") == Decimal("4.00")
    assert a.element_average("result") is None
    assert (a.feedback, a.feedback_on_time, a.feedback_rate) == (2, 1, Decimal("50.0"))
    assert (a.dossiers, a.dossiers_late, a.dossiers_clean) == (6, 2, 3)
    assert a.dossier_rate == Decimal("50.0")
    assert a.apologies_sent == 1


async def test_scores_ranks_ties_and_the_minimum_of_ratings(maker, seeded):
    result = await board(maker)
    got = [
        (r.unit.code, r.standing.score, r.standing.rank, r.standing.enough_data)
        for r in result.rows
    ]
    assert got == [
        ("B", Decimal("100.00"), 1, True),
        ("C", Decimal("100.00"), 1, True),
        ("A", Decimal("45.83"), 3, True),
        ("D", None, None, False),
        ("E", Decimal("100.00"), None, False),
    ]
    assert [r.unit.code for r in result.ranked] == ["B", "C", "A"]


async def test_the_empty_unit_has_zeros_and_no_rates(maker, seeded):
    d = (await board(maker)).row_for(seeded["D"].id).figures
    assert d == Figures()
    assert (d.ack_rate, d.on_time_rate, d.satisfied_share, d.dossier_rate) == (None,) * 4
    assert d.ack_median_seconds is None


async def test_totals_add_up_and_take_the_median_over_all_units(maker, seeded):
    totals = (await board(maker)).totals
    assert (totals.notices, totals.acked) == (6, 4)
    assert totals.ack_median_seconds == 9000  # 1 h, 2 h, 3 h, 4 h
    assert totals.levels == {5: 3, 4: 4, 3: 0, 2: 1, 1: 1}
    assert totals.satisfied_share == Decimal("77.8")
    assert (totals.tasks_due, totals.tasks_on_time, totals.tasks_overdue) == (5, 3, 1)


async def test_the_previous_period_and_the_change(maker, seeded):
    result = await board(maker)
    assert result.previous_window == NOVEMBER.previous()
    a = result.row_for(seeded["A"].id)
    old = a.previous_figures
    assert (old.notices, old.acked, old.ratings, old.dossiers, old.dossiers_late) == (2, 1, 1, 1, 1)
    # 15·1/2 + 25·0 + 20·0 over 60 = 12.50; one rating: not ranked then.
    assert (a.previous.score, a.previous.rank) == (Decimal("12.50"), None)
    assert a.score_change == Decimal("33.33")
    assert a.rank_change is None
    assert result.row_for(seeded["B"].id).score_change is None


async def test_weights_come_from_the_settings(maker, seeded):
    only_tasks = ReportWeights(ack=0, tasks=1, satisfaction=0, feedback=0, dossiers=0)
    result = await board(maker, ReportSettings(min_ratings=0, weights=only_tasks))
    scores = {r.unit.code: (r.standing.score, r.standing.rank) for r in result.rows}
    assert scores["A"] == (Decimal("33.33"), 3)
    assert scores["D"] == (None, None)
    assert scores["E"] == (None, None)  # no task: nothing to score by


def test_score_leaves_out_rates_without_data():
    figures = Figures(notices=4, acked=1, tasks_due=2, tasks_counted=2, tasks_on_time=2)
    weights = ReportSettings().weights.as_dict()
    assert score(figures, weights) == Decimal("71.88")  # (15·1/4 + 25·1) / 40
    assert score(Figures(), weights) is None


async def test_heads_see_their_unit_and_leaders_every_unit(maker, seeded):
    head = Actor(name="head", roles=frozenset({Role.UNIT_HEAD}), unit=seeded["A"])
    citizen = Actor(name="citizen", roles=frozenset())
    async with maker() as s:
        mine = await scoreboard_for(s, actor=head, window=NOVEMBER, now=NOW, settings=SETTINGS)
        every = await scoreboard_for(
            s, actor=system_actor("t"), window=NOVEMBER, now=NOW, settings=SETTINGS
        )
        with pytest.raises(PermissionDenied):
            await scoreboard_for(s, actor=citizen, window=NOVEMBER, now=NOW, settings=SETTINGS)
    assert [r.unit.code for r in mine.rows] == ["A"]
    assert mine.totals == mine.rows[0].figures
    assert mine.rows[0].standing.rank == 3
    assert len(every.rows) == 5


@pytest.mark.parametrize(
    ("body", "key", "reason"),
    [
        (
            "[reports.weights]\nack = 0\ntasks = 0\nsatisfaction = 0\nfeedback = 0\ndossiers = 0\n",
            "reports.weights",
            "config.error.weights_zero",
        ),
        ("[reports.weights]\nack = -1\n", "reports.weights.ack", "config.error.greater_than_equal"),
        (
            "[reports.weights]\ntasks = 101\n",
            "reports.weights.tasks",
            "config.error.less_than_equal",
        ),
        ("[reports.weights]\nspeed = 5\n", "reports.weights.speed", "config.error.extra_forbidden"),
        ("[reports.weights]\nack = true\n", "reports.weights.ack", "config.error.float_parsing"),
        ("[reports]\nmin_ratings = -1\n", "reports.min_ratings", "config.error.greater_than_equal"),
    ],
)
def test_check_config_names_a_bad_weight(tmp_path, body, key, reason):
    path = tmp_path / "config.toml"
    path.write_text(body, encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        load_settings(path)
    assert [(p.key, p.reason) for p in info.value.problems] == [(key, reason)]
    result = CliRunner().invoke(app, ["check-config", "--config", str(path)])
    assert result.exit_code == 2
    assert key in result.output


def test_the_example_config_documents_the_default_weights():
    settings = load_settings(ROOT / "config.example.toml")
    assert settings.reports == ReportSettings()
    assert settings.reports.weights.as_dict() == {
        "ack": 15.0,
        "tasks": 25.0,
        "satisfaction": 25.0,
        "feedback": 15.0,
        "dossiers": 20.0,
    }
