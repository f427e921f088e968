"""`reformbot run` with no Telegram at all, and one webhook port per worker for every channel.

An agency on Zalo only runs the real bot process with no Telegram token: staff register by
sending the invite code and acknowledge a directive by typing, by polling and by webhook. One
worker serves Telegram's, the Zalo Bot API's and the Official Account's webhooks on one port,
each path refusing forged posts its own way; two workers on one host, each on its own port
behind a round-robin proxy (as nginx in deploy/), both receive.
"""

from __future__ import annotations

import json

import aiohttp
import pytest
from sqlmodel import select

from bot.clock import SystemClock
from bot.models import Contact, Person, UnitKind
from bot.sandbox.server import SandboxServer
from bot.services.org import invites
from bot.services.org.access import system_actor
from bot.webhook import SECRET_HEADER
from tests import factories as f
from tests.e2e.conftest import BotProcess, BotRunner, free_port
from tests.e2e.proxy import RoundRobinProxy
from tests.e2e.test_tasks_e2e import always_deliverable
from tests.e2e.test_zalo_e2e import (
    MODES,
    SECRET,
    acknowledge_by_typing,
    came_by,
    queue_directive,
    sandbox,
    say,
    update_from,
    zalo,
    zalo_env,
)
from tests.e2e.test_zalo_oa_e2e import oa_env

pytestmark = pytest.mark.e2e
__all__ = ["sandbox"]  # the fixture: the sandbox with its Zalo side

NO_TELEGRAM = ("REFORMBOT_TELEGRAM__TOKEN",)
TG_SECRET = "e2e-secret-token-0123456789"  # what tests/e2e/conftest.py configures
NEWCOMER, HEAD, FORGER = "7100000000000000801", "7100000000000000802", "7100000000000000899"
OA_USER, OA_USER_2 = "7200000000000000801", "7200000000000000802"
TG_USER = 881_001
WAIT = 30.0


async def start_zalo_only(
    runner: BotRunner, sandbox: SandboxServer, mode: str, port: int, **extra: str
) -> BotProcess:
    """Start the real bot with the Zalo Bot API in `mode` and no Telegram token at all."""
    env = zalo_env(sandbox, mode, port) | extra
    return await runner.start("polling", env, without=NO_TELEGRAM)


async def seed_invite_and_directive(db) -> tuple[str, int]:
    """Add a newcomer's invite and a directive queued to a head on Zalo; return code and row."""
    now = SystemClock().now()
    async with db() as s:
        root = await f.unit(s, "SGD", "Sở Giáo dục và Đào tạo", kind=UnitKind.DEPARTMENT)
        await f.person(s, "ST02", root, name="Phạm Thị Bình")
        batch = await invites.create_invites(
            s, actor=system_actor("e2e"), now=now, valid_days=1, person_code="ST02"
        )
        unit = await f.unit(s, "PGD1", "UBND xã Đông Sơn", kind=UnitKind.COMMUNE, parent=root)
        row_id = await queue_directive(s, unit, HEAD, now)
        await s.commit()
    return batch.issued[0].code, row_id


# Zalo only: no Telegram token -------------------------------------------------------------


@pytest.mark.parametrize("mode", MODES)
async def test_without_telegram_staff_register_and_acknowledge_on_zalo(
    bot_runner, sandbox, db, mode
):
    code, row_id = await seed_invite_and_directive(db)
    zalo(sandbox).create_user("Bình", user_id=NEWCOMER)
    zalo(sandbox).create_user("An", user_id=HEAD)
    bot = await start_zalo_only(bot_runner, sandbox, mode, free_port(), **always_deliverable())
    assert any(f"ready (zalo {mode})" in line for line in bot.log), bot.log[-5:]

    [linked, *_] = await say(sandbox, NEWCOMER, code)
    assert linked.startswith("✅ Liên kết thành công")
    assert "Phạm Thị Bình" in linked
    async with db() as s:
        stmt = select(Person).join(Contact).where(Contact.external_id == NEWCOMER)
        person = (await s.exec(stmt)).one()
    assert person.code == "ST02"

    await acknowledge_by_typing(sandbox, db, HEAD, row_id)
    came_by(sandbox, mode)
    assert sandbox.counters().requests_total == 0  # Telegram's Bot API was never called
    await bot_runner.stop(bot)


# one port, three webhooks, each with its guard --------------------------------------------


