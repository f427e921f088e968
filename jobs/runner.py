"""The job runner: holds the job lease and, while it does, runs the dispatcher and the sweeps.

The sweeps are interval jobs on the runner's own APScheduler (AsyncIOScheduler on the running
event loop): added when the lease is taken, removed when it is lost or given back.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

from apscheduler.schedulers.asyncio import AsyncIOScheduler

from bot.channels.contract import Channel
from bot.clock import Clock
from bot.config import Settings
from bot.db import SessionMaker
from bot.runtime import Runtime
from bot.services.delivery.lease import Lease
from jobs.dispatcher import Dispatcher
from jobs.pacing import PACERS_KEY, Pacer

log = logging.getLogger(__name__)
SweepFn = Callable[[], Awaitable[object]]
RETRY_SECONDS = 5.0
STOP_SECONDS = 30.0
RUNTIME_KEY = "jobs"


@dataclass(frozen=True)
class Sweep:
    """A periodic job that runs only while this process holds the lease."""

    name: str
    fn: SweepFn
    every: float


class JobRunner:
    """Try for the job lease every few seconds; while held, dispatch the outbox and sweep."""

    def __init__(
        self,
        *,
        lease: Lease,
        dispatcher: Dispatcher | None = None,
        channels: Mapping[str, Channel] | None = None,
        retry_seconds: float | None = None,
    ) -> None:
        self.lease, self.dispatcher = lease, dispatcher
        self.channels = dict(channels or {})
        self.retry_seconds = retry_seconds or min(RETRY_SECONDS, lease.seconds / 2)
        self.sweeps: dict[str, Sweep] = {}
        self._stop = asyncio.Event()
        self._loop: asyncio.Task[None] | None = None
        self._dispatching: asyncio.Task[None] | None = None
        self._dispatch_stop = asyncio.Event()
        self.scheduler = AsyncIOScheduler(
            timezone=UTC,
            job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": None},
        )
        self._sweeping: set[asyncio.Task[object]] = set()

    @property
    def holding(self) -> bool:
        """Tell whether this process holds the job lease now."""
        return self.lease.held

    def add_sweep(self, name: str, coro_fn: SweepFn, every_seconds: float) -> None:
        """Register a periodic sweep; it runs every `every_seconds` while the lease is held."""
        if name in self.sweeps:
            raise ValueError(f"sweep {name!r} is registered already")
        self.sweeps[name] = Sweep(name, coro_fn, every_seconds)
        if self.holding:
            self._start_sweep(self.sweeps[name])

    async def start(self) -> None:
        """Start trying for the lease in the background."""
        if self._loop is None:
            self._stop.clear()
            if not self.scheduler.running:
                self.scheduler.start()
            self._loop = asyncio.create_task(self._run(), name="job-runner")

    async def stop(self) -> None:
        """Finish the sends under way, stop the sweeps, give the lease back."""
        self._stop.set()
        loop, self._loop = self._loop, None
        if loop is not None:
            await loop
        await self._stand_down()
        if self.scheduler.running:
            self.scheduler.shutdown(wait=False)
        with contextlib.suppress(Exception):
            await self.lease.release()
        for channel in self.channels.values():
            with contextlib.suppress(Exception):
                await channel.close()

    async def _run(self) -> None:
        """Acquire or renew the lease until stopped."""
        while not self._stop.is_set():
            try:
                await self._tick()
            except Exception:
                log.exception("job runner: lease check failed")
            interval = self.lease.seconds / 3 if self.holding else self.retry_seconds
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), interval)

    async def _tick(self) -> None:
        """Take the lease when free, keep it when held, stand down when lost."""
        if self.holding:
            if await self.lease.renew():
                await self._start_dispatcher()
                return
            log.warning("job lease lost by %s: stopping jobs", self.lease.owner)
            await self._stand_down()
        elif await self.lease.acquire():
            log.info("job lease acquired by %s", self.lease.owner)
            for sweep in self.sweeps.values():
                self._start_sweep(sweep)
            await self._start_dispatcher()

    async def _start_dispatcher(self) -> None:
        """Run the dispatcher (again, if it ever ended)."""
        if self.dispatcher is None or self._stop.is_set():
            return
        if self._dispatching is None or self._dispatching.done():
            for channel in self.channels.values():
                await channel.open()  # once; a failure is retried at the next tick
            self._dispatch_stop = asyncio.Event()
            self._dispatching = asyncio.create_task(
                self.dispatcher.run(self._dispatch_stop), name="outbox-dispatcher"
            )

    async def _stand_down(self) -> None:
        """Stop the sweeps (a run under way ends first) and let the dispatcher finish its sends."""
        for job in self.scheduler.get_jobs():
            job.remove()
        self._dispatch_stop.set()
        tasks = list(self._sweeping)
        if self._dispatching is not None:
            tasks.append(self._dispatching)
        self._dispatching = None
        if not tasks:
            return
        _, late = await asyncio.wait(tasks, timeout=STOP_SECONDS)
        for task in late:
            log.warning("%s did not stop within %.0f s", task.get_name(), STOP_SECONDS)
            task.cancel()

    def _start_sweep(self, sweep: Sweep) -> None:
        """Schedule a sweep on the scheduler: now, then every `every` seconds."""
        self.scheduler.add_job(
            self._sweep_once,
            "interval",
            args=(sweep,),
            seconds=sweep.every,
            next_run_time=datetime.now(UTC),
            id=f"sweep:{sweep.name}",
            name=f"sweep:{sweep.name}",
            replace_existing=True,
        )

    async def _sweep_once(self, sweep: Sweep) -> None:
        """Run a sweep once if the lease is still held; log its failure."""
        if not self.holding:
            return
        task = asyncio.current_task()
        if task is not None:
            self._sweeping.add(task)
        try:
            await sweep.fn()
        except Exception:
            log.exception("sweep %s failed", sweep.name)
        finally:
            if task is not None:
                self._sweeping.discard(task)


def build_runner(
    settings: Settings,
    *,
    maker: SessionMaker,
    clock: Clock,
    channels: Mapping[str, Channel],
    pacers: Mapping[str, Pacer] | None = None,
) -> JobRunner:
    """Build the lease, the dispatcher (sending through `channels`, on `pacers`) and its runner."""
    delivery = settings.delivery
    lease = Lease(maker, clock=clock, seconds=delivery.lease_seconds)
    dispatcher = Dispatcher(
        maker=maker,
        channels=channels,
        settings=delivery,
        clock=clock,
        owner=lease.owner,
        default_locale=settings.i18n.default_locale,
        pacers=pacers,
    )
    return JobRunner(lease=lease, dispatcher=dispatcher, channels=channels)


def attach(runtime: Runtime, channels: Mapping[str, Channel]) -> JobRunner:
    """Build the job runner of a running bot once; keep it in runtime.extra["jobs"]."""
    existing = runtime.extra.get(RUNTIME_KEY)
    if isinstance(existing, JobRunner):
        return existing
    runner = build_runner(
        runtime.settings,
        maker=runtime.maker,
        clock=runtime.clock,
        channels=channels,
        pacers=runtime.extra.get(PACERS_KEY),
    )
    runtime.extra[RUNTIME_KEY] = runner
    return runner
