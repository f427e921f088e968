"""The Official Account endpoints: customer-service messages (token, window, followers,
buttons), the refresh token that works once, and signed webhook events."""

from __future__ import annotations

import hashlib
import json
from collections.abc import AsyncIterator
from typing import Any

import pytest

from bot.sandbox.zalo import oa_signature
from tests.sandbox.zalo_support import ZaloEnv, receiver, zalo_env

HOA = "7100000000000000301"
DAY = 86400.0


@pytest.fixture
async def env() -> AsyncIterator[ZaloEnv]:
    """A sandbox with Zalo and Hoa, who follows the OA and just wrote to it."""
    async with zalo_env() as started:
        started.zalo.create_user("Trần Thị Hoa", user_id=HOA)
        started.zalo.oa_follow(HOA)
        yield started


async def tokens(env: ZaloEnv) -> dict[str, str]:
    """Issue a pair as the developer console does."""
    pair: dict[str, str] = await env.user("POST", "/oa/tokens")
    return pair


def text_to(user_id: str, text: str, **extra: Any) -> dict[str, Any]:
    """A CS message body."""
    return {"recipient": {"user_id": user_id}, "message": {"text": text, **extra}}


async def test_cs_message_reaches_the_user(env: ZaloEnv) -> None:
    """A CS message with a valid token answers error 0 and shows in the conversation."""
    pair = await tokens(env)
    status, body = await env.cs(pair["access_token"], text_to(HOA, "Kính gửi Bà Hoa"))
    assert (status, body["error"], body["message"]) == (200, 0, "Success")
    assert body["data"]["user_id"] == HOA
    assert isinstance(body["data"]["message_id"], str)
    shown = await env.oa_messages(HOA)
    assert [(m["sender"], m["text"]) for m in shown] == [("bot", "Kính gửi Bà Hoa")]


@pytest.mark.parametrize("token", ["", "not-a-token"])
async def test_cs_refuses_a_bad_token(env: ZaloEnv, token: str) -> None:
    """A missing or unknown access token is error -216 (HTTP 200); nothing is shown."""
    status, body = await env.cs(token, text_to(HOA, "x"))
    assert (status, body["error"]) == (200, -216)
    assert await env.oa_messages(HOA) == []


async def test_access_token_expires_after_25_hours(env: ZaloEnv) -> None:
    """The access token lives 25 hours (expires_in 90000 seconds)."""
    pair = await tokens(env)
    assert pair["expires_in"] == "90000"
    env.wall.advance(25 * 3600 - 1)
    assert (await env.cs(pair["access_token"], text_to(HOA, "x")))[1]["error"] == 0
    env.wall.advance(2)
    assert (await env.cs(pair["access_token"], text_to(HOA, "x")))[1]["error"] == -216


async def test_expire_access_ends_tokens_now(env: ZaloEnv) -> None:
    """The user API can end every access token at once (to test a refresh)."""
    pair = await tokens(env)
    assert (await env.user("POST", "/oa/expire-access"))["expired"] == 1
    assert (await env.cs(pair["access_token"], text_to(HOA, "x")))[1]["error"] == -216


async def test_refresh_token_works_once(env: ZaloEnv) -> None:
    """A refresh gives a new pair; the old refresh token is refused the second time."""
    first = await tokens(env)
    second = await env.refresh(first["refresh_token"])
    assert set(second) == {"access_token", "refresh_token", "expires_in"}
    assert second["refresh_token"] != first["refresh_token"]
    again = await env.refresh(first["refresh_token"])
    assert again["error"] == -14014
    assert "refresh token" in again["error_description"].lower()
    assert (await env.cs(second["access_token"], text_to(HOA, "x")))[1]["error"] == 0
    third = await env.refresh(second["refresh_token"])
    assert "access_token" in third


async def test_refresh_token_expires_after_3_months(env: ZaloEnv) -> None:
    """A refresh token unused for 90 days is refused."""
    pair = await tokens(env)
    env.wall.advance(90 * DAY + 1)
    assert (await env.refresh(pair["refresh_token"]))["error"] == -14019


@pytest.mark.parametrize(
    ("changes", "code"),
    [
        ({"secret": "wrong"}, -14002),
        ({"app_id": "1"}, -14001),
        ({"grant_type": "authorization_code"}, -14003),
    ],
)
async def test_refresh_checks_app_secret_and_grant(
    env: ZaloEnv, changes: dict[str, str], code: int
) -> None:
    """A wrong app id, secret key or grant type is refused and the token stays usable."""
    pair = await tokens(env)
    assert (await env.refresh(pair["refresh_token"], **changes))["error"] == code
    assert "access_token" in await env.refresh(pair["refresh_token"])


async def test_message_outside_the_window_is_refused(env: ZaloEnv) -> None:
    """Seven days after the last interaction a CS message is error -230; a new text reopens."""
    env.wall.advance(7 * DAY + 1)
    pair = await tokens(env)
    status, body = await env.cs(pair["access_token"], text_to(HOA, "Nhắc việc"))
    assert (status, body["error"]) == (200, -230)
    assert await env.oa_messages(HOA) == []
    await env.user("POST", f"/oa/users/{HOA}/messages", {"text": "Tôi đây"})
    assert (await env.cs(pair["access_token"], text_to(HOA, "Nhắc việc")))[1]["error"] == 0
    counters = await env.user("GET", "/counters")
    assert counters["oa"]["refused_window_total"] == 1


