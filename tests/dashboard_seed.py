"""A small department for the dashboard's tests: two units, each role, something on every page."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlmodel.ext.asyncio.session import AsyncSession

from bot.db import SessionMaker
from bot.models import (
    Apology,
    ApologyStatus,
    Audience,
    Broadcast,
    BroadcastStatus,
    CaseStatus,
    Directive,
    DirectiveRecipient,
    Dossier,
    DossierStatus,
    FollowUpCase,
    Rating,
    Role,
    Task,
    TaskAssignment,
    TaskStatus,
    UnitKind,
)
from bot.services.org.access import system_actor
from bot.services.ratings import daily
from bot.services.surveys import campaigns, questionnaire
from tests import factories as f

PEOPLE = {  # persona: (code, unit key, roles)
    "admin": ("AD01", "SGD", (Role.ADMIN, Role.STAFF)),
    "leader": ("LD01", "SGD", (Role.LEADER,)),
    "head": ("HA01", "PA", (Role.UNIT_HEAD,)),
    "other_head": ("HB01", "XB", (Role.UNIT_HEAD,)),
    "staff": ("ST01", "PA", (Role.STAFF,)),
    "headless": ("HN01", None, (Role.UNIT_HEAD,)),  # a head with no unit: cannot sign in
}


@dataclass
class Seeded:
    """Ids the tests ask for."""

    people: dict[str, int]
    units: dict[str, int]
    shared_directive: int  # sent to both units
    other_directive: int  # sent to unit XB only
    ratings: dict[str, int]  # per unit code, in the last 30 days
    surveys: dict[str, int] = field(default_factory=dict)  # shared, other (XB only), open


def _rating(unit_id: int, level: int, at: datetime, n: int) -> Rating:
    """Return an anonymous rating."""
    return Rating(
        unit_id=unit_id, channel="telegram", voter_hash=f"v{n}", overall=level, created_at=at
    )


async def _directive(s: AsyncSession, number: str, now: datetime) -> Directive:
    """Add a directive issued a day ago."""
    row = Directive(
        number=number,
        issued_on=(now - timedelta(days=1)).date(),
        title=f"Về việc triển khai văn bản {number}",
        summary="Nội dung tóm tắt",
        audience=Audience.EVERYONE,
        target="units",
        ack_deadline=now + timedelta(days=2),
        created_by="test",
        created_at=now - timedelta(days=1),
    )
    s.add(row)
    await s.flush()
    return row


async def seed(maker: SessionMaker, now: datetime) -> Seeded:
    """Build the department and one row or more for every page."""
    async with maker() as s:
        root = await f.unit(s, "SGD", "Sở Giáo dục và Đào tạo", kind=UnitKind.DEPARTMENT)
        pa = await f.unit(s, "PA", "UBND phường An Phú", kind=UnitKind.COMMUNE, parent=root)
        xb = await f.unit(s, "XB", "UBND xã Bình Minh", kind=UnitKind.COMMUNE, parent=root)
        units = {"SGD": root, "PA": pa, "XB": xb}
        people = {}
        for key, (code, unit_key, roles) in PEOPLE.items():
            unit = units[unit_key] if unit_key else None
            people[key] = await f.person(s, code, unit, *roles, name=f"Cán bộ {code}")
        ratings = [
            _rating(pa.id, 5, now - timedelta(days=2), 1),
            _rating(pa.id, 4, now - timedelta(days=3), 2),
            _rating(pa.id, 1, now - timedelta(days=4), 3),
            _rating(xb.id, 5, now - timedelta(days=2), 4),
            _rating(xb.id, 3, now - timedelta(days=5), 5),
            _rating(xb.id, 2, now - timedelta(days=60), 6),  # outside the last 30 days
        ]
        s.add_all(ratings)
        await s.flush()
        await daily.add(s, ratings)
        shared = await _directive(s, "15/CT-SGDĐT", now)
        other = await _directive(s, "16/CT-SGDĐT", now)
        s.add_all(
            [
                DirectiveRecipient(
                    directive_id=shared.id,
                    person_id=people["staff"].id,
                    unit_id=pa.id,
                    acked_at=now - timedelta(hours=3),
                ),
                DirectiveRecipient(
                    directive_id=shared.id, person_id=people["other_head"].id, unit_id=xb.id
                ),
                DirectiveRecipient(
                    directive_id=other.id, person_id=people["other_head"].id, unit_id=xb.id
                ),
            ]
        )
        task = Task(
            title="Báo cáo công tác cải cách hành chính quý IV", created_by="test", created_at=now
        )
        s.add(task)
        await s.flush()
        s.add_all(
            [
                TaskAssignment(
                    task_id=task.id,
                    unit_id=pa.id,
                    due_at=now - timedelta(days=1),
                    status=TaskStatus.DONE,
                    done_at=now - timedelta(days=2),
                ),
                TaskAssignment(
                    task_id=task.id,
                    unit_id=xb.id,
                    due_at=now - timedelta(days=1),
                    status=TaskStatus.OPEN,
                ),
            ]
        )
        s.add(
            FollowUpCase(
                rating_id=ratings[2].id,
                unit_id=pa.id,
                status=CaseStatus.OPEN,
                opened_at=now - timedelta(days=4),
                due_at=now + timedelta(days=3),
            )
        )
        dossier = Dossier(
            code="HS-0001",
            unit_id=xb.id,
            citizen_name="Nguyễn Văn Dân",
            received_on=(now - timedelta(days=10)).date(),
            appointment_at=now - timedelta(days=1),
            status=DossierStatus.PROCESSING,
            created_at=now,
            updated_at=now,
        )
        s.add(dossier)
        await s.flush()
        s.add(
            Apology(
                dossier_id=dossier.id,
                unit_id=xb.id,
                original_appointment_at=dossier.appointment_at,
                status=ApologyStatus.ASKED,
                asked_at=now - timedelta(hours=5),
            )
        )
        s.add(
            Broadcast(
                text="Thông báo lịch tiếp công dân",
                segment="{}",
                segment_label="Toàn bộ cán bộ",
                send_at=now - timedelta(hours=1),
                status=BroadcastStatus.DONE,
                created_by="test",
                created_at=now - timedelta(hours=2),
            )
        )
        surveys = await _surveys(s, now)
        await s.commit()
        return Seeded(
            people={k: p.id for k, p in people.items()},
            units={k: u.id for k, u in units.items()},
            shared_directive=shared.id,
            other_directive=other.id,
            ratings={"PA": 3, "XB": 2},
            surveys=surveys,
        )


async def _surveys(s: AsyncSession, now: datetime) -> dict[str, int]:
    """Launch three one-question campaigns: to both units and to XB (closed), one still open."""
    system = system_actor("test")
    checked = questionnaire.check(
        {"code": "DS1", "title": "Khảo sát", "intro": ""},
        [(1, {"id": "Q1", "area": "Một cửa", "text": "Hài lòng không?", "type": "yes_no"})],
    )
    assert checked.definition is not None
    await questionnaire.save(s, checked.definition, actor=system, now=now)
    ids = {}
    for key, audience in (("shared", "units:PA,XB"), ("other", "units:XB"), ("open", "units:PA")):
        draft = campaigns.Draft(
            title=f"Khảo sát {key}",
            audience=campaigns.Audience.parse(audience),
            opens_at=now,
            closes_at=now + timedelta(days=7),
            questionnaire="DS1",
        )
        campaign = await campaigns.launch(s, draft, actor=system, now=now)
        assert campaign.id is not None
        ids[key] = campaign.id
        if key != "open":
            await campaigns.close(s, campaign.id, actor=system, now=now)
    return ids
