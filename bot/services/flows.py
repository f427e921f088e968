"""Open conversations kept in the database: one per contact, with an expiry, resumable.

A flow is read and written with SQL statements built once, not through the ORM (a step is most
of what a citizen's update does, and the ORM's loading and flushing cost more than the step).
Every write names the row as it was read (its id, step and last change): a flow changed or
closed meanwhile by another process raises StaleFlow, and the update is handled again from the
database. That lets a process keep the flows it wrote in a FlowCache and skip reading them back
at the next step; a cached flow that no step writes is checked against its row before use.
"""

from __future__ import annotations

import json
import secrets
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Delete, Select, Table, Update, bindparam, delete, insert, select, update
from sqlmodel.ext.asyncio.session import AsyncSession

from bot.models import Contact, Flow

HISTORY = "_history"
NONCE = "_nonce"
PENDING = "flows_written"  # session.info: contact id -> the flow as committed (None: closed)
CACHE_SECONDS = 900.0
CACHE_SIZE = 10_000
FLOWS: Table = Flow.__table__  # type: ignore[attr-defined]


class StaleFlow(Exception):
    """The flow's row changed (or went) in another process since it was read."""


@dataclass
class OpenFlow:
    """A contact's open flow as read (or last written) by this process."""

    id: int
    contact_id: int
    kind: str
    step: str
    data: str
    started_at: datetime
    updated_at: datetime
    expires_at: datetime
    cached: bool = False  # taken from the cache, not read in this transaction

    def version(self) -> dict[str, Any]:
        """Return what names this row as it stands: its id, step and last change."""
        return {"v_id": self.id, "v_step": self.step, "v_updated_at": self.updated_at}


def _select() -> Select[Any]:
    """Return the read of a contact's flow."""
    return select(*FLOWS.c).where(FLOWS.c.contact_id == bindparam("contact_id"))


def _matches() -> Any:
    """Return the condition naming a flow's row as it was read."""
    c = FLOWS.c
    return (
        (c.id == bindparam("v_id"))
        & (c.step == bindparam("v_step"))
        & (c.updated_at == bindparam("v_updated_at", type_=c.updated_at.type))
    )


def _update() -> Update:
    """Return the write of a flow's step (only if the row is as it was read)."""
    c = FLOWS.c
    return (
        update(FLOWS)
        .where(_matches())
        .values(
            step=bindparam("n_step"),
            data=bindparam("n_data"),
            updated_at=bindparam("n_updated_at", type_=c.updated_at.type),
            expires_at=bindparam("n_expires_at", type_=c.expires_at.type),
        )
    )


def _delete() -> Delete:
    """Return the removal of a flow (only if the row is as it was read)."""
    return delete(FLOWS).where(_matches())


SELECT, UPDATE, DELETE, INSERT = _select(), _update(), _delete(), insert(FLOWS)


