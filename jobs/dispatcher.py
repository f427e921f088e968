"""The outbox dispatcher: claim due rows, send them at the platform's limits, record outcomes."""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import functools
import logging
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Collection, Mapping
from dataclasses import dataclass, field, replace
from datetime import timedelta
from typing import Any

from sqlmodel.ext.asyncio.session import AsyncSession

from bot.channels.contract import PACED, STALE_FILE, Channel, Limits, Outcome, Progress, Scope
from bot.clock import Clock
from bot.config import DeliverySettings
from bot.db import SessionMaker, transaction
from bot.messages import OutboundMessage, StoredFile, codec
from bot.services.delivery import contacts, outbox
from jobs.files import Attachments, Undeliverable
from jobs.pacing import Pacer, Ticket, Window

log = logging.getLogger(__name__)
Sleep = Callable[[float], Awaitable[None]]
MAX_IN_FLIGHT = 128  # sends at once: 1,000/s over a 100 ms round trip needs 100 (Little's law)
BLOCKED = "blocked"
STATS_EVERY = 60.0
LOOKAHEAD = 0.1  # seconds: a send may be booked this far ahead, its row checked meanwhile
DECODED = 256  # payloads kept decoded: rows of one directive or broadcast share theirs
FRESH = 0.1  # seconds: a row checked (still ours, not cancelled) this recently is not re-read


@functools.lru_cache(maxsize=DECODED)
def _decode(payload: str) -> OutboundMessage:
    """Read a payload once: the same message object for every row that carries it.

    That identity lets the channel's renderer reuse a text per locale (bot.channels.render).
    """
    return codec.loads(payload)


class MissingChannel:
    """Stands in for a channel this process has no adapter for: its rows fail, unsent."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.limits = Limits(overall=1000.0, per_chat=1000.0, per_group=1000.0)

    async def open(self) -> None:
        """Nothing to open."""

    async def close(self) -> None:
        """Nothing to close."""

    async def claimed(self, chat_ids: Collection[str]) -> None:
        """Nothing to read ahead."""

    def _missing(self) -> Outcome:
        """Return the failure every call gives."""
        return Outcome(
            "failed", error=f"no {self.name} channel", attempted=False, code=outbox.NO_CHANNEL
        )

    async def send(
        self,
        chat_id: str,
        message: OutboundMessage,
        locale: str,
        *,
        paid: bool = False,
        first: int = 0,
        progress: Progress | None = None,
    ) -> Outcome:
        """Fail."""
        return self._missing()

    async def send_file(
        self,
        chat_id: str,
        message: OutboundMessage,
        locale: str,
        file: StoredFile,
        *,
        paid: bool = False,
        first: int = 0,
        progress: Progress | None = None,
    ) -> Outcome:
        """Fail."""
        return self._missing()

    async def edit(
        self,
        chat_id: str,
        message_id: str,
        message: OutboundMessage,
        locale: str,
        *,
        caption: bool = False,
    ) -> Outcome:
        """Fail."""
        return self._missing()

    async def answer(self, press_id: str) -> Outcome:
        """Fail."""
        return self._missing()


@dataclass
class Lane:
    """One channel: its adapter and its pacer (shared with the reply path when given)."""

    channel: Channel
    pacer: Pacer

    @property
    def limits(self) -> Limits:
        """Return the channel's limits."""
        return self.channel.limits

    @property
    def paid(self) -> Window | None:
        """Return the paid broadcasts' window (None where the channel has none)."""
        return self.pacer.paid


Job = outbox.Claimed  # a claimed row, as the dispatcher keeps it in memory


@dataclass
class Line:
    """One chat's held rows, its channel, whether it is busy or paused, and its booked send."""

    lane: Lane
    jobs: list[Job] = field(default_factory=list)
    busy: bool = False
    paused_until: float = 0.0
    ticket: Ticket | None = None

    def add(self, job: Job) -> None:
        """Hold one more row, in send order."""
        bisect.insort(self.jobs, job, key=lambda j: j.order)


@dataclass
class Record:
    """An outcome waiting to be written, and the future its sender waits on (if it waits)."""

    job: Job
    line: Line
    outcome: Outcome
    done: asyncio.Future[None] | None = None


