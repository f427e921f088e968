"""End to end on the sandbox's Official Account emulator: the real `reformbot run` process with
[zalo.oa] enabled, events posted (signed) to its webhook over HTTP, messages sent through the
emulator's customer-service endpoint and tokens refreshed through its refresh-once OAuth."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from datetime import UTC, date, datetime, timedelta
from typing import Any

import aiohttp
import pytest
from sqlmodel import select

from bot.channels.render import html_to_plain
from bot.config import AgencySettings
from bot.i18n import t
from bot.models import (
    Channel,
    Contact,
    Directive,
    DirectiveRecipient,
    Outbox,
    OutboxStatus,
    Rating,
    Role,
    ServiceCounter,
    UnitKind,
    ZaloOAToken,
)
from bot.sandbox.limits import Limits
from bot.sandbox.server import SandboxServer
from bot.sandbox.zalo import ZaloSandbox, oa_signature
from bot.services.delivery import contacts, outbox
from bot.services.delivery.zalo_oa_tokens import seed_hash
from bot.services.directives import directives
from bot.services.ratings.service_points import payload_for_counter
from tests import factories as f
from tests.e2e.conftest import BotProcess, BotRunner, free_port
from tests.e2e.test_scale_e2e import nginx_site

CITIZEN, STAFF, FORGER = "7200000000000000301", "7200000000000000302", "7200000000000000399"
STAFF_TG = 880_001
WAIT = 20.0


@pytest.fixture
async def sandbox() -> AsyncIterator[SandboxServer]:
    """Run the sandbox with its Zalo side (no flood limits) on a free loopback port."""
    server = SandboxServer(zalo=ZaloSandbox(limits=Limits.off()))
    await server.start("127.0.0.1", 0)
    yield server
    await server.stop()


def zalo(sandbox: SandboxServer) -> ZaloSandbox:
    """Return the sandbox's Zalo side."""
    assert sandbox.zalo is not None
    return sandbox.zalo


class OA:
    """The bot process with its OA webhook port, and the emulator's OA."""

    def __init__(self, sandbox: SandboxServer, bot: BotProcess, port: int) -> None:
        self.sandbox, self.bot, self.port = sandbox, bot, port
        self.zalo = zalo(sandbox)
        self.url = f"http://127.0.0.1:{port}/zalo-oa"

    def sent(self, user: str) -> list[dict[str, Any]]:
        """Return what the OA sent a user."""
        return [m for m in self.zalo.messages(user, surface="oa") if m["sender"] == "bot"]

    async def until(self, user: str, check: Callable[[list[dict[str, Any]]], bool]) -> list[Any]:
        """Wait until the OA's messages to a user pass a check; return them."""
        count = len(self.sent(user))
        while not check(sent := self.sent(user)):
            count += 1
            await self.zalo.wait_for_messages(user, count, surface="oa", seconds=WAIT)
        return sent

    async def say(self, user: str, text: str) -> list[dict[str, Any]]:
        """Type a text to the OA; return the first message the OA answers with."""
        before = len(self.sent(user))
        self.zalo.oa_send_text(user, text)
        sent = await self.zalo.wait_for_messages(user, before + 1, surface="oa", seconds=WAIT)
        return sent[before:]


def oa_env(sandbox: SandboxServer, port: int, **extra: str) -> dict[str, str]:
    """Return the environment that turns the OA on against the emulator, served on `port`."""
    z = zalo(sandbox)
    oa = z.oa.settings
    first = z.oa.issue(z.wall())["refresh_token"]  # what the OA's authorisation gave
    return {
        "REFORMBOT_ZALO__OA__ENABLED": "true",
        "REFORMBOT_ZALO__OA__APP_ID": oa.app_id,
        "REFORMBOT_ZALO__OA__OA_ID": oa.oa_id,
        "REFORMBOT_ZALO__OA__SECRET_KEY": oa.app_secret,
        "REFORMBOT_ZALO__OA__OA_SECRET_KEY": oa.oa_secret_key,
        "REFORMBOT_ZALO__OA__REFRESH_TOKEN": extra.pop("refresh_token", first),
        "REFORMBOT_ZALO__OA__API_BASE": sandbox.zalo_base_url + "/oa",
        "REFORMBOT_ZALO__OA__OAUTH_BASE": sandbox.zalo_base_url + "/oauth",
        "REFORMBOT_TELEGRAM__WEBHOOK_PORT": str(port),  # the worker's webhook server
        "REFORMBOT_ZALO__OA__TOKEN_CHECK_SECONDS": "1",
        "REFORMBOT_DELIVERY__POLL_SECONDS": "0.2",
        **extra,
    }


