"""The outbox: messages written with the change that causes them, claimed and sent later."""

from __future__ import annotations

import functools
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, NamedTuple

from sqlalchemy import Integer, String, and_, bindparam, func, or_, text, update
from sqlalchemy.dialects import postgresql
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from bot.messages import OutboundMessage, codec
from bot.models import Channel, Contact, Outbox, OutboxStatus, UTCDateTime
from bot.services.delivery.contacts import reachable

ERROR_MAX = 500
PENDING, SENDING = OutboxStatus.PENDING, OutboxStatus.SENDING
TABLE = Outbox.metadata.tables["outbox"]  # Core statements, where ORM objects would cost per row
CONTACTS = Contact.metadata.tables["contact"]


@dataclass(frozen=True)
class Target:
    """What the dispatcher needs to know about a row right before sending it."""

    locale: str | None
    blocked: bool


async def enqueue(
    session: AsyncSession,
    *,
    contact: Contact,
    message: OutboundMessage,
    kind: str,
    now: datetime,
    due_at: datetime | None = None,
    ref_id: int | None = None,
    priority: int = 100,
    paid: bool = False,
) -> Outbox | None:
    """Queue a message to a contact in the caller's transaction; None when it blocked the bot."""
    if contact.blocked_at is not None:
        return None
    row = _row(
        channel=contact.channel,
        chat_id=contact.external_id,
        message=message,
        kind=kind,
        now=now,
        due_at=due_at,
        ref_id=ref_id,
        priority=priority,
        paid=paid,
    )
    row.contact_id = contact.id
    session.add(row)
    return row


async def enqueue_all(
    session: AsyncSession,
    *,
    contacts: Iterable[Contact],
    message: OutboundMessage,
    kind: str,
    now: datetime,
    ref_id: int | None = None,
    priority: int = 100,
) -> int:
    """Queue one message to several contacts; return how many were queued (blocked skipped)."""
    queued = 0
    for contact in contacts:
        row = await enqueue(
            session,
            contact=contact,
            message=message,
            kind=kind,
            now=now,
            ref_id=ref_id,
            priority=priority,
        )
        queued += row is not None
    return queued


async def enqueue_chat(
    session: AsyncSession,
    *,
    channel: Channel | str,
    chat_id: str,
    message: OutboundMessage,
    kind: str,
    now: datetime,
    due_at: datetime | None = None,
    ref_id: int | None = None,
    priority: int = 100,
    paid: bool = False,
) -> Outbox:
    """Queue a message to a group chat that has no contact."""
    row = _row(
        channel=Channel(channel),
        chat_id=chat_id,
        message=message,
        kind=kind,
        now=now,
        due_at=due_at,
        ref_id=ref_id,
        priority=priority,
        paid=paid,
    )
    row.is_group = True
    session.add(row)
    return row


def _row(
    *,
    channel: Channel,
    chat_id: str,
    message: OutboundMessage,
    kind: str,
    now: datetime,
    due_at: datetime | None,
    ref_id: int | None,
    priority: int,
    paid: bool,
) -> Outbox:
    """Build a pending row."""
    return Outbox(
        created_at=now,
        due_at=due_at or now,
        status=PENDING,
        priority=priority,
        kind=kind,
        ref_id=ref_id,
        channel=channel,
        chat_id=chat_id,
        paid=paid,
        payload=codec.dumps(message),
    )


def _due(now: datetime) -> Any:
    """Return the condition of rows to take: pending and due, or sending with a lapsed lease."""
    return or_(
        and_(TABLE.c.status == PENDING.value, TABLE.c.due_at <= now),
        and_(TABLE.c.status == SENDING.value, TABLE.c.lease_until <= now),
    )


class Claimed(NamedTuple):
    """A row just claimed: what sending it needs, and its lease (the dispatcher's job)."""

    id: int
    priority: int
    due_at: datetime
    chat_id: str
    channel: str
    is_group: bool
    paid: bool
    payload: str
    attempts: int
    parts_sent: int
    status: str
    lease_owner: str | None
    lease_until: datetime | None

    @property
    def order(self) -> tuple[int, datetime, int]:
        """Return the row's place in the send order."""
        return (self.priority, self.due_at, self.id)


CLAIMED = [TABLE.c[name] for name in Claimed._fields]


