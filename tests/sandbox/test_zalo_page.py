"""The simulator page with Zalo personas, in headless Chromium (skipped without Chromium)."""

from __future__ import annotations

import os
import shutil
from collections.abc import AsyncIterator
from typing import Any

import pytest

from tests.sandbox.zalo_support import ZaloEnv, zalo_env

pytestmark = pytest.mark.browser
CHROMIUM = os.environ.get("REFORMBOT_CHROMIUM") or next(
    (path for name in ("chromium", "chromium-browser") if (path := shutil.which(name))), None
)
TELEGRAM = [
    {
        "id": "tg",
        "label": "Phạm Quốc Bảo",
        "role": "Chuyên viên",
        "unit": "Phòng Nội vụ",
        "user_id": 5001,
    },
]
ZALO = [
    {
        "id": "citizen",
        "label": "Lê Thị Hoa",
        "role": "Công dân",
        "unit": "Phường An Phú",
        "user_id": "7100000000000000501",
    },
    {
        "id": "staff-oa",
        "label": "Võ Văn Tâm",
        "role": "Cán bộ",
        "unit": "UBND phường",
        "user_id": "7100000000000000502",
        "surface": "oa",
    },
]
CITIZEN, STAFF = ZALO[0]["user_id"], ZALO[1]["user_id"]


@pytest.fixture
async def env() -> AsyncIterator[ZaloEnv]:
    """A sandbox with Telegram and Zalo personas."""
    async with zalo_env() as started:
        started.server.set_personas(TELEGRAM)
        started.zalo.set_personas(ZALO)
        yield started


@pytest.fixture
async def page(env: ZaloEnv) -> AsyncIterator[Any]:
    """Open the page in headless Chromium."""
    if CHROMIUM is None:
        pytest.skip("needs Chromium (set REFORMBOT_CHROMIUM or install chromium)")
    playwright_api = pytest.importorskip("playwright.async_api")
    async with playwright_api.async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        tab = await browser.new_page()
        errors: list[str] = []
        tab.on("pageerror", lambda exc: errors.append(str(exc)))
        await tab.goto(env.server.url)
        await tab.wait_for_selector('[data-testid="stream-status"][data-state="live"]')
        yield tab
        await browser.close()
        assert errors == []


async def test_zalo_persona_chats_in_plain_text(env: ZaloEnv, page: Any) -> None:
    """A Zalo persona writes; the bot's numbered list shows as plain lines with no buttons."""
    options = await page.locator('[data-testid="persona-picker"] option').all_inner_texts()
    assert options[0] == "Phạm Quốc Bảo - Chuyên viên, Phòng Nội vụ"
    assert "Lê Thị Hoa - Công dân, Phường An Phú (Zalo)" in options
    await page.select_option('[data-testid="persona-picker"]', f"zalo:{CITIZEN}")
    await page.wait_for_selector(f'[data-testid="message-list"][data-loaded="zalo:{CITIZEN}"]')
    assert await page.locator('[data-testid="attach-button"]').is_hidden()
    await page.fill('[data-testid="message-input"]', "<b>Xin chào</b>")
    await page.click('[data-testid="send-button"]')
    update = await env.result("getUpdates", timeout=5)
    assert update["message"]["text"] == "<b>Xin chào</b>"
    assert update["message"]["chat"]["id"] == CITIZEN
    await env.result("sendChatAction", chat_id=CITIZEN, action="typing")
    await page.wait_for_selector('[data-testid="typing"]:not([hidden])')
    listed = "Ông/Bà đánh giá thế nào?\n1. Hài lòng\n2. Chưa hài lòng"
    await env.result("sendMessage", chat_id=CITIZEN, text=listed)
    bubble = page.locator('[data-sender="bot"] [data-testid="message-text"]')
    await bubble.wait_for()
    assert await bubble.inner_text() == listed
    assert await page.locator('[data-testid="typing"]').is_hidden()
    user_text = page.locator('[data-sender="user"] [data-testid="message-text"]')
    assert await user_text.inner_text() == "<b>Xin chào</b>"
    assert await page.locator("[data-sender] b, [data-sender] button").count() == 0


async def test_oa_persona_sees_quick_replies(env: ZaloEnv, page: Any) -> None:
    """An OA persona sees the OA's message; a quick reply sends its text as the user."""
    await page.select_option('[data-testid="persona-picker"]', f"zalo:{STAFF}")
    await page.wait_for_selector(f'[data-testid="message-list"][data-loaded="zalo:{STAFF}"]')
    pair = await env.user("POST", "/oa/tokens")
    quick = [{"title": "Đã nhận", "payload": "đã nhận"}]
    body = {
        "recipient": {"user_id": STAFF},
        "message": {"text": "Chỉ đạo mới", "quick_replies": quick},
    }
    assert (await env.cs(pair["access_token"], body))[1]["error"] == 0
    await page.locator('[data-testid="quick-reply"]').click()
    await page.wait_for_selector('[data-sender="user"]:has-text("đã nhận")')
    events = await env.user("GET", "/oa/events")
    assert events[-1]["message"]["text"] == "đã nhận"


async def test_back_to_a_telegram_persona(env: ZaloEnv, page: Any) -> None:
    """Leaving a Zalo persona brings back the Telegram chat and its attach button."""
    await page.select_option('[data-testid="persona-picker"]', f"zalo:{CITIZEN}")
    await page.wait_for_selector(f'[data-testid="message-list"][data-loaded="zalo:{CITIZEN}"]')
    await page.select_option('[data-testid="persona-picker"]', "5001")
    await page.wait_for_selector('[data-testid="message-list"][data-loaded="5001"]')
    assert await page.locator('[data-testid="attach-button"]').is_visible()
    assert await page.locator('[data-testid="chat-title"]').inner_text() == "Phạm Quốc Bảo"
