"""The Zalo OA channel: messages, the messaging window, error codes, and the token refresh."""

from __future__ import annotations

import asyncio
import logging
from datetime import timedelta

import pytest
from sqlmodel import select

from bot.channels import zalo_oa
from bot.channels.zalo_oa import OUTSIDE_WINDOW, TokenKeeper, ZaloOAChannel, _outcome
from bot.clock import FakeClock
from bot.config import DeliverySettings
from bot.db import SessionMaker, transaction
from bot.i18n import t
from bot.logs import Redactor
from bot.messages import Button, OutboundMessage
from bot.models import Channel, Contact, Outbox, OutboxStatus, ZaloOAToken
from bot.services.delivery import outbox
from bot.services.delivery import zalo_oa_tokens as tokens
from jobs.dispatcher import Dispatcher
from tests.test_zalo_oa_fake import FIRST_REFRESH, OA_ID, FakeZalo, oa_settings

USER = "7001002003"


@pytest.fixture
async def zalo():
    fake = FakeZalo()
    fake.base = await fake.start()
    yield fake
    await fake.stop()


async def add_contact(maker: SessionMaker, clock: FakeClock, seen_ago: timedelta | None) -> Contact:
    async with transaction(maker) as session:
        contact = Contact(
            channel=Channel.ZALO_OA,
            external_id=USER,
            last_seen_at=None if seen_ago is None else clock.now() - seen_ago,
            created_at=clock.now() - timedelta(days=30),
        )
        session.add(contact)
    return contact


def channel(maker, clock, zalo, **extra) -> ZaloOAChannel:
    return ZaloOAChannel(oa_settings(zalo.base, **extra), maker, clock)


async def token_row(maker: SessionMaker) -> ZaloOAToken:
    async with maker() as session:
        row = await tokens.read(session, OA_ID)
    assert row is not None
    return row


async def test_first_send_refreshes_then_posts_the_text(maker, clock, zalo):
    await add_contact(maker, clock, timedelta(hours=1))
    oa = channel(maker, clock, zalo)
    await oa.open()
    outcome = await oa.send(USER, OutboundMessage("errors.internal"), "vi")
    await oa.close()
    assert outcome.ok
    assert outcome.message_id
    assert zalo.texts(USER) == [t("errors.internal", "vi")]
    row = await token_row(maker)
    assert zalo.sent[0]["token"] == row.access_token
    assert row.refresh_token in zalo.refresh_tokens
    assert FIRST_REFRESH in zalo.spent
    assert row.access_expires_at == clock.now() + timedelta(seconds=90000)
    assert row.last_answer is not None
    assert row.access_token in row.last_answer
    assert row.refreshing_owner is None
    assert row.version == 1


async def test_buttons_become_quick_replies_that_send_their_number(maker, clock, zalo):
    await add_contact(maker, clock, timedelta(hours=1))
    oa = channel(maker, clock, zalo)
    buttons = ((Button("lang.vi", "lang:vi", number=1), Button("lang.en", "lang:en", number=2)),)
    await oa.open()
    outcome = await oa.send(USER, OutboundMessage("lang.choose", buttons=buttons), "vi")
    await oa.close()
    assert outcome.ok
    payload = zalo.sent[0]["message"]["attachment"]["payload"]
    assert [(b["type"], b["payload"]) for b in payload["buttons"]] == [
        ("oa.query.show", "1"),
        ("oa.query.show", "2"),
    ]
    assert [b["title"] for b in payload["buttons"]] == ["1. 🇻🇳 Tiếng Việt", "2. 🇬🇧 English"]
    hint = t("typed.options_intro", "vi")
    options = "1. 🇻🇳 Tiếng Việt\n2. 🇬🇧 English"
    assert payload["text"] == f"Chọn ngôn ngữ / Choose your language:\n\n{hint}\n{options}"


