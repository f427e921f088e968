"""Periodic sweeps the job runner runs while it holds the lease."""

from __future__ import annotations

import logging

from bot.db import transaction
from bot.runtime import Runtime
from bot.services import digests
from bot.services.calendar import WorkCalendar
from bot.services.directives import chasing
from bot.services.dossiers import apologies
from bot.services.ratings import cases
from bot.services.reports import leadership
from bot.services.surveys import campaigns
from bot.services.tasks import task_series, tasks
from jobs.runner import JobRunner

log = logging.getLogger(__name__)


async def chase_directives(runtime: Runtime) -> chasing.ChaseResult:
    """Remind, then escalate, unacknowledged directives (one sweep)."""
    calendar = WorkCalendar.from_settings(runtime.settings)
    async with transaction(runtime.maker) as session:
        result = await chasing.chase(
            session,
            now=runtime.clock.now(),
            calendar=calendar,
            settings=runtime.settings.directives,
        )
    if result.reminders or result.head_alerts or result.admin_alerts:
        log.info(
            "directive sweep: %d reminders, %d head alerts, %d admin alerts, %d closed",
            result.reminders,
            result.head_alerts,
            result.admin_alerts,
            result.closed,
        )
    return result


async def remind_tasks(runtime: Runtime) -> tasks.SweepResult:
    """Send each due task assignment its current ladder step (one sweep)."""
    calendar = WorkCalendar.from_settings(runtime.settings)
    async with transaction(runtime.maker) as session:
        result = await tasks.sweep(
            session, now=runtime.clock.now(), cal=calendar, settings=runtime.settings.tasks
        )
    if result.reminders or result.leadership:
        log.info(
            "task sweep: %d assignments, %d reminders, %d leadership alerts",
            result.assignments,
            result.reminders,
            result.leadership,
        )
    return result


async def spawn_series(runtime: Runtime) -> int:
    """Create the recurring tasks' occurrences that are due to be created."""
    calendar = WorkCalendar.from_settings(runtime.settings)
    async with transaction(runtime.maker) as session:
        return await task_series.spawn_due(
            session, now=runtime.clock.now(), cal=calendar, settings=runtime.settings.tasks
        )


async def send_digests(runtime: Runtime) -> int:
    """Queue the weekly digests once per fire of tasks.digest_cron."""
    async with transaction(runtime.maker) as session:
        return await digests.digest_sweep(
            session, now=runtime.clock.now(), settings=runtime.settings
        )


async def send_monthly_reports(runtime: Runtime) -> int:
    """Queue the monthly scoreboard report once per fire of reports.monthly_cron."""
    async with transaction(runtime.maker) as session:
        sent = await leadership.monthly_sweep(
            session, now=runtime.clock.now(), settings=runtime.settings
        )
    if sent:
        log.info("monthly report: queued to %d chats", sent)
    return sent


async def ask_apologies(runtime: Runtime) -> int:
    """Ask units for the reason and new date of dossiers about to be (or already) late."""
    calendar = WorkCalendar.from_settings(runtime.settings)
    async with transaction(runtime.maker) as session:
        return await apologies.sweep(
            session,
            now=runtime.clock.now(),
            cal=calendar,
            lead_days=runtime.settings.dossiers.apology_lead_days,
        )


async def escalate_cases(runtime: Runtime) -> int:
    """Tell leadership about follow-up cases still open past their due time."""
    async with transaction(runtime.maker) as session:
        return await cases.escalate(session, now=runtime.clock.now())


async def sweep_surveys(runtime: Runtime) -> campaigns.SweepResult:
    """Open and close survey campaigns on their dates; remind non-answerers in working hours."""
    calendar = WorkCalendar.from_settings(runtime.settings)
    async with transaction(runtime.maker) as session:
        result = await campaigns.sweep(session, now=runtime.clock.now(), cal=calendar)
    if result.opened or result.reminders or result.closed:
        log.info(
            "survey sweep: %d opened (%d invitations), %d reminders, %d closed",
            result.opened,
            result.invites,
            result.reminders,
            result.closed,
        )
    return result


def register(runner: JobRunner, runtime: Runtime) -> None:
    """Register every sweep with the runner."""
    settings = runtime.settings
    runner.add_sweep(
        "directives.chase", lambda: chase_directives(runtime), settings.directives.sweep_seconds
    )
    runner.add_sweep("tasks.remind", lambda: remind_tasks(runtime), settings.tasks.sweep_seconds)
    runner.add_sweep("tasks.series", lambda: spawn_series(runtime), settings.tasks.sweep_seconds)
    runner.add_sweep("tasks.digest", lambda: send_digests(runtime), settings.tasks.sweep_seconds)
    runner.add_sweep(
        "reports.monthly", lambda: send_monthly_reports(runtime), settings.tasks.sweep_seconds
    )
    runner.add_sweep("ratings.cases", lambda: escalate_cases(runtime), settings.tasks.sweep_seconds)
    runner.add_sweep("surveys", lambda: sweep_surveys(runtime), settings.tasks.sweep_seconds)
    runner.add_sweep(
        "dossiers.apologies", lambda: ask_apologies(runtime), settings.tasks.sweep_seconds
    )