async def test_one_port_serves_the_three_webhooks_and_refuses_forgeries(bot_runner, sandbox, db):
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = (
        zalo_env(sandbox, "webhook", port)
        | oa_env(sandbox, port)
        | {"REFORMBOT_TELEGRAM__WEBHOOK_URL": f"{base}/telegram"}
    )
    bot = await bot_runner.start("webhook", env)
    assert any("/telegram (telegram), /zalo (zalo), /zalo-oa (zalo_oa)" in x for x in bot.log)
    z = zalo(sandbox)
    z.create_user("Kẻ giả mạo", user_id=FORGER)
    z.create_user("Dân OA", user_id=OA_USER)
    forged_oa = z.oa_send_text(OA_USER, "/help")
    z.oa.events.items.clear()  # posted by hand below, forged
    oa_body = json.dumps(forged_oa).encode()
    tg_update = json.dumps({"update_id": 99, "message": {"text": "/help"}}).encode()
    zalo_update = json.dumps(update_from(FORGER, "/help")).encode()
    wrong = "not-the-secret-0123456789"
    zalo_header = "X-Bot-Api-Secret-Token"
    statuses: dict[str, int] = {}
    async with aiohttp.ClientSession() as http:
        for name, path, body, headers in [
            ("telegram, no secret", "/telegram", tg_update, {}),
            ("telegram, wrong secret", "/telegram", tg_update, {SECRET_HEADER: wrong}),
            ("telegram, zalo's secret", "/telegram", tg_update, {SECRET_HEADER: SECRET}),
            ("zalo, no secret", "/zalo", zalo_update, {}),
            ("zalo, wrong secret", "/zalo", zalo_update, {zalo_header: wrong}),
            (
                "zalo, telegram's secret",
                "/zalo",
                zalo_update,
                {zalo_header: TG_SECRET},
            ),
            ("oa, no signature", "/zalo-oa", oa_body, {}),
            ("oa, wrong mac", "/zalo-oa", oa_body, {"X-ZEvent-Signature": "mac=" + "0" * 64}),
            ("oa, zalo's secret", "/zalo-oa", oa_body, {zalo_header: SECRET}),
            ("another path", "/other", zalo_update, {zalo_header: SECRET}),
        ]:
            async with http.post(base + path, data=body, headers=headers) as answer:
                statuses[name] = answer.status
        async with http.get(base + "/zalo") as answer:
            statuses["zalo, GET"] = answer.status
    assert statuses == {
        "telegram, no secret": 403,
        "telegram, wrong secret": 403,
        "telegram, zalo's secret": 403,
        "zalo, no secret": 403,
        "zalo, wrong secret": 403,
        "zalo, telegram's secret": 403,
        "oa, no signature": 401,
        "oa, wrong mac": 403,
        "oa, zalo's secret": 401,
        "another path": 404,
        "zalo, GET": 405,
    }

    # the real traffic of each channel reaches the same port and is answered
    sandbox.create_user("Người dùng Telegram", user_id=TG_USER)
    sandbox.send_text(TG_USER, "/lang")
    [tg_reply] = await sandbox.wait_for_messages(TG_USER, 1, seconds=WAIT)
    assert tg_reply["text"]
    z.create_user("Dân Zalo", user_id=NEWCOMER)
    assert (await say(sandbox, NEWCOMER, "/lang"))[0]
    z.oa.webhook_url = f"{base}/zalo-oa"
    z.oa_follow(OA_USER)
    await z.wait_for_messages(OA_USER, 1, surface="oa", seconds=WAIT)
    # the forged posts were handled by nobody: one answer each, to the real messages only
    assert [m["sender"] for m in z.messages(FORGER)] == []
    assert len([m for m in z.messages(OA_USER, surface="oa") if m["sender"] == "bot"]) == 1
    telegram = sandbox.counters()
    assert (telegram.by_method["setWebhook"], telegram.by_method["getUpdates"]) == (1, 0)
    came_by(sandbox, "webhook")
    await bot_runner.stop(bot)


# two workers on one host --------------------------------------------------------------------


async def test_two_workers_on_one_host_each_on_its_port_both_receive(bot_runner, sandbox, db):
    proxy = RoundRobinProxy()
    await proxy.start()
    try:
        z = zalo(sandbox)
        workers = []
        shared = oa_env(sandbox, 0)  # one configuration for both, as in reformbot.env
        for _ in range(2):
            port = free_port()  # what reformbot@PORT sets for each worker
            env = shared | zalo_env(sandbox, "webhook", port)
            env["REFORMBOT_ZALO__WEBHOOK_URL"] = proxy.url_of("/zalo")
            workers.append(await bot_runner.start("polling", env, without=NO_TELEGRAM))
            proxy.upstreams.append(port)
        z.oa.webhook_url = proxy.url_of("/zalo-oa")
        ports = list(proxy.upstreams)
        assert len(set(ports)) == 2

        users = [f"71000000000000007{n:02d}" for n in range(4)]
        for n, user in enumerate(users):
            z.create_user(f"Người {n}", user_id=user)
            assert (await say(sandbox, user, "/lang"))[0]  # each answered once
        for n, user in enumerate((OA_USER, OA_USER_2)):
            z.create_user(f"Dân OA {n}", user_id=user)
            z.oa_follow(user)
            await z.wait_for_messages(user, 1, surface="oa", seconds=WAIT)
    finally:
        await proxy.stop()
    for port in ports:  # round robin: every worker took its share of both paths
        assert proxy.hits_by_path[port, "/zalo"] >= 1, proxy.hits_by_path
        assert proxy.hits_by_path[port, "/zalo-oa"] >= 1, proxy.hits_by_path
    for user in users:
        bot_texts = [m for m in z.messages(user) if m["sender"] == "bot"]
        assert len(bot_texts) == 1, user
    for worker in workers:
        await bot_runner.stop(worker)