async def test_back_and_cancel_become_quick_replies_that_send_their_words(maker, clock, zalo):
    await add_contact(maker, clock, timedelta(hours=1))
    oa = channel(maker, clock, zalo)
    buttons = (
        (Button("lang.vi", "flow:s:vi", number=1),),
        (Button("flow.cancel", "flow:s:cancel"),),
    )
    await oa.open()
    await oa.send(USER, OutboundMessage("lang.choose", buttons=buttons), "vi")
    await oa.close()
    payload = zalo.sent[0]["message"]["attachment"]["payload"]
    cancel = t("flow.cancel", "vi")
    assert [b["payload"] for b in payload["buttons"]] == ["1", cancel]


async def test_without_quick_replies_the_buttons_are_numbered_lines(maker, clock, zalo):
    await add_contact(maker, clock, timedelta(hours=1))
    oa = channel(maker, clock, zalo, quick_replies=False)
    buttons = ((Button("lang.vi", "lang:vi", number=1),),)
    await oa.open()
    await oa.send(USER, OutboundMessage("lang.choose", buttons=buttons), "vi")
    await oa.close()
    hint = t("typed.options_intro", "vi")
    assert zalo.sent[0]["message"] == {
        "text": f"Chọn ngôn ngữ / Choose your language:\n\n{hint}\n1. 🇻🇳 Tiếng Việt"
    }


async def test_outside_the_window_nothing_is_attempted(maker, clock, zalo):
    await add_contact(maker, clock, timedelta(days=7, minutes=1))
    oa = channel(maker, clock, zalo)
    await oa.open()
    outcome = await oa.send(USER, OutboundMessage("errors.internal"), "vi")
    await oa.close()
    assert (outcome.kind, outcome.error, outcome.attempted) == ("failed", OUTSIDE_WINDOW, False)
    assert zalo.sent == []
    assert zalo.refresh_calls == 0


async def test_window_follows_the_clock(maker, clock, zalo):
    await add_contact(maker, clock, timedelta(hours=1))
    oa = channel(maker, clock, zalo, messaging_window_hours=48)
    await oa.open()
    assert (await oa.send(USER, OutboundMessage("errors.internal"), "vi")).ok
    clock.advance(timedelta(hours=47))
    assert (await oa.send(USER, OutboundMessage("errors.internal"), "vi")).ok
    clock.advance(timedelta(hours=1, seconds=1))
    late = await oa.send(USER, OutboundMessage("errors.internal"), "vi")
    await oa.close()
    assert late.error == OUTSIDE_WINDOW
    assert len(zalo.sent) == 2


async def test_dispatcher_records_outside_window_as_failed_with_the_reason(maker, clock, zalo):
    contact = await add_contact(maker, clock, timedelta(days=8))
    async with transaction(maker) as session:
        await outbox.enqueue(
            session,
            contact=contact,
            message=OutboundMessage("errors.internal"),
            kind="test",
            now=clock.now(),
        )
    oa = channel(maker, clock, zalo)
    await oa.open()
    dispatcher = Dispatcher(
        maker=maker,
        channels={"zalo_oa": oa},
        settings=DeliverySettings(),
        clock=clock,
        owner="test",
        lookahead=0.0,
    )
    await asyncio.wait_for(dispatcher.drain(), 30)
    await oa.close()
    async with maker() as session:
        row = (await session.exec(select(Outbox))).one()
    assert (row.status, row.last_error, row.attempts) == (OutboxStatus.FAILED, OUTSIDE_WINDOW, 0)
    assert zalo.sent == []


@pytest.mark.parametrize(
    ("status", "body", "kind", "error"),
    [
        (200, '{"error": -32, "message": "limit"}', "flood", "zalo_oa -32: limit"),
        (200, '{"error": -213, "message": "unfollowed"}', "blocked", "zalo_oa -213: unfollowed"),
        (200, '{"error": -230, "message": "7 days"}', "failed", OUTSIDE_WINDOW),
        (200, '{"error": -211, "message": "quota"}', "retry", "zalo_oa -211: quota"),
        (200, '{"error": -201, "message": "bad"}', "failed", "zalo_oa -201: bad"),
        (502, "", "retry", "zalo_oa: HTTP 502"),
        (429, "", "flood", "flood control: retry after 60 s"),
    ],
)
def test_zalo_error_codes_map_to_outcomes(status, body, kind, error):
    outcome = _outcome(status, body)
    assert (outcome.kind, outcome.error) == (kind, error)