async def start_oa(runner: BotRunner, sandbox: SandboxServer, **extra: str) -> OA:
    """Start the real bot with the OA enabled against the emulator; events go to its webhook."""
    z = zalo(sandbox)
    port = free_port()
    bot = await runner.start("polling", oa_env(sandbox, port, **extra))
    z.oa.webhook_url = f"http://127.0.0.1:{port}/zalo-oa"
    return OA(sandbox, bot, port)


async def eventually(check: Callable[[], Any], what: str) -> Any:
    """Poll a condition (the database, the emulator) until it holds."""
    async with asyncio.timeout(WAIT):
        while not (value := await check()):  # noqa: ASYNC110 - another process writes it
            await asyncio.sleep(0.05)
    assert value, what
    return value


async def token_row(db) -> ZaloOAToken:
    """Return the OA's token row."""
    async with db() as s:
        [row] = (await s.exec(select(ZaloOAToken))).all()
        return row


async def contact_of(db, user: str) -> Contact | None:
    """Return the OA contact of a user, if any."""
    async with db() as s:
        stmt = select(Contact).where(
            Contact.channel == Channel.ZALO_OA, Contact.external_id == user
        )
        return (await s.exec(stmt)).first()


async def seed_counter(db) -> None:
    """Add the one-stop desk and its counter Q1."""
    now = datetime.now(UTC)
    async with db() as s:
        desk = await f.unit(s, "MOTCUA", "Bộ phận Một cửa", kind=UnitKind.ONE_STOP)
        s.add(
            ServiceCounter(
                code="Q1", name="Quầy 1", unit_id=desk.id, created_at=now, updated_at=now
            )
        )
        await s.commit()


async def test_a_citizen_follows_then_rates_with_typed_answers(bot_runner, sandbox, db):
    await seed_counter(db)
    oa = await start_oa(bot_runner, sandbox)
    oa.zalo.create_user("Nguyễn Văn Dân", user_id=CITIZEN)
    oa.zalo.oa_follow(CITIZEN)
    [welcome] = await oa.zalo.wait_for_messages(CITIZEN, 1, surface="oa", seconds=WAIT)
    agency = AgencySettings().name
    assert welcome["text"] == html_to_plain(t("start.welcome_citizen", "vi", agency=agency))
    contact = await contact_of(db, CITIZEN)
    assert contact is not None

    greet = await oa.say(CITIZEN, payload_for_counter("Q1"))
    assert "Bộ phận Một cửa" in greet[0]["text"]
    for answer in ("bỏ qua", "2", "5", "4", "bo qua", "1", "bỏ qua", "Trần Văn Bộ", "bỏ qua"):
        await oa.say(CITIZEN, answer)
    oa.zalo.oa_send_text(CITIZEN, "ẩn danh")
    thanks = t("rating.thanks", "vi")
    sent = await oa.until(CITIZEN, lambda sent: any(m.get("text") == thanks for m in sent))
    assert all("<b>" not in m.get("text", "") for m in sent)
    with_buttons = [m for m in sent if m.get("buttons")]
    assert with_buttons, "no quick replies were shown"
    for m in with_buttons:  # a quick reply sends back what the person could type
        assert all(b["text"] in m["text"] or b["text"].isdigit() for b in m["buttons"])
    async with db() as s:
        [rating] = (await s.exec(select(Rating))).all()
    assert (rating.overall, rating.access, rating.procedure, rating.result) == (2, 5, 4, 1)
    await bot_runner.stop(oa.bot)


async def test_forged_events_are_refused_over_http_and_nothing_is_handled(bot_runner, sandbox, db):
    oa = await start_oa(bot_runner, sandbox)
    settings = oa.zalo.oa.settings
    oa.zalo.create_user("Kẻ giả mạo", user_id=FORGER)

    def event(stamp_ms: int) -> tuple[bytes, str]:
        body = {
            "app_id": settings.app_id,
            "event_name": "user_send_text",
            "timestamp": str(stamp_ms),
            "sender": {"id": FORGER},
            "recipient": {"id": settings.oa_id},
            "message": {"text": "/start", "msg_id": f"forged{stamp_ms}"},
        }
        raw = json.dumps(body).encode()
        return raw, str(stamp_ms)

    now_ms = int(datetime.now(UTC).timestamp() * 1000)
    fresh, fresh_stamp = event(now_ms)
    old, old_stamp = event(now_ms - 7_300_000)
    good_mac = oa_signature(settings.app_id, fresh, fresh_stamp, settings.oa_secret_key)
    old_mac = oa_signature(settings.app_id, old, old_stamp, settings.oa_secret_key)
    other_mac = oa_signature(settings.app_id, fresh, fresh_stamp, "another-secret")
    posts = [
        (fresh, {}, 401),
        (fresh, {"X-ZEvent-Signature": other_mac}, 403),
        (fresh, {"X-ZEvent-Signature": good_mac.replace("mac=", "mac=0")}, 403),
        (old, {"X-ZEvent-Signature": old_mac}, 408),
    ]
    async with aiohttp.ClientSession() as http:
        for body, headers, status in posts:
            async with http.post(oa.url, data=body, headers=headers) as answer:
                assert answer.status == status, headers
        async with http.get(f"http://127.0.0.1:{oa.port}/other") as answer:
            assert answer.status == 404
    # a signed event after the forged ones is handled: the forged ones were not
    oa.zalo.create_user("Nguyễn Văn Dân", user_id=CITIZEN)
    oa.zalo.oa_follow(CITIZEN)
    await oa.zalo.wait_for_messages(CITIZEN, 1, surface="oa", seconds=WAIT)
    assert await contact_of(db, FORGER) is None
    assert oa.sent(FORGER) == []
    await bot_runner.stop(oa.bot)


