"""Polling by one process at a time: the holder of the polling lease polls, the others wait."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence

from telegram.ext import Updater

from bot.services.delivery.lease import Lease

log = logging.getLogger(__name__)
RETRY_SECONDS = 5.0


class PollingLeader:
    """Poll the Bot API only while this process holds the polling lease; otherwise wait for it."""

    def __init__(
        self,
        updater: Updater,
        lease: Lease,
        *,
        allowed_updates: Sequence[str],
        timeout: int,
        interval: float = 0.0,
        retry_seconds: float | None = None,
    ) -> None:
        self.updater, self.lease = updater, lease
        self.allowed_updates, self.timeout = list(allowed_updates), timeout
        self.interval = interval
        self.retry_seconds = retry_seconds or min(RETRY_SECONDS, lease.seconds / 2)
        self._stop = asyncio.Event()
        self._loop: asyncio.Task[None] | None = None

    @property
    def polling(self) -> bool:
        """Tell whether this process polls now."""
        return self.lease.held and self.updater.running

    async def start(self) -> bool:
        """Try for the lease once (polling at once if taken), then keep trying in the background."""
        await self.tick()
        if not self.polling:
            log.info(
                "another process polls for updates on this database (lease %s): waiting",
                self.lease.name,
            )
        self._loop = asyncio.create_task(self._run(), name="polling-leader")
        return self.polling

    async def stop(self) -> None:
        """Stop polling and give the lease back, so a waiting process takes over at once."""
        self._stop.set()
        loop, self._loop = self._loop, None
        if loop is not None:
            await loop
        if self.updater.running:
            await self.updater.stop()
        with contextlib.suppress(Exception):
            await self.lease.release()

    async def tick(self) -> None:
        """Take the lease when free and poll; keep it while held; stop polling when it is lost."""
        if self.lease.held:
            if await self.lease.renew():
                if not self.updater.running:
                    await self._poll()
                return
            log.warning("polling lease lost by %s: no longer polling", self.lease.owner)
            if self.updater.running:
                await self.updater.stop()
        elif await self.lease.acquire():
            log.info("polling lease taken by %s: polling for updates", self.lease.owner)
            await self._poll()

    async def _poll(self) -> None:
        """Start the updater's polling."""
        await self.updater.start_polling(
            allowed_updates=self.allowed_updates, timeout=self.timeout, poll_interval=self.interval
        )

    async def _run(self) -> None:
        """Renew or try for the lease until stopped."""
        while not self._stop.is_set():
            interval = self.lease.seconds / 3 if self.lease.held else self.retry_seconds
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), interval)
            if self._stop.is_set():
                return
            try:
                await self.tick()
            except Exception:
                log.exception("polling lease check failed")
