"""Follow-up of bad ratings: the head answers the citizen, closes the case; late ones escalate."""

from __future__ import annotations

from datetime import datetime

from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from bot.messages import Button, OutboundMessage, Text
from bot.models import CaseStatus, Contact, FollowUpCase, Rating, Role, Unit
from bot.services.delivery import outbox
from bot.services.errors import InvalidInput, NotFound, PermissionDenied
from bot.services.org import audit
from bot.services.org.access import (
    Actor,
    contacts_with_role,
    for_admins,
    heads_or_admins,
    require,
)

TEXT_MAX = 2000


def open_case(
    session: AsyncSession, *, rating: Rating, now: datetime, due_at: datetime
) -> FollowUpCase:
    """Open the follow-up case of a bad rating (in the caller's transaction)."""
    assert rating.id is not None
    case = FollowUpCase(
        rating_id=rating.id,
        unit_id=rating.unit_id,
        status=CaseStatus.OPEN,
        opened_at=now,
        due_at=due_at,
    )
    session.add(case)
    return case


def head_buttons(case: FollowUpCase, rating: Rating) -> tuple[tuple[Button, ...], ...]:
    """Return the head's buttons: answer the citizen (unless anonymous) and close."""
    row: tuple[Button, ...] = (Button("case.close_button", f"case:close:{case.id}"),)
    if rating.contact_id is not None:
        row = (Button("case.answer_button", f"case:answer:{case.id}"), *row)
    return (row,)


async def _case(
    session: AsyncSession, *, actor: Actor, case_id: int
) -> tuple[FollowUpCase, Rating]:
    """Return a case its unit's head (or an admin) may act on."""
    require(actor, Role.ADMIN, Role.UNIT_HEAD)
    case = await session.get(FollowUpCase, case_id)
    if case is None:
        raise NotFound("case.error.unknown")
    if not actor.has_any(frozenset({Role.ADMIN})) and (
        actor.unit is None or actor.unit.id != case.unit_id
    ):
        raise PermissionDenied("errors.forbidden")
    rating = await session.get(Rating, case.rating_id)
    assert rating is not None
    return case, rating


async def check(session: AsyncSession, *, actor: Actor, case_id: int, answering: bool) -> None:
    """Refuse early what answer() or close() would refuse."""
    case, rating = await _case(session, actor=actor, case_id=case_id)
    if case.status == CaseStatus.CLOSED:
        raise InvalidInput("case.error.closed")
    if answering and rating.contact_id is None:
        raise InvalidInput("case.error.anonymous")


def _text(value: str) -> str:
    """Return a required, length-limited text."""
    if not value.strip():
        raise InvalidInput("case.error.empty")
    if len(value) > TEXT_MAX:
        raise InvalidInput("case.error.too_long", limit=TEXT_MAX)
    return value.strip()


async def answer(
    session: AsyncSession, *, actor: Actor, case_id: int, text: str, now: datetime
) -> FollowUpCase:
    """Send the head's answer to the citizen, who is asked whether it settles the matter."""
    await check(session, actor=actor, case_id=case_id, answering=True)
    case, rating = await _case(session, actor=actor, case_id=case_id)
    contact = await session.get(Contact, rating.contact_id)
    unit = await session.get(Unit, case.unit_id)
    assert contact is not None
    assert unit is not None
    case.answer, case.answered_at, case.answered_by = _text(text), now, actor.label
    case.status, case.citizen_settled = CaseStatus.ANSWERED, None
    session.add(case)
    question = OutboundMessage(
        "case.ask_settled",
        buttons=(
            (
                Button("case.settled_yes", f"casefb:{case.id}:yes"),
                Button("case.settled_no", f"casefb:{case.id}:no"),
            ),
        ),
    )
    for message in (
        OutboundMessage("case.to_citizen", {"unit": unit.name, "answer": case.answer}),
        question,
    ):
        await outbox.enqueue(
            session,
            contact=contact,
            message=message,
            kind="case",
            ref_id=case.id,
            now=now,
            priority=10,
        )
    audit.record(
        session, actor=actor.label, action="case.answer", now=now, subject=f"case:{case.id}"
    )
    return case


async def close(
    session: AsyncSession, *, actor: Actor, case_id: int, note: str, now: datetime
) -> FollowUpCase:
    """Close a case with a note; its handling time is then on record."""
    await check(session, actor=actor, case_id=case_id, answering=False)
    case, _ = await _case(session, actor=actor, case_id=case_id)
    case.close_note, case.closed_at, case.closed_by = _text(note), now, actor.label
    case.status = CaseStatus.CLOSED
    session.add(case)
    audit.record(
        session, actor=actor.label, action="case.close", now=now, subject=f"case:{case.id}"
    )
    return case


async def citizen_reply(
    session: AsyncSession, *, contact: Contact, case_id: int, settled: bool, now: datetime
) -> FollowUpCase:
    """Record, once per answer, whether it settles it for the citizen; tell the heads if not."""
    case = await session.get(FollowUpCase, case_id)
    rating = await session.get(Rating, case.rating_id) if case else None
    if case is None or rating is None or rating.contact_id != contact.id:
        raise NotFound("case.error.unknown")
    if case.answered_at is None:
        raise NotFound("case.error.unknown")
    if case.citizen_settled is not None:
        given = "yes" if case.citizen_settled else "no"
        raise InvalidInput("case.error.already_replied", reply=Text(f"case.settled_{given}"))
    case.citizen_settled = settled
    session.add(case)
    if not settled:
        heads, fallback = await heads_or_admins(session, unit_id=case.unit_id)
        message = OutboundMessage(
            "case.not_settled", {"id": case.id}, buttons=head_buttons(case, rating)
        )
        if fallback:
            message = await for_admins(session, message, unit_id=case.unit_id)
        await outbox.enqueue_all(
            session,
            contacts=heads,
            message=message,
            kind="case",
            ref_id=case.id,
            now=now,
            priority=10,
        )
    return case


async def escalate(session: AsyncSession, *, now: datetime) -> int:
    """Tell leadership, once, about cases still open past their due time."""
    rows = (
        await session.exec(
            select(FollowUpCase, Unit)
            .join(Unit, col(Unit.id) == FollowUpCase.unit_id)
            .where(
                col(FollowUpCase.status) != CaseStatus.CLOSED.value,
                col(FollowUpCase.due_at) <= now,
                col(FollowUpCase.escalated_at).is_(None),
            )
        )
    ).all()
    leaders = await contacts_with_role(session, Role.LEADER) if rows else []
    for case, unit in rows:
        message = OutboundMessage(
            "case.escalated",
            {
                "id": case.id,
                "unit": unit.name,
                "opened": case.opened_at,
                "due": case.due_at,
                "state": Text(f"case.state.{case.status}"),
            },
        )
        await outbox.enqueue_all(
            session,
            contacts=leaders,
            message=message,
            kind="case_escalation",
            ref_id=case.id,
            now=now,
            priority=20,
        )
        case.escalated_at = now
        session.add(case)
    return len(rows)
