"""`reformbot run` with [zalo] on: the Zalo inbound starts (polling or webhook) and the
dispatcher gets a 'zalo' lane with its own pacer."""

from __future__ import annotations

import asyncio

from pydantic import SecretStr

from bot import zalo_app
from bot.app import build_application
from bot.channels.zalo import ZaloChannel
from bot.config import Settings, TelegramSettings, ZaloSettings
from bot.i18n import t
from jobs.pacing import PACERS_KEY
from tests.zalo_fake import TOKEN, FakeZaloApi, update

TG_TOKEN = "123456789:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"


def settings(
    base: str = "https://bot-api.zaloplatforms.com", port: int = 8443, **zalo: object
) -> Settings:
    return Settings(
        telegram=TelegramSettings(token=SecretStr(TG_TOKEN), webhook_port=port),
        zalo=ZaloSettings(enabled=True, bot_token=SecretStr(TOKEN), api_base=base, **zalo),
    )


async def test_the_dispatcher_gets_a_zalo_lane_only_when_zalo_is_on(maker, clock):
    lanes = zalo_app.outbox_channels(settings(), maker, clock)
    assert isinstance(lanes["zalo"], ZaloChannel)
    assert lanes["zalo"].limits.text_max == 2000
    assert zalo_app.outbox_channels(Settings(), maker, clock) == {}
    app = build_application(settings(), maker=maker, clock=clock)
    assert set(app.bot_data["runtime"].extra[PACERS_KEY]) == {"telegram", "zalo"}


async def test_polling_answers_a_message_and_stops_cleanly(maker, clock):
    api = FakeZaloApi()
    await api.start()
    api.updates.append(update("55", "/lang"))
    side = await zalo_app.start(settings(api.base, poll_timeout=1), maker, clock)
    try:
        for _ in range(200):
            if api.texts("55"):
                break
            await asyncio.sleep(0.01)
    finally:
        await side.stop()
        await api.close()
    [question] = api.texts("55")
    assert t("typed.options_intro", "vi") in question
    assert f"1. {t('lang.vi', 'vi')}" in question
    assert "deleteWebhook" in [c.method for c in api.calls]


async def test_webhook_mode_registers_the_url_and_the_secret(maker, clock, unused_tcp_port):
    api = FakeZaloApi()
    await api.start()
    side = await zalo_app.start(
        settings(
            api.base,
            mode="webhook",
            webhook_url="https://bot.example.gov.vn/zalo",
            webhook_secret=SecretStr("zalo-secret-123"),
            port=unused_tcp_port,
        ),
        maker,
        clock,
    )
    try:
        for _ in range(200):
            if api.sent("setWebhook"):
                break
            await asyncio.sleep(0.01)
    finally:
        await side.stop()
        await api.close()
    assert api.sent("setWebhook") == [
        {"url": "https://bot.example.gov.vn/zalo", "secret_token": "zalo-secret-123"}
    ]