async def test_staff_outside_the_window_get_a_directive_on_telegram(bot_runner, sandbox, db):
    now = datetime.now(UTC)
    sandbox.create_user("Trần Thị An", user_id=STAFF_TG)
    async with db() as s:
        unit = await f.unit(s, "XA1", "UBND xã Đông Sơn", kind=UnitKind.COMMUNE)
        staff = await f.person(s, "ST", unit, Role.STAFF, name="Trần Thị An")
        staff.preferred_channel = "zalo_oa"
        on_oa = Contact(
            channel=Channel.ZALO_OA,
            external_id=STAFF,
            person_id=staff.id,
            created_at=now - timedelta(days=30),
            last_seen_at=now - timedelta(days=8),
        )
        on_tg = Contact(
            channel=Channel.TELEGRAM,
            external_id=str(STAFF_TG),
            person_id=staff.id,
            created_at=now - timedelta(days=30),
            last_seen_at=now - timedelta(days=20),
        )
        d = Directive(
            number="15/CT-UBND",
            issued_on=date(2026, 11, 30),
            title="Triển khai khảo sát SIPAS",
            summary="Đề nghị phổ biến tới cán bộ.",
            audience="everyone",
            target="all",
            ack_deadline=now + timedelta(days=2),
            created_by="test",
            created_at=now,
        )
        s.add_all([staff, on_oa, on_tg, d])
        await s.flush()
        assert d.id is not None
        assert staff.id is not None
        row = DirectiveRecipient(directive_id=d.id, person_id=staff.id, unit_id=unit.id)
        s.add(row)
        await s.flush()
        assert row.id is not None
        picked = await contacts.reachable(s, [staff.id])
        assert picked[staff.id].channel == Channel.ZALO_OA  # the person's chosen channel
        await s.commit()
    oa = await start_oa(bot_runner, sandbox)
    oa.zalo.create_user("Trần Thị An", user_id=STAFF)
    async with db() as s:
        contact = await s.get(Contact, on_oa.id)
        assert contact is not None
        message = directives.notice(d, recipient_id=row.id, units="UBND xã Đông Sơn")
        await outbox.enqueue(s, contact=contact, message=message, kind="directive", now=now)
        await s.commit()
    [notice] = await sandbox.wait_for_messages(STAFF_TG, 1, seconds=WAIT)
    assert "15/CT-UBND" in notice["text"]
    assert oa.sent(STAFF) == []

    async def settled() -> dict[str, Outbox] | None:
        async with db() as s:
            rows = (await s.exec(select(Outbox).where(Outbox.kind == "directive"))).all()
        done = all(r.status in (OutboxStatus.SENT, OutboxStatus.FAILED) for r in rows)
        return {r.channel: r for r in rows} if done else None

    by_channel = await eventually(settled, "the outbox rows settled")
    failed = by_channel[Channel.ZALO_OA]
    assert failed.status == OutboxStatus.FAILED
    assert failed.attempts == 0
    assert (failed.last_error or "").startswith("outside_window")
    assert by_channel[Channel.TELEGRAM].status == OutboxStatus.SENT
    await bot_runner.stop(oa.bot)


