"""A Zalo Official Account's token pair: stored once per OA, refreshed by one process at a time.

Zalo's refresh token works once. The rules that keep the account from being locked out:

* before a refresh token is spent, a journal entry (`refreshing_owner`, with a lease) is written
  and committed: no other process spends it meanwhile, and a process that died mid-refresh
  leaves a trace the next start finds;
* Zalo's answer is stored with the new pair in one transaction, conditioned on the version the
  refresh started from: a pair is never overwritten by an older one;
* an answer that refuses the refresh token marks the account as needing a new authorisation
  (the old access token keeps being used until it expires); a new `refresh_token` in the
  configuration clears that.

Tokens live only in this table; nothing here logs them or puts them in an error.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import update
from sqlalchemy.exc import IntegrityError
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from bot.models import ZaloOAToken

DEFAULT_EXPIRES_IN = 90_000  # seconds: Zalo's access tokens last 25 hours
ERROR_MAX = 500


@dataclass(frozen=True)
class Claim:
    """The right to spend one refresh token: who holds it, from which version of the pair.

    `resumed` is True when a refresh left unfinished (a crash) is being taken over.
    """

    oa_id: str
    owner: str
    version: int
    refresh_token: str
    resumed: bool = False

    def __repr__(self) -> str:
        """Show the claim without its token."""
        return f"Claim(oa_id={self.oa_id!r}, version={self.version}, resumed={self.resumed})"


@dataclass(frozen=True)
class Answer:
    """Zalo's answer to a refresh, read: the new pair, or the reason it was refused."""

    access_token: str | None = None
    refresh_token: str | None = None
    expires_in: int = DEFAULT_EXPIRES_IN
    error: str = ""

    @property
    def ok(self) -> bool:
        """Tell whether the answer carries a new pair."""
        return bool(self.access_token and self.refresh_token)

    def __repr__(self) -> str:
        """Show the answer without its tokens."""
        return f"Answer(ok={self.ok}, expires_in={self.expires_in}, error={self.error!r})"


def seed_hash(token: str) -> str:
    """Return the fingerprint of a configured refresh token (the token itself is not kept twice)."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def read_answer(raw: str) -> Answer:
    """Read the OAuth endpoint's JSON answer; an error names Zalo's code, never a token."""
    try:
        data: Any = json.loads(raw)
    except ValueError:
        return Answer(error="unreadable answer")
    if not isinstance(data, dict):
        return Answer(error="unreadable answer")
    access, refresh = data.get("access_token"), data.get("refresh_token")
    if isinstance(access, str) and access and isinstance(refresh, str) and refresh:
        try:
            expires_in = int(data.get("expires_in") or DEFAULT_EXPIRES_IN)
        except (TypeError, ValueError):
            expires_in = DEFAULT_EXPIRES_IN
        return Answer(access, refresh, max(60, expires_in))
    code = data.get("error", "?")
    name = data.get("error_name") or data.get("message") or data.get("error_description") or ""
    return Answer(error=f"refused ({code}) {str(name)[:200]}".strip())


async def read(session: AsyncSession, oa_id: str) -> ZaloOAToken | None:
    """Return an OA's row as the database holds it now."""
    stmt = (
        select(ZaloOAToken)
        .where(ZaloOAToken.oa_id == oa_id)
        .execution_options(populate_existing=True)
    )
    return (await session.exec(stmt)).first()


async def seed(
    session: AsyncSession, *, oa_id: str, refresh_token: str | None, now: datetime
) -> ZaloOAToken | None:
    """Create the OA's row from the configured refresh token; adopt a new one the operator set.

    A configured token already adopted once (same fingerprint) is ignored: it was spent.
    """
    row = await read(session, oa_id)
    if refresh_token is None:
        return row
    fingerprint = seed_hash(refresh_token)
    if row is None:
        row = ZaloOAToken(
            oa_id=oa_id, refresh_token=refresh_token, seed_hash=fingerprint, updated_at=now
        )
        try:
            async with session.begin_nested():
                session.add(row)
            return row
        except IntegrityError:  # another process seeded it meanwhile
            return await read(session, oa_id)
    if row.seed_hash == fingerprint:
        return row
    stmt = (
        update(ZaloOAToken)
        .where(col(ZaloOAToken.oa_id) == oa_id, col(ZaloOAToken.version) == row.version)
        .values(
            refresh_token=refresh_token,
            seed_hash=fingerprint,
            version=row.version + 1,
            refreshing_owner=None,
            refreshing_until=None,
            needs_reauth=False,
            last_error=None,
            updated_at=now,
        )
    )
    await session.exec(stmt)
    return await read(session, oa_id)


