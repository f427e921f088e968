"""Satisfaction statistics in chat: /stats [unit code] [period] [xlsx]."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from bot.messages import Items, OutboundMessage, Text
from bot.services.errors import InvalidInput
from bot.services.ratings.ratings import ELEMENTS, LEVELS
from bot.services.reports import documents
from bot.services.reports import stats as rating_stats
from bot.services.reports.stats import Stats, Tally
from handlers.context import Context, msg

TOP = 10
MAX_ARGS = 3


@dataclass(frozen=True)
class Request:
    """What /stats was asked for."""

    unit_code: str | None = None
    period: str | None = None
    xlsx: bool = False


def _usage() -> InvalidInput:
    """Return the error that shows the command's usage."""
    return InvalidInput("errors.usage", usage=Text("stats.usage"))


def parse_args(args: Sequence[str]) -> Request:
    """Read the optional unit code, period and 'xlsx', in any order, each at most once."""
    if len(args) > MAX_ARGS:
        raise _usage()
    found: dict[str, Any] = {}
    for arg in args:
        value: str | bool = arg
        if arg.lower() == "xlsx":
            slot, value = "xlsx", True
        elif rating_stats.looks_like_period(arg):
            slot = "period"
        else:
            slot = "unit_code"
        if slot in found:
            raise _usage()
        found[slot] = value
    return Request(**found)


async def stats(ctx: Context) -> list[OutboundMessage]:
    """Show a unit's (or every unit's) satisfaction statistics, or queue them as XLSX."""
    request = parse_args(ctx.event.args)
    tz = ctx.deps.settings.scheduler.tz
    period = rating_stats.parse_period(request.period, now=ctx.now, tz=tz)
    result = await rating_stats.stats(
        ctx.session,
        actor=ctx.actor,
        unit_code=request.unit_code,
        since=period.since,
        until=period.until,
        group=period.group,
        tz=tz,
    )
    if request.xlsx:
        await documents.queue_stats_xlsx(
            ctx.session,
            contact=ctx.contact,
            result=result,
            now=ctx.now,
            settings=ctx.deps.settings,
        )
        return [msg("stats.xlsx_queued")]
    return [stats_message(result)]


def decimal(value: Decimal) -> Text:
    """Return a number with decimals, written with the reader's decimal separator."""
    whole, _, fraction = str(value).partition(".")
    return Text("stats.decimal", {"whole": int(whole), "fraction": fraction or "0"})


def figures(tally: Tally) -> Text:
    """Return a tally as 'count, average, share satisfied' (or 'no ratings')."""
    if tally.average is None or tally.satisfied_share is None:
        return Text("stats.no_ratings")
    return Text(
        "stats.figures",
        {
            "count": tally.count,
            "average": decimal(tally.average),
            "satisfied": decimal(tally.satisfied_share),
        },
    )


def _unit(result: Stats) -> str | Text:
    """Return the unit's name, or 'all units'."""
    return result.unit.name if result.unit is not None else Text("stats.all_units")


def _levels(result: Stats) -> Items:
    """Return the five levels with counts and shares."""
    return Items(
        "stats.level_line",
        tuple(
            {
                "level": Text(f"rating.level.{level}"),
                "count": result.levels[level],
                "share": decimal(result.share(result.levels[level])),
            }
            for level in LEVELS
        ),
    )


def _folded(result: Stats) -> Items:
    """Return the three folded levels with counts and shares."""
    return Items(
        "stats.level_line",
        tuple(
            {
                "level": Text(f"stats.fold.{fold}"),
                "count": count,
                "share": decimal(result.share(count)),
            }
            for fold, count in result.folded.items()
        ),
    )


def _elements(result: Stats) -> Items:
    """Return each SIPAS element's average and number of scores."""
    rows = []
    for name in ELEMENTS:
        tally = result.elements[name]
        value = (
            Text("stats.element_figures", {"average": decimal(tally.average), "count": tally.count})
            if tally.average is not None
            else Text("stats.no_scores")
        )
        rows.append({"element": Text(f"rating.element.{name}"), "figures": value})
    return Items("stats.element_line", tuple(rows))


def _ranked(rows: Sequence[tuple[str | Text, Tally]]) -> tuple[Items | Text, str | Text]:
    """Return the first rows as a list, and a note of how many more are in the XLSX."""
    if not rows:
        return Text("stats.none"), ""
    shown = Items(
        "stats.named_line", tuple({"name": n, "figures": figures(t)} for n, t in rows[:TOP])
    )
    more = Text("stats.more", {"count": len(rows) - TOP}) if len(rows) > TOP else ""
    return shown, more


def _procedure_name(row: rating_stats.ProcedureRow) -> Text:
    """Return a procedure as 'code – name', or 'not stated'."""
    if row.code is None:
        return Text("stats.no_procedure")
    return Text("stats.procedure_name", {"code": row.code, "name": row.name or ""})


def _trend(result: Stats) -> Items:
    """Return the weekly or monthly trend."""
    group = result.period.group
    return Items(
        "stats.named_line",
        tuple(
            {
                "name": Text(f"stats.{group}_label", {"label": rating_stats.trend_label(r, group)}),
                "figures": figures(r.tally),
            }
            for r in result.trend
        ),
    )


def stats_message(result: Stats) -> OutboundMessage:
    """Render the statistics as one message."""
    scope: dict[str, Any] = {
        "unit": _unit(result),
        "since": result.first_day,
        "until": result.last_day,
    }
    if not result.total:
        return msg("stats.empty", **scope)
    procedures, procedures_more = _ranked(
        [(_procedure_name(p), p.tally) for p in result.procedures]
    )
    officers, officers_more = _ranked([(o.name, o.tally) for o in result.officers])
    units: Text | str = ""
    if result.units:
        lines, more = _ranked([(u.unit.name, u.tally) for u in result.units])
        units = Text("stats.units_section", {"lines": lines, "more": more})
    return msg(
        "stats.summary",
        **scope,
        total=result.total,
        levels=_levels(result),
        folded=_folded(result),
        elements=_elements(result),
        units=units,
        procedures=procedures,
        procedures_more=procedures_more,
        officers=officers,
        officers_more=officers_more,
        group=Text(f"stats.group.{result.period.group}"),
        trend=_trend(result),
    )