class FlowCache:
    """The flows this process last committed, by contact: read back from here, checked on write.

    Only open flows are kept (a flow another process starts is never hidden by a cached 'none').
    Entries live CACHE_SECONDS at most and CACHE_SIZE of them (memory, not correctness).
    """

    def __init__(
        self,
        seconds: float = CACHE_SECONDS,
        size: int = CACHE_SIZE,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.seconds, self.size, self.clock = seconds, size, clock
        self.rows: OrderedDict[int, tuple[float, OpenFlow]] = OrderedDict()

    def get(self, contact_id: int) -> OpenFlow | None:
        """Return a copy of the contact's cached flow, or None."""
        entry = self.rows.get(contact_id)
        if entry is None:
            return None
        until, flow = entry
        if until <= self.clock():
            del self.rows[contact_id]
            return None
        return replace(flow, cached=True)

    def committed(self, session: AsyncSession) -> None:
        """Keep what a committed transaction wrote to flows."""
        for contact_id, flow in session.info.pop(PENDING, {}).items():
            if flow is None:
                self.rows.pop(contact_id, None)
                continue
            self.rows[contact_id] = (self.clock() + self.seconds, replace(flow, cached=False))
            self.rows.move_to_end(contact_id)
        while len(self.rows) > self.size:
            self.rows.popitem(last=False)

    def failed(self, session: AsyncSession) -> None:
        """Forget the flows a failed transaction touched (their rows are as before, or unknown)."""
        for contact_id in session.info.pop(PENDING, {}):
            self.rows.pop(contact_id, None)

    def forget(self, contact_id: int) -> None:
        """Drop a contact's entry."""
        self.rows.pop(contact_id, None)


def _written(session: AsyncSession, contact_id: int, flow: OpenFlow | None) -> None:
    """Note what this transaction leaves in the contact's flow row."""
    session.info.setdefault(PENDING, {})[contact_id] = flow


async def _read(session: AsyncSession, contact_id: int) -> OpenFlow | None:
    """Read the contact's flow row."""
    row = (await (await session.connection()).execute(SELECT, {"contact_id": contact_id})).first()
    return None if row is None else OpenFlow(**row._mapping)


async def current(
    session: AsyncSession,
    *,
    contact_id: int,
    now: datetime,
    cache: FlowCache | None = None,
) -> OpenFlow | None:
    """Return the contact's open flow (from `cache` when it holds it); an expired one is removed
    and None returned."""
    flow = cache.get(contact_id) if cache is not None else None
    if flow is None:
        flow = await _read(session, contact_id)
    if flow is not None and flow.expires_at <= now:
        await end(session, flow)
        return None
    return flow


async def confirm(session: AsyncSession, flow: OpenFlow) -> None:
    """Check a cached flow against its row before acting on it without writing; else StaleFlow."""
    if not flow.cached:
        return
    row = await _read(session, flow.contact_id)
    if row is None or row.version() != flow.version():
        raise StaleFlow
    flow.cached = False


async def _write(session: AsyncSession, statement: Any, params: dict[str, Any]) -> None:
    """Run a checked write; StaleFlow when the row is no longer as it was read."""
    result = await (await session.connection()).execute(statement, params)
    if result.rowcount != 1:
        raise StaleFlow


async def begin(
    session: AsyncSession,
    *,
    contact: Contact,
    kind: str,
    step: str,
    now: datetime,
    ttl: timedelta,
    data: dict[str, Any] | None = None,
) -> OpenFlow:
    """Start a flow for a contact, replacing any open one."""
    assert contact.id is not None
    old = await current(session, contact_id=contact.id, now=now)
    if old is not None:
        await end(session, old)
    values: dict[str, Any] = {
        "contact_id": contact.id,
        "kind": kind,
        "step": step,
        "data": json.dumps({**(data or {}), NONCE: secrets.token_hex(3)}, ensure_ascii=False),
        "started_at": now,
        "updated_at": now,
        "expires_at": now + ttl,
    }
    result = await (await session.connection()).execute(INSERT, values)
    key = result.inserted_primary_key
    assert key is not None
    flow = OpenFlow(id=key[0], **values)
    _written(session, contact.id, flow)
    return flow


def data_of(flow: OpenFlow) -> dict[str, Any]:
    """Return the flow's answers so far."""
    data: dict[str, Any] = json.loads(flow.data)
    return data


def step_token(flow: OpenFlow) -> str:
    """Return what names this flow's current step in its buttons (stale buttons differ)."""
    return f"{data_of(flow).get(NONCE, '')}.{flow.step}"


async def _move(
    session: AsyncSession, flow: OpenFlow, *, step: str, data: str, now: datetime, ttl: timedelta
) -> None:
    """Write the flow's new step and answers (checked), and keep them in `flow`."""
    params = {
        **flow.version(),
        "n_step": step,
        "n_data": data,
        "n_updated_at": now,
        "n_expires_at": now + ttl,
    }
    await _write(session, UPDATE, params)
    flow.step, flow.data, flow.updated_at, flow.expires_at = step, data, now, now + ttl
    flow.cached = False
    _written(session, flow.contact_id, flow)


async def advance(
    session: AsyncSession,
    flow: OpenFlow,
    *,
    step: str,
    data: dict[str, Any],
    now: datetime,
    ttl: timedelta,
) -> None:
    """Move to the next step, remembering the one left for 'back'."""
    history = [*data.get(HISTORY, []), flow.step]
    text = json.dumps({**data, HISTORY: history}, ensure_ascii=False)
    await _move(session, flow, step=step, data=text, now=now, ttl=ttl)


async def remember(
    session: AsyncSession, flow: OpenFlow, *, data: dict[str, Any], now: datetime, ttl: timedelta
) -> None:
    """Keep new answers in the flow at the same step (a choice ticked, asked again)."""
    text = json.dumps(data, ensure_ascii=False)
    await _move(session, flow, step=flow.step, data=text, now=now, ttl=ttl)


async def back(session: AsyncSession, flow: OpenFlow, *, now: datetime, ttl: timedelta) -> bool:
    """Return to the previous step; False when already at the first."""
    data = data_of(flow)
    history = list(data.get(HISTORY, []))
    if not history:
        await confirm(session, flow)
        return False
    step = history.pop()
    text = json.dumps({**data, HISTORY: history}, ensure_ascii=False)
    await _move(session, flow, step=step, data=text, now=now, ttl=ttl)
    return True


async def end(session: AsyncSession, flow: OpenFlow) -> None:
    """Close a flow (finished or cancelled)."""
    await _write(session, DELETE, flow.version())
    _written(session, flow.contact_id, None)
