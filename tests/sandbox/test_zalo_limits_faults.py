"""Flood limits and fault injection on the Zalo side, configured as on the Telegram side."""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
import pytest

from bot.sandbox import Faults, Limits
from bot.sandbox.zalo import ZALO_LIMITS
from tests.sandbox.zalo_support import ZaloEnv, zalo_env

LAN = "7100000000000000101"
MINH = "7100000000000000102"


@pytest.fixture
async def env() -> AsyncIterator[ZaloEnv]:
    """A sandbox with Zalo and two users."""
    async with zalo_env() as started:
        started.zalo.create_user("Lan", user_id=LAN)
        started.zalo.create_user("Minh", user_id=MINH)
        yield started


def test_default_rates() -> None:
    """The chosen Zalo rates: 20 a second per bot, 1 a second per chat with a burst of 3."""
    assert (ZALO_LIMITS.global_rate, ZALO_LIMITS.chat_rate, ZALO_LIMITS.chat_burst) == (20, 1, 3)


async def test_chat_burst_then_429_in_the_body(env: ZaloEnv) -> None:
    """Three quick sends pass, the fourth is a 429 (HTTP 200) until the clock moves on."""
    for n in range(3):
        await env.result("sendMessage", chat_id=LAN, text=str(n))
    status, body = await env.call("sendMessage", chat_id=LAN, text="3")
    assert (status, body["ok"], body["error_code"]) == (200, False, 429)
    assert "retry after 1" in body["description"]
    await env.result("sendMessage", chat_id=MINH, text="other chat")
    env.clock.advance(1.0)
    await env.result("sendMessage", chat_id=LAN, text="3")
    counters = (await env.user("GET", "/counters"))["bot"]
    assert (counters["accepted_total"], counters["rate_limited_total"]) == (5, 1)
    assert counters["accepted_by_chat"] == {LAN: 4, MINH: 1}
    assert [m["text"] for m in await env.bot_messages(LAN)] == ["0", "1", "2", "3"]


async def test_limits_are_changed_by_the_user_api(env: ZaloEnv) -> None:
    """PUT /limits changes the rates; enabled=false lets everything pass."""
    limits = await env.user("PUT", "/limits", {"chat_burst": 1, "shape": "sliding"})
    assert (limits["chat_burst"], limits["shape"]) == (1, "sliding")
    await env.result("sendMessage", chat_id=LAN, text="a")
    assert (await env.call("sendMessage", chat_id=LAN, text="b"))[1]["error_code"] == 429
    await env.user("PUT", "/limits", {"enabled": False})
    for n in range(10):
        await env.result("sendMessage", chat_id=LAN, text=str(n))


async def test_global_rate_per_bot(env: ZaloEnv) -> None:
    """The bot-wide bucket refuses once spent, whichever chat."""
    env.zalo.set_limits(Limits(global_rate=2, global_burst=2, chat_burst=5))
    await env.result("sendMessage", chat_id=LAN, text="1")
    await env.result("sendMessage", chat_id=MINH, text="2")
    assert (await env.call("sendMessage", chat_id=MINH, text="3"))[1]["error_code"] == 429


async def test_oa_flood_is_error_minus_32(env: ZaloEnv) -> None:
    """The OA's CS messages meet the same per-user limits, as error -32."""
    env.zalo.oa_follow(LAN)
    pair = await env.user("POST", "/oa/tokens")
    body = {"recipient": {"user_id": LAN}, "message": {"text": "x"}}
    codes = [(await env.cs(pair["access_token"], body))[1]["error"] for _ in range(4)]
    assert codes == [0, 0, 0, -32]


async def test_method_fault_is_an_http_error_with_a_body(env: ZaloEnv) -> None:
    """sendMessage=502 answers HTTP 502 with ok=false for its first call only."""
    await env.user("PUT", "/faults", {"methods": {"sendMessage": {"status": 502, "times": 1}}})
    status, body = await env.call("sendMessage", chat_id=LAN, text="x")
    assert (status, body["ok"], body["error_code"]) == (502, False, 502)
    await env.result("sendMessage", chat_id=LAN, text="x")
    assert (await env.user("GET", "/counters"))["bot"]["method_faults_total"] == 1


async def test_soft_faults_answer_http_200_with_ok_false() -> None:
    """With soft faults an injected 500 is an HTTP 200 whose body says ok=false."""
    async with zalo_env(soft_faults=True, faults=Faults(error_rate=1.0, seed=1)) as env:
        env.zalo.create_user("Lan", user_id=LAN)
        status, body = await env.call("sendMessage", chat_id=LAN, text="x")
        assert (status, body["ok"], body["error_code"]) == (200, False, 500)
        assert await env.bot_messages(LAN) == []
        assert (await env.user("GET", "/counters"))["bot"]["soft_errors_total"] == 1


async def test_error_rate_gives_500s(env: ZaloEnv) -> None:
    """error_rate 1 makes every send an HTTP 500; getMe is not touched."""
    await env.user("PUT", "/faults", {"error_rate": 1.0, "seed": 3})
    status, body = await env.call("sendMessage", chat_id=LAN, text="x")
    assert (status, body["error_code"]) == (500, 500)
    await env.result("getMe")


async def test_blocked_user_is_a_403(env: ZaloEnv) -> None:
    """A user marked blocked in the chat's faults gets 403 in the body; others pass."""
    await env.user("PUT", f"/chats/{LAN}/faults", {"blocked": True})
    status, body = await env.call("sendMessage", chat_id=LAN, text="x")
    assert (status, body["error_code"]) == (200, 403)
    await env.result("sendMessage", chat_id=MINH, text="x")
    await env.user("DELETE", f"/chats/{LAN}/faults")
    await env.result("sendMessage", chat_id=LAN, text="x")


async def test_blocked_oa_user_is_minus_213(env: ZaloEnv) -> None:
    """A user who blocked the OA is error -213."""
    env.zalo.oa_follow(LAN)
    env.zalo.set_faults(Faults(blocked=frozenset({int(LAN)})))
    pair = await env.user("POST", "/oa/tokens")
    body = {"recipient": {"user_id": LAN}, "message": {"text": "x"}}
    assert (await env.cs(pair["access_token"], body))[1]["error"] == -213


async def test_dropped_connection(env: ZaloEnv) -> None:
    """drop_rate 1 closes the connection without an answer; nothing is sent."""
    await env.user("PUT", "/faults", {"drop_rate": 1.0})
    with pytest.raises(aiohttp.ClientError):
        await env.call("sendMessage", chat_id=LAN, text="x")
    assert await env.bot_messages(LAN) == []


async def test_oa_method_faults(env: ZaloEnv) -> None:
    """message/cs and the OAuth refresh can fail as whole methods."""
    env.zalo.oa_follow(LAN)
    pair = await env.user("POST", "/oa/tokens")
    faults = {"methods": {"message/cs": 500, "oauth/access_token": {"status": 503, "times": 1}}}
    await env.user("PUT", "/faults", faults)
    body = {"recipient": {"user_id": LAN}, "message": {"text": "x"}}
    assert (await env.cs(pair["access_token"], body))[0] == 500
    async with env.http.post("/zalo/oauth/v4/oa/access_token", data={}) as resp:
        assert resp.status == 503
    assert "access_token" in await env.refresh(pair["refresh_token"])


async def test_bad_faults_are_refused(env: ZaloEnv) -> None:
    """An unknown faults field is a 400 naming it."""
    async with env.http.put("/zalo/sandbox/api/faults", json={"nope": 1}) as resp:
        body = await resp.json()
    assert (resp.status, body["ok"]) == (400, False)
    assert "nope" in body["description"]
