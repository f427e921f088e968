"""Open conversations kept in the database: one per contact, with an expiry, resumable."""

from __future__ import annotations

import json
import secrets
from datetime import datetime, timedelta
from typing import Any

from sqlmodel import select
from sqlmodel.ext.asyncio.session import AsyncSession

from bot.models import Contact, Flow

HISTORY = "_history"
NONCE = "_nonce"


async def current(session: AsyncSession, *, contact_id: int, now: datetime) -> Flow | None:
    """Return the contact's open flow; an expired one is removed and None returned."""
    flow = (await session.exec(select(Flow).where(Flow.contact_id == contact_id))).first()
    if flow is not None and flow.expires_at <= now:
        await session.delete(flow)
        await session.flush()
        return None
    return flow


async def begin(
    session: AsyncSession,
    *,
    contact: Contact,
    kind: str,
    step: str,
    now: datetime,
    ttl: timedelta,
    data: dict[str, Any] | None = None,
) -> Flow:
    """Start a flow for a contact, replacing any open one."""
    assert contact.id is not None
    old = await current(session, contact_id=contact.id, now=now)
    if old is not None:
        await session.delete(old)
        await session.flush()
    flow = Flow(
        contact_id=contact.id,
        kind=kind,
        step=step,
        data=json.dumps({**(data or {}), NONCE: secrets.token_hex(3)}, ensure_ascii=False),
        started_at=now,
        updated_at=now,
        expires_at=now + ttl,
    )
    session.add(flow)
    return flow


def data_of(flow: Flow) -> dict[str, Any]:
    """Return the flow's answers so far."""
    data: dict[str, Any] = json.loads(flow.data)
    return data


def step_token(flow: Flow) -> str:
    """Return what names this flow's current step in its buttons (stale buttons differ)."""
    return f"{data_of(flow).get(NONCE, '')}.{flow.step}"


def advance(
    session: AsyncSession,
    flow: Flow,
    *,
    step: str,
    data: dict[str, Any],
    now: datetime,
    ttl: timedelta,
) -> None:
    """Move to the next step, remembering the one left for 'back'."""
    history = [*data.get(HISTORY, []), flow.step]
    flow.data = json.dumps({**data, HISTORY: history}, ensure_ascii=False)
    flow.step, flow.updated_at, flow.expires_at = step, now, now + ttl
    session.add(flow)


def back(session: AsyncSession, flow: Flow, *, now: datetime, ttl: timedelta) -> bool:
    """Return to the previous step; False when already at the first."""
    data = data_of(flow)
    history = list(data.get(HISTORY, []))
    if not history:
        return False
    flow.step = history.pop()
    flow.data = json.dumps({**data, HISTORY: history}, ensure_ascii=False)
    flow.updated_at, flow.expires_at = now, now + ttl
    session.add(flow)
    return True


async def end(session: AsyncSession, flow: Flow) -> None:
    """Close a flow (finished or cancelled)."""
    await session.delete(flow)