async def test_tokens_are_refreshed_ahead_and_when_refused_while_sends_keep_working(
    bot_runner, sandbox, db
):
    z = zalo(sandbox)
    z.oa.settings.access_lifetime = 12 * 3600 + 2.0  # due for a refresh 2 s after it is issued
    first = z.oa.issue(z.wall())["refresh_token"]
    oa = await start_oa(bot_runner, sandbox, refresh_token=first)
    z.create_user("Nguyễn Văn Dân", user_id=CITIZEN)
    z.oa_follow(CITIZEN)
    await z.wait_for_messages(CITIZEN, 1, surface="oa", seconds=WAIT)

    async def refreshed(times: int) -> ZaloOAToken | None:
        row = await token_row(db)
        return row if row.version >= times else None

    # ahead of expiry, on the job runner's schedule, with nobody writing
    row = await eventually(lambda: refreshed(3), "the token check refreshed the pair")
    assert z.oa.refresh[first].used
    assert row.needs_reauth is False
    assert row.access_token in z.oa.access
    [lang] = await oa.say(CITIZEN, "/lang")
    assert [b["text"] for b in lang["buttons"]] == ["1", "2"]  # quick replies send the number
    # Zalo refuses the access token before its time: the next send refreshes it and goes out
    z.oa.settings.access_lifetime = 25 * 3600.0
    before = (await token_row(db)).version
    z.expire_access_tokens()
    [answer] = await oa.say(CITIZEN, "2")
    assert answer["text"] == html_to_plain(t("lang.changed", "en"))
    after = await token_row(db)
    assert after.version > before
    assert after.refreshing_owner is None
    assert not any("Traceback" in line for line in oa.bot.log)
    await bot_runner.stop(oa.bot)


async def test_a_refresh_a_crash_left_unfinished_is_resumed_at_start(bot_runner, sandbox, db):
    z = zalo(sandbox)
    seed = z.oa.issue(z.wall())["refresh_token"]
    spare = z.oa.issue(z.wall())["refresh_token"]  # the token the dead process was spending
    long_ago = datetime.now(UTC) - timedelta(minutes=5)
    async with db() as s:
        s.add(
            ZaloOAToken(
                oa_id=z.oa.settings.oa_id,
                refresh_token=spare,
                seed_hash=seed_hash(seed),
                version=4,
                refreshing_owner="dead-host:1:abc",
                refreshing_until=long_ago,
                updated_at=long_ago,
            )
        )
        await s.commit()
    oa = await start_oa(bot_runner, sandbox, refresh_token=seed)
    row = await token_row(db)  # resumed before the bot said it was ready
    assert (row.version, row.refreshing_owner) == (5, None)
    assert z.oa.refresh[spare].used
    assert not z.oa.refresh[seed].used
    assert any("left unfinished" in line for line in oa.bot.log)
    await bot_runner.stop(oa.bot)


async def test_the_deploy_nginx_config_passes_the_oa_webhook(bot_runner, sandbox, db, tmp_path):
    oa = await start_oa(bot_runner, sandbox)
    http_port, https_port = free_port(), free_port()
    conf = await asyncio.to_thread(nginx_site, tmp_path, [oa.port], http_port, https_port)
    nginx = await asyncio.create_subprocess_exec(
        "nginx", "-c", str(conf), "-p", str(tmp_path), stderr=asyncio.subprocess.PIPE
    )
    url = f"https://127.0.0.1:{https_port}/zalo-oa"
    oa.zalo.create_user("Nguyễn Văn Dân", user_id=CITIZEN)
    event = oa.zalo.oa_follow(CITIZEN)
    oa.zalo.oa.events.items.clear()  # posted by hand below, through nginx
    body = json.dumps(event).encode()
    settings = oa.zalo.oa.settings
    mac = oa_signature(settings.app_id, body, event["timestamp"], settings.oa_secret_key)
    try:
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=False)) as http:
            async with asyncio.timeout(WAIT):
                while True:  # nginx starting: nothing to wait on but its port
                    try:
                        async with http.get(f"https://127.0.0.1:{https_port}/"):
                            break
                    except aiohttp.ClientConnectionError:
                        await asyncio.sleep(0.05)
            async with http.post(url, data=body, headers={"X-ZEvent-Signature": mac}) as answer:
                good = answer.status
            async with http.post(url, data=body) as answer:
                unsigned = answer.status
            async with http.post(
                url, data=b"x" * 300_000, headers={"X-ZEvent-Signature": mac}
            ) as a:
                big, big_text = a.status, await a.text()
            async with http.get(url) as answer:
                get = answer.status
    finally:
        nginx.terminate()
        await nginx.wait()
    assert (good, unsigned, big, get) == (200, 401, 413, 403)
    assert "nginx" in big_text  # refused by nginx itself: the body never reached the worker
    [welcome] = await oa.zalo.wait_for_messages(CITIZEN, 1, surface="oa", seconds=WAIT)
    agency = AgencySettings().name
    assert welcome["text"] == html_to_plain(t("start.welcome_citizen", "vi", agency=agency))
    await bot_runner.stop(oa.bot)