async def test_a_refused_access_token_is_refreshed_and_the_send_retried(maker, clock, zalo):
    await add_contact(maker, clock, timedelta(hours=1))
    oa = channel(maker, clock, zalo)
    await oa.open()
    assert (await oa.send(USER, OutboundMessage("errors.internal"), "vi")).ok
    zalo.access_tokens.clear()  # Zalo revoked it
    outcome = await oa.send(USER, OutboundMessage("errors.internal"), "vi")
    await oa.close()
    assert outcome.ok
    assert zalo.refresh_calls == 2
    assert len(zalo.sent) == 2


async def test_unfollowed_user_is_blocked_and_the_contact_marked(maker, clock, zalo):
    contact = await add_contact(maker, clock, timedelta(hours=1))
    zalo.errors[USER].append(-213)
    async with transaction(maker) as session:
        await outbox.enqueue(
            session,
            contact=contact,
            message=OutboundMessage("errors.internal"),
            kind="t",
            now=clock.now(),
        )
    oa = channel(maker, clock, zalo)
    await oa.open()
    dispatcher = Dispatcher(
        maker=maker,
        channels={"zalo_oa": oa},
        settings=DeliverySettings(),
        clock=clock,
        owner="test",
        lookahead=0.0,
    )
    await asyncio.wait_for(dispatcher.drain(), 30)
    await oa.close()
    async with maker() as session:
        row = (await session.exec(select(Outbox))).one()
        stored = (await session.exec(select(Contact))).one()
    assert (row.status, row.last_error) == (OutboxStatus.FAILED, "blocked")
    assert stored.blocked_at is not None


# the token refresh -------------------------------------------------------------------------


def keeper(maker, clock, zalo, owner, **kw) -> TokenKeeper:
    http = zalo_oa.Http()
    return TokenKeeper(maker, clock, oa_settings(zalo.base), http.post, owner=owner, **kw)


class Crash(Exception):
    """An injected failure right after Zalo's answer arrived."""


class Killed(BaseException):
    """The process dying: nothing after it runs in that process."""


@pytest.mark.parametrize("crash", [Crash, asyncio.CancelledError])
async def test_a_crash_after_the_answer_keeps_the_new_pair(maker, clock, zalo, crash):
    async def boom(raw: str) -> None:
        raise crash

    first = keeper(maker, clock, zalo, "process-1", after_answer=boom)
    await first.start()
    with pytest.raises(crash):
        await first.access_token()
    # the next start: another process, the same database
    second = keeper(maker, clock, zalo, "process-2")
    await second.start()
    got = await second.access_token()
    assert got is not None
    assert got[0] in zalo.access_tokens
    assert zalo.refresh_calls == 1
    assert FIRST_REFRESH in zalo.spent
    row = await token_row(maker)
    assert row.refresh_token in zalo.refresh_tokens
    assert not row.needs_reauth
    await first_send_works(maker, clock, zalo)


async def first_send_works(maker, clock, zalo) -> None:
    await add_contact(maker, clock, timedelta(hours=1))
    oa = channel(maker, clock, zalo)
    await oa.open()
    assert (await oa.send(USER, OutboundMessage("errors.internal"), "vi")).ok
    await oa.close()


