"""The outbox and the job lease on every backend: enqueue, claim, ownership, cancel, leases."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest
from sqlalchemy import text
from sqlmodel import SQLModel, select

from bot.db import create_engine, session_maker
from bot.messages import OutboundMessage, codec
from bot.models import Channel, JobLease, Outbox, OutboxStatus
from bot.services.delivery import outbox
from bot.services.delivery.lease import Lease, make_owner
from tests import factories as f

MSG = OutboundMessage("errors.unknown_unit", {"code": "X1"})
S = OutboxStatus


@pytest.fixture
async def shared_maker(db_url, tmp_path):
    """Give a session maker whose sessions use their own connections (a SQLite file)."""
    if db_url.startswith("sqlite"):
        db_url = f"sqlite+aiosqlite:///{tmp_path}/outbox.db"
    engine = create_engine(db_url)
    async with engine.begin() as conn:
        await conn.run_sync(SQLModel.metadata.drop_all)
        await conn.run_sync(SQLModel.metadata.create_all)
    yield session_maker(engine)
    await engine.dispose()


async def contacts(s, n: int, *, blocked_at=None):
    """Add n Telegram contacts with ids 100, 101, ..."""
    out = []
    for i in range(n):
        c = await f.contact(s, str(100 + i))
        c.blocked_at = blocked_at
        out.append(c)
    await s.flush()
    return out


async def seed(maker, clock, n: int, **kw) -> list[int]:
    """Queue one message to each of n contacts; return the row ids."""
    async with maker() as s:
        rows = [
            await outbox.enqueue(s, contact=c, message=MSG, kind="test", now=clock.now(), **kw)
            for c in await contacts(s, n)
        ]
        await s.commit()
        return [r.id for r in rows]


async def rows_by_id(maker) -> dict[int, Outbox]:
    async with maker() as s:
        return {r.id: r for r in (await s.exec(select(Outbox))).all()}


async def claim(maker, clock, owner="a", limit=100, lease=60, **kw) -> list[Outbox]:
    async with maker() as s:
        rows = await outbox.claim(
            s, owner=owner, now=clock.now(), limit=limit, lease_seconds=lease, **kw
        )
        await s.commit()
        return rows


async def test_enqueue_writes_pending_rows_and_skips_blocked_contacts(maker, clock):
    async with maker() as s:
        ok, blocked = await contacts(s, 2)
        blocked.blocked_at = clock.now()
        row = await outbox.enqueue(
            s, contact=ok, message=MSG, kind="directive", ref_id=7, now=clock.now(), priority=10
        )
        skipped = await outbox.enqueue(s, contact=blocked, message=MSG, kind="d", now=clock.now())
        group = await outbox.enqueue_chat(
            s,
            channel=Channel.TELEGRAM,
            chat_id="-500",
            message=MSG,
            kind="digest",
            now=clock.now(),
            due_at=clock.now() + timedelta(hours=1),
        )
        await s.commit()
    assert row is not None
    assert skipped is None
    stored = await rows_by_id(maker)
    assert sorted(stored) == sorted([row.id, group.id])
    r, g = stored[row.id], stored[group.id]
    assert (r.status, r.chat_id, r.contact_id, r.kind, r.ref_id) == (
        S.PENDING,
        "100",
        ok.id,
        "directive",
        7,
    )
    assert (r.priority, r.due_at, r.is_group, r.attempts) == (10, clock.now(), False, 0)
    assert codec.loads(r.payload) == MSG
    assert (g.is_group, g.contact_id, g.chat_id) == (True, None, "-500")
    assert g.due_at == clock.now() + timedelta(hours=1)


async def test_claim_takes_only_due_rows_by_priority_then_due_time_then_id(maker, clock):
    now = clock.now()
    async with maker() as s:
        cs = await contacts(s, 6)
        plan = [  # (contact, priority, due offset in minutes)
            (cs[0], 100, -5),
            (cs[1], 50, 0),
            (cs[2], 100, -10),
            (cs[3], 100, 10),  # not due yet
            (cs[4], 100, -10),
            (cs[5], 200, -60),
        ]
        ids = []
        for c, prio, minutes in plan:
            row = await outbox.enqueue(
                s,
                contact=c,
                message=MSG,
                kind="t",
                now=now,
                priority=prio,
                due_at=now + timedelta(minutes=minutes),
            )
            await s.flush()
            ids.append(row.id)
        await s.commit()
    got = await claim(maker, clock, limit=4)
    assert [r.id for r in got] == [ids[1], ids[2], ids[4], ids[0]]
    assert all(r.status == S.SENDING and r.lease_owner == "a" for r in got)
    assert all(r.lease_until == now + timedelta(seconds=60) for r in got)
    rest = await claim(maker, clock, owner="b")
    assert [r.id for r in rest] == [ids[5]]
    stored = await rows_by_id(maker)
    assert stored[ids[3]].status == S.PENDING


async def test_claim_can_skip_chats(maker, clock):
    await seed(maker, clock, 3)
    got = await claim(maker, clock, skip_chats=["100", "102"])
    assert [r.chat_id for r in got] == ["101"]


async def test_claim_reads_the_due_index(maker, clock):
    await seed(maker, clock, 3)
    sql = (
        "SELECT id FROM outbox WHERE (status = 'pending' AND due_at <= '2030-01-01') "
        "OR (status = 'sending' AND lease_until <= '2030-01-01') "
        "ORDER BY priority, due_at, id LIMIT 10"
    )
    async with maker() as s:
        if s.bind.dialect.name == "postgresql":
            await s.exec(text("SET LOCAL enable_seqscan = off"))
            plan = (await s.exec(text("EXPLAIN " + sql))).all()
        else:
            plan = (await s.exec(text("EXPLAIN QUERY PLAN " + sql))).all()
    assert "ix_outbox_due" in " ".join(str(line) for line in plan)


async def test_two_claimers_never_share_a_row(shared_maker, clock):
    maker = shared_maker
    ids = await seed(maker, clock, 30)
    async with maker() as first, maker() as second:
        a = await outbox.claim(first, owner="a", now=clock.now(), limit=10, lease_seconds=60)
        # the first transaction is still open: PostgreSQL skips its locked rows at once,
        # SQLite makes the second claimer wait for the first to commit
        other = asyncio.create_task(
            outbox.claim(second, owner="b", now=clock.now(), limit=10, lease_seconds=60)
        )
        await asyncio.sleep(0.3)
        early = other.done()
        await first.commit()
        b = await asyncio.wait_for(other, 15)
        await second.commit()
    if second.bind.dialect.name == "postgresql":
        assert early
    assert len(a) == len(b) == 10
    assert not {r.id for r in a} & {r.id for r in b}
    stored = await rows_by_id(maker)
    assert {stored[i].lease_owner for i in ids} == {"a", "b", None}


async def test_many_concurrent_claimers_take_every_row_once(shared_maker, clock):
    maker = shared_maker
    ids = await seed(maker, clock, 120)
    taken: dict[str, list[int]] = {}

    async def worker(owner: str) -> None:
        while True:
            rows = await claim(maker, clock, owner=owner, limit=7)
            if not rows:
                return
            taken.setdefault(owner, []).extend(r.id for r in rows)
            await asyncio.sleep(0)

    await asyncio.gather(*(worker(f"w{i}") for i in range(4)))
    every = [i for got in taken.values() for i in got]
    assert sorted(every) == sorted(ids)
    stored = await rows_by_id(maker)
    assert all(stored[i].lease_owner == owner for owner, got in taken.items() for i in got)


async def test_an_expired_lease_is_reclaimed_and_the_old_owner_is_refused(maker, clock):
    (row_id,) = await seed(maker, clock, 1)
    assert [r.id for r in await claim(maker, clock, owner="dead", lease=60)] == [row_id]
    clock.advance(timedelta(seconds=30))
    assert await claim(maker, clock, owner="b") == []
    clock.advance(timedelta(seconds=31))
    assert [r.id for r in await claim(maker, clock, owner="b")] == [row_id]
    async with maker() as s:
        assert await outbox.target(s, row_id=row_id, owner="dead") is None
        late = await outbox.mark_sent(
            s, row_id=row_id, owner="dead", message_id="1", now=clock.now()
        )
        ok = await outbox.mark_sent(s, row_id=row_id, owner="b", message_id="2", now=clock.now())
        await s.commit()
    assert (late, ok) == (False, True)
    row = (await rows_by_id(maker))[row_id]
    assert (row.status, row.platform_message_id, row.sent_at, row.attempts) == (
        S.SENT,
        "2",
        clock.now(),
        1,
    )


async def test_outcomes_only_touch_rows_the_owner_holds(maker, clock):
    first, second = await seed(maker, clock, 2)
    await claim(maker, clock, owner="a")
    later = clock.now() + timedelta(seconds=20)
    async with maker() as s:
        assert not await outbox.retry_later(s, row_id=first, owner="x", due_at=later, error="e")
        assert not await outbox.mark_failed(s, row_id=second, owner="x", error="e")
        assert await outbox.retry_later(s, row_id=first, owner="a", due_at=later, error="boom")
        assert await outbox.mark_failed(s, row_id=second, owner="a", error="bad request: x")
        # neither is held any more: a second outcome changes nothing
        assert not await outbox.mark_sent(s, row_id=first, owner="a", message_id="9", now=later)
        await s.commit()
    stored = await rows_by_id(maker)
    r1, r2 = stored[first], stored[second]
    assert (r1.status, r1.attempts, r1.due_at, r1.last_error, r1.lease_owner) == (
        S.PENDING,
        1,
        later,
        "boom",
        None,
    )
    assert (r2.status, r2.attempts, r2.last_error) == (S.FAILED, 1, "bad request: x")
    assert await claim(maker, clock) == []
    clock.advance(timedelta(seconds=20))
    assert [r.id for r in await claim(maker, clock)] == [first]


async def test_many_deliveries_are_recorded_at_once(maker, clock):
    ids = await seed(maker, clock, 3)
    await claim(maker, clock, owner="a", limit=2)
    async with maker() as s:
        sent = [(i, f"m{i}", 2) for i in ids]
        await outbox.mark_sent_many(s, owner="a", sent=sent, now=clock.now())
        await s.commit()
    stored = await rows_by_id(maker)
    assert [
        (stored[i].status, stored[i].platform_message_id, stored[i].parts_sent, stored[i].attempts)
        for i in ids
    ] == [
        (S.SENT, f"m{ids[0]}", 2, 1),
        (S.SENT, f"m{ids[1]}", 2, 1),
        (S.PENDING, None, 0, 0),  # not claimed by a: untouched
    ]
    assert stored[ids[0]].lease_until is None
    assert stored[ids[0]].sent_at == clock.now()


async def test_release_and_extend_keep_rows_with_their_owner(maker, clock):
    a, _b = await seed(maker, clock, 2)
    await claim(maker, clock, owner="a", lease=60)
    async with maker() as s:
        assert await outbox.release(s, row_ids=[a], owner="b") == 0
        assert await outbox.release(s, row_ids=[a], owner="a") == 1
        clock.advance(timedelta(seconds=50))
        assert await outbox.extend(s, owner="a", now=clock.now(), lease_seconds=60) == 1
        await s.commit()
    clock.advance(timedelta(seconds=30))
    stored = await rows_by_id(maker)
    assert (stored[a].status, stored[a].attempts, stored[a].lease_owner) == (S.PENDING, 0, None)
    assert [r.id for r in await claim(maker, clock, owner="b")] == [a]  # b's lease still runs


async def test_cancel_wins_over_rows_claimed_but_not_sent(maker, clock):
    ids = await seed(maker, clock, 4, ref_id=42)
    other = await seed_other(maker, clock)
    claimed = await claim(maker, clock, owner="a", limit=2)
    async with maker() as s:
        await outbox.mark_sent(
            s, row_id=claimed[0].id, owner="a", message_id="500", now=clock.now()
        )
        await s.commit()
    async with maker() as s:
        assert await outbox.cancel(s, kind="test", ref_id=42) == 3
        await s.commit()
    async with maker() as s:
        assert await outbox.target(s, row_id=claimed[1].id, owner="a") is None
        assert await outbox.progress(s, kind="test", ref_id=42) == {
            S.PENDING: 0,
            S.SENDING: 0,
            S.SENT: 1,
            S.FAILED: 0,
            S.CANCELLED: 3,
        }
        assert await outbox.sent_message_id(s, kind="test", ref_id=42) == "500"
        assert await outbox.sent_message_id(s, kind="test", ref_id=43) is None
    assert [r.id for r in await claim(maker, clock, owner="b")] == [other]
    # a row whose send had already started when the cancel came is recorded as sent
    async with maker() as s:
        assert await outbox.mark_sent(
            s, row_id=claimed[1].id, owner="a", message_id="501", now=clock.now()
        )
        await s.commit()
    assert (await rows_by_id(maker))[claimed[1].id].status == S.SENT
    assert set(ids) >= {claimed[0].id, claimed[1].id}


async def seed_other(maker, clock) -> int:
    async with maker() as s:
        c = await f.contact(s, "999")
        row = await outbox.enqueue(
            s, contact=c, message=MSG, kind="test", ref_id=43, now=clock.now()
        )
        await s.commit()
        return row.id


async def test_next_due_names_the_earliest_claimable_moment(maker, clock):
    async with maker() as s:
        assert await outbox.next_due(s) is None
    soon = clock.now() + timedelta(minutes=5)
    await seed(maker, clock, 1, due_at=soon)
    async with maker() as s:
        assert await outbox.next_due(s) == soon


# the job lease ------------------------------------------------------------------------


def lease(maker, clock, owner: str, seconds: float = 30) -> Lease:
    return Lease(maker, clock=clock, seconds=seconds, owner=owner)


async def lease_row(maker) -> JobLease | None:
    async with maker() as s:
        return (await s.exec(select(JobLease))).first()


def test_owner_ids_name_host_and_process():
    import os

    a, b = make_owner(), make_owner()
    assert a != b
    assert len(a) <= 64
    assert f":{os.getpid()}:" in a


async def test_only_one_lease_holder_at_a_time(maker, clock):
    a, b = lease(maker, clock, "a"), lease(maker, clock, "b")
    try:
        assert await a.acquire()
        assert not await b.acquire()
        assert await a.renew()
        assert await a.acquire()  # acquiring what one holds renews it
        row = await lease_row(maker)
        assert (row.owner, row.expires_at) == ("a", clock.now() + timedelta(seconds=30))
        await a.release()
        assert not a.held
        assert await lease_row(maker) is None
        assert await b.acquire()
        assert not await a.acquire()
        assert not await a.renew()
        assert (await lease_row(maker)).owner == "b"
    finally:
        await a.release()
        await b.release()


async def test_concurrent_acquires_give_one_holder(shared_maker, clock):
    maker = shared_maker
    leases = [lease(maker, clock, f"p{i}") for i in range(5)]
    try:
        results = await asyncio.gather(*(x.acquire() for x in leases))
        assert sum(results) == 1
        holder = leases[results.index(True)].owner
        assert (await lease_row(maker)).owner == holder
    finally:
        for x in leases:
            await x.release()


async def test_a_lapsed_lease_passes_on(maker, clock):
    a, b = lease(maker, clock, "a"), lease(maker, clock, "b")
    postgres = a.postgres
    try:
        assert await a.acquire()
        clock.advance(timedelta(seconds=31))
        if postgres:
            # the advisory lock, not the row, decides: it lasts while a's connection lives
            assert not await b.acquire()
            pid = (await a._conn.execute(text("SELECT pg_backend_pid()"))).scalar()
            async with maker() as s:
                await s.exec(text(f"SELECT pg_terminate_backend({int(pid)})"))
            for _ in range(50):
                if await b.acquire():
                    break
                await asyncio.sleep(0.05)
        assert await b.acquire()
        assert not await a.renew()  # compare-and-set on the owner: a lost it
        assert not a.held
        assert (await lease_row(maker)).owner == "b"
        assert await b.renew()
    finally:
        await a.release()
        await b.release()


async def test_a_vanished_holder_loses_the_lock_within_the_lease(maker, clock):
    a = lease(maker, clock, "a", 30)
    if not a.postgres:
        pytest.skip("the advisory lock and its connection exist on PostgreSQL only")
    try:
        assert await a.acquire()
        if (await a._conn.execute(text("SELECT inet_server_addr()"))).scalar() is None:
            pytest.skip("keepalives apply to TCP connections, not a Unix socket")
        shown = {
            name: (await a._conn.execute(text(f"SHOW {name}"))).scalar()
            for name in ("tcp_keepalives_idle", "tcp_keepalives_interval", "tcp_keepalives_count")
        }
        # the server probes a silent lock connection after 10 s, 3 times 3 s apart, then drops it
        assert shown == {
            "tcp_keepalives_idle": "10",
            "tcp_keepalives_interval": "3",
            "tcp_keepalives_count": "3",
        }
    finally:
        await a.release()


async def test_renew_pushes_the_expiry_back(maker, clock):
    seconds = 30
    a = lease(maker, clock, "a", seconds)
    try:
        assert await a.acquire()
        clock.advance(timedelta(seconds=20))
        assert await a.renew()
        clock.advance(timedelta(seconds=20))
        b = lease(maker, clock, "b", seconds)
        assert not await b.acquire()
        assert (await lease_row(maker)).expires_at == clock.now() + timedelta(seconds=10)
    finally:
        await a.release()
