"""Service rules on every backend: invites, contacts, roles and scopes."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlmodel import func, select

from bot.models import AuditLog, Contact, Invite, Role, UnitKind
from bot.services.delivery import contacts
from bot.services.errors import InvalidInput, NotFound, PermissionDenied
from bot.services.org import access, invites, org
from bot.services.org.access import Actor, system_actor
from tests import factories as f

ADMIN = system_actor("test")


async def seed(s):
    root = await f.unit(s, "SGD", "Sở", kind=UnitKind.DEPARTMENT)
    d1 = await f.unit(s, "PGD01", "Phòng GD&ĐT 1", kind=UnitKind.DISTRICT_OFFICE, parent=root)
    d2 = await f.unit(s, "PGD02", "Phòng GD&ĐT 2", kind=UnitKind.DISTRICT_OFFICE, parent=root)
    a = await f.person(s, "A1", d1)
    b = await f.person(s, "B1", d1)
    await f.person(s, "C1", d2)
    await f.person(s, "GONE", d1, active=False)
    return d1, d2, a, b


async def test_unit_invites_skip_linked_and_inactive(maker, clock):
    async with maker() as s:
        _, _, a, _ = await seed(s)
        await f.contact(s, "100", a)
        batch = await invites.create_invites(
            s, actor=ADMIN, now=clock.now(), valid_days=7, unit_code="pgd01"
        )
        await s.commit()
    assert [i.person_code for i in batch.issued] == ["B1"]
    assert batch.skipped_linked == 1
    assert batch.issued[0].expires_at == clock.now() + timedelta(days=7)
    async with maker() as s:
        stored = (await s.exec(select(Invite))).one()
        audit = (await s.exec(select(AuditLog))).one()
    assert stored.code_hash == invites.hash_code(batch.issued[0].code)
    assert batch.issued[0].code not in stored.code_hash
    assert (audit.action, audit.subject, audit.count) == ("invite.create", "pgd01", 1)


async def test_all_unlinked_and_unknown_targets(maker, clock):
    async with maker() as s:
        await seed(s)
        batch = await invites.create_invites(
            s, actor=ADMIN, now=clock.now(), valid_days=7, all_unlinked=True
        )
        assert sorted(i.person_code for i in batch.issued) == ["A1", "B1", "C1"]
        with pytest.raises(NotFound):
            await invites.create_invites(
                s, actor=ADMIN, now=clock.now(), valid_days=7, person_code="NOBODY"
            )
        with pytest.raises(InvalidInput):
            await invites.create_invites(s, actor=ADMIN, now=clock.now(), valid_days=7)


async def test_new_invite_revokes_the_old_one(maker, clock):
    async with maker() as s:
        await seed(s)
        old = await invites.create_invites(
            s, actor=ADMIN, now=clock.now(), valid_days=7, person_code="A1"
        )
        new = await invites.create_invites(
            s, actor=ADMIN, now=clock.now(), valid_days=7, person_code="A1"
        )
        c = await f.contact(s, "200")
        with pytest.raises(InvalidInput) as info:
            await invites.redeem(s, contact=c, code=old.issued[0].code, now=clock.now())
        assert info.value.key == "invite.invalid"
        person = await invites.redeem(s, contact=c, code=new.issued[0].code, now=clock.now())
        assert person.code == "A1"


async def test_staff_cannot_make_invites(maker, clock):
    async with maker() as s:
        _, _, a, _ = await seed(s)
        staff = Actor(name="a", roles=frozenset({Role.STAFF}), person=a)
        with pytest.raises(PermissionDenied):
            await invites.create_invites(
                s, actor=staff, now=clock.now(), valid_days=7, person_code="B1"
            )
        assert (await s.exec(select(func.count()).select_from(Invite))).one() == 0


async def test_relinking_moves_the_account(maker, clock):
    async with maker() as s:
        _, _, a, _ = await seed(s)
        old_phone = await f.contact(s, "300", a)
        batch = await invites.create_invites(
            s, actor=ADMIN, now=clock.now(), valid_days=7, person_code="A1"
        )
        new_phone = await f.contact(s, "301")
        await invites.redeem(s, contact=new_phone, code=batch.issued[0].code, now=clock.now())
        await s.commit()
        await s.refresh(old_phone)
    assert old_phone.person_id is None
    assert new_phone.person_id == a.id


async def test_account_linked_to_someone_else_is_refused(maker, clock):
    async with maker() as s:
        _, _, a, _ = await seed(s)
        c = await f.contact(s, "400", a)
        batch = await invites.create_invites(
            s, actor=ADMIN, now=clock.now(), valid_days=7, person_code="B1"
        )
        with pytest.raises(InvalidInput) as info:
            await invites.redeem(s, contact=c, code=batch.issued[0].code, now=clock.now())
        assert info.value.key == "invite.contact_linked_other"
        invite = (await s.exec(select(Invite))).one()
        assert invite.used_at is None


async def test_deactivated_person_cannot_redeem(maker, clock):
    async with maker() as s:
        _, _, a, _ = await seed(s)
        batch = await invites.create_invites(
            s, actor=ADMIN, now=clock.now(), valid_days=7, person_code="A1"
        )
        a.active = False
        s.add(a)
        c = await f.contact(s, "500")
        with pytest.raises(InvalidInput) as info:
            await invites.redeem(s, contact=c, code=batch.issued[0].code, now=clock.now())
        assert info.value.key == "invite.person_inactive"


async def test_touch_creates_once_and_updates_last_seen(maker, clock):
    ident = contacts.Identity("telegram", "42", "Chị Lan")
    async with maker() as s:
        first = await contacts.touch(s, identity=ident, now=clock.now(), default_locale="vi")
        await s.commit()
    clock.advance(timedelta(hours=1))
    async with maker() as s:
        again = await contacts.touch(s, identity=ident, now=clock.now(), default_locale="en")
        await s.commit()
        count = (await s.exec(select(func.count()).select_from(Contact))).one()
    assert count == 1
    assert again.id == first.id
    assert again.locale == "vi"
    assert again.last_seen_at == clock.now()


async def test_arrive_reads_a_contact_created_meanwhile(maker, clock, monkeypatch):
    """A first contact another update stored after our look-up is read, not stored twice."""
    ident = contacts.Identity("telegram", "43", "Anh Minh")
    async with maker() as s:
        other = await contacts.arrive(s, identity=ident, now=clock.now(), default_locale="vi")
        await s.commit()
    real_find = contacts.find
    calls: list[str] = []

    async def late_find(session, *, channel, external_id):
        calls.append(external_id)
        if len(calls) == 1:
            return None  # the look-up ran before the other update committed
        return await real_find(session, channel=channel, external_id=external_id)

    monkeypatch.setattr(contacts, "find", late_find)
    async with maker() as s:
        again = await contacts.arrive(s, identity=ident, now=clock.now(), default_locale="en")
        again.display_name = "Anh Minh Mới"
        s.add(again)
        await s.commit()
        rows = (await s.exec(select(Contact).where(Contact.external_id == "43"))).all()
    assert calls == ["43", "43"]
    assert again.id == other.id
    assert [(r.id, r.locale, r.display_name) for r in rows] == [(other.id, "vi", "Anh Minh Mới")]


async def test_set_locale_rejects_unknown(maker, clock):
    async with maker() as s:
        c = await f.contact(s, "1")
        with pytest.raises(InvalidInput):
            await contacts.set_locale(s, contact=c, locale="fr")
        await contacts.set_locale(s, contact=c, locale="en")
        assert c.locale == "en"


async def test_head_scope(maker):
    async with maker() as s:
        d1, d2, a, _ = await seed(s)
        head = Actor(name="h", roles=frozenset({Role.UNIT_HEAD}), person=a, unit=d1)
        access.require_unit_scope(head, d1)
        with pytest.raises(PermissionDenied):
            access.require_unit_scope(head, d2)
        unit, people = await org.unit_people(s, actor=head, unit_code=None)
        assert unit.code == "PGD01"
        assert [p.person.code for p in people] == ["A1", "B1"]
        with pytest.raises(PermissionDenied):
            await org.unit_tree(s, actor=head)
