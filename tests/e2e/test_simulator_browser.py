"""The demo in headless Chromium: chat as a member of staff, press a button, see the reply."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import shutil
from collections.abc import AsyncIterator
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from bot.cli import demo
from bot.i18n import t
from tests.e2e.conftest import free_port

pytestmark = [pytest.mark.e2e, pytest.mark.browser]
ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "tests" / "artifacts"
CHROMIUM = os.environ.get("REFORMBOT_CHROMIUM") or shutil.which("chromium")
STAFF = next(p for p in demo.PERSONAS if p.id == "staff")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


@pytest.fixture
async def demo_url(tmp_path) -> AsyncIterator[str]:
    """Run the whole demo (seeded database, sandbox, bot) on a free port."""
    said: list[str] = []
    ready = asyncio.Event()
    stop = asyncio.Event()

    def say(text: str) -> None:
        said.append(text)
        ready.set()

    port = free_port()
    task = asyncio.create_task(
        demo.run_demo(
            host="127.0.0.1",
            port=port,
            db=demo.fresh_database(tmp_path),
            say=say,
            stop=stop,
        )
    )
    async with asyncio.timeout(60):
        waiter = asyncio.create_task(ready.wait())
        await asyncio.wait({task, waiter}, return_when=asyncio.FIRST_COMPLETED)
        if task.done():
            task.result()
    assert f"http://127.0.0.1:{port}/" in said[0]
    yield f"http://127.0.0.1:{port}/"
    stop.set()
    await task


@pytest.fixture
async def browser() -> AsyncIterator[Any]:
    """Give a headless Chromium, closed afterwards; skip where there is none."""
    if CHROMIUM is None:
        pytest.skip("needs Chromium (apt-get install chromium, or set REFORMBOT_CHROMIUM)")
    playwright_api = pytest.importorskip("playwright.async_api")
    async with playwright_api.async_playwright() as pw:
        launched = await pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield launched
        finally:
            with contextlib.suppress(Exception):
                await launched.close()


async def test_staff_member_chats_in_the_simulator(demo_url, browser):
    page = await browser.new_page(viewport={"width": 1100, "height": 760})
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    await page.goto(demo_url)
    await page.wait_for_selector('[data-testid="stream-status"][data-state="live"]')
    await page.select_option('[data-testid="persona-picker"]', str(STAFF.user_id))
    await page.fill('[data-testid="message-input"]', "/me")
    await page.click('[data-testid="send-button"]')
    bot = page.locator('[data-sender="bot"]')
    profile = bot.filter(has_text="CB031")
    await profile.wait_for()
    assert "UBND phường An Phú" in await profile.inner_text()

    notice = bot.filter(has_text="Công văn số 125/SGDĐT-VP")
    await notice.wait_for()
    await notice.locator('[data-testid="inline-button"]').click()
    await bot.filter(has_text="Đã xác nhận nhận công văn lúc").wait_for()
    assert await notice.locator('[data-testid="inline-button"]').count() == 0

    await page.fill('[data-testid="message-input"]', "/lang")
    await page.click('[data-testid="send-button"]')
    button = page.locator('[data-testid="inline-button"][data-callback-data="lang:en"]')
    await button.click()
    await bot.filter(has_text="Switched to English.").wait_for()
    await page.fill('[data-testid="message-input"]', "/help")
    await page.click('[data-testid="send-button"]')
    await bot.filter(has_text="Commands you may use").wait_for()
    assert await bot.filter(has_text=t("lang.changed", "en")).count() == 1
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    shot = ARTIFACTS / "simulator-staff.png"
    await page.screenshot(path=str(shot), full_page=True)
    assert shot.stat().st_size > 10_000
    assert errors == []


PHONE = {"width": 390, "height": 844}
# Words the page showed in English before; none may be visible now.
ENGLISH = ("Persona", "Chat", "Send", "Message", "New user", "Create", "Name", "live", "offline")


async def _in_viewport(locator, height: int) -> bool:
    """Tell whether an element is wholly inside the viewport's height."""
    box = await locator.bounding_box()
    return box is not None and box["y"] >= 0 and box["y"] + box["height"] <= height


