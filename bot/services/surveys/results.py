"""Results of a campaign: per question and per unit, in chat, as XLSX, and two compared.

Rules kept here, for every caller (chat, command line, export):
- results stay hidden from everyone, admins included, until the campaign closes, unless the
  campaign was launched with its results open;
- in an anonymous campaign a group (the whole, or a unit) with fewer answers than its minimum
  is never shown; a second unit is held back with it when its count could be worked out from
  the total; a question answered by fewer than the minimum is shown without its figures, and
  so is the same question in the next smallest unit when the small answers could be worked
  out from the whole;
- free-text answers are listed in alphabetical order, with no time and no respondent.
"""

from __future__ import annotations

import io
import json
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Any

from openpyxl import Workbook
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from bot.i18n import t
from bot.models import Campaign, CampaignRecipient, CampaignStatus, Role, SurveyResponse, Unit
from bot.services.errors import InvalidInput, PermissionDenied
from bot.services.org.access import Actor, require
from bot.services.surveys import answers as answer_store
from bot.services.surveys.campaigns import get
from bot.services.surveys.questionnaire import NO, YES, Definition, Question

BAR = 10  # characters of a text bar


@dataclass
class QuestionResult:
    """What one group answered to one question."""

    question: Question
    answered: int = 0
    counts: Counter[str] = field(default_factory=Counter)
    texts: list[str] = field(default_factory=list)
    hidden: bool = False  # too few answers to show
    held_back: bool = False  # enough, but hidden so that a smaller group's cannot be worked out

    @property
    def mean(self) -> float | None:
        """Return the mean of a scale question."""
        if self.question.kind != "scale" or not self.answered:
            return None
        return sum(int(v) * n for v, n in self.counts.items()) / self.answered

    def share(self, value: str) -> float:
        """Return the percent of answers holding a value."""
        return 100.0 * self.counts[value] / self.answered if self.answered else 0.0


@dataclass
class GroupResult:
    """The answers of one group: everyone, or one unit; `hidden` when too small to show."""

    name: str
    respondents: int
    questions: list[QuestionResult]
    hidden: bool = False

    @property
    def held_back(self) -> bool:
        """Tell whether a group big enough is hidden so that a smaller one's can't be worked out."""
        return self.hidden and self.respondents > 0


@dataclass
class Results:
    """A campaign's results: the whole and each unit (hidden groups carry no figures)."""

    campaign: Campaign
    form: Definition
    overall: GroupResult
    units: list[GroupResult]


def shown_now(campaign: Campaign) -> bool:
    """Tell whether a campaign's results may be shown yet (closed, or open by its choice)."""
    return campaign.status == CampaignStatus.CLOSED or campaign.results_open


def can_see(campaign: Campaign, actor: Actor) -> None:
    """Refuse results before the close (unless the campaign says otherwise), and to staff."""
    require(actor, Role.ADMIN, Role.LEADER, Role.UNIT_HEAD)
    if not shown_now(campaign):
        raise PermissionDenied(
            "survey.error.hidden", title=campaign.title, closes=campaign.closes_at
        )


def minimum(campaign: Campaign) -> int:
    """Return the smallest group shown (1 for a named campaign)."""
    return campaign.min_group if campaign.anonymous else 1


def neutral(text: str) -> tuple[str, str]:
    """Return where a free-text answer goes in a list: by its words, then its case, so the list
    holds no trace of who answered first (or last): the same answers, the same order."""
    return text.casefold(), text


def _tally(
    form: Definition, rows: list[dict[str, Any]], minimum: int, held: frozenset[str] = frozenset()
) -> list[QuestionResult]:
    """Count the answers of a group, question by question (those `held` shown without figures)."""
    out = []
    for q in form.questions:
        result = QuestionResult(q)
        for answers in rows:
            value = answers.get(q.id)
            if value is None:
                continue
            result.answered += 1
            if q.kind == "text":
                result.texts.append(str(value))
            else:
                result.counts.update(value if isinstance(value, list) else [value])
        result.texts.sort(key=neutral)
        if result.answered < minimum or q.id in held:
            result.hidden, result.counts, result.texts = bool(result.answered), Counter(), []
            result.held_back = result.answered >= minimum
        out.append(result)
    return out


