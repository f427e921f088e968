"""The web dashboard without a browser: sign-in, sessions, CSRF, headers, each route by role."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, replace
from datetime import timedelta
from io import BytesIO

import httpx
import pytest
from openpyxl import load_workbook
from sqlmodel import select
from starlette.applications import Starlette
from starlette.routing import Route

from bot.clock import FakeClock
from bot.config import Settings
from bot.db import SessionMaker
from bot.i18n import t
from bot.models import (
    AuditLog,
    DashboardLogin,
    DashboardPassword,
    DashboardSession,
    Person,
    PersonRole,
    Role,
)
from bot.services.dashboard import auth
from bot.services.errors import InvalidInput, PermissionDenied
from bot.services.org.access import system_actor
from bot.services.reports.xlsx import data_rows
from bot.web import pages
from bot.web.app import COOKIE, create_app
from tests import tg
from tests.dashboard_seed import Seeded, seed

BASE = "http://dash.test"
PASSWORD = "mật khẩu đủ dài 2026"
SIGNED_IN = ("admin", "leader", "head")
OPERATOR = system_actor("cli:test")
REFUSED = ("staff", "headless", "other_head_removed")


@dataclass
class Harness:
    """The dashboard on a seeded database, on a fake clock."""

    app: Starlette
    maker: SessionMaker
    clock: FakeClock
    seeded: Seeded
    settings: Settings


def settings_for(url: str = BASE) -> Settings:
    """Return settings with the dashboard enabled at an address."""
    return Settings(dashboard={"enabled": True, "public_url": url})


@pytest.fixture
async def web(maker, clock) -> Harness:
    seeded = await seed(maker, clock.now())
    settings = settings_for()
    return Harness(create_app(settings, maker, clock), maker, clock, seeded, settings)


def client(h: Harness, base: str = BASE) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=h.app), base_url=base)


async def link_for(h: Harness, persona: str) -> str:
    """Ask for a sign-in link as the bot would."""
    async with h.maker() as s:
        person = await s.get(Person, h.seeded.people[persona])
        actor = await auth.person_actor(s, person)
        token = await auth.issue_link(s, actor=actor, now=h.clock.now(), minutes=10)
        await s.commit()
    return token


def form_value(html: str, name: str) -> str:
    found = re.search(rf'name="{name}" value="([^"]+)"', html)
    assert found is not None, name
    return found.group(1)


async def spend(c: httpx.AsyncClient, token: str) -> httpx.Response:
    """Open a sign-in link and press its button."""
    page = await c.get(f"/login/{token}")
    assert page.status_code == 200
    return await c.post("/login-link", data={"pre": form_value(page.text, "pre"), "token": token})


@asynccontextmanager
async def signed_in(h: Harness, persona: str) -> AsyncIterator[httpx.AsyncClient]:
    async with client(h) as c:
        answer = await spend(c, await link_for(h, persona))
        assert answer.status_code == 303, answer.text
        assert answer.headers["location"] == "/"
        yield c


async def csrf_of(c: httpx.AsyncClient) -> str:
    return form_value((await c.get("/tasks")).text, "csrf")


# -- signing in ------------------------------------------------------------------------------


async def test_a_link_signs_in_once_and_is_stored_hashed(web):
    token = await link_for(web, "admin")
    async with web.maker() as s:
        stored = (await s.exec(select(DashboardLogin))).one()
    assert stored.token_hash == auth.digest(token)
    assert token not in stored.token_hash
    async with client(web) as c:
        assert (await spend(c, token)).status_code == 303
        overview = await c.get("/")
        assert overview.status_code == 200
        assert t("web.overview.title", "vi") in overview.text
    async with web.maker() as s:
        audit = (await s.exec(select(AuditLog).where(AuditLog.action == "dashboard_sign_in"))).one()
    assert (audit.actor, audit.action, audit.detail) == ("person:AD01", "dashboard_sign_in", "link")
    async with client(web) as again:
        second = await spend(again, token)
        assert second.status_code == 400
        assert t("dashboard.error.link", "vi") in second.text
        assert (await again.get("/")).status_code == 303


async def test_opening_a_link_without_pressing_spends_nothing(web):
    # A chat app's link preview fetches the address: only the button's POST signs in.
    token = await link_for(web, "leader")
    async with client(web) as preview:
        assert (await preview.get(f"/login/{token}")).status_code == 200
        assert COOKIE not in preview.cookies
    async with client(web) as c:
        assert (await spend(c, token)).status_code == 303


async def test_a_link_expires_in_minutes(web):
    token = await link_for(web, "head")
    web.clock.advance(timedelta(minutes=11))
    async with client(web) as c:
        answer = await spend(c, token)
    assert answer.status_code == 400
    assert t("dashboard.error.link", "vi") in answer.text


async def test_plain_staff_and_a_head_without_a_unit_get_no_link(web):
    async with web.maker() as s:
        for persona in ("staff", "headless"):
            person = await s.get(Person, web.seeded.people[persona])
            actor = await auth.person_actor(s, person)
            with pytest.raises(PermissionDenied):
                await auth.issue_link(s, actor=actor, now=web.clock.now(), minutes=10)
            with pytest.raises(PermissionDenied):
                await auth.set_password(
                    s,
                    person_code=person.code,
                    password=PASSWORD,
                    now=web.clock.now(),
                    actor=OPERATOR,
                )


async def test_password_sign_in_locks_after_five_misses(web):
    async with web.maker() as s:
        await auth.set_password(
            s, person_code="LD01", password=PASSWORD, now=web.clock.now(), actor=OPERATOR
        )
        with pytest.raises(InvalidInput):
            await auth.set_password(
                s, person_code="LD01", password="short", now=web.clock.now(), actor=OPERATOR
            )
        await s.commit()
        stored = await s.get(DashboardPassword, web.seeded.people["leader"])
    assert stored.password_hash.startswith("$argon2")
    async with web.maker() as s:
        leader = await auth.person_actor(s, await s.get(Person, web.seeded.people["leader"]))
        with pytest.raises(PermissionDenied):  # only an admin (or the operator) sets passwords
            await auth.set_password(
                s, person_code="HA01", password=PASSWORD, now=web.clock.now(), actor=leader
            )
    async with client(web) as c:
        page = await c.get("/login")
        pre = form_value(page.text, "pre")
        for _ in range(5):
            wrong = await c.post("/login", data={"pre": pre, "code": "LD01", "password": "sai"})
            assert wrong.status_code == 400
            assert t("dashboard.error.password", "vi") in wrong.text
            pre = form_value(wrong.text, "pre")
        locked = await c.post("/login", data={"pre": pre, "code": "LD01", "password": PASSWORD})
        assert t("dashboard.error.locked", "vi") in locked.text
        web.clock.advance(timedelta(minutes=16))
        pre = form_value(locked.text, "pre")
        ok = await c.post("/login", data={"pre": pre, "code": "LD01", "password": PASSWORD})
        assert ok.status_code == 303
        assert (await c.get("/")).status_code == 200


async def test_an_unknown_code_is_refused_like_a_wrong_password(web):
    async with client(web) as c:
        pre = form_value((await c.get("/login")).text, "pre")
        answer = await c.post("/login", data={"pre": pre, "code": "NOPE", "password": PASSWORD})
    assert answer.status_code == 400
    assert t("dashboard.error.password", "vi") in answer.text


async def test_a_sign_in_form_posted_from_elsewhere_is_refused(web):
    token = await link_for(web, "admin")
    async with client(web) as c:
        forged = await c.post("/login-link", data={"pre": "forged", "token": token})
        assert forged.status_code == 403
        assert (await spend(c, token)).status_code == 303  # the forged post spent nothing


# -- sessions --------------------------------------------------------------------------------


async def test_a_session_ends_after_its_idle_minutes_and_its_longest_hours(web):
    async with signed_in(web, "admin") as c:
        web.clock.advance(timedelta(minutes=59))
        assert (await c.get("/")).status_code == 200
        web.clock.advance(timedelta(minutes=61))
        ended = await c.get("/")
        assert ended.status_code == 303
        assert ended.headers["location"] == "/login?ended=1"
    async with signed_in(web, "admin") as c:
        for _ in range(13):
            web.clock.advance(timedelta(minutes=55))
            assert (await c.get("/tasks")).status_code == 200
        web.clock.advance(timedelta(minutes=55))  # past 12 hours, never idle an hour
        assert (await c.get("/tasks")).status_code == 303


async def test_signing_out_ends_the_session_on_the_server(web):
    async with signed_in(web, "admin") as c:
        key = c.cookies[COOKIE]
        out = await c.post("/logout", data={"csrf": await csrf_of(c)})
        assert out.status_code == 303
    async with client(web) as replay:  # the old cookie, replayed, opens nothing
        replay.cookies.set(COOKIE, key)
        assert (await replay.get("/")).status_code == 303
    async with web.maker() as s:
        row = (await s.exec(select(DashboardSession))).one()
    assert row.ended_at is not None
    assert row.key_hash == auth.digest(key)


async def test_a_forged_post_is_refused_and_changes_nothing(web):
    async with signed_in(web, "admin") as c:
        for data in ({}, {"csrf": "forged"}, {"csrf": ""}):
            assert (await c.post("/logout", data=data)).status_code == 403
            refused = await c.post("/lang", data={**data, "locale": "en"})
            assert refused.status_code == 403
            assert t("web.error.csrf", "vi") in refused.text
        still = await c.get("/")
        assert still.status_code == 200
        assert t("web.overview.title", "vi") in still.text  # still signed in, still Vietnamese


async def test_roles_taken_away_end_the_session(web):
    async with signed_in(web, "head") as c:
        async with web.maker() as s:
            row = await s.get(PersonRole, (web.seeded.people["head"], Role.UNIT_HEAD.value))
            await s.delete(row)
            await s.commit()
        assert (await c.get("/")).status_code == 303


async def test_the_language_switch_keeps_to_the_session(web):
    async with signed_in(web, "admin") as c:
        switched = await c.post(
            "/lang", data={"csrf": await csrf_of(c), "locale": "en", "back": "/tasks"}
        )
        assert switched.status_code == 303
        assert switched.headers["location"] == "/tasks"
        page = await c.get("/tasks")
        assert t("web.tasks.title", "en") in page.text
        away = await c.post(
            "/lang", data={"csrf": await csrf_of(c), "locale": "vi", "back": "//evil.test/"}
        )
        assert away.headers["location"] == "/"


# -- headers ---------------------------------------------------------------------------------


async def test_every_answer_carries_the_security_headers(web):
    async with signed_in(web, "admin") as c:
        shared = web.seeded.surveys["shared"]
        surveys = ("/surveys", f"/surveys/{shared}", f"/download/survey/{shared}.xlsx")
        for path in ("/", "/login", "/static/style.css", "/no-such-page", *surveys):
            answer = await c.get(path)
            csp = answer.headers["content-security-policy"]
            assert "script-src" not in csp
            assert "default-src 'none'" in csp
            assert "frame-ancestors 'none'" in csp
            assert answer.headers["x-frame-options"] == "DENY"
            assert answer.headers["x-content-type-options"] == "nosniff"
            assert answer.headers["referrer-policy"] == "no-referrer"
            assert "strict-transport-security" not in answer.headers
        for path in ("/", *surveys[:2]):
            assert "<script" not in (await c.get(path)).text
        assert (await c.get("/no-such-page")).status_code == 404
    async with client(web) as anonymous:  # HEAD is answered like GET, and changes nothing
        assert (await anonymous.head("/login")).status_code == 200
        assert (await anonymous.head("/tasks")).status_code == 303


async def test_a_failing_page_answers_500_with_the_headers_and_a_translated_text(web, monkeypatch):
    async def broken(*args: object, **kw: object) -> None:
        raise RuntimeError("the database went away")

    monkeypatch.setattr(pages.listings, "tasks", broken)
    async with signed_in(web, "admin") as signed:
        cookies = signed.cookies
    transport = httpx.ASGITransport(app=web.app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url=BASE, cookies=cookies) as c:
        answer = await c.get("/tasks")
    assert answer.status_code == 500
    assert answer.text == t("web.error.internal", "vi")
    assert "default-src 'none'" in answer.headers["content-security-policy"]
    assert answer.headers["x-frame-options"] == "DENY"
    assert answer.headers["cache-control"] == "no-store"


async def test_over_https_cookies_are_secure_and_hsts_is_sent(maker, clock):
    seeded = await seed(maker, clock.now())
    settings = settings_for("https://dash.test")
    h = Harness(create_app(settings, maker, clock), maker, clock, seeded, settings)
    async with client(h, "https://dash.test") as c:
        answer = await spend(c, await link_for(h, "admin"))
        cookie = answer.headers["set-cookie"]
        assert "Secure" in cookie
        assert "HttpOnly" in cookie
        assert "SameSite=lax" in cookie
        assert answer.headers["strict-transport-security"].startswith("max-age=")


# -- every route, as every role ---------------------------------------------------------------


def routes(s: Seeded) -> dict[str, dict[str, int]]:
    """Return each address and the status each signed-in role gets (200 or 403)."""
    shared, other = s.shared_directive, s.other_directive
    everyone = {"admin": 200, "leader": 200, "head": 200}
    leadership = {"admin": 200, "leader": 200, "head": 403}
    nobody = {"admin": 403, "leader": 403, "head": 403}
    surveys = s.surveys or {"shared": 1, "other": 2, "open": 3}
    return {
        "/": everyone,
        "/?unit=PA&period=7d": everyone,
        "/?unit=XB": leadership,
        "/directives": everyone,
        "/directives?unit=XB": leadership,
        f"/directives/{shared}": everyone,
        f"/directives/{other}": leadership,
        "/tasks": everyone,
        "/tasks?unit=XB": leadership,
        "/ratings": everyone,
        "/ratings?unit=PA&period=90d&level=5": everyone,
        "/ratings?unit=XB&level=3": leadership,
        "/cases": everyone,
        "/cases?unit=XB": leadership,
        "/apologies": everyone,
        "/apologies?unit=XB": leadership,
        "/broadcasts": leadership,
        "/downloads": everyone,
        "/downloads?unit=XB": leadership,
        "/download/stats.xlsx": everyone,
        "/download/stats.xlsx?unit=XB&period=month": leadership,
        "/download/scoreboard.xlsx": everyone,
        "/download/scoreboard.xlsx?unit=XB": leadership,
        f"/download/directive/{shared}.xlsx": everyone,
        f"/download/directive/{other}.xlsx": leadership,
        "/surveys": everyone,
        f"/surveys/{surveys['shared']}": everyone,
        f"/surveys/{surveys['other']}": leadership,
        f"/surveys/{surveys['open']}": everyone,  # the results say when they will show
        f"/download/survey/{surveys['shared']}.xlsx": everyone,
        f"/download/survey/{surveys['other']}.xlsx": leadership,
        f"/download/survey/{surveys['open']}.xlsx": nobody,  # hidden until the close
    }


def test_the_walk_covers_every_route_of_the_app():
    from bot.web.app import routes as app_routes

    walked = {p.split("?")[0] for p in routes(Seeded({}, {}, 7, 8, {}))}
    patterns = [r for r in app_routes() if isinstance(r, Route) and "GET" in (r.methods or ())]
    pages = [r for r in patterns if not r.path.startswith("/login")]
    for route in pages:
        assert any(route.path_regex.match(p) for p in walked), route.path


async def test_every_route_answers_each_role_as_its_table_says(web):
    table = routes(web.seeded)
    for persona in SIGNED_IN:
        async with signed_in(web, persona) as c:
            for path, expected in table.items():
                answer = await c.get(path)
                assert answer.status_code == expected[persona], (persona, path)
                if expected[persona] == 403:
                    assert "xlsx" not in answer.headers["content-type"]
    async with client(web) as anonymous:
        for path in table:
            answer = await anonymous.get(path)
            assert answer.status_code == 303, path
            assert answer.headers["location"].startswith("/login")
        for path in ("/logout", "/lang"):
            assert (await anonymous.post(path, data={"csrf": "x"})).status_code == 403


async def test_staff_and_citizens_cannot_open_a_session(web, maker, clock):
    # No link, no password (above); and a session row made for them by hand opens nothing.
    async with maker() as s:
        staff = await s.get(Person, web.seeded.people["staff"])
        with pytest.raises(PermissionDenied):
            await auth._open(s, staff, clock.now(), "test")
        s.add(
            DashboardSession(
                key_hash=auth.digest("planted"),
                person_id=staff.id,
                csrf="c",
                created_at=clock.now(),
                last_seen_at=clock.now(),
            )
        )
        await s.commit()
    async with client(web) as c:
        c.cookies.set(COOKIE, "planted")
        for path in routes(web.seeded):
            assert (await c.get(path)).status_code == 303, path


async def test_a_head_sees_their_unit_only_and_leadership_all(web):
    async with signed_in(web, "head") as head:
        page = (await head.get("/")).text
        assert 'data-unit="PA"' in page
        assert 'data-unit="XB"' not in page
        assert re.search(r'data-figure="ratings">3<', page)
        refused = await head.get("/ratings?unit=XB")
        assert t("errors.forbidden_unit", "vi", unit="UBND xã Bình Minh") in refused.text
        tasks = (await head.get("/tasks")).text
        assert "UBND xã Bình Minh" not in tasks
        assert "UBND phường An Phú" in tasks
    async with signed_in(web, "admin") as admin:
        page = (await admin.get("/")).text
        assert 'data-unit="PA"' in page
        assert 'data-unit="XB"' in page
        assert re.search(r'data-figure="ratings">5<', page)  # 3 + 2 in the last 30 days
        rated = (await admin.get("/ratings?level=5")).text
        assert re.search(
            r'data-figure="total">' + re.escape(t("web.count", "vi", shown="2", total="2")), rated
        )


async def test_a_download_is_the_report_the_service_renders(web):
    async with signed_in(web, "head") as c:
        answer = await c.get(f"/download/directive/{web.seeded.shared_directive}.xlsx")
    assert answer.headers["content-type"].startswith("application/vnd.openxmlformats")
    assert "attachment" in answer.headers["content-disposition"]
    sheet = load_workbook(BytesIO(answer.content)).active
    units = [row[1] for row in data_rows(sheet)[:-1]]  # the last row is the totals
    assert units == ["UBND phường An Phú"]  # the head's unit only


# -- /dashboard in chat ----------------------------------------------------------------------


async def test_dashboard_command_sends_a_one_time_link(bot_harness, clock):
    rt = bot_harness.app.bot_data["runtime"]
    await seed(bot_harness.maker, clock.now())
    async with bot_harness.maker() as s:
        from tests import factories as f

        people = {p.code: p for p in (await s.exec(select(Person))).all()}
        await f.contact(s, "8101", people["HA01"])
        await f.contact(s, "8102", people["ST01"])
        await f.contact(s, "8103")  # a citizen
        await s.commit()
    off = await bot_harness.send(8101, "/dashboard")
    assert off == [t("dashboard.off", "vi")]
    rt.deps = replace(rt.deps, settings=settings_for("https://baocao.test"))
    texts = await bot_harness.send(8101, "/dashboard")
    assert len(texts) == 1
    url = re.search(r"https://baocao\.test/login/(\S+)", texts[0])
    assert url is not None
    async with bot_harness.maker() as s:
        stored = (await s.exec(select(DashboardLogin))).one()
    assert stored.token_hash == auth.digest(url.group(1))
    assert stored.expires_at == clock.now() + timedelta(minutes=10)
    group = await bot_harness.send(8101, "/dashboard", chat_type="group")
    assert len(group) == 1
    assert "baocao.test" not in group[0]
    citizen = await bot_harness.send(8103, "/dashboard")
    assert len(citizen) == 1
    assert "baocao.test" not in citizen[0]
    refused = await bot_harness.send(8102, "/dashboard")
    assert refused
    assert "/dashboard" not in refused[0]
    assert "login" not in refused[0]
    assert tg is not None


def test_every_sentence_of_the_templates_is_in_both_catalogs():
    from pathlib import Path

    from bot.i18n import catalog
    from bot.models import ApologyStatus, BroadcastStatus, CaseStatus
    from bot.web.page import NAV, PERIODS

    folder = Path(__file__).resolve().parents[1] / "bot" / "web" / "templates"
    keys = set()
    for path in folder.glob("*.html"):
        keys |= set(re.findall(r"""_\(["']([a-z0-9_.]+)["']""", path.read_text(encoding="utf-8")))
    keys |= {f"web.nav.{name}" for name, _ in NAV} | {f"web.period.{p}" for p in PERIODS}
    keys |= {f"web.tasks.state.{s}" for s in ("done", "late", "overdue", "open")}
    keys |= {f"web.cases.state.{s}" for s in CaseStatus}
    keys |= {f"web.apologies.state.{s}" for s in ApologyStatus}
    keys |= {f"web.broadcasts.state.{s}" for s in BroadcastStatus}
    keys |= {f"web.lang.{code}" for code in ("vi", "en")}
    keys |= {f"rating.level.{n}" for n in range(1, 6)}
    keys = {k for k in keys if not k.endswith(".")}  # prefixes joined to a value: listed above
    assert len(keys) > 80
    for locale in ("vi", "en"):
        assert sorted(keys - set(catalog(locale))) == [], locale
    for path in folder.glob("*.html"):  # no sentence typed into a template
        text = re.sub(r"{[{%].*?[}%]}", "", path.read_text(encoding="utf-8"), flags=re.S)
        words = re.findall(r">\s*([^<>{}]*?[A-Za-zÀ-ỹ][^<>{}]*?)\s*<", text)
        assert [w for w in words if w not in ("(XLSX)",)] == [], path.name


async def test_the_scoreboard_download_is_the_report_of_the_scope_and_period(web):
    async with signed_in(web, "head") as c:
        mine = await c.get("/download/scoreboard.xlsx")
    async with signed_in(web, "admin") as c:
        every = await c.get("/download/scoreboard.xlsx")
    assert "thi-dua-all-" in every.headers["content-disposition"]
    head_rows = data_rows(load_workbook(BytesIO(mine.content))["Thi đua"])
    admin_rows = data_rows(load_workbook(BytesIO(every.content))["Thi đua"])
    assert [r[1] for r in head_rows] == ["UBND phường An Phú"]  # one unit: no totals row
    assert len(admin_rows) > len(head_rows)
    assert admin_rows[-1][1] == "Tổng cộng"