async def test_last_interaction_can_be_moved(env: ZaloEnv) -> None:
    """The user API moves a user's last interaction back, out of the window."""
    pair = await tokens(env)
    old = int((env.wall() - 8 * DAY) * 1000)
    await env.user("PUT", f"/oa/users/{HOA}", {"last_interaction_ms": old})
    assert (await env.cs(pair["access_token"], text_to(HOA, "x")))[1]["error"] == -230


async def test_unfollowed_and_unknown_users(env: ZaloEnv) -> None:
    """An unfollowed user is error -213; an unknown user id -201."""
    pair = await tokens(env)
    await env.user("POST", f"/oa/users/{HOA}/unfollow")
    assert (await env.cs(pair["access_token"], text_to(HOA, "x")))[1]["error"] == -213
    assert (await env.cs(pair["access_token"], text_to("42", "x")))[1]["error"] == -201


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ({"recipient": {"user_id": HOA}}, -201),
        ({"recipient": {}, "message": {"text": "x"}}, -201),
        ({"recipient": {"user_id": HOA}, "message": {"text": "x" * 2001}}, -210),
        ("[]", -201),
    ],
)
async def test_cs_checks_the_body(env: ZaloEnv, body: Any, code: int) -> None:
    """A message without text or recipient, or over 2000 characters, is refused."""
    pair = await tokens(env)
    assert (await env.cs(pair["access_token"], body))[1]["error"] == code


async def test_quick_replies_and_template_buttons_are_shown(env: ZaloEnv) -> None:
    """Buttons of a CS message are kept with the text they send; a template may hold the text."""
    pair = await tokens(env)
    quick = [{"title": "Hài lòng", "payload": "1"}, {"title": "Chưa hài lòng", "payload": "2"}]
    await env.cs(pair["access_token"], text_to(HOA, "Ông/Bà đánh giá?", quick_replies=quick))
    template = {
        "type": "template",
        "payload": {
            "template_type": "button",
            "buttons": [{"title": "Đã nhận", "type": "oa.query.show", "payload": "đã nhận"}],
        },
    }
    await env.cs(pair["access_token"], text_to(HOA, "Chỉ đạo mới", attachment=template))
    inner = {"template_type": "button", "text": "Văn bản trong mẫu", "buttons": quick}
    attachment = {"type": "template", "payload": inner}
    body = {"recipient": {"user_id": HOA}, "message": {"attachment": attachment}}
    assert (await env.cs(pair["access_token"], body))[1]["error"] == 0
    shown = await env.oa_messages(HOA)
    assert shown[2]["text"] == "Văn bản trong mẫu"
    assert [b["text"] for b in shown[0]["buttons"]] == ["1", "2"]
    assert shown[1]["buttons"] == [{"title": "Đã nhận", "type": "oa.query.show", "text": "đã nhận"}]


async def test_events_are_posted_signed(env: ZaloEnv) -> None:
    """Events are POSTed with X-ZEvent-Signature = mac=sha256(app_id+body+timestamp+key)."""
    async with receiver() as hook:
        await env.user("PUT", "/oa/webhook", {"url": hook.url})
        await env.user("POST", f"/oa/users/{HOA}/messages", {"text": "Xin chào"})
        follow = await hook.next()
        posted = await hook.next()
    settings = env.zalo.oa.settings
    for item, name in ((follow, "follow"), (posted, "user_send_text")):
        event = json.loads(item.body)
        assert event["event_name"] == name
        assert event["timestamp"] == str(int(env.wall() * 1000))
        raw = settings.app_id.encode() + item.body + event["timestamp"].encode()
        mac = hashlib.sha256(raw + settings.oa_secret_key.encode()).hexdigest()
        assert item.headers["X-ZEvent-Signature"] == f"mac={mac}"
    event = json.loads(posted.body)
    assert event["sender"] == {"id": HOA}
    assert event["recipient"] == {"id": settings.oa_id}
    assert event["message"]["text"] == "Xin chào"
    assert event["app_id"] == settings.app_id


async def test_unfollow_event(env: ZaloEnv) -> None:
    """Unfollowing queues an unfollow event naming the follower."""
    await env.user("POST", f"/oa/users/{HOA}/unfollow")
    events = await env.user("GET", "/oa/events")
    assert [e["event_name"] for e in events] == ["follow", "unfollow"]
    assert events[1]["follower"] == {"id": HOA}


def test_signature_helper_matches_the_rule() -> None:
    """oa_signature hashes app id, raw body, timestamp and key in that order."""
    expected = hashlib.sha256(b"app" + b"{}" + b"123" + b"key").hexdigest()
    assert oa_signature("app", b"{}", "123", "key") == f"mac={expected}"


async def test_failed_event_posts_are_retried() -> None:
    """An event the OA webhook refused is posted again."""
    async with zalo_env() as env, receiver() as hook:
        env.zalo.create_user("Hoa", user_id=HOA)
        hook.statuses = [503]
        await env.user("PUT", "/oa/webhook", {"url": hook.url})
        env.zalo.oa_follow(HOA)
        first, second = await hook.next(), await hook.next()
        assert first.body == second.body
        info = await env.user("GET", "/info")
        assert "503" in info["oa"]["last_webhook_error"]