async def test_simulator_on_a_phone_in_vietnamese_and_hanoi_time(demo_url, browser):
    context = await browser.new_context(
        viewport=PHONE,
        timezone_id="America/New_York",
        locale="en-US",
        is_mobile=True,
        has_touch=True,
    )
    page = await context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    await page.goto(demo_url)
    await page.wait_for_selector('[data-testid="stream-status"][data-state="live"]')

    picker = page.locator('[data-testid="persona-picker"]')
    toggle = page.locator('[data-testid="persona-toggle"]')
    assert not await picker.is_visible()  # the persona list starts folded on a phone
    assert await toggle.get_attribute("aria-expanded") == "false"
    await toggle.click()
    assert await picker.is_visible()
    await picker.select_option(str(STAFF.user_id))
    assert not await picker.is_visible()  # picking a persona folds it again
    await page.wait_for_selector('[data-testid="message-list"][data-loaded]')

    bot = page.locator('[data-sender="bot"]')
    for _ in range(4):
        before = await bot.count()
        await page.fill('[data-testid="message-input"]', "/help")
        await page.click('[data-testid="send-button"]')
        await page.wait_for_function(
            "n => document.querySelectorAll('[data-sender=\"bot\"]').length > n",
            arg=before,
        )

    # Reopen the page as this persona: it opens at the newest message.
    await page.goto(f"{demo_url}?user={STAFF.user_id}")
    await page.wait_for_selector('[data-testid="message-list"][data-loaded]')
    scroll = await page.locator('[data-testid="message-list"]').evaluate(
        "el => ({top: el.scrollTop, client: el.clientHeight, height: el.scrollHeight,"
        " page: document.scrollingElement.scrollHeight, view: innerHeight})"
    )
    assert scroll["height"] > scroll["client"]  # the chat scrolls on its own...
    assert scroll["top"] + scroll["client"] >= scroll["height"] - 2  # ...at the newest
    assert scroll["page"] <= scroll["view"]  # and the page itself does not scroll
    for testid in ("composer", "message-input", "send-button"):
        assert await _in_viewport(page.locator(f'[data-testid="{testid}"]'), 844), testid

    times = page.locator('[data-testid="message-time"]')
    assert await times.count() >= 8
    for time in await times.all():
        moment = datetime.fromisoformat(await time.get_attribute("datetime"))
        hanoi = moment.astimezone(ZoneInfo("Asia/Ho_Chi_Minh")).strftime("%H:%M")
        new_york = moment.astimezone(ZoneInfo("America/New_York")).strftime("%H:%M")
        assert await time.inner_text() == hanoi
        assert hanoi != new_york

    assert (await page.locator('[data-testid="send-button"]').inner_text()) == "Gửi"
    assert await toggle.inner_text() == "☰ Đổi vai"
    assert await page.locator('[data-testid="stream-status"]').inner_text() == "trực tuyến"
    placeholder = await page.locator('[data-testid="message-input"]').get_attribute("placeholder")
    assert placeholder == "Nhập tin nhắn"
    await toggle.click()
    labels = await page.locator(".side label, .side h1, .side button").all_text_contents()
    assert labels == [
        "Mô phỏng Telegram",
        "Đóng vai",
        "Cuộc trò chuyện",
        "Người dùng mới",
        "Tạo",
    ]
    chrome = await page.evaluate(
        "[...document.querySelectorAll('.side, .chat-header, .composer')]"
        ".map(el => el.innerText).join('\\n')"
    )
    assert not [w for w in ENGLISH if re.search(rf"\b{w}\b", chrome)], chrome
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    await page.screenshot(path=str(ARTIFACTS / "simulator-phone-personas.png"))
    await toggle.click()

    shot = ARTIFACTS / "simulator-phone.png"
    await page.screenshot(path=str(shot))
    assert shot.stat().st_size > 10_000
    assert errors == []
