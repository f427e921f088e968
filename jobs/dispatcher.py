"""The outbox dispatcher: claim due rows, send them at the platform's limits, record outcomes."""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import logging
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Literal, Protocol

from sqlmodel.ext.asyncio.session import AsyncSession
from telegram.error import BadRequest, ChatMigrated, Forbidden, RetryAfter, TelegramError

from bot.channels import codec
from bot.channels.base import OutboundMessage, SentFile, StoredFile
from bot.channels.telegram import retry_seconds
from bot.clock import Clock
from bot.config import DeliverySettings
from bot.db import SessionMaker, transaction
from bot.models import Outbox
from bot.services import contacts, outbox
from jobs.files import Attachments, Undeliverable
from jobs.pacing import Pacer, Ticket

log = logging.getLogger(__name__)
Sleep = Callable[[float], Awaitable[None]]
MAX_IN_FLIGHT = 32
BLOCKED = "blocked"
STATS_EVERY = 60.0
LOOKAHEAD = 0.1  # seconds: a send may be booked this far ahead, its row checked meanwhile


class Sender(Protocol):
    """What the dispatcher sends through."""

    async def send(
        self, chat_id: str, message: OutboundMessage, locale: str, *, paid: bool = False
    ) -> str | None:
        """Send a text message; return the platform's message id."""
        ...

    async def send_file(
        self,
        chat_id: str,
        message: OutboundMessage,
        locale: str,
        file: StoredFile,
        *,
        paid: bool = False,
    ) -> SentFile:
        """Send a document or photo with the message as its caption (or after it)."""
        ...


@dataclass(frozen=True)
class Job:
    """A claimed row, as the dispatcher keeps it in memory."""

    id: int
    order: tuple[int, datetime, int]
    chat_id: str
    channel: str
    is_group: bool
    paid: bool
    payload: str
    attempts: int

    @classmethod
    def of(cls, row: Outbox) -> Job:
        """Copy what is needed from a claimed row."""
        assert row.id is not None
        return cls(
            id=row.id,
            order=(row.priority, row.due_at, row.id),
            chat_id=row.chat_id,
            channel=str(row.channel),
            is_group=row.is_group,
            paid=row.paid,
            payload=row.payload,
            attempts=row.attempts,
        )


@dataclass
class Line:
    """One chat's held rows, and whether it is busy or paused."""

    jobs: list[Job] = field(default_factory=list)
    busy: bool = False
    paused_until: float = 0.0
    ticket: Ticket | None = None

    def add(self, job: Job) -> None:
        """Hold one more row, in send order."""
        bisect.insort(self.jobs, job, key=lambda j: j.order)


Kind = Literal["sent", "retry", "flood", "failed", "blocked"]


@dataclass(frozen=True)
class Outcome:
    """What one attempt gave."""

    kind: Kind
    message_id: str | None = None
    error: str = ""
    delay: float = 0.0
    attempted: bool = True


@dataclass
class Record:
    """An outcome waiting to be written, and the future its sender waits on."""

    job: Job
    line: Line
    outcome: Outcome
    done: asyncio.Future[None]


