"""The chat simulator page in headless Chromium (skipped when no Chromium is installed)."""

from __future__ import annotations

import os
import shutil
from collections.abc import AsyncIterator
from typing import Any

import pytest
import telegram

from bot.sandbox import SandboxServer
from tests.sandbox.conftest import message_of, query_of

pytestmark = pytest.mark.browser
CHROMIUM = os.environ.get("REFORMBOT_CHROMIUM") or next(
    (path for name in ("chromium", "chromium-browser") if (path := shutil.which(name))), None
)
PERSONAS = [
    {
        "id": "chuyen-vien",
        "label": "Phạm Quốc Bảo",
        "role": "Chuyên viên",
        "unit": "Phòng Nội vụ",
        "user_id": 5001,
    },
    {
        "id": "lanh-dao",
        "label": "Nguyễn Thị Hằng",
        "role": "Lãnh đạo",
        "unit": "Văn phòng UBND",
        "user_id": 5002,
    },
]


@pytest.fixture
async def page(server: SandboxServer) -> AsyncIterator[Any]:
    """Open the page in headless Chromium with the demo personas."""
    if CHROMIUM is None:
        pytest.skip("needs Chromium (set REFORMBOT_CHROMIUM or install chromium)")
    playwright_api = pytest.importorskip("playwright.async_api")
    server.set_personas(PERSONAS)
    async with playwright_api.async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        tab = await browser.new_page()
        errors: list[str] = []
        tab.on("pageerror", lambda exc: errors.append(str(exc)))
        await tab.goto(server.url)
        await tab.wait_for_selector('[data-testid="stream-status"][data-state="live"]')
        yield tab
        await browser.close()
        assert errors == []


async def test_conversation_in_the_page(page: Any, tg: telegram.Bot) -> None:
    """A persona writes, sees the formatted reply, presses a button and sees the edit."""
    options = await page.locator('[data-testid="persona-picker"] option').all_inner_texts()
    assert options[0] == "Phạm Quốc Bảo - Chuyên viên, Phòng Nội vụ"
    await page.fill('[data-testid="message-input"]', "Tôi cần <img src=x onerror=alert(1)>")
    await page.click('[data-testid="send-button"]')
    [update] = await tg.get_updates(timeout=5)
    assert message_of(update).text == "Tôi cần <img src=x onerror=alert(1)>"
    keyboard = telegram.InlineKeyboardMarkup(
        [[telegram.InlineKeyboardButton("Đồng ý", callback_data="yes")]]
    )
    sent = await tg.send_message(5001, "<b>Hồ sơ</b> đã nhận", "HTML", reply_markup=keyboard)
    bubble = page.locator(f'[data-message-id="{sent.message_id}"][data-sender="bot"]')
    assert await bubble.locator("b").inner_text() == "Hồ sơ"
    user_bubble = page.locator('[data-sender="user"] [data-testid="message-text"]')
    assert await user_bubble.inner_text() == "Tôi cần <img src=x onerror=alert(1)>"
    assert await page.locator('[data-sender="user"] img').count() == 0
    await bubble.locator('[data-testid="inline-button"][data-callback-data="yes"]').click()
    [press] = await tg.get_updates(offset=update.update_id + 1, timeout=5)
    await tg.answer_callback_query(query_of(press).id, text="Đã ghi nhận")
    await tg.edit_message_text("Đã duyệt", chat_id=5001, message_id=sent.message_id)
    await page.wait_for_selector(f'[data-message-id="{sent.message_id}"]:has-text("Đã duyệt")')
    assert await page.locator('[data-testid="toast"]').inner_text() == "Đã ghi nhận"
    assert await bubble.locator('[data-testid="inline-button"]').count() == 0