class Dispatcher:
    """Drain the outbox at the platform's limits, one chat never holding up the others."""

    def __init__(
        self,
        *,
        maker: SessionMaker,
        channels: Mapping[str, Channel],
        settings: DeliverySettings,
        clock: Clock,
        owner: str,
        default_locale: str = "vi",
        sleep: Sleep = asyncio.sleep,
        max_in_flight: int = MAX_IN_FLIGHT,
        pacers: Mapping[str, Pacer] | None = None,
        lookahead: float = LOOKAHEAD,
    ) -> None:
        self.maker, self.settings = maker, settings
        self.clock, self.owner, self.default_locale = clock, owner, default_locale
        self.sleep, self.max_in_flight = sleep, max_in_flight
        self.files = Attachments(maker)
        self.stats: Counter[str] = Counter()
        self._epoch = clock.now()
        self._pacers = dict(pacers or {})
        self.lookahead = lookahead
        self._inflight: set[asyncio.Task[None]] = set()
        self._wake = asyncio.Event()
        self._lanes = {name: self._new_lane(channel) for name, channel in channels.items()}
        self._lines: dict[tuple[str, str], Line] = {}
        self._next_claim = self._next_extend = self._next_stats = 0.0
        self._more = False
        self._hold = max(2, int(settings.chat_rate * settings.poll_seconds * 2))
        self._logged: Counter[str] = Counter()
        self._write_lock = asyncio.Lock()
        self._outcomes: list[Record] = []
        self._writing_now = 0  # outcomes in the batch being written
        self._writer: asyncio.Task[None] | None = None
        self._checked: dict[int, outbox.Target] = {}  # held rows' targets, read at _checked_at
        self._checked_at = -1.0
        self._spent: list[tuple[str, str]] = []  # chats whose line may have gone idle

    @property
    def in_flight(self) -> int:
        """Count the sends under way, and the deliveries whose outcome is not written yet."""
        return len(self._inflight) + len(self._outcomes) + self._writing_now

    # running -----------------------------------------------------------------

    async def run(self, stop: asyncio.Event) -> None:
        """Send until `stop` is set; then finish the sends under way and give back the rest."""
        watcher = asyncio.create_task(self._wake_on(stop))
        try:
            while not stop.is_set():
                try:
                    await self._step(draining=False)
                except Exception:
                    log.exception("dispatcher step failed; trying again shortly")
                    await self._pause(self.settings.poll_seconds * 5)
        finally:
            watcher.cancel()
            await self._finish()

    async def drain(self) -> None:
        """Send until no row is pending or being sent any more (tests, benchmarks)."""
        try:
            while await self._step(draining=True):
                pass
        finally:
            await self._finish()

    async def _wake_on(self, stop: asyncio.Event) -> None:
        """Wake the loop when asked to stop."""
        await stop.wait()
        self._wake.set()

    async def _step(self, *, draining: bool) -> bool:
        """Claim, launch what may go now, then wait; False once there is nothing left at all."""
        self._wake.clear()
        now = self._now()
        await self._refill(now)
        await self._keep_leases(now)
        timers = [await self._launch_ready(now), self._next_extend - now]
        self._log_stats(now)
        if self._held() < self.settings.batch_size:
            timers.append(self._next_claim - now)
        if draining and not self._held():
            due = await self._next_due()
            if due is None:
                return False
            if due > now:
                self._next_claim = min(self._next_claim, due)
                timers.append(due - now)
        await self._pause(max(0.0, min(t for t in timers if t is not None)))
        return True

    async def _pause(self, seconds: float | None) -> None:
        """Wait until a send finishes (or a stop) or `seconds` pass."""
        if self._wake.is_set():
            return
        waiter = asyncio.ensure_future(self._wake.wait())
        tasks: set[asyncio.Future[Any]] = {waiter}
        if seconds is not None:
            tasks.add(asyncio.ensure_future(self.sleep(max(0.0, seconds))))
        try:
            await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in tasks:
                task.cancel()

    async def _finish(self) -> None:
        """Let the sends under way end and their outcomes be written; give the held rows back."""
        if self._inflight:
            await asyncio.gather(*self._inflight, return_exceptions=True)
        while self._writer is not None and not self._writer.done():
            await asyncio.gather(self._writer, return_exceptions=True)
        held = [job.id for line in self._lines.values() for job in line.jobs]
        self._lines.clear()
        try:
            if held:
                async with self._writing() as session:
                    await outbox.release(session, row_ids=held, owner=self.owner)
        except Exception:  # their leases lapse instead: another claimer takes them then
            log.warning("could not give back %d held rows", len(held), exc_info=True)
        log.info("dispatcher stopped: %d held rows given back", len(held))

    def _now(self) -> float:
        """Return the clock as seconds since this dispatcher began."""
        return (self.clock.now() - self._epoch).total_seconds()

    # claiming ----------------------------------------------------------------

    def _held(self) -> int:
        """Count rows held in memory, being sent, or sent with their outcome not yet written."""
        held = len(self._inflight) + len(self._outcomes) + self._writing_now
        return held + sum(len(line.jobs) for line in self._lines.values())

    async def _refill(self, now: float) -> None:
        """Claim more rows when there is room, and it is time or the last claim was full."""
        room = self.settings.batch_size - self._held()
        low = room >= self.settings.batch_size // 2
        if room <= 0 or not (now >= self._next_claim or (self._more and low)):
            return
        full = [chat for (_, chat), line in self._lines.items() if self._saturated(line)]
        async with self._writing() as session:
            rows = await outbox.claim(
                session,
                owner=self.owner,
                now=self.clock.now(),
                limit=room,
                lease_seconds=self.settings.lease_seconds,
                skip_chats=full,
            )
        self._more = len(rows) == room
        self._next_claim = now + self.settings.poll_seconds
        held: list[Job] = []
        extra: list[int] = []
        for job in rows:  # one pass: `not in held` was n² comparisons
            if self._hold_job(job):
                held.append(job)
            else:
                extra.append(job.id)
        await self._tell_claimed(held)
        if extra:
            async with self._writing() as session:
                await outbox.release(session, row_ids=extra, owner=self.owner)
        if rows:
            self.stats["claimed"] += len(rows) - len(extra)
            log.debug("claimed %d outbox rows (%d given back)", len(rows), len(extra))

    async def _tell_claimed(self, jobs: list[Job]) -> None:
        """Tell each channel which chats the rows just claimed are for (it may read ahead)."""
        chats: dict[str, set[str]] = {}
        for job in jobs:
            chats.setdefault(job.channel, set()).add(job.chat_id)
        for name, chat_ids in chats.items():
            try:
                await self._lane(name).channel.claimed(chat_ids)
            except Exception:  # each send reads what it needs instead
                log.warning("channel %s could not read claimed chats ahead", name, exc_info=True)

    def _saturated(self, line: Line) -> bool:
        """Tell whether a chat holds enough rows to skip it when claiming."""
        return len(line.jobs) + line.busy >= self._hold

    def _hold_job(self, job: Job) -> bool:
        """Keep a claimed row in its chat's line, unless the line is full already."""
        key = (job.channel, job.chat_id)
        line = self._lines.get(key)
        if line is None:
            line = self._lines[key] = Line(self._lane(job.channel))
        if len(line.jobs) + line.busy >= self._hold:
            return False
        line.add(job)
        return True

    def _lane(self, channel: str) -> Lane:
        """Return a channel's lane (one that fails its rows when there is no such adapter)."""
        lane = self._lanes.get(channel)
        if lane is None:
            log.warning("outbox rows for channel %r, which this process cannot send to", channel)
            lane = self._lanes[channel] = self._new_lane(MissingChannel(channel))
        return lane

    def _new_lane(self, channel: Channel) -> Lane:
        """Return a channel's lane, with its shared pacer or one of its own."""
        pacer = self._pacers.get(channel.name) or Pacer(channel.limits, self.clock)
        pacer.listeners.append(self._wake.set)
        return Lane(channel, pacer)

    @property
    def pacer(self) -> Pacer:
        """Return the pacer of the first channel (tests, benchmarks)."""
        return next(iter(self._lanes.values())).pacer

    async def _keep_leases(self, now: float) -> None:
        """Extend the lease of every held row well before it lapses; set idle chats aside."""
        self._rest_idle(now)
        if now < self._next_extend:
            return
        self._next_extend = now + self.settings.lease_seconds / 3
        if self._held():
            async with self._writing() as session:
                await outbox.extend(
                    session,
                    owner=self.owner,
                    now=self.clock.now(),
                    lease_seconds=self.settings.lease_seconds,
                )
        self._spent.extend(self._lines)
        self._rest_idle(now)
        for name, lane in self._lanes.items():
            keep = {chat for channel, chat in self._lines if channel == name}
            lane.pacer.forget_idle(lane.pacer.now(), keep)

    def _rest_idle(self, now: float) -> None:
        """Take the chats that hold nothing out of the lines, so that each step stays short.

        Their pacing (each chat's window) stays with the pacer: a row claimed for one of them
        meanwhile still waits its turn.
        """
        spent, self._spent = self._spent, []
        for key in spent:
            line = self._lines.get(key)
            if line is None or line.jobs or line.busy or line.paused_until > now:
                continue
            del self._lines[key]

    async def _next_due(self) -> float | None:
        """Return when (on this dispatcher's time line) the next row becomes claimable."""
        async with self.maker() as session:
            due = await outbox.next_due(session)
        return None if due is None else (due - self._epoch).total_seconds()

    # launching ---------------------------------------------------------------

    def _ready_lines(self, now: float) -> tuple[list[Line], float | None]:
        """Return the lines whose chat may take a send soon, best first, and the wait otherwise."""
        ready: list[Line] = []
        soonest: float | None = None
        for (_, chat_id), line in self._lines.items():
            if not line.jobs or line.busy:
                continue
            pacer = line.lane.pacer
            chat = pacer.chat_wait(chat_id, line.jobs[0].is_group, pacer.now())
            if chat is None:
                continue  # a send to this chat is under way; its answer wakes the loop
            wait = max(line.paused_until - now, chat)
            if wait <= self.lookahead:
                ready.append(line)
            elif soonest is None or wait < soonest:
                soonest = wait
        ready.sort(key=lambda line: line.jobs[0].order)
        return ready, soonest

    async def _launch_ready(self, now: float) -> float | None:
        """Book every send the pacers allow soon; return the seconds until the next one may."""
        lines, soonest = self._ready_lines(now)
        chosen: list[tuple[Job, Line]] = []
        closed: set[tuple[int, bool]] = set()  # the scopes that may take no more now
        for line in lines:
            if len(self._inflight) + len(chosen) >= self.max_in_flight:
                soonest = None  # a finished send wakes the loop
                break
            job, pacer = line.jobs[0], line.lane.pacer
            scope = (id(pacer), job.paid)
            if scope in closed:
                continue
            clock = pacer.now()
            wait = pacer.scope_wait(job.paid, clock)
            if wait is None or wait > self.lookahead:
                if wait is not None:  # else an answer (or a person's reply) wakes the loop
                    soonest = wait if soonest is None else min(soonest, wait)
                closed.add(scope)
                continue
            chat = pacer.chat_wait(job.chat_id, job.is_group, clock) or 0.0
            lead = max(wait, chat, line.paused_until - now)
            line.ticket = pacer.take(job.chat_id, job.is_group, job.paid, clock, lead)
            line.busy = True
            chosen.append((line.jobs.pop(0), line))
        if chosen:
            await self._start(chosen)
        return soonest

    async def _start(self, chosen: list[tuple[Job, Line]]) -> None:
        """Check right before sending that each row is still ours (not cancelled); send those."""
        found = await self._targets([job for job, _ in chosen])
        for job, line in chosen:
            target = found.get(job.id)
            if target is None:
                self.stats["skipped"] += 1
                line.busy = False
                self._settle(line, Outcome("failed", attempted=False))
                continue
            task = asyncio.create_task(self._deliver(job, line, target), name=f"outbox-{job.id}")
            self._inflight.add(task)
            task.add_done_callback(self._inflight.discard)

    async def _targets(self, jobs: list[Job]) -> dict[int, outbox.Target]:
        """Return the targets of rows still ours, read at most FRESH seconds ago.

        One read covers the rows to start and every other held row, so that a steady stream
        of sends costs one query per FRESH seconds rather than one per send.
        """
        now = self._now()
        stale = now - self._checked_at >= FRESH or any(j.id not in self._checked for j in jobs)
        if stale:
            ids = {job.id for job in jobs}
            ids.update(job.id for line in self._lines.values() for job in line.jobs)
            async with self.maker() as session:
                self._checked = await outbox.targets(session, row_ids=ids, owner=self.owner)
            self._checked_at = now
        return {job.id: self._checked[job.id] for job in jobs if job.id in self._checked}

    async def _deliver(self, job: Job, line: Line, target: outbox.Target) -> None:
        """Send one row and record how it went."""
        try:
            outcome = await self._when_booked(line) or await self._attempt(job, line, target)
            if outcome.code == PACED:  # the rest goes from the chat's line, each part in its turn
                self.stats["parts_paced"] += 1
                line.jobs.insert(0, job._replace(parts_sent=outcome.parts))
                return
            held_back = outcome.kind == "flood" and not outcome.attempted
            self.stats["held_back" if held_back else outcome.kind] += 1
            scope = self._settle(line, outcome)
            if outcome.kind == "flood":
                self._on_flood(job, line, outcome.delay, scope)
            await self._record(job, line, outcome)
        except Exception:
            log.exception("outbox row %s: the outcome could not be recorded", job.id)
        finally:
            line.busy = False
            self._wake.set()

    # sending -----------------------------------------------------------------

    async def _attempt(self, job: Job, line: Line, target: outbox.Target) -> Outcome:
        """Send a row in the recipient's current language through its channel; never raise."""
        if target.blocked:
            return Outcome("blocked", error=BLOCKED, attempted=False)
        try:
            message = _decode(job.payload)
            outcome = await self._send(job, line, message, target.locale)
        except Undeliverable as exc:
            return Outcome.failed(str(exc))
        except (ValueError, KeyError, TypeError) as exc:
            return Outcome.failed(f"unreadable payload: {type(exc).__name__}")
        except Exception as exc:
            log.warning("outbox row %s: unexpected error", job.id, exc_info=True)
            return Outcome.retry(f"{type(exc).__name__}: {exc}")
        if outcome.kind == "blocked" and not job.is_group:
            return replace(outcome, error=BLOCKED)
        return outcome

    async def _send(
        self, job: Job, line: Line, message: OutboundMessage, locale: str | None
    ) -> Outcome:
        """Send a row's message, with its attachment when it has one."""
        locale, lane = locale or self.default_locale, line.lane
        paid = job.paid and lane.paid is not None
        if message.attachment_id is None:
            return await lane.channel.send(
                job.chat_id,
                message,
                locale,
                paid=paid,
                first=job.parts_sent,
                progress=self._progress(job, line),
            )
        return await self._send_file(job, line, message, locale, paid, message.attachment_id)

    def _progress(self, job: Job, line: Line) -> Progress:
        """Return the callback that stores, between two parts of a message, how many are out.

        So a retry, or another process after a crash, resumes after them: at most the part in
        flight when the process died goes twice. A failed write only logs (the count still
        comes back with the outcome). Then the next part takes its own slot: at once when the
        pacer has one free, else the send stops there (PACED) and the row waits in its line.
        """

        async def note(parts: int) -> bool:
            try:
                async with self._writing() as session:
                    await outbox.note_parts(session, row_id=job.id, owner=self.owner, parts=parts)
            except Exception:
                log.warning("outbox row %s: %d parts out, not noted", job.id, parts, exc_info=True)
            return self._next_part(job, line)

        return note

    def _next_part(self, job: Job, line: Line) -> bool:
        """Settle the slot of the part that went; take the next part's if one is free now."""
        pacer = line.lane.pacer
        now = pacer.now()
        if line.ticket is not None:
            pacer.answered(line.ticket, now)
            line.ticket = None
        if pacer.wait(job.chat_id, job.is_group, job.paid, now) != 0:
            return False
        line.ticket = pacer.take(job.chat_id, job.is_group, job.paid, now)
        return True

    async def _send_file(
        self,
        job: Job,
        line: Line,
        message: OutboundMessage,
        locale: str,
        paid: bool,
        attachment_id: int,
        *,
        stale: str | None = None,
    ) -> Outcome:
        """Upload the file once per channel (others wait for its id), then send it by id.

        `stale` is an id the platform just refused: it is never sent again, even if another
        send cached it meanwhile.
        """
        channel, name = line.lane.channel, job.channel
        parts: dict[str, Any] = {"first": job.parts_sent, "progress": self._progress(job, line)}
        file = await self.files.get(attachment_id, name)
        if file.file_id is None or file.file_id == stale:
            async with self.files.lock(attachment_id, name):
                file = await self.files.get(attachment_id, name, with_data=True)
                if file.file_id is None or file.file_id == stale:
                    if file.data is None:
                        file = await self.files.get(attachment_id, name, with_data=True, fresh=True)
                    outcome = await channel.send_file(
                        job.chat_id, message, locale, file, paid=paid, **parts
                    )
                    if outcome.file_id and outcome.file_id != file.file_id:  # even if text failed
                        await self.files.remember(attachment_id, name, file, outcome.file_id)
                    return outcome
        outcome = await channel.send_file(job.chat_id, message, locale, file, paid=paid, **parts)
        if outcome.code == STALE_FILE and stale is None and file.file_id is not None:
            await self.files.forget(attachment_id, name, file.file_id)
            return await self._send_file(
                job, line, message, locale, paid, attachment_id, stale=file.file_id
            )
        return outcome

    # recording ---------------------------------------------------------------

    async def _when_booked(self, line: Line) -> Outcome | None:
        """Wait for the booked start; hand the row back (no request) if a 429 came meanwhile."""
        ticket, pacer = line.ticket, line.lane.pacer
        if ticket is None:
            return None
        ahead = ticket.not_before - pacer.now()
        if ahead > 0:
            await asyncio.sleep(ahead)
        if not pacer.stale(ticket):
            return None
        line.ticket = None
        pacer.cancel(ticket)
        window = ticket.overall if ticket.overall.paused_until > pacer.now() else ticket.chat
        delay = max(1.0, window.paused_until - pacer.now())
        return Outcome("flood", error="flood control: held back", delay=delay, attempted=False)

    def _settle(self, line: Line, outcome: Outcome) -> Scope:
        """Tell the pacer how a send ended; return the scope a 429 was put down to."""
        ticket, line.ticket, pacer = line.ticket, None, line.lane.pacer
        if ticket is None:
            return outcome.scope
        if outcome.kind == "flood":
            return (
                "bot"
                if pacer.refused(ticket, outcome.delay, pacer.now(), outcome.scope) == "bot"
                else "chat"
            )
        pacer.answered(ticket, pacer.now())
        return outcome.scope

    def _on_flood(self, job: Job, line: Line, delay: float, scope: Scope) -> None:
        """Pause the chat (the pacer has paused the scope that refused and lowered its rate)."""
        line.paused_until = max(line.paused_until, self._now() + delay)
        if scope == "bot":
            window = line.lane.pacer.scope(job.paid)
            log.warning(
                "flood control on %s: pausing its sends for %.0f s; pacing at %.1f/s now",
                job.channel,
                delay,
                window.rate.limit / window.rate.span,
            )

    @contextlib.asynccontextmanager
    async def _writing(self) -> AsyncIterator[AsyncSession]:
        """Open a write transaction; one at a time, so SQLite writers never queue on its lock."""
        async with self._write_lock, transaction(self.maker) as session:
            yield session

    async def _record(self, job: Job, line: Line, outcome: Outcome) -> None:
        """Queue one row's outcome for the writer, which commits it with the others waiting.

        A delivery frees its send slot at once (its row stays ours, leased, until written);
        other outcomes change the chat's line or the contact, so their sender waits.
        """
        waits = outcome.kind != "sent"
        done = asyncio.get_running_loop().create_future() if waits else None
        self._outcomes.append(Record(job, line, outcome, done))
        if self._writer is None or self._writer.done():
            self._writer = asyncio.create_task(self._write_outcomes(), name="outbox-writer")
        try:
            if done is not None:
                await done
        finally:
            self._checked.pop(job.id, None)
            self._spent.append((job.channel, job.chat_id))

    async def _write_outcomes(self) -> None:
        """Commit the waiting outcomes in one transaction (each alone if that fails)."""
        while self._outcomes:
            batch, self._outcomes = self._outcomes, []
            self._writing_now = len(batch)
            try:
                async with self._writing() as session:
                    await self._write_batch(session, batch)
            except Exception:
                self.stats["batch_write_failed"] += 1
                log.warning(
                    "writing %d outcomes together failed; one by one", len(batch), exc_info=True
                )
                for record in batch:
                    await self._write_alone(record)
            finally:
                self._writing_now = 0
            for record in batch:
                if record.done is not None and not record.done.done():
                    record.done.set_result(None)
            self._wake.set()

    async def _write_batch(self, session: AsyncSession, batch: list[Record]) -> None:
        """Write the deliveries in one statement, then the other outcomes."""
        sent = [
            (r.job.id, r.outcome.message_id, r.outcome.parts)
            for r in batch
            if r.outcome.kind == "sent"
        ]
        await outbox.mark_sent_many(session, owner=self.owner, sent=sent, now=self.clock.now())
        for record in batch:
            if record.outcome.kind != "sent":
                await self._write_one(session, record)

    async def _write_alone(self, record: Record) -> None:
        """Commit one outcome in its own transaction."""
        try:
            async with self._writing() as session:
                await self._write_one(session, record)
        except Exception as exc:
            if record.done is not None:
                record.done.set_exception(exc)
            else:  # its lease lapses: the row is sent again, the one duplicate a crash allows
                log.exception("outbox row %s: the delivery could not be recorded", record.job.id)

    async def _write_one(self, session: AsyncSession, record: Record) -> None:
        """Write one row's outcome: sent, back to pending, or failed with the reason."""
        job, outcome, now = record.job, record.outcome, self.clock.now()
        common: dict[str, Any] = {"row_id": job.id, "owner": self.owner}
        if outcome.kind == "sent":
            await outbox.mark_sent(
                session, message_id=outcome.message_id, now=now, parts=outcome.parts, **common
            )
            return
        parts = outcome.parts if outcome.parts > job.parts_sent else None  # kept with the row
        if outcome.kind == "flood":
            due = now + timedelta(seconds=outcome.delay)
            await outbox.retry_later(
                session, due_at=due, error=outcome.error, attempted=False, parts=parts, **common
            )
            rest, record.line.jobs = [j.id for j in record.line.jobs], []
            await outbox.release(session, row_ids=rest, owner=self.owner, due_at=due)
        elif outcome.kind == "retry" and job.attempts + 1 < self.settings.max_attempts:
            due = now + timedelta(seconds=self.settings.backoff_seconds * 2**job.attempts)
            await outbox.retry_later(
                session, due_at=due, error=outcome.error, parts=parts, **common
            )
            # the chat's next rows wait with it: a chart never goes before its summary
            rest, record.line.jobs = [j.id for j in record.line.jobs], []
            await outbox.release(session, row_ids=rest, owner=self.owner, due_at=due)
        else:
            await outbox.mark_failed(
                session, error=outcome.error, attempted=outcome.attempted, parts=parts, **common
            )
            if outcome.kind == "blocked" and outcome.attempted and not job.is_group:
                await contacts.mark_blocked(
                    session, channel=job.channel, external_id=job.chat_id, now=now
                )
            await outbox.fall_back(session, kind=outcome.kind, code=outcome.code, now=now, **common)

    def _log_stats(self, now: float) -> None:
        """Log what was done since the last summary (counts only)."""
        if now < self._next_stats:
            return
        self._next_stats = now + STATS_EVERY
        delta = self.stats - self._logged
        if any(delta[kind] for kind in ("sent", "retry", "flood", "failed", "blocked")):
            log.info(
                "outbox: %d sent, %d retried, %d flood-limited, %d failed, %d blocked",
                delta["sent"],
                delta["retry"],
                delta["flood"],
                delta["failed"],
                delta["blocked"],
            )
            self._logged = Counter(self.stats)
