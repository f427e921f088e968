"""Answers: checked against the questionnaire, kept so that an anonymous one names no one.

An anonymous answer holds a random id, the respondent's unit (as a group for results) and a
hash of the person keyed with the campaign's own salt: that hash alone finds it again, so the
person can go on or change it while the campaign is open, and answers only once. No person,
chat account or time is stored with it, and the salt is erased when the campaign closes.
A named answer also holds the person and the time of its last change.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam
from sqlmodel import select
from sqlmodel.ext.asyncio.session import AsyncSession

from bot.models import Campaign, CampaignRecipient, CampaignStatus, Questionnaire, SurveyResponse
from bot.services.errors import InvalidInput
from bot.services.surveys.memo import memo
from bot.services.surveys.questionnaire import TEXT_MAX, Definition, Question, definition_of

Value = str | list[str]


@dataclass(frozen=True)
class Respondent:
    """Who answers: a member of staff (by person) or a citizen (by chat account)."""

    person_id: int | None
    contact_id: int | None

    @property
    def key(self) -> str:
        """Return the stable name of the respondent the hash is made from."""
        return f"p:{self.person_id}" if self.person_id is not None else f"c:{self.contact_id}"


def voter_hash(campaign: Campaign, who: Respondent) -> str:
    """Return the key an answer is found by: a salted hash (anonymous) or the plain name."""
    if not campaign.anonymous:
        return who.key
    if campaign.salt is None:  # closed: nothing can be found (or changed) any more
        raise InvalidInput("survey.error.not_open", title=campaign.title)
    message = f"{campaign.id}:{who.key}".encode()
    return hmac.new(campaign.salt.encode(), message, hashlib.sha256).hexdigest()


async def definition(session: AsyncSession, campaign: Campaign) -> Definition:
    """Return the questionnaire of a campaign (a material without a check has none)."""
    key = ("form", campaign.questionnaire_id)
    if key in memo(session):
        form: Definition = memo(session)[key]
        return form
    row = (
        await session.get(Questionnaire, campaign.questionnaire_id)
        if campaign.questionnaire_id
        else None
    )
    if row is None:
        raise InvalidInput("survey.error.no_questions", title=campaign.title)
    memo(session)[key] = definition_of(row)
    return definition_of(row)


FIND = select(SurveyResponse).where(
    SurveyResponse.campaign_id == bindparam("campaign_id"),
    SurveyResponse.voter_hash == bindparam("voter_hash"),
)


async def find(session: AsyncSession, campaign: Campaign, who: Respondent) -> SurveyResponse | None:
    """Return the respondent's answer to a campaign, if any."""
    key = ("response", campaign.id, voter_hash(campaign, who))
    if key not in memo(session):
        params = {"campaign_id": campaign.id, "voter_hash": key[2]}
        memo(session)[key] = (await session.exec(FIND, params=params)).first()
    found: SurveyResponse | None = memo(session)[key]
    return found


def answers_of(row: SurveyResponse | None) -> dict[str, Value | None]:
    """Return the answers a response holds, by question id (None: an optional question skipped)."""
    if row is None:
        return {}
    data: dict[str, Value | None] = json.loads(row.answers)
    return data


def check_value(question: Question, value: Any) -> Value | None:
    """Return an answer as stored, refusing one the question does not allow; None = skipped."""
    if value is None or value == [] or value == "":
        if question.optional:
            return None
        raise InvalidInput("survey.error.required")
    if question.kind == "multiple":
        picked = value if isinstance(value, list) else [value]
        if not picked or any(v not in question.values() for v in picked):
            raise InvalidInput("survey.error.choice", count=len(question.options))
        return sorted(set(picked), key=int)
    if question.kind == "text":
        text = " ".join(str(value).split())
        if len(text) > TEXT_MAX:
            raise InvalidInput("survey.error.too_long", limit=TEXT_MAX)
        return text
    if str(value) not in question.values():
        raise InvalidInput("survey.error.choice", count=len(question.values()))
    return str(value)


def kept(form: Definition, answers: Mapping[str, Any]) -> dict[str, Value | None]:
    """Return the answers to the questions still asked (a changed answer may hide later ones).

    A skipped optional question is kept as None, in the same row as the answers (so a resumed
    survey goes on after it), never anywhere tied to the person.
    """
    out: dict[str, Value | None] = {}
    for q in form.questions:
        if q.id in answers and q in form.asked(out):
            value = check_value(q, answers[q.id]) if answers[q.id] is not None else None
            if value is not None or q.optional:
                out[q.id] = value
    return out


def missing(form: Definition, answers: Mapping[str, Any]) -> list[Question]:
    """Return the asked, required questions without an answer."""
    return [q for q in form.asked(answers) if not q.optional and q.id not in answers]


async def save(
    session: AsyncSession,
    campaign: Campaign,
    recipient: CampaignRecipient | None,
    who: Respondent,
    answers: Mapping[str, Any],
    *,
    now: datetime,
    complete: bool,
) -> SurveyResponse:
    """Store (or replace) the respondent's answers while the campaign is open.

    The recipient's row (the unit, 'done') is needed for a first answer and to complete; a later
    answer in progress may go without it (one query fewer per answer).
    """
    if campaign.status != CampaignStatus.OPEN or now >= campaign.closes_at:
        raise InvalidInput("survey.error.not_open", title=campaign.title)
    form = await definition(session, campaign)
    clean = kept(form, answers)
    if complete and missing(form, clean):
        raise InvalidInput("survey.error.unfinished", count=len(missing(form, clean)))
    row = await find(session, campaign, who)
    if recipient is None and (row is None or complete):
        raise ValueError("a first or final answer needs the recipient's row")
    if row is None:
        assert campaign.id is not None
        row = SurveyResponse(
            id=secrets.token_hex(16),
            campaign_id=campaign.id,
            voter_hash=voter_hash(campaign, who),
            answers="{}",
        )
        memo(session)[("response", campaign.id, row.voter_hash)] = row
    if recipient is not None:
        row.unit_id = recipient.unit_id
    row.answers = json.dumps(clean, ensure_ascii=False, sort_keys=True)
    row.complete = row.complete or complete
    if not campaign.anonymous:
        row.person_id, row.answered_at = who.person_id, now
    session.add(row)
    if complete and recipient is not None and not recipient.done:
        recipient.done = True
        session.add(recipient)
    return row


async def mark_read(
    session: AsyncSession, campaign: Campaign, recipient: CampaignRecipient
) -> None:
    """Note that a material was read (done, unless a check of understanding follows)."""
    recipient.read = True
    recipient.done = recipient.done or campaign.questionnaire_id is None
    session.add(recipient)
