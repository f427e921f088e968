"""The demo's department: the current two-tier structure, personas that can play every side."""

from __future__ import annotations

from sqlmodel import select

from bot.cli import demo
from bot.models import Person, PersonRole, Role, ServiceCounter, Unit, UnitKind


async def test_demo_offers_the_current_structure_and_a_rating_link_to_a_persona_s_unit(maker):
    await demo.seed(maker)
    async with maker() as s:
        units = {u.code: u for u in (await s.exec(select(Unit))).all()}
        counter = (
            await s.exec(select(ServiceCounter).where(ServiceCounter.code == demo.RATING_COUNTER))
        ).one()
        heads = (
            await s.exec(
                select(Person.code)
                .join(PersonRole, PersonRole.person_id == Person.id)
                .where(Person.unit_id == counter.unit_id, PersonRole.role == Role.UNIT_HEAD.value)
            )
        ).all()
    kinds = [u.kind for u in units.values()]
    assert UnitKind.DISTRICT_OFFICE not in kinds
    assert kinds.count(UnitKind.COMMUNE) == 11
    by_id = {u.id: u for u in units.values()}
    school_parents = {by_id[u.parent_id].kind for u in units.values() if u.kind == UnitKind.SCHOOL}
    assert school_parents == {UnitKind.DEPARTMENT, UnitKind.COMMUNE}
    head = next(p for p in demo.PERSONAS if p.id == "head")
    assert head.person_code in heads
    assert by_id[counter.unit_id].name == head.unit
