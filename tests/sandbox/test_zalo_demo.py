"""The demo's Zalo personas (on by default): seeded, linked, shown on the page, told."""

from __future__ import annotations

from sqlmodel import select

from bot.cli import demo
from bot.db import SessionMaker
from bot.models import Contact, Person
from bot.sandbox.server import SandboxServer
from bot.sandbox.zalo import DEFAULT_ZALO_TOKEN, ZaloSandbox
from bot.services.ratings.service_points import payload_for_counter


async def test_zalo_staff_persona_is_linked_on_zalo(maker: SessionMaker) -> None:
    """With Zalo on, the Zalo staff persona's account is linked to its staff record."""
    await demo.seed(maker, zalo=True)
    staff = next(p for p in demo.ZALO_PERSONAS if p.id == "zalo-staff")
    async with maker() as s:
        contact = (
            await s.exec(select(Contact).where(Contact.external_id == str(staff.user_id)))
        ).one()
        person = await s.get(Person, contact.person_id)
    assert contact.channel == "zalo"
    assert person is not None
    assert person.code == staff.person_code


async def test_zalo_is_on_by_default_and_can_be_left_out(maker: SessionMaker) -> None:
    """The demo seeds its Zalo staff account by default; zalo=False seeds none."""
    assert demo.ZALO_DEMO is True
    await demo.seed(maker)
    async with maker() as s:
        on_zalo = (await s.exec(select(Contact).where(Contact.channel == "zalo"))).all()
    assert [c.external_id for c in on_zalo] == [str(demo.ZALO_PERSONAS[0].user_id)]


async def test_without_zalo_no_zalo_account_is_seeded(maker: SessionMaker) -> None:
    """With zalo=False (the Telegram-only demo) no Zalo account is seeded."""
    await demo.seed(maker, zalo=False)
    async with maker() as s:
        assert (await s.exec(select(Contact).where(Contact.channel == "zalo"))).all() == []


def test_the_console_names_the_zalo_personas_and_what_to_type() -> None:
    """The hint names both Zalo personas, the acknowledgement words and the rating code."""
    hint = demo.zalo_hint()
    assert "Huỳnh Tấn Lộc" in hint
    assert "Lê Thị Thu" in hint
    assert "«đã nhận»" in hint
    assert payload_for_counter(demo.RATING_COUNTER) in hint
    assert "Lê Thị Thu" in demo.zalo_hint("en")


async def test_the_demo_settings_point_zalo_at_the_sandbox() -> None:
    """The bot's [zalo] is on and reaches the sandbox's /zalo base with the sandbox's token."""
    server = SandboxServer(zalo=ZaloSandbox())
    await server.start("127.0.0.1", 0)
    try:
        settings = demo.demo_settings(server, "sqlite+aiosqlite:///demo.db")
    finally:
        await server.stop()
    assert settings.zalo.enabled
    assert settings.zalo.api_base == f"http://127.0.0.1:{server.port}/zalo"
    assert settings.zalo.bot_token is not None
    assert settings.zalo.bot_token.get_secret_value() == DEFAULT_ZALO_TOKEN


def test_zalo_personas_load_into_the_sandbox() -> None:
    """The Zalo personas load as Bot API users with string ids and their roles."""
    zalo = ZaloSandbox()
    loaded = zalo.set_personas(demo.zalo_sandbox_personas())
    assert [p.id for p in loaded] == ["zalo-staff", "zalo-citizen"]
    assert zalo.users["7100000000000000034"].display_name == "Huỳnh Tấn Lộc"
    assert {p.role for p in loaded} == {"Cán bộ", "Người dân"}