async def claim(
    session: AsyncSession,
    *,
    owner: str,
    now: datetime,
    limit: int,
    lease_seconds: float,
    skip_chats: Collection[str] = (),
) -> list[Claimed]:
    """Take up to `limit` due rows for `owner` (the caller commits); never one another holds.

    Core rows, not ORM objects: a claim of hundreds builds no identity map to commit and expire.
    """
    pick = select(TABLE.c.id).where(_due(now))
    if skip_chats:
        pick = pick.where(TABLE.c.chat_id.not_in(list(skip_chats)))
    pick = (
        pick.order_by(TABLE.c.priority, TABLE.c.due_at, TABLE.c.id)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    stmt = (
        update(TABLE)
        .where(TABLE.c.id.in_(pick.scalar_subquery()))
        .values(
            status=SENDING.value,
            lease_owner=owner,
            lease_until=now + timedelta(seconds=lease_seconds),
        )
        .returning(*CLAIMED)
    )
    conn = await session.connection()
    rows = [Claimed(*row) for row in await conn.execute(stmt)]
    rows.sort(key=lambda r: r.order)
    return rows


async def _rowcount(session: AsyncSession, stmt: Any) -> int:
    """Run an UPDATE and return how many rows it changed."""
    result = await session.exec(stmt.execution_options(synchronize_session=False))
    return int(result.rowcount)


async def _owned_update(
    session: AsyncSession,
    row_id: int,
    owner: str,
    values: dict[str, Any],
    statuses: Sequence[OutboxStatus] = (SENDING,),
) -> bool:
    """Change a row only while `owner` holds it; tell whether it did."""
    stmt = (
        update(Outbox)
        .where(
            col(Outbox.id) == row_id,
            col(Outbox.lease_owner) == owner,
            col(Outbox.status).in_(list(statuses)),
        )
        .values(**values)
    )
    return await _rowcount(session, stmt) == 1


async def mark_sent(
    session: AsyncSession,
    *,
    row_id: int,
    owner: str,
    message_id: str | None,
    now: datetime,
    parts: int = 0,
) -> bool:
    """Record a delivery (also of a row cancelled while it was in flight), in `parts` parts."""
    sent = [(row_id, message_id, parts)]
    return await mark_sent_many(session, owner=owner, sent=sent, now=now) == 1


def _sent_statement() -> Any:
    """Return the UPDATE that records one delivery, with bound parameters for executemany."""
    return (
        update(TABLE)
        .where(
            TABLE.c.id == bindparam("b_id"),
            TABLE.c.lease_owner == bindparam("b_owner"),
            or_(TABLE.c.status == SENDING.value, TABLE.c.status == OutboxStatus.CANCELLED.value),
        )
        .values(
            status=OutboxStatus.SENT.value,
            platform_message_id=bindparam("b_message_id"),
            sent_at=bindparam("b_now", type_=UTCDateTime()),
            parts_sent=bindparam("b_parts"),
            attempts=TABLE.c.attempts + 1,
            lease_until=None,
            last_error=None,
        )
    )


SENT_STATEMENT = _sent_statement()

# The same for a whole batch on PostgreSQL: one statement over arrays, executed once, where
# executemany runs the UPDATE once per row on the server.
SENT_MANY_PG = text(
    "UPDATE outbox SET status = :sent, platform_message_id = u.mid,"
    " sent_at = CAST(:now AS TIMESTAMP WITHOUT TIME ZONE), parts_sent = u.parts,"
    " attempts = outbox.attempts + 1, lease_until = NULL, last_error = NULL"
    " FROM unnest(CAST(:ids AS INTEGER[]), CAST(:mids AS VARCHAR[]), CAST(:parts AS INTEGER[]))"
    " AS u(id, mid, parts)"
    " WHERE outbox.id = u.id AND outbox.lease_owner = :owner"
    " AND outbox.status IN (:sending, :cancelled)"
).bindparams(
    bindparam("ids", type_=postgresql.ARRAY(Integer())),
    bindparam("mids", type_=postgresql.ARRAY(String())),
    bindparam("parts", type_=postgresql.ARRAY(Integer())),
    bindparam("now", type_=UTCDateTime()),
)


Sent = tuple[int, str | None] | tuple[int, str | None, int]


async def mark_sent_many(
    session: AsyncSession, *, owner: str, sent: Sequence[Sent], now: datetime
) -> int:
    """Record many deliveries at once, as (row id, message id[, parts]); return the rows changed."""
    if not sent:
        return 0
    params = [
        {
            "b_id": item[0],
            "b_owner": owner,
            "b_message_id": item[1],
            "b_now": now,
            "b_parts": item[2] if len(item) > 2 else 0,
        }
        for item in sent
    ]
    conn = await session.connection()  # Core: no ORM bookkeeping per row
    if len(params) > 1 and conn.dialect.name == "postgresql":
        arrays = {
            "ids": [p["b_id"] for p in params],
            "mids": [p["b_message_id"] for p in params],
            "parts": [p["b_parts"] for p in params],
        }
        states = {"sending": SENDING.value, "cancelled": OutboxStatus.CANCELLED.value}
        result = await conn.execute(
            SENT_MANY_PG,
            {**arrays, **states, "sent": OutboxStatus.SENT.value, "owner": owner, "now": now},
        )
        return int(result.rowcount)
    if len(params) == 1:
        result = await conn.execute(SENT_STATEMENT, params[0])
        return int(result.rowcount)
    await conn.execute(SENT_STATEMENT, params)
    return len(params)


async def retry_later(
    session: AsyncSession,
    *,
    row_id: int,
    owner: str,
    due_at: datetime,
    error: str,
    attempted: bool = True,
    parts: int | None = None,
) -> bool:
    """Put a row back as pending, due at `due_at`; count the attempt unless told not to.

    `parts`: how many parts of the message are out now (the next send resumes after them).
    """
    values: dict[str, Any] = {
        "status": PENDING,
        "due_at": due_at,
        "lease_owner": None,
        "lease_until": None,
        "last_error": error[:ERROR_MAX],
    }
    if attempted:
        values["attempts"] = Outbox.attempts + 1
    if parts is not None:
        values["parts_sent"] = parts
    return await _owned_update(session, row_id, owner, values)


async def mark_failed(
    session: AsyncSession,
    *,
    row_id: int,
    owner: str,
    error: str,
    attempted: bool = True,
    parts: int | None = None,
) -> bool:
    """Give a row up, with the reason (and how many of its parts went out, when some did)."""
    values: dict[str, Any] = {
        "status": OutboxStatus.FAILED,
        "lease_until": None,
        "last_error": error[:ERROR_MAX],
    }
    if attempted:
        values["attempts"] = Outbox.attempts + 1
    if parts is not None:
        values["parts_sent"] = parts
    return await _owned_update(session, row_id, owner, values)


async def note_parts(session: AsyncSession, *, row_id: int, owner: str, parts: int) -> bool:
    """Store, while `owner` sends a row in parts, how many are out (never fewer than stored)."""
    stmt = (
        update(Outbox)
        .where(
            col(Outbox.id) == row_id,
            col(Outbox.lease_owner) == owner,
            col(Outbox.status) == SENDING,
            col(Outbox.parts_sent) < parts,
        )
        .values(parts_sent=parts)
    )
    return await _rowcount(session, stmt) == 1


async def release(
    session: AsyncSession,
    *,
    row_ids: Collection[int],
    owner: str,
    due_at: datetime | None = None,
) -> int:
    """Give claimed rows back unsent (no attempt counted), due at `due_at` if given."""
    if not row_ids:
        return 0
    values: dict[str, Any] = {"status": PENDING, "lease_owner": None, "lease_until": None}
    if due_at is not None:
        values["due_at"] = due_at
    stmt = (
        update(Outbox)
        .where(
            col(Outbox.id).in_(list(row_ids)),
            col(Outbox.lease_owner) == owner,
            col(Outbox.status) == SENDING,
        )
        .values(**values)
    )
    return await _rowcount(session, stmt)


async def extend(session: AsyncSession, *, owner: str, now: datetime, lease_seconds: float) -> int:
    """Push back the lease of every row `owner` holds; return how many."""
    stmt = (
        update(Outbox)
        .where(col(Outbox.status) == SENDING, col(Outbox.lease_owner) == owner)
        .values(lease_until=now + timedelta(seconds=lease_seconds))
    )
    return await _rowcount(session, stmt)


async def targets(
    session: AsyncSession, *, row_ids: Collection[int], owner: str
) -> dict[int, Target]:
    """Return, for each row `owner` still holds, the recipient's locale and block state."""
    if not row_ids:
        return {}
    stmt = (
        select(TABLE.c.id, CONTACTS.c.locale, CONTACTS.c.blocked_at.is_not(None))
        .select_from(TABLE.outerjoin(CONTACTS, CONTACTS.c.id == TABLE.c.contact_id))
        .where(
            TABLE.c.id.in_(list(row_ids)),
            TABLE.c.status == SENDING.value,
            TABLE.c.lease_owner == owner,
        )
    )
    conn = await session.connection()  # Core: held rows are re-read often, a few times each
    return {
        row_id: _target(locale, bool(blocked))
        for row_id, locale, blocked in await conn.execute(stmt)
    }


@functools.lru_cache(maxsize=64)
def _target(locale: str | None, blocked: bool) -> Target:
    """Return the one Target of a locale and block state (rows share them)."""
    return Target(locale=locale, blocked=blocked)


async def target(session: AsyncSession, *, row_id: int, owner: str) -> Target | None:
    """Return the recipient's locale and block state if `owner` still holds the row, else None."""
    return (await targets(session, row_ids=[row_id], owner=owner)).get(row_id)


async def cancel(session: AsyncSession, *, kind: str, ref_id: int) -> int:
    """Cancel the unsent rows of a reference; claimed rows not yet sent are cancelled too."""
    stmt = (
        update(Outbox)
        .where(
            col(Outbox.kind) == kind,
            col(Outbox.ref_id) == ref_id,
            col(Outbox.status).in_([PENDING, SENDING]),
        )
        .values(status=OutboxStatus.CANCELLED, lease_until=None)
    )
    return await _rowcount(session, stmt)


async def progress(session: AsyncSession, *, kind: str, ref_id: int) -> dict[OutboxStatus, int]:
    """Count the rows of a reference by status (every status present, zero when none)."""
    stmt = (
        select(Outbox.status, func.count())
        .where(col(Outbox.kind) == kind, col(Outbox.ref_id) == ref_id)
        .group_by(col(Outbox.status))
    )
    counts = dict.fromkeys(OutboxStatus, 0)
    for status, count in (await session.exec(stmt)).all():
        counts[OutboxStatus(status)] = int(count)
    return counts


async def sent_message_id(session: AsyncSession, *, kind: str, ref_id: int) -> str | None:
    """Return the platform id of the last message sent for a reference."""
    stmt = (
        select(Outbox.platform_message_id)
        .where(
            col(Outbox.kind) == kind,
            col(Outbox.ref_id) == ref_id,
            col(Outbox.status) == OutboxStatus.SENT,
        )
        .order_by(col(Outbox.sent_at).desc(), col(Outbox.id).desc())
        .limit(1)
    )
    return (await session.exec(stmt)).first()


async def next_due(session: AsyncSession) -> datetime | None:
    """Return when the earliest unsent row becomes claimable (None when none is left)."""
    pending = select(func.min(Outbox.due_at)).where(col(Outbox.status) == PENDING)
    sending = select(func.min(Outbox.lease_until)).where(col(Outbox.status) == SENDING)
    times = [(await session.exec(q)).first() for q in (pending, sending)]
    known = [moment for moment in times if moment is not None]
    return min(known) if known else None


OUTSIDE_WINDOW = "outside_window"  # an Official Account may not write to the person any more
NO_CHANNEL = "no_channel"  # a channel this installation does not run (Telegram off, say)
OPTIONAL_KINDS = frozenset({"broadcast"})  # messages a person who opted out does not get


def falls_back(kind: str, code: str) -> bool:
    """Tell whether a failure is permanent for the contact, so another contact may be tried."""
    return kind == "blocked" or code in (OUTSIDE_WINDOW, NO_CHANNEL)


async def fall_back(
    session: AsyncSession, *, row_id: int, owner: str, kind: str, code: str, now: datetime
) -> Outbox | None:
    """Queue a row that failed for good to its person's other usable contact, once.

    Only a person's own messages fall back (not group chats, not citizens); a message goes to
    a second contact once at most, and the failed row's last_error says why and where it went.
    """
    if not falls_back(kind, code):
        return None
    stmt = select(Outbox).where(Outbox.id == row_id).execution_options(populate_existing=True)
    row = (await session.exec(stmt)).first()
    if row is None or row.status != OutboxStatus.FAILED or row.lease_owner != owner:
        return None
    if row.is_group or row.contact_id is None:
        return None
    failed = await session.get(Contact, row.contact_id)
    if failed is None or failed.person_id is None or await _fell_back(session, row, failed):
        return None
    found = await reachable(
        session, [failed.person_id], optional=row.kind in OPTIONAL_KINDS, exclude=[failed.id or 0]
    )
    contact = found.get(failed.person_id)
    if contact is None:
        return None
    again = Outbox(
        created_at=row.created_at,  # with the payload, what tells this message's rows apart
        due_at=now,
        status=PENDING,
        priority=row.priority,
        kind=row.kind,
        ref_id=row.ref_id,
        contact_id=contact.id,
        channel=contact.channel,
        chat_id=contact.external_id,
        paid=row.paid,
        payload=row.payload,
    )
    session.add(again)
    await session.flush()
    reason = row.last_error or kind
    row.last_error = f"{reason}; sent instead by {contact.channel} (row {again.id})"[:ERROR_MAX]
    session.add(row)
    return again


async def _fell_back(session: AsyncSession, row: Outbox, failed: Contact) -> bool:
    """Tell whether this message already went to another of the person's contacts."""
    stmt = (
        select(func.count())
        .select_from(Outbox)
        .join(Contact, col(Contact.id) == col(Outbox.contact_id))
        .where(
            col(Outbox.id) != row.id,
            col(Outbox.kind) == row.kind,
            col(Outbox.created_at) == row.created_at,
            col(Outbox.payload) == row.payload,
            col(Contact.person_id) == failed.person_id,
        )
    )
    if row.ref_id is not None:
        stmt = stmt.where(col(Outbox.ref_id) == row.ref_id)
    return bool((await session.exec(stmt)).one())
