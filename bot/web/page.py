"""What every dashboard page shares: the app's state, the request's session, rendering, menu."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from jinja2 import Environment
from sqlmodel.ext.asyncio.session import AsyncSession
from starlette.requests import Request
from starlette.responses import HTMLResponse

from bot.clock import Clock
from bot.config import Settings
from bot.db import SessionMaker
from bot.i18n import LOCALES, t
from bot.i18n.formats import format_number
from bot.services.dashboard import auth
from bot.services.dashboard.auth import WIDE_ROLES
from bot.services.errors import InvalidInput
from bot.services.reports.stats import DEFAULT_PERIOD, Period, parse_period

PERIODS = ("7d", "30d", "90d", "month", "year")
NAV = (
    ("overview", "/"),
    ("directives", "/directives"),
    ("tasks", "/tasks"),
    ("ratings", "/ratings"),
    ("cases", "/cases"),
    ("apologies", "/apologies"),
    ("broadcasts", "/broadcasts"),
    ("surveys", "/surveys"),
    ("downloads", "/downloads"),
)
WIDE_ONLY = frozenset({"broadcasts"})  # leadership's pages (the service refuses the others too)


def nav_for(page: Page) -> list[tuple[str, str]]:
    """Return the menu an actor is offered."""
    wide = page.signed.actor.has_any(WIDE_ROLES)
    return [(name, path) for name, path in NAV if wide or name not in WIDE_ONLY]


@dataclass(frozen=True)
class Web:
    """What the application reads: settings, database sessions, the clock, the templates."""

    settings: Settings
    maker: SessionMaker
    clock: Clock
    env: Environment


@dataclass
class Page:
    """One request of a signed-in person: their session, the database, the time, the language."""

    web: Web
    request: Request
    session: AsyncSession
    signed: auth.Signed
    now: datetime

    @property
    def locale(self) -> str:
        """Return the language the session reads in."""
        return self.signed.locale

    @property
    def settings(self) -> Settings:
        """Return the installation's settings."""
        return self.web.settings

    def param(self, name: str) -> str | None:
        """Return a query parameter, stripped, None when empty."""
        value = self.request.query_params.get(name, "").strip()
        return value[:64] or None

    def period(self) -> tuple[str, Period]:
        """Return the period asked for (its name and its bounds)."""
        name = self.param("period") or DEFAULT_PERIOD
        if name not in PERIODS:
            raise InvalidInput("dashboard.error.period")
        return name, parse_period(name, now=self.now, tz=self.settings.scheduler.tz)

    def render(self, template: str, **values: Any) -> HTMLResponse:
        """Render a page in the session's language."""
        return render(
            self.web,
            self.request,
            template,
            self.locale,
            signed=self.signed,
            active=template.removesuffix(".html"),
            nav=nav_for(self),
            roles=roles_label(self.signed, self.locale),
            **values,
        )


def roles_label(signed: auth.Signed, locale: str) -> str:
    """Return the roles a signed-in person holds, in their language."""
    return ", ".join(t(f"roles.{role}", locale) for role in sorted(signed.actor.roles))


def _translator(locale: str) -> Callable[..., str]:
    """Return the catalog lookup of one language, for templates."""

    def translate(key: str, **params: Any) -> str:
        """Render a catalog key."""
        return t(key, locale, **params)

    return translate


def render(
    web: Web, request: Request, template: str, locale: str, *, status: int = 200, **values: Any
) -> HTMLResponse:
    """Render a template with the helpers every page uses."""
    tz = web.settings.scheduler.tz

    def when(moment: datetime | None) -> str:
        """Write a moment as 'HH:MM dd/mm/yyyy' in the agency's time zone."""
        return moment.astimezone(tz).strftime("%H:%M %d/%m/%Y") if moment else "–"

    def day(moment: Any) -> str:
        """Write a day as dd/mm/yyyy."""
        if moment is None:
            return "–"
        if isinstance(moment, datetime):
            moment = moment.astimezone(tz)
        return str(moment.strftime("%d/%m/%Y"))

    def num(value: Decimal | float | int | None, digits: int = 1) -> str:
        """Write a number with the language's decimal mark."""
        return "–" if value is None else format_number(value, locale, digits=digits)

    body = web.env.get_template(template).render(
        _=_translator(locale),
        locale=locale,
        locales=LOCALES,
        when=when,
        day=day,
        num=num,
        path=request.url.path,
        **values,
    )
    return HTMLResponse(body, status_code=status)