async def claim(
    session: AsyncSession, *, oa_id: str, owner: str, now: datetime, lease: timedelta
) -> Claim | None:
    """Write the journal entry that lets `owner` spend the refresh token; None if it may not.

    It may not while another holds an unexpired lease, or when there is no usable token.
    """
    row = await read(session, oa_id)
    if row is None or row.needs_reauth or not row.refresh_token:
        return None
    held = row.refreshing_owner is not None
    if held and row.refreshing_until is not None and row.refreshing_until > now:
        return None
    free = col(ZaloOAToken.refreshing_owner).is_(None) | (col(ZaloOAToken.refreshing_until) <= now)
    stmt = (
        update(ZaloOAToken)
        .where(col(ZaloOAToken.oa_id) == oa_id, col(ZaloOAToken.version) == row.version)
        .where(free)
        .values(refreshing_owner=owner, refreshing_until=now + lease, updated_at=now)
    )
    result = await session.exec(stmt)
    if int(result.rowcount or 0) != 1:
        return None
    return Claim(oa_id, owner, row.version, row.refresh_token, resumed=held)


def _same(claim: Claim) -> Any:
    """Return the condition that the pair is still the one the claim started from."""
    return (col(ZaloOAToken.oa_id) == claim.oa_id) & (col(ZaloOAToken.version) == claim.version)


async def save(
    session: AsyncSession, claim: Claim, answer: Answer, *, raw: str, now: datetime
) -> bool:
    """Store the new pair and Zalo's raw answer, closing the journal; False if superseded."""
    assert answer.ok
    stmt = (
        update(ZaloOAToken)
        .where(_same(claim))
        .values(
            access_token=answer.access_token,
            access_expires_at=now + timedelta(seconds=answer.expires_in),
            refresh_token=answer.refresh_token,
            version=claim.version + 1,
            refreshing_owner=None,
            refreshing_until=None,
            last_answer=raw,
            last_error=None,
            needs_reauth=False,
            updated_at=now,
        )
    )
    result = await session.exec(stmt)
    return int(result.rowcount or 0) == 1


async def refused(
    session: AsyncSession, claim: Claim, answer: Answer, *, raw: str, now: datetime
) -> bool:
    """Record that Zalo refused the refresh token: a new authorisation is needed."""
    stmt = (
        update(ZaloOAToken)
        .where(_same(claim))
        .values(
            refreshing_owner=None,
            refreshing_until=None,
            last_answer=raw[:ERROR_MAX],
            last_error=answer.error[:ERROR_MAX],
            needs_reauth=True,
            updated_at=now,
        )
    )
    result = await session.exec(stmt)
    return int(result.rowcount or 0) == 1


async def unanswered(session: AsyncSession, claim: Claim, *, error: str, now: datetime) -> None:
    """Keep the journal (the token may have been spent) but let the next attempt take it over."""
    stmt = (
        update(ZaloOAToken)
        .where(_same(claim), col(ZaloOAToken.refreshing_owner) == claim.owner)
        .values(refreshing_until=now, last_error=error[:ERROR_MAX], updated_at=now)
    )
    await session.exec(stmt)


async def expire_access(session: AsyncSession, *, oa_id: str, version: int, now: datetime) -> None:
    """Mark the access token of a pair as expired (Zalo refused it), so the next use refreshes."""
    stmt = (
        update(ZaloOAToken)
        .where(col(ZaloOAToken.oa_id) == oa_id, col(ZaloOAToken.version) == version)
        .values(access_expires_at=now, updated_at=now)
    )
    await session.exec(stmt)
