"""Rows one transaction has read already: the session keeps only weak references to its rows,
so a campaign, its questionnaire or an answer looked up at each step of a conversation would be
read again; they are kept here, for the transaction, instead."""

from __future__ import annotations

from typing import Any

from sqlmodel.ext.asyncio.session import AsyncSession

KEY = "surveys.memo"


def memo(session: AsyncSession) -> dict[tuple[Any, ...], Any]:
    """Return this transaction's kept survey rows, by kind and key."""
    kept: dict[tuple[Any, ...], Any] = session.info.setdefault(KEY, {})
    return kept