class Dispatcher:
    """Drain the outbox at the platform's limits, one chat never holding up the others."""

    def __init__(
        self,
        *,
        maker: SessionMaker,
        sender: Sender,
        settings: DeliverySettings,
        clock: Clock,
        owner: str,
        default_locale: str = "vi",
        sleep: Sleep = asyncio.sleep,
        max_in_flight: int = MAX_IN_FLIGHT,
        pacer: Pacer | None = None,
        lookahead: float = LOOKAHEAD,
    ) -> None:
        self.maker, self.sender, self.settings = maker, sender, settings
        self.clock, self.owner, self.default_locale = clock, owner, default_locale
        self.sleep, self.max_in_flight = sleep, max_in_flight
        self.files = Attachments(maker)
        self.stats: Counter[str] = Counter()
        self._epoch = clock.now()
        self.pacer = pacer or Pacer(settings, clock)
        self.lookahead = lookahead
        self._lines: dict[str, Line] = {}
        self._inflight: set[asyncio.Task[None]] = set()
        self._wake = asyncio.Event()
        self.pacer.listeners.append(self._wake.set)
        self._flood_scope = "bot"
        self._next_claim = self._next_extend = self._next_stats = 0.0
        self._more = False
        self._hold = max(2, int(settings.chat_rate * settings.poll_seconds * 2))
        self._logged: Counter[str] = Counter()
        self._write_lock = asyncio.Lock()
        self._outcomes: list[Record] = []
        self._writer: asyncio.Task[None] | None = None

    @property
    def in_flight(self) -> int:
        """Count the sends under way."""
        return len(self._inflight)

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
        """Let the sends under way end, then give the held rows back."""
        if self._inflight:
            await asyncio.gather(*self._inflight, return_exceptions=True)
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
        """Count rows held in memory or being sent."""
        return len(self._inflight) + sum(len(line.jobs) for line in self._lines.values())

    async def _refill(self, now: float) -> None:
        """Claim more rows when there is room, and it is time or the last claim was full."""
        room = self.settings.batch_size - self._held()
        low = room >= self.settings.batch_size // 2
        if room <= 0 or not (now >= self._next_claim or (self._more and low)):
            return
        full = [chat for chat, line in self._lines.items() if self._saturated(line)]
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
        extra = [job.id for job in map(Job.of, rows) if not self._hold_job(job)]
        if extra:
            async with self._writing() as session:
                await outbox.release(session, row_ids=extra, owner=self.owner)
        if rows:
            self.stats["claimed"] += len(rows) - len(extra)
            log.debug("claimed %d outbox rows (%d given back)", len(rows), len(extra))

    def _saturated(self, line: Line) -> bool:
        """Tell whether a chat holds enough rows to skip it when claiming."""
        return len(line.jobs) + line.busy >= self._hold

    def _hold_job(self, job: Job) -> bool:
        """Keep a claimed row in its chat's line, unless the line is full already."""
        line = self._lines.get(job.chat_id)
        if line is None:
            line = self._lines[job.chat_id] = Line()
        if len(line.jobs) + line.busy >= self._hold:
            return False
        line.add(job)
        return True

    async def _keep_leases(self, now: float) -> None:
        """Extend the lease of every held row well before it lapses; forget idle chats."""
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
        idle = [
            chat
            for chat, line in self._lines.items()
            if not line.jobs and not line.busy and line.paused_until <= now
        ]
        for chat in idle:
            del self._lines[chat]
        self.pacer.forget_idle(self.pacer.now(), keep=set(self._lines))

    async def _next_due(self) -> float | None:
        """Return when (on this dispatcher's time line) the next row becomes claimable."""
        async with self.maker() as session:
            due = await outbox.next_due(session)
        return None if due is None else (due - self._epoch).total_seconds()

    # launching ---------------------------------------------------------------

    def _ready_lines(self, now: float) -> tuple[list[Line], float | None]:
        """Return the lines whose chat may take a send now, best first, and the wait otherwise."""
        ready: list[Line] = []
        soonest: float | None = None
        pacer, clock = self.pacer, self.pacer.now()
        for chat_id, line in self._lines.items():
            if not line.jobs or line.busy:
                continue
            job = line.jobs[0]
            chat = pacer.chat_wait(chat_id, job.is_group, clock)
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
        """Start every send the pacer allows now; return the seconds until the next one may."""
        lines, soonest = self._ready_lines(now)
        chosen: list[tuple[Job, Line]] = []
        pacer, clock = self.pacer, self.pacer.now()
        closed: set[bool] = set()  # the scopes (paid or not) that may take no more now
        for line in lines:
            if len(self._inflight) + len(chosen) >= self.max_in_flight:
                soonest = None  # a finished send wakes the loop
                break
            job = line.jobs[0]
            if job.paid in closed:
                continue
            wait = pacer.scope_wait(job.paid, clock)
            if wait is None:
                soonest = None  # an answer (or a person's reply) wakes the loop
                break
            if wait > self.lookahead:
                soonest = wait if soonest is None else min(soonest, wait)
                closed.add(job.paid)
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
        async with self.maker() as session:
            found = await outbox.targets(
                session, row_ids=[job.id for job, _ in chosen], owner=self.owner
            )
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

    async def _deliver(self, job: Job, line: Line, target: outbox.Target) -> None:
        """Send one row and record how it went."""
        try:
            outcome = await self._when_booked(line) or await self._attempt(job, target)
            held_back = outcome.kind == "flood" and not outcome.attempted
            self.stats["held_back" if held_back else outcome.kind] += 1
            self._settle(line, outcome)
            if outcome.kind == "flood":
                self._on_flood(job, line, outcome.delay)
            await self._record(job, line, outcome)
        except Exception:
            log.exception("outbox row %s: the outcome could not be recorded", job.id)
        finally:
            line.busy = False
            self._wake.set()

    # sending -----------------------------------------------------------------

    async def _attempt(self, job: Job, target: outbox.Target) -> Outcome:
        """Send a row in the recipient's current language; sort out what went wrong."""
        if target.blocked:
            return Outcome("blocked", error=BLOCKED, attempted=False)
        try:
            message = codec.loads(job.payload)
            return Outcome("sent", await self._send(job, message, target.locale))
        except RetryAfter as exc:
            return Outcome("flood", error=f"flood control: {exc}", delay=retry_seconds(exc))
        except Forbidden as exc:
            return Outcome("blocked", error=f"forbidden: {exc}" if job.is_group else BLOCKED)
        except ChatMigrated as exc:
            return Outcome("failed", error=f"chat migrated to {exc.new_chat_id}")
        except BadRequest as exc:
            return Outcome("failed", error=f"bad request: {exc}")
        except Undeliverable as exc:
            return Outcome("failed", error=str(exc))
        except TelegramError as exc:
            return Outcome("retry", error=f"{type(exc).__name__}: {exc}")
        except (ValueError, KeyError, TypeError) as exc:
            return Outcome("failed", error=f"unreadable payload: {type(exc).__name__}")
        except Exception as exc:
            log.warning("outbox row %s: unexpected error", job.id, exc_info=True)
            return Outcome("retry", error=f"{type(exc).__name__}: {exc}")

    async def _send(self, job: Job, message: OutboundMessage, locale: str | None) -> str | None:
        """Send a row's message, with its attachment when it has one."""
        locale = locale or self.default_locale
        paid = job.paid and self.settings.paid_broadcast
        if message.attachment_id is None:
            return await self.sender.send(job.chat_id, message, locale, paid=paid)
        return await self._send_file(job, message, locale, paid, message.attachment_id)

    async def _send_file(
        self, job: Job, message: OutboundMessage, locale: str, paid: bool, attachment_id: int
    ) -> str | None:
        """Upload the file once (others wait for its id), then send it by id."""
        file = await self.files.get(attachment_id)
        if file.file_id is None:
            async with self.files.lock(attachment_id):
                file = await self.files.get(attachment_id, with_data=True)
                if file.file_id is None:
                    sent = await self.sender.send_file(
                        job.chat_id, message, locale, file, paid=paid
                    )
                    if sent.file_id:
                        await self.files.remember(attachment_id, file, sent.file_id)
                    return sent.message_id
        try:
            sent = await self.sender.send_file(job.chat_id, message, locale, file, paid=paid)
        except BadRequest as exc:
            if "file identifier" not in str(exc).lower():
                raise
            await self.files.forget(attachment_id)
            return await self._send_file(job, message, locale, paid, attachment_id)
        return sent.message_id

    # recording ---------------------------------------------------------------

    async def _when_booked(self, line: Line) -> Outcome | None:
        """Wait for the booked start; hand the row back (no request) if a 429 came meanwhile."""
        ticket = line.ticket
        if ticket is None:
            return None
        ahead = ticket.not_before - self.pacer.now()
        if ahead > 0:
            await asyncio.sleep(ahead)
        if not self.pacer.stale(ticket):
            return None
        line.ticket = None
        self.pacer.cancel(ticket)
        scope = ticket.overall if ticket.overall.rate.refusals else ticket.chat
        delay = max(1.0, scope.paused_until - self.pacer.now())
        return Outcome("flood", error="flood control: held back", delay=delay, attempted=False)

    def _settle(self, line: Line, outcome: Outcome) -> None:
        """Tell the pacer how a send ended (a 429 teaches it; anything else frees the slot)."""
        ticket, line.ticket = line.ticket, None
        if ticket is None:
            return
        if outcome.kind == "flood":
            self._flood_scope = self.pacer.refused(ticket, outcome.delay, self.pacer.now())
        else:
            self.pacer.answered(ticket, self.pacer.now())

    def _on_flood(self, job: Job, line: Line, delay: float) -> None:
        """Pause the chat (the pacer has paused its scope and lowered its rate)."""
        now = self._now()
        line.paused_until = max(line.paused_until, now + delay)
        log.warning(
            "flood control (%s scope): pausing for %.0f s; pacing at %.1f sends/s now",
            self._flood_scope,
            delay,
            self.pacer.scope(job.paid).rate.limit / self.pacer.scope(job.paid).rate.span,
        )

    @contextlib.asynccontextmanager
    async def _writing(self) -> AsyncIterator[AsyncSession]:
        """Open a write transaction; one at a time, so SQLite writers never queue on its lock."""
        async with self._write_lock, transaction(self.maker) as session:
            yield session

    async def _record(self, job: Job, line: Line, outcome: Outcome) -> None:
        """Write one row's outcome now, together with the outcomes that arrived meanwhile."""
        done = asyncio.get_running_loop().create_future()
        self._outcomes.append(Record(job, line, outcome, done))
        if self._writer is None or self._writer.done():
            self._writer = asyncio.create_task(self._write_outcomes(), name="outbox-writer")
        await done

    async def _write_outcomes(self) -> None:
        """Commit the waiting outcomes in one transaction (each alone if that fails)."""
        while self._outcomes:
            batch, self._outcomes = self._outcomes, []
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
            for record in batch:
                if not record.done.done():
                    record.done.set_result(None)

    async def _write_batch(self, session: AsyncSession, batch: list[Record]) -> None:
        """Write the deliveries in one statement, then the other outcomes."""
        sent = [(r.job.id, r.outcome.message_id) for r in batch if r.outcome.kind == "sent"]
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
            record.done.set_exception(exc)

    async def _write_one(self, session: AsyncSession, record: Record) -> None:
        """Write one row's outcome: sent, back to pending, or failed with the reason."""
        job, outcome, now = record.job, record.outcome, self.clock.now()
        common: dict[str, Any] = {"row_id": job.id, "owner": self.owner}
        if outcome.kind == "sent":
            await outbox.mark_sent(session, message_id=outcome.message_id, now=now, **common)
        elif outcome.kind == "flood":
            due = now + timedelta(seconds=outcome.delay)
            await outbox.retry_later(
                session, due_at=due, error=outcome.error, attempted=False, **common
            )
            rest, record.line.jobs = [j.id for j in record.line.jobs], []
            await outbox.release(session, row_ids=rest, owner=self.owner, due_at=due)
        elif outcome.kind == "retry" and job.attempts + 1 < self.settings.max_attempts:
            due = now + timedelta(seconds=self.settings.backoff_seconds * 2**job.attempts)
            await outbox.retry_later(session, due_at=due, error=outcome.error, **common)
        else:
            await outbox.mark_failed(
                session, error=outcome.error, attempted=outcome.attempted, **common
            )
            if outcome.kind == "blocked" and outcome.attempted and not job.is_group:
                await contacts.mark_blocked(
                    session, channel=job.channel, external_id=job.chat_id, now=now
                )

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