async def test_a_death_before_the_commit_is_the_narrow_window_and_the_operator_is_told(
    maker, clock, zalo, monkeypatch, caplog
):
    ok = keeper(maker, clock, zalo, "process-1")
    await ok.start()
    good = await ok.access_token()
    assert good is not None
    clock.advance(timedelta(hours=14))  # due: 11 hours left of 25

    async def die(*args, **kwargs):
        raise Killed  # the process dies between Zalo's answer and the commit

    monkeypatch.setattr(tokens, "save", die)
    with pytest.raises(Killed):
        await ok.access_token()
    monkeypatch.undo()
    row = await token_row(maker)
    assert row.refreshing_owner == "process-1"  # the journal the next start finds
    clock.advance(zalo_oa.LEASE)
    caplog.set_level(logging.ERROR)
    after = keeper(maker, clock, zalo, "process-2")
    await after.start()  # resumes: spends the journal's token again; Zalo refuses it
    row = await token_row(maker)
    assert row.needs_reauth
    assert row.refreshing_owner is None
    assert t("zalo_oa.reauth_needed", "en", oa_id=OA_ID, error=row.last_error) in caplog.text
    assert await after.access_token() == good  # the old access token still works meanwhile
    await first_send_works(maker, clock, zalo)
    clock.advance(timedelta(hours=11))
    assert await after.access_token() is None  # expired: sends wait for the operator
    zalo.issue("refresh-token-from-operator")
    fixed = TokenKeeper(
        maker,
        clock,
        oa_settings(zalo.base, refresh_token="refresh-token-from-operator"),
        zalo_oa.Http().post,
        owner="process-3",
    )
    await fixed.start()
    renewed = await fixed.access_token()
    assert renewed is not None
    assert renewed[0] in zalo.access_tokens


async def test_two_processes_refresh_once(maker, clock, zalo):
    zalo.gate = asyncio.Event()
    one = keeper(maker, clock, zalo, "process-1")
    await one.start()
    first = asyncio.create_task(one.access_token())
    await zalo.requested.wait()  # process 1 is refreshing, its answer held back
    first_done = asyncio.Event()
    first.add_done_callback(lambda _: first_done.set())

    async def wait_for_first(_: float) -> None:
        zalo.gate.set()
        await first_done.wait()

    two = keeper(maker, clock, zalo, "process-2", sleep=wait_for_first)
    await two.start()
    got_two = await two.access_token()
    got_one = await first
    assert got_one == got_two
    assert got_one is not None
    assert zalo.refresh_calls == 1
    assert one.refreshes == 1
    assert two.refreshes == 0


async def test_racing_claims_let_one_process_refresh(maker, clock, zalo):
    zalo.gate = asyncio.Event()
    keepers = [keeper(maker, clock, zalo, f"process-{i}") for i in range(4)]
    await keepers[0].start()
    claims = await asyncio.gather(*(claim_for(maker, clock, k.owner) for k in keepers))
    assert sum(c is not None for c in claims) == 1


async def claim_for(maker, clock, owner):
    async with transaction(maker) as session:
        return await tokens.claim(
            session, oa_id=OA_ID, owner=owner, now=clock.now(), lease=timedelta(seconds=60)
        )


async def test_tokens_never_reach_the_logs(maker, clock, zalo, caplog):
    caplog.set_level(logging.INFO)  # the drivers' loggers stay quiet, as bot.logs sets them
    caplog.set_level(logging.DEBUG, logger="bot")
    await add_contact(maker, clock, timedelta(hours=1))
    oa = channel(maker, clock, zalo)
    await oa.open()
    await oa.send(USER, OutboundMessage("errors.internal"), "vi")
    zalo.refresh_tokens.clear()
    zalo.access_tokens.clear()
    await oa.send(USER, OutboundMessage("errors.internal"), "vi")  # refused: operator message
    await oa.close()
    row = await token_row(maker)
    secrets = [FIRST_REFRESH, row.access_token, row.refresh_token, *zalo.spent]
    assert "refused" in caplog.text
    assert not [s for s in secrets if s and s in caplog.text]
    claim = tokens.Claim(OA_ID, "x", 1, FIRST_REFRESH)
    assert FIRST_REFRESH not in repr(claim)


