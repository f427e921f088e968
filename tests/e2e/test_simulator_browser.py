"""The demo in headless Chromium: chat as a member of staff, press a button, see the reply."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bot import demo
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


async def test_staff_member_chats_in_the_simulator(demo_url):
    if CHROMIUM is None:
        pytest.skip("needs Chromium (apt-get install chromium, or set REFORMBOT_CHROMIUM)")
    playwright_api = pytest.importorskip("playwright.async_api")
    async with playwright_api.async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = await browser.new_page(viewport={"width": 1100, "height": 760})
            errors: list[str] = []
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            await page.goto(demo_url)
            await page.wait_for_selector('[data-testid="stream-status"]:text("live")')
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
        finally:
            with contextlib.suppress(Exception):
                await browser.close()