def _held_back(
    sizes: dict[int | None, int], minimum: int, hidden_already: frozenset[int | None] = frozenset()
) -> set[int | None]:
    """Return the units not shown: the small ones (and those hidden already), and the next
    smallest while they sum small."""
    hidden = set(hidden_already) | {u for u, n in sizes.items() if n < minimum}
    shown = sorted((n, str(u), u) for u, n in sizes.items() if u not in hidden)
    while shown and 0 < sum(sizes[u] for u in hidden) < minimum:
        hidden.add(shown.pop(0)[2])
    return hidden


def _questions_held_back(
    form: Definition,
    by_unit: dict[int | None, list[dict[str, Any]]],
    hidden_units: set[int | None],
    minimum: int,
) -> dict[int | None, frozenset[str]]:
    """Return, per unit, the questions shown without figures: answered there by too few, and,
    like units, the next smallest while the answers not shown (hidden units' too) sum small."""
    held: dict[int | None, set[str]] = defaultdict(set)
    for q in form.questions:
        sizes = {u: sum(a.get(q.id) is not None for a in rows) for u, rows in by_unit.items()}
        for u in _held_back(sizes, minimum, frozenset(hidden_units)):
            held[u].add(q.id)
    return {u: frozenset(ids) for u, ids in held.items()}


async def results(
    session: AsyncSession, campaign_id: int, *, actor: Actor, unit_id: int | None = None
) -> Results:
    """Return a campaign's results as the actor may see them (a head: their own unit only)."""
    campaign = await get(session, campaign_id)
    can_see(campaign, actor)
    if not actor.has_any(frozenset({Role.ADMIN, Role.LEADER})):
        unit_id = actor.unit.id if actor.unit is not None else -1
        reached = select(CampaignRecipient.id).where(
            CampaignRecipient.campaign_id == campaign_id, CampaignRecipient.unit_id == unit_id
        )
        if (await session.exec(reached.limit(1))).first() is None:
            raise PermissionDenied("errors.forbidden")
    form = await answer_store.definition(session, campaign)
    stmt = select(SurveyResponse.unit_id, SurveyResponse.answers).where(
        SurveyResponse.campaign_id == campaign_id, col(SurveyResponse.complete).is_(True)
    )
    by_unit: dict[int | None, list[dict[str, Any]]] = defaultdict(list)
    for uid, text in (await session.exec(stmt)).all():
        by_unit[uid].append(json.loads(text))
    smallest = minimum(campaign)
    every = [a for rows in by_unit.values() for a in rows]
    hidden_units = _held_back({u: len(r) for u, r in by_unit.items()}, smallest)
    held = _questions_held_back(form, by_unit, hidden_units, smallest)
    ids = [u for u in by_unit if u is not None]
    names = {
        u.id: (u.code, u.name)
        for u in (await session.exec(select(Unit).where(col(Unit.id).in_(ids)))).all()
    }
    units = [
        _group(
            form,
            names.get(u, ("", "–"))[1],
            rows,
            smallest,
            hidden=u in hidden_units,
            held=held.get(u, frozenset()),
        )
        for u, rows in sorted(by_unit.items(), key=lambda kv: names.get(kv[0], ("~", ""))[0])
        if unit_id is None or u == unit_id
    ]
    overall = (
        _group(form, "", every, smallest, hidden=len(every) < smallest)
        if unit_id is None
        else (units[0] if units else _group(form, "", [], smallest, hidden=True))
    )
    return Results(campaign, form, overall, units)


def _group(
    form: Definition,
    name: str,
    rows: list[dict[str, Any]],
    minimum: int,
    *,
    hidden: bool,
    held: frozenset[str] = frozenset(),
) -> GroupResult:
    """Tally a group, or leave it empty when it may not be shown."""
    if hidden:
        return GroupResult(name, len(rows) if len(rows) >= minimum else 0, [], hidden=True)
    return GroupResult(name, len(rows), _tally(form, rows, minimum, held))


