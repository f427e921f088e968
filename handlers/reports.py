"""The scoreboard report in chat: /report [unit code] [period]."""

from __future__ import annotations

from collections.abc import Sequence

from bot.messages import OutboundMessage, Text
from bot.services.errors import InvalidInput
from bot.services.reports import leadership
from bot.services.reports import stats as rating_stats
from bot.services.reports.scoreboard import Window
from handlers.context import Context

MAX_ARGS = 2


def _usage() -> InvalidInput:
    """Return the error that shows the command's usage."""
    return InvalidInput("errors.usage", usage=Text("report.usage"))


def parse_args(args: Sequence[str]) -> tuple[str | None, str | None]:
    """Read the optional unit code and period, in any order, each at most once."""
    if len(args) > MAX_ARGS:
        raise _usage()
    periods = [a for a in args if rating_stats.looks_like_period(a)]
    codes = [a for a in args if not rating_stats.looks_like_period(a)]
    if len(periods) > 1 or len(codes) > 1:
        raise _usage()
    return (codes[0] if codes else None), (periods[0] if periods else None)


async def report(ctx: Context) -> list[OutboundMessage]:
    """Send the scoreboard summary now; queue its chart and XLSX where the channel takes files."""
    unit_code, period_text = parse_args(ctx.event.args)
    settings = ctx.deps.settings
    tz = settings.scheduler.tz
    try:
        period = rating_stats.parse_period(period_text, now=ctx.now, tz=tz)
    except InvalidInput:
        raise _usage() from None
    result = await leadership.report_for(
        ctx.session,
        actor=ctx.actor,
        window=Window(period.since, period.until, tz),
        now=ctx.now,
        settings=settings,
        unit_code=unit_code,
    )
    summary = await leadership.deliver(
        ctx.session, contact=ctx.contact, report=result, now=ctx.now, settings=settings
    )
    return [summary]
