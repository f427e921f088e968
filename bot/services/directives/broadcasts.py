"""Announcements and surveys to a segment: chosen now, delivered by the outbox, cancellable."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from datetime import datetime

from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from bot.messages import Html, OutboundMessage
from bot.models import (
    Broadcast,
    BroadcastStatus,
    Contact,
    OutboxStatus,
    Person,
    PersonRole,
    Role,
    UnitKind,
)
from bot.services.delivery import outbox
from bot.services.delivery.contacts import reachable
from bot.services.directives.directives import Target, resolve_units
from bot.services.errors import InvalidInput, NotFound
from bot.services.org import audit
from bot.services.org.access import Actor, require

KIND = "broadcast"
TEXT_MAX = 4000
CAPTION_MAX = 1024
PRIORITY = 200
RECENT = 10


@dataclass(frozen=True)
class Segment:
    """Who receives a broadcast: staff (of units, with roles) and/or citizens who opted in."""

    staff: bool = True
    citizens: bool = False
    units: tuple[str, ...] = ()
    subtree: str | None = None
    kinds: tuple[UnitKind, ...] = ()
    roles: tuple[Role, ...] = ()

    def dumps(self) -> str:
        """Serialise for the record."""
        return json.dumps(asdict(self), ensure_ascii=False)


@dataclass(frozen=True)
class Progress:
    """How far a broadcast has gone."""

    broadcast: Broadcast
    sent: int
    failed: int
    pending: int
    cancelled: int

    @property
    def running(self) -> bool:
        """Tell whether messages are still to leave."""
        return self.broadcast.status != BroadcastStatus.CANCELLED and self.pending > 0


async def _staff_contacts(session: AsyncSession, segment: Segment) -> list[Contact]:
    """Return the usable chat account of each member of staff a segment names (one each)."""
    stmt = select(Person.id).where(col(Person.active).is_(True))
    if segment.units or segment.subtree or segment.kinds:
        target = Target(units=segment.units, subtree=segment.subtree, kinds=segment.kinds)
        units = await resolve_units(session, target)
        stmt = stmt.where(col(Person.unit_id).in_([u.id for u in units]))
    if segment.roles:
        holders = select(PersonRole.person_id).where(
            col(PersonRole.role).in_([r.value for r in segment.roles])
        )
        stmt = stmt.where(col(Person.id).in_(holders))
    people = (await session.exec(stmt)).all()
    found = await reachable(session, people, optional=True)
    return sorted(found.values(), key=lambda c: c.id or 0)


async def recipients(session: AsyncSession, segment: Segment) -> list[Contact]:
    """Return the contacts a segment reaches: never opted out, never blocked."""
    found: dict[int | None, Contact] = {}
    if segment.staff:
        found.update({c.id: c for c in await _staff_contacts(session, segment)})
    if segment.citizens:
        stmt = select(Contact).where(col(Contact.person_id).is_(None))
        found.update({c.id: c for c in (await session.exec(stmt)).all()})
    return [c for c in found.values() if not c.opted_out and c.blocked_at is None]


def message(text_html: str, *, attachment_id: int | None, media: str) -> OutboundMessage:
    """Return the broadcast as recipients see it."""
    return OutboundMessage(
        "broadcast.message", {"text": Html(text_html)}, attachment_id=attachment_id, media=media
    )


def validate(text_html: str, *, attachment_id: int | None) -> None:
    """Refuse empty or oversize content (captions are shorter than texts)."""
    if not text_html.strip() and attachment_id is None:
        raise InvalidInput("broadcast.error.empty")
    limit = CAPTION_MAX if attachment_id is not None else TEXT_MAX
    if len(text_html) > limit:
        raise InvalidInput("broadcast.error.too_long", limit=limit)


async def create(
    session: AsyncSession,
    *,
    actor: Actor,
    text_html: str,
    segment: Segment,
    label: str,
    send_at: datetime,
    now: datetime,
    attachment_id: int | None = None,
    media: str = "text",
    paid: bool = False,
) -> Broadcast:
    """Queue a broadcast to every contact of the segment (due at send_at) and audit it."""
    require(actor, Role.ADMIN)
    validate(text_html, attachment_id=attachment_id)
    if send_at < now:
        send_at = now
    contacts = await recipients(session, segment)
    if not contacts:
        raise InvalidInput("broadcast.error.nobody")
    status = BroadcastStatus.SCHEDULED if send_at > now else BroadcastStatus.SENDING
    row = Broadcast(
        text=text_html,
        attachment_id=attachment_id,
        media=media,
        segment=segment.dumps(),
        segment_label=label[:500],
        send_at=send_at,
        status=status,
        total=len(contacts),
        created_by=actor.label,
        created_at=now,
    )
    session.add(row)
    await session.flush()
    msg = message(text_html, attachment_id=attachment_id, media=media)
    for contact in contacts:
        await outbox.enqueue(
            session,
            contact=contact,
            message=msg,
            kind=KIND,
            ref_id=row.id,
            now=now,
            due_at=send_at,
            priority=PRIORITY,
            paid=paid,
        )
    audit.record(
        session,
        actor=actor.label,
        action="broadcast.create",
        now=now,
        subject=f"broadcast:{row.id}",
        count=len(contacts),
        detail=label[:2000],
    )
    return row


async def progress_of(session: AsyncSession, broadcast: Broadcast) -> Progress:
    """Count a broadcast's messages by status."""
    assert broadcast.id is not None
    counts = await outbox.progress(session, kind=KIND, ref_id=broadcast.id)
    pending = counts.get(OutboxStatus.PENDING, 0) + counts.get(OutboxStatus.SENDING, 0)
    return Progress(
        broadcast,
        counts.get(OutboxStatus.SENT, 0),
        counts.get(OutboxStatus.FAILED, 0),
        pending,
        counts.get(OutboxStatus.CANCELLED, 0),
    )


async def recent(session: AsyncSession, *, actor: Actor) -> list[Progress]:
    """List the latest broadcasts with live progress."""
    require(actor, Role.ADMIN, Role.LEADER)
    stmt = select(Broadcast).order_by(col(Broadcast.id).desc()).limit(RECENT)
    return [await progress_of(session, b) for b in (await session.exec(stmt)).all()]


async def cancel(
    session: AsyncSession, *, actor: Actor, broadcast_id: int, now: datetime
) -> Progress:
    """Cancel a broadcast: once this commits, none of its pending messages leaves."""
    require(actor, Role.ADMIN)
    row = await session.get(Broadcast, broadcast_id)
    if row is None:
        raise NotFound("broadcast.error.unknown", id=broadcast_id)
    if row.status != BroadcastStatus.CANCELLED:
        stopped = await outbox.cancel(session, kind=KIND, ref_id=broadcast_id)
        row.status, row.cancelled_at = BroadcastStatus.CANCELLED, now
        session.add(row)
        audit.record(
            session,
            actor=actor.label,
            action="broadcast.cancel",
            now=now,
            subject=f"broadcast:{broadcast_id}",
            count=stopped,
        )
    return await progress_of(session, row)
