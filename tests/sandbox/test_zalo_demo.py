"""The demo's Zalo personas, prepared behind demo.ZALO_DEMO: seeded, linked, shown on the page."""

from __future__ import annotations

from sqlmodel import select

from bot.cli import demo
from bot.db import SessionMaker
from bot.models import Contact, Person
from bot.sandbox.zalo import ZaloSandbox


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


async def test_zalo_is_off_by_default(maker: SessionMaker) -> None:
    """Without the flag no Zalo account is seeded."""
    await demo.seed(maker)
    async with maker() as s:
        assert (await s.exec(select(Contact).where(Contact.channel == "zalo"))).all() == []


def test_zalo_personas_load_into_the_sandbox() -> None:
    """The Zalo personas load as Bot API users with string ids and their roles."""
    zalo = ZaloSandbox()
    loaded = zalo.set_personas(demo.zalo_sandbox_personas())
    assert [p.id for p in loaded] == ["zalo-staff", "zalo-citizen"]
    assert zalo.users["7100000000000000034"].display_name == "Huỳnh Tấn Lộc"
    assert {p.role for p in loaded} == {"Cán bộ", "Người dân"}