async def test_a_journal_left_before_the_call_is_resumed_on_the_next_start(maker, clock, zalo):
    dead = keeper(maker, clock, zalo, "process-1")
    await dead.start()
    assert await claim_for(maker, clock, "process-1") is not None  # then it died: no call made
    clock.advance(zalo_oa.LEASE)
    after = keeper(maker, clock, zalo, "process-2")
    await after.start()  # finds the journal and spends the token the journal names
    row = await token_row(maker)
    assert row.refreshing_owner is None
    assert not row.needs_reauth
    assert zalo.refresh_calls == 1
    await first_send_works(maker, clock, zalo)


async def test_a_lease_still_held_is_left_alone(maker, clock, zalo, caplog):
    one = keeper(maker, clock, zalo, "process-1")
    await one.start()
    assert await claim_for(maker, clock, "process-1") is not None
    two = keeper(maker, clock, zalo, "process-2", wait_max=0.0)
    with caplog.at_level("INFO", logger="bot.channels.zalo_oa"):
        await two.start()
    assert "under way (process-1)" in caplog.text  # not called a crash: its lease runs
    assert "left unfinished" not in caplog.text
    assert await two.access_token() is None  # no token yet, and the refresh is another's
    assert zalo.refresh_calls == 0


async def test_refreshed_tokens_are_masked_by_the_log_redactor(maker, clock, zalo):
    redactor = Redactor([])
    one = keeper(maker, clock, zalo, "process-1")
    await one.start()
    got = await one.access_token()
    assert got is not None
    row = await token_row(maker)
    line = f"oops {got[0]} and {row.refresh_token}"
    assert redactor.redact(line) == "oops [redacted] and [redacted]"


async def test_the_window_is_read_once_per_claimed_batch(maker, clock, zalo, monkeypatch):
    """One read of the people's last-seen times per batch; only the one outside is read again."""
    ids = [f"70010020{i:02d}" for i in range(6)]
    async with transaction(maker) as session:
        for i, uid in enumerate(ids):
            ago = timedelta(days=8) if i == 5 else timedelta(hours=i + 1)
            contact = Contact(
                channel=Channel.ZALO_OA,
                external_id=uid,
                last_seen_at=clock.now() - ago,
                created_at=clock.now() - timedelta(days=30),
            )
            session.add(contact)
            await session.flush()
            await outbox.enqueue(
                session,
                contact=contact,
                message=OutboundMessage("errors.internal"),
                kind="test",
                now=clock.now(),
            )
    reads: list[int] = []
    real = zalo_oa.contacts.last_seen

    async def counted(session, *, channel, external_ids):
        reads.append(len(external_ids))
        return await real(session, channel=channel, external_ids=external_ids)

    monkeypatch.setattr(zalo_oa.contacts, "last_seen", counted)
    oa = channel(maker, clock, zalo)
    await oa.open()
    assert await oa.keeper.access_token() is not None  # refreshed once, before the fake time runs

    async def sleep(seconds: float) -> None:
        """Move the fake clock, but not while sends are under way (their answer wakes the loop)."""
        if dispatcher.in_flight:
            await asyncio.sleep(60)
            return
        clock.advance(timedelta(seconds=seconds))
        await asyncio.sleep(0.001)

    dispatcher = Dispatcher(
        maker=maker,
        channels={"zalo_oa": oa},
        settings=DeliverySettings(),
        clock=clock,
        owner="test",
        sleep=sleep,
        lookahead=0.0,
    )
    await asyncio.wait_for(dispatcher.drain(), 30)
    await oa.close()
    async with maker() as session:
        stored = (await session.exec(select(Outbox))).all()
    assert reads == [6, 1], [(r.attempts, r.last_error) for r in stored]
    assert oa.window_reads == 1  # the batch, then only the one outside the window, read afresh
    rows = {r.chat_id: r.status for r in stored}
    assert rows == {uid: OutboxStatus.FAILED if uid == ids[5] else OutboxStatus.SENT for uid in ids}
