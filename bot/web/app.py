"""The dashboard's Starlette application: sign-in, the pages, the downloads, the headers.

Every page and download goes through `guarded`: it finds the browser's session (or sends it to
the sign-in page), refuses a POST without the session's CSRF token, and turns a service's
refusal into a 403 (another unit's page, a role that may not see it), 404 or 400 page. The
rules themselves (who sees which unit) live in the services this module calls.
"""

from __future__ import annotations

import secrets
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any

from jinja2 import Environment, PackageLoader, select_autoescape
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from bot.clock import Clock
from bot.config import Settings
from bot.db import SessionMaker, transaction
from bot.i18n import normalize_locale, t
from bot.services.dashboard import auth
from bot.services.errors import NotFound, PermissionDenied, ServiceError
from bot.web import pages
from bot.web.page import Page, Web, nav_for, render, roles_label

COOKIE = "rb_session"
PRE_COOKIE = "rb_login"  # a sign-in form's own CSRF token, before there is a session
CSP = (
    "default-src 'none'; style-src 'self'; img-src 'self' data:; form-action 'self'; "
    "frame-ancestors 'none'; base-uri 'none'"
)
MAX_FORM = 16_384
SAFE = ("GET", "HEAD")  # methods that change nothing
View = Callable[[Request, Page], Awaitable[Response]]


def _error(
    web: Web, request: Request, locale: str, status: int, title: str, text: str, **values: Any
) -> HTMLResponse:
    """Return an error page."""
    return render(
        web, request, "error.html", locale, status=status, title=title, text=text, **values
    )


def _session_limits(settings: Settings) -> dict[str, timedelta]:
    """Return how long a session may idle and live."""
    config = settings.dashboard
    return {
        "idle": timedelta(minutes=config.session_minutes),
        "longest": timedelta(hours=config.session_max_hours),
    }


def _web(request: Request) -> Web:
    """Return the application's state."""
    web = request.app.state.web
    assert isinstance(web, Web)
    return web


async def _form(request: Request) -> dict[str, str]:
    """Read a small urlencoded form (anything else is refused)."""
    if int(request.headers.get("content-length") or 0) > MAX_FORM:
        raise HTTPException(413)
    form = await request.form(max_files=0, max_fields=20)
    return {k: v for k, v in form.items() if isinstance(v, str)}


def guarded(view: View) -> Callable[[Request], Awaitable[Response]]:
    """Wrap a view: a live session (else the sign-in page), CSRF on POST, refusals as pages."""

    async def endpoint(request: Request) -> Response:
        web = _web(request)
        now = web.clock.now()
        async with transaction(web.maker) as session:
            signed = await auth.find_session(
                session, key=request.cookies.get(COOKIE), now=now, **_session_limits(web.settings)
            )
            locale = signed.locale if signed else normalize_locale(web.settings.i18n.default_locale)
            if signed is None:
                if request.method not in SAFE:
                    return _error(
                        web,
                        request,
                        locale,
                        403,
                        t("web.error.forbidden", locale),
                        t("web.login.ended", locale),
                    )
                ended = "?ended=1" if request.cookies.get(COOKIE) else ""
                return RedirectResponse("/login" + ended, status_code=303)
            if request.method == "POST":
                form = await _form(request)
                if not auth.csrf_ok(signed, form.get("csrf")):
                    return _error(
                        web,
                        request,
                        locale,
                        403,
                        t("web.error.forbidden", locale),
                        t("web.error.csrf", locale),
                    )
                request.state.form = form
            page = Page(web, request, session, signed, now)
            try:
                return await view(request, page)
            except PermissionDenied as exc:
                status, title = 403, "web.error.forbidden"
                text = t(exc.key, locale, **exc.params)
            except NotFound as exc:
                status, title = 404, "web.error.not_found"
                text = t(exc.key, locale, **exc.params)
            except ServiceError as exc:
                status, title = 400, "web.error.bad_request"
                text = t(exc.key, locale, **exc.params)
        return _error(
            web,
            request,
            locale,
            status,
            t(title, locale),
            text,
            signed=signed,
            nav=nav_for(page),
            roles=roles_label(signed, locale),
        )

    return endpoint


def _cookie(response: Response, settings: Settings, name: str, value: str, **kw: Any) -> None:
    """Set a cookie no script can read, sent only to this site (and only over https there)."""
    response.set_cookie(
        name,
        value,
        httponly=True,
        samesite="lax",
        secure=settings.dashboard.secure,
        path="/",
        **kw,
    )


def _login_page(
    request: Request, *, error: str | None = None, token: str | None = None, status: int = 200
) -> Response:
    """Show the sign-in page (or the link's confirmation), with a fresh form token."""
    web = _web(request)
    locale = normalize_locale(request.query_params.get("lang") or web.settings.i18n.default_locale)
    pre = secrets.token_urlsafe(24)
    notice = None
    if request.query_params.get("ended"):
        notice = t("web.login.ended", locale)
    elif request.query_params.get("out"):
        notice = t("web.login.signed_out", locale)
    response = render(
        web,
        request,
        "login_link.html" if token else "login.html",
        locale,
        status=status,
        pre=pre,
        token=token,
        error=error,
        notice=notice,
    )
    _cookie(response, web.settings, PRE_COOKIE, pre, max_age=1800)
    return response


def _pre_ok(request: Request, form: dict[str, str]) -> bool:
    """Tell whether a sign-in form came from this site's own page (double-submit token)."""
    cookie, sent = request.cookies.get(PRE_COOKIE, ""), form.get("pre", "")
    return bool(cookie) and secrets.compare_digest(cookie.encode(), sent.encode())


