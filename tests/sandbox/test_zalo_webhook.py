"""Zalo Bot API webhooks: the secret token's bounds, delivery with X-Bot-Api-Secret-Token,
retries, getWebhookInfo and deleteWebhook."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import pytest

from tests.sandbox.zalo_support import Receiver, ZaloEnv, receiver, zalo_env

LAN = "7100000000000000101"
SECRET = "s3cret-token"


@pytest.fixture
async def env() -> AsyncIterator[ZaloEnv]:
    """A sandbox with Zalo and one user, Lan."""
    async with zalo_env() as started:
        started.zalo.create_user("Nguyễn Thị Lan", user_id=LAN)
        yield started


@pytest.fixture
async def hook() -> AsyncIterator[Receiver]:
    """A webhook receiver."""
    async with receiver() as sink:
        yield sink


@pytest.mark.parametrize("secret", ["", "7-chars", "x" * 257])
async def test_secret_token_must_be_8_to_256(env: ZaloEnv, hook: Receiver, secret: str) -> None:
    """A secret token out of 8-256 characters is a 400; no webhook is set."""
    status, body = await env.call("setWebhook", url=hook.url, secret_token=secret)
    assert (status, body["ok"], body["error_code"]) == (200, False, 400)
    assert "8-256" in body["description"]
    assert (await env.result("getWebhookInfo"))["url"] == ""


async def test_url_must_be_http(env: ZaloEnv) -> None:
    """A webhook URL that is not http(s) is refused."""
    _, body = await env.call("setWebhook", url="ftp://x", secret_token=SECRET)
    assert body["error_code"] == 400


async def test_updates_are_posted_with_the_secret(env: ZaloEnv, hook: Receiver) -> None:
    """Once set, a user's text is POSTed as {ok, result: update} with the secret header."""
    set_result = await env.result("setWebhook", url=hook.url, secret_token=SECRET)
    assert set_result["url"] == hook.url
    info = await env.result("getWebhookInfo")
    assert (info["url"], info["pending_update_count"]) == (hook.url, 0)
    env.zalo.send_text(LAN, "Xin chào")
    posted = await hook.next()
    assert posted.headers["X-Bot-Api-Secret-Token"] == SECRET
    body = json.loads(posted.body)
    assert body["ok"] is True
    assert body["result"]["event_name"] == "message.text.received"
    assert body["result"]["message"]["text"] == "Xin chào"
    assert body["result"]["message"]["chat"]["id"] == LAN


async def test_flat_webhook_posts_the_bare_update(hook: Receiver) -> None:
    """With wrap_webhook off the update itself is the body."""
    async with zalo_env(wrap_webhook=False) as env:
        env.zalo.create_user("Lan", user_id=LAN)
        await env.result("setWebhook", url=hook.url, secret_token=SECRET)
        env.zalo.send_text(LAN, "1")
        body = json.loads((await hook.next()).body)
        assert body["message"]["text"] == "1"


async def test_failed_posts_are_retried_in_order(env: ZaloEnv, hook: Receiver) -> None:
    """A 500 from the webhook is retried; the update is not lost and order is kept."""
    hook.statuses = [500]
    await env.result("setWebhook", url=hook.url, secret_token=SECRET)
    env.zalo.send_text(LAN, "một")
    env.zalo.send_text(LAN, "hai")
    texts = [json.loads((await hook.next()).body)["result"]["message"]["text"] for _ in range(3)]
    assert texts == ["một", "một", "hai"]
    counters = await env.user("GET", "/counters")
    assert counters["bot"]["webhook_failures_total"] == 1
    assert "500" in (await env.result("getWebhookInfo"))["last_error_message"]


async def test_get_updates_is_refused_while_a_webhook_is_set(env: ZaloEnv, hook: Receiver) -> None:
    """getUpdates conflicts with a webhook; after deleteWebhook it works again."""
    await env.result("setWebhook", url=hook.url, secret_token=SECRET)
    _, body = await env.call("getUpdates", timeout=0)
    assert (body["ok"], body["error_code"]) == (False, 409)
    await env.result("deleteWebhook")
    assert (await env.result("getWebhookInfo"))["url"] == ""
    env.zalo.send_text(LAN, "1")
    assert (await env.result("getUpdates", timeout=0))["message"]["text"] == "1"


async def test_updates_wait_for_a_webhook(env: ZaloEnv, hook: Receiver) -> None:
    """Updates queued before the webhook was set are delivered once it is."""
    env.zalo.send_text(LAN, "sớm")
    await env.result("setWebhook", url=hook.url, secret_token=SECRET)
    body = json.loads((await hook.next()).body)
    assert body["result"]["message"]["text"] == "sớm"