def bar(percent: float) -> str:
    """Return a text bar of ten blocks for a percentage."""
    full = round(percent / 100 * BAR)
    return "█" * full + "░" * (BAR - full)


def labels(question: Question, locale: str = "vi") -> list[tuple[str, str]]:
    """Return (value, label) of a question's answers, in the order they are shown."""
    if question.kind in ("single", "multiple"):
        return [(str(i), o) for i, o in enumerate(question.options, start=1)]
    if question.kind == "yes_no":
        return [(YES, t("survey.flow.yes", locale)), (NO, t("survey.flow.no", locale))]
    if question.kind == "scale":
        return [(str(v), str(v)) for v in range(question.scale, 0, -1)]
    return []


@dataclass
class Change:
    """One question's figure in two campaigns: a scale's mean, else the share of its first value."""

    question: Question
    measure: str
    before: float | None
    after: float | None

    @property
    def delta(self) -> float | None:
        """Return after minus before."""
        return None if self.before is None or self.after is None else self.after - self.before


def _figure(result: QuestionResult | None) -> float | None:
    """Return the figure compared: a scale's mean, yes's share, the first option's share."""
    if result is None or result.hidden or not result.answered:
        return None
    if result.question.kind == "scale":
        return result.mean
    if result.question.kind == "yes_no":
        return result.share(YES)
    return result.share("1") if result.question.kind in ("single", "multiple") else None


async def compare(
    session: AsyncSession, before_id: int, after_id: int, *, actor: Actor
) -> tuple[Results, Results, list[Change]]:
    """Compare two campaigns question by question (the questions they share, by id)."""
    before = await results(session, before_id, actor=actor)
    after = await results(session, after_id, actor=actor)
    if before.overall.hidden or after.overall.hidden:
        raise InvalidInput("survey.error.too_few", minimum=minimum(after.campaign))
    old = {r.question.id: r for r in before.overall.questions}
    changes = [
        Change(
            r.question,
            "mean" if r.question.kind == "scale" else "share",
            _figure(old.get(r.question.id)),
            _figure(r),
        )
        for r in after.overall.questions
        if r.question.id in old
        and r.question.kind != "text"
        and old[r.question.id].question.kind == r.question.kind
    ]
    return before, after, changes


XLSX_COLUMNS = ("id", "area", "question", "unit", "answered", "answer", "count", "percent", "mean")


def workbook(res: Results, *, locale: str) -> bytes:
    """Return the results as an XLSX file: per question and unit, and the free texts apart."""
    book = Workbook()
    sheet = book.active
    assert sheet is not None
    sheet.title = t("survey.xlsx.sheet_results", locale)[:31]
    sheet.append([t(f"survey.xlsx.col_{c}", locale) for c in XLSX_COLUMNS])
    everyone = t("survey.xlsx.everyone", locale)
    too_few = t("survey.xlsx.too_few", locale, minimum=minimum(res.campaign))
    held_back = t("survey.xlsx.held_back", locale)
    for group in [res.overall, *res.units]:
        name = group.name or everyone
        if group.hidden:
            sheet.append(["", "", "", name, "", held_back if group.respondents else too_few])
            continue
        for q in group.questions:
            head = [q.question.id, q.question.area, q.question.text, name, q.answered]
            if q.hidden:
                sheet.append([*head, held_back if q.held_back else too_few])
                continue
            if q.question.kind == "text":
                sheet.append(head)
                continue
            mean = round(q.mean, 2) if q.mean is not None else None
            for value, label in labels(q.question, locale):
                sheet.append([*head, label, q.counts[value], round(q.share(value), 1), mean])
    texts = book.create_sheet(t("survey.xlsx.sheet_texts", locale)[:31])
    texts.append([t(f"survey.xlsx.col_{c}", locale) for c in ("id", "question", "text")])
    for q in res.overall.questions:
        for text in q.texts:
            texts.append([q.question.id, q.question.text, text])
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()