def _signed_in(request: Request, opened: auth.Opened) -> Response:
    """Send a browser that just signed in to the overview with its session cookie."""
    response = RedirectResponse("/", status_code=303)
    _cookie(response, _web(request).settings, COOKIE, opened.key)
    response.delete_cookie(PRE_COOKIE, path="/")
    return response


async def login(request: Request) -> Response:
    """GET: the sign-in page; POST: sign in with a staff code and a password."""
    if request.method in SAFE:
        return _login_page(request)
    web = _web(request)
    form = await _form(request)
    locale = normalize_locale(web.settings.i18n.default_locale)
    if not _pre_ok(request, form):
        return _error(
            web, request, locale, 403, t("web.error.forbidden", locale), t("web.error.csrf", locale)
        )
    async with transaction(web.maker) as session:
        try:
            opened = await auth.password_login(
                session,
                person_code=form.get("code", ""),
                password=form.get("password", ""),
                now=web.clock.now(),
            )
        except ServiceError as exc:  # committed all the same: the count of wrong passwords
            return _login_page(request, error=t(exc.key, locale, **exc.params), status=400)
    return _signed_in(request, opened)


async def login_link(request: Request) -> Response:
    """GET: confirm a one-time link (a link preview must not spend it); POST: spend it."""
    web = _web(request)
    if request.method in SAFE:
        return _login_page(request, token=request.path_params["token"])
    form = await _form(request)
    locale = normalize_locale(web.settings.i18n.default_locale)
    if not _pre_ok(request, form):
        return _error(
            web, request, locale, 403, t("web.error.forbidden", locale), t("web.error.csrf", locale)
        )
    try:
        async with transaction(web.maker) as session:
            opened = await auth.redeem_link(
                session, token=form.get("token", ""), now=web.clock.now()
            )
    except ServiceError as exc:
        return _login_page(request, error=t(exc.key, locale, **exc.params), status=400)
    return _signed_in(request, opened)


async def logout(request: Request, page: Page) -> Response:
    """Sign out: the session ends in the database and the cookie goes."""
    await auth.end_session(page.session, row_id=page.signed.row_id, now=page.now)
    response = RedirectResponse("/login?out=1", status_code=303)
    response.delete_cookie(COOKIE, path="/")
    return response


async def language(request: Request, page: Page) -> Response:
    """Switch the session's language; back to the page it was switched on."""
    form: dict[str, str] = request.state.form
    await auth.set_locale(page.session, row_id=page.signed.row_id, locale=form.get("locale", ""))
    back = form.get("back", "/")
    if not back.startswith("/") or back.startswith("//"):
        back = "/"
    return RedirectResponse(back, status_code=303)


class SecurityHeaders:
    """Add the security headers to every answer (HSTS only when served over https)."""

    def __init__(self, app: ASGIApp, *, https: bool, locale: str) -> None:
        self.app = app
        self.failed = t("web.error.internal", locale).encode()
        self.extra = [
            (b"content-security-policy", CSP.encode()),
            (b"x-frame-options", b"DENY"),
            (b"x-content-type-options", b"nosniff"),
            (b"referrer-policy", b"no-referrer"),
            (b"cross-origin-opener-policy", b"same-origin"),
            (b"permissions-policy", b"camera=(), microphone=(), geolocation=()"),
        ]
        if https:
            self.extra.append((b"strict-transport-security", b"max-age=31536000"))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Pass the request on; add the headers to the answer's start."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        static = scope["path"].startswith("/static/")
        started = False

        async def with_headers(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                headers = list(message.get("headers", []))
                headers += self.extra
                if not static:
                    headers.append((b"cache-control", b"no-store"))
                message["headers"] = headers
            await send(message)

        try:
            await self.app(scope, receive, with_headers)
        except Exception:
            if not started:  # answer the failure here, with the headers; the error is still raised
                plain = [(b"content-type", b"text/plain; charset=utf-8")]
                await with_headers({"type": "http.response.start", "status": 500, "headers": plain})
                await with_headers({"type": "http.response.body", "body": self.failed})
            raise


async def not_found(request: Request, exc: Exception) -> Response:
    """Answer an unknown address or a refused body with a page, not a bare text."""
    web = _web(request)
    locale = normalize_locale(web.settings.i18n.default_locale)
    status = exc.status_code if isinstance(exc, HTTPException) else 500
    key = "web.error.not_found" if status == 404 else "web.error.bad_request"
    text = t("web.error.not_found_text", locale) if status == 404 else ""
    return _error(web, request, locale, status, t(key, locale), text)


def routes() -> list[Route | Mount]:
    """Return every route of the dashboard."""
    return [
        Route("/login", login, methods=["GET", "POST"]),
        Route("/login/{token}", login_link, methods=["GET"]),
        Route("/login-link", login_link, methods=["POST"]),
        Route("/logout", guarded(logout), methods=["POST"]),
        Route("/lang", guarded(language), methods=["POST"]),
        *[Route(path, guarded(view), methods=["GET"]) for path, view in pages.PAGES],
        Mount("/static", StaticFiles(packages=[("bot.web", "static")]), name="static"),
    ]


def create_app(settings: Settings, maker: SessionMaker, clock: Clock) -> Starlette:
    """Return the dashboard application on a database."""
    env = Environment(
        loader=PackageLoader("bot.web", "templates"),
        autoescape=select_autoescape(["html"]),
        trim_blocks=True,
        lstrip_blocks=True,
    )
    app = Starlette(
        routes=routes(),
        middleware=[
            Middleware(
                SecurityHeaders,
                https=settings.dashboard.secure,
                locale=normalize_locale(settings.i18n.default_locale),
            )
        ],
        exception_handlers={HTTPException: not_found},
    )
    app.state.web = Web(settings, maker, clock, env)
    return app
