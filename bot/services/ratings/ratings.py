"""Citizen satisfaction ratings: five levels, SIPAS's five elements, limits against abuse."""

from __future__ import annotations

import hashlib
import secrets
import weakref
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy.exc import IntegrityError
from sqlmodel import col, func, select
from sqlmodel.ext.asyncio.session import AsyncSession

from bot.messages import Items, OutboundMessage, Text
from bot.models import Contact, Dossier, FollowUpCase, InstallSecret, Rating
from bot.services.delivery import outbox
from bot.services.errors import InvalidInput
from bot.services.org.access import for_admins, heads_or_admins
from bot.services.ratings import cases, daily

LEVELS = (5, 4, 3, 2, 1)  # shown in this order: Rất hài lòng … Rất không hài lòng
ELEMENTS = ("access", "procedure", "officer_score", "result", "feedback")
BAD = 2  # Không hài lòng or below alerts the unit's head
SALT = "rating_salt"


@dataclass
class Draft:
    """A rating being collected."""

    unit_id: int
    procedure_id: int | None = None
    counter_id: int | None = None
    dossier_id: int | None = None
    overall: int | None = None
    scores: dict[str, int] = field(default_factory=dict)
    officer: str | None = None
    comment: str | None = None
    anonymous: bool = True
    phone: str | None = None


# Per database (by engine): a salt, once committed, never changes, so it is read once per process.
_SALTS: weakref.WeakKeyDictionary[object, str] = weakref.WeakKeyDictionary()
_MADE = "made_rating_salt"  # session.info: this session made the salt (not committed yet)


async def salt(session: AsyncSession) -> str:
    """Return this installation's salt for anonymous ratings, making it on first use."""
    engine = session.bind
    known = _SALTS.get(engine) if engine is not None else None
    if known is not None:
        return known
    row = await session.get(InstallSecret, SALT)
    if row is None:
        row = InstallSecret(name=SALT, value=secrets.token_hex(32))
        try:
            async with session.begin_nested():
                session.add(row)
            session.info[_MADE] = True
        except IntegrityError:
            row = await session.get(InstallSecret, SALT)
            assert row is not None
    if engine is not None and not session.info.get(_MADE):
        _SALTS[engine] = row.value
    return row.value


def voter_hash(salt_value: str, contact: Contact) -> str:
    """Return a salted hash of the chat account: stops double votes, names nobody."""
    raw = f"{salt_value}:{contact.channel}:{contact.external_id}"
    return hashlib.sha256(raw.encode("utf-8")).hexdigest()


async def check_limit(
    session: AsyncSession, *, contact: Contact, unit_id: int, now: datetime, limit: int
) -> None:
    """Refuse a contact that already rated this unit `limit` times in the last 24 hours."""
    voter = voter_hash(await salt(session), contact)
    count = (
        await session.exec(
            select(func.count())
            .select_from(Rating)
            .where(
                Rating.voter_hash == voter,
                Rating.unit_id == unit_id,
                col(Rating.created_at) > now - timedelta(days=1),
            )
        )
    ).one()
    if count >= limit:
        raise InvalidInput("rating.error.limit", limit=limit)


async def dossier_for_rating(session: AsyncSession, code: str) -> Dossier:
    """Return a known dossier not yet rated; refuse unknown or already rated ones."""
    dossier = (
        await session.exec(select(Dossier).where(Dossier.code == code.strip().upper()))
    ).first()
    if dossier is None:
        raise InvalidInput("rating.error.unknown_dossier", code=code[:64])
    rated = (await session.exec(select(Rating.id).where(Rating.dossier_id == dossier.id))).first()
    if rated is not None:
        raise InvalidInput("rating.error.dossier_rated", code=dossier.code)
    return dossier


def level_of(value: int) -> Text:
    """Return the name of a level."""
    return Text(f"rating.level.{value}")


async def save(
    session: AsyncSession,
    *,
    draft: Draft,
    contact: Contact,
    now: datetime,
    case_due_at: datetime | None = None,
) -> Rating:
    """Store a finished rating; an anonymous one keeps no link to the person."""
    if draft.overall not in LEVELS:
        raise InvalidInput("rating.error.no_overall")
    row = Rating(
        unit_id=draft.unit_id,
        procedure_id=draft.procedure_id,
        counter_id=draft.counter_id,
        dossier_id=draft.dossier_id,
        officer=draft.officer,
        channel=str(contact.channel),
        contact_id=None if draft.anonymous else contact.id,
        voter_hash=voter_hash(await salt(session), contact),
        phone=None if draft.anonymous else draft.phone,
        overall=draft.overall,
        comment=draft.comment,
        created_at=now,
        **{k: draft.scores.get(k) for k in ELEMENTS},
    )
    if draft.dossier_id is None:  # only a dossier's rating can clash (one each): no savepoint
        session.add(row)
    else:
        try:
            async with session.begin_nested():
                session.add(row)
        except IntegrityError:
            raise InvalidInput("rating.error.dossier_rated", code="") from None
    await daily.record(session, row)  # the scoreboard's day counts, in the same transaction
    if draft.overall <= BAD:
        await session.flush()  # the case names the rating by its id
        case = cases.open_case(session, rating=row, now=now, due_at=case_due_at or now)
        await session.flush()
        await _alert_heads(session, row, case, now)
    return row


async def _alert_heads(
    session: AsyncSession, row: Rating, case: FollowUpCase, now: datetime
) -> int:
    """Tell the unit's heads about a bad rating: the scores and the comment."""
    scores = Items(
        "rating.alert_line",
        tuple(
            {"element": Text(f"rating.element.{k}"), "level": level_of(v)}
            for k in ELEMENTS
            if (v := getattr(row, k)) is not None
        ),
    )
    message = OutboundMessage(
        "rating.alert_head",
        {
            "level": level_of(row.overall),
            "scores": scores,
            "comment": row.comment or "–",
            "officer": row.officer or "–",
            "contact": Text("rating.anonymous") if row.contact_id is None else row.phone or "–",
            "at": now,
            "id": case.id,
            "due": case.due_at,
        },
        buttons=cases.head_buttons(case, row),
    )
    heads, fallback = await heads_or_admins(session, unit_id=row.unit_id)
    if fallback:
        message = await for_admins(session, message, unit_id=row.unit_id)
    return await outbox.enqueue_all(
        session,
        contacts=heads,
        message=message,
        kind="rating_alert",
        ref_id=row.id,
        now=now,
        priority=10,
    )


def follow_up_notice(row: Rating, *, unit: str, days: int, due: datetime) -> OutboundMessage | None:
    """Tell a citizen who rated badly within how many working days the unit's head answers."""
    if row.overall is None or row.overall > BAD:
        return None
    key = "rating.follow_up_anonymous" if row.contact_id is None else "rating.follow_up"
    return OutboundMessage(key, {"unit": unit, "days": days, "due": due})
