"""The sandbox Bot API server in a child process of its own, as Telegram's servers are elsewhere.

At a thousand messages a second the sandbox's own work (parsing each request, its limiter, its
jitter timers) takes about as much CPU as the sender's; on one event loop the two then share a
core and the bench measures that core, not the sender. `InlineSandbox` keeps the old
arrangement, to show what the sharing costs.
"""

from __future__ import annotations

import asyncio
import importlib
import json
import multiprocessing
import time
import urllib.request
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from typing import Any

from bot.runtime import settle_heap
from bot.sandbox import Limits, SandboxServer
from bot.sandbox.zalo import ZaloSandbox


@dataclass(frozen=True)
class Spec:
    """What the sandbox holds: `users` users from `first_uid` on, its limits, and Zalo or not."""

    users: int
    first_uid: int
    limits: Limits = field(default_factory=Limits.off)
    zalo: bool = False  # the Zalo emulator too, its limits off, with the same users

    def server(self) -> SandboxServer:
        """Build the sandbox server this spec describes."""
        zalo = ZaloSandbox(limits=Limits.off()) if self.zalo else None
        server = SandboxServer(limits=self.limits, zalo=zalo)
        for uid in range(self.first_uid, self.first_uid + self.users):
            server.create_user(f"Người dùng {uid - self.first_uid}", user_id=uid)
            if server.zalo is not None:
                server.zalo.create_user(f"Người dùng {uid - self.first_uid}", user_id=str(uid))
        return server


def choose_loop(name: str) -> None:
    """Run asyncio on its own loop, or on uvloop when asked (and installed)."""
    if name == "uvloop":
        try:
            uvloop = importlib.import_module("uvloop")
        except ImportError:
            raise SystemExit("--loop uvloop: uvloop is not installed") from None
        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())


def _serve(spec: Spec, conn: Connection, loop: str) -> None:
    """Run the sandbox of `spec` until the parent says stop; report its CPU when asked."""

    async def main() -> None:
        """Start, report the port, answer CPU queries, stop when told."""
        server = spec.server()
        port = await server.start("127.0.0.1", 0)
        settle_heap()  # else its collector holds answers back 80–90 ms a run, beyond the jitter
        conn.send(port)
        while await asyncio.to_thread(conn.recv) == "cpu":
            conn.send(time.process_time())
        await server.stop()

    choose_loop(loop)
    asyncio.run(main())


class SandboxProcess:
    """A sandbox server in a child process, so that it does not share the sender's core."""

    def __init__(self, spec: Spec, loop: str = "asyncio") -> None:
        ctx = multiprocessing.get_context("spawn")
        self._conn, child = ctx.Pipe()
        self._process = ctx.Process(target=_serve, args=(spec, child, loop), daemon=True)
        self._process.start()
        port = self._conn.recv()
        self.root = f"http://127.0.0.1:{port}"
        self.base_url = f"{self.root}/bot"
        self.file_base_url = f"{self.root}/file/bot"
        self.zalo_base_url = f"{self.root}/zalo"

    def counters(self, channel: str = "telegram") -> dict[str, Any]:
        """Read the bot's counters (Telegram's or Zalo's) over the sandbox's user API."""
        path = "/zalo/sandbox/api/counters" if channel == "zalo" else "/sandbox/api/counters"
        with urllib.request.urlopen(f"{self.root}{path}") as answer:
            data: dict[str, Any] = json.load(answer)["result"]
        return data["bot"] if channel == "zalo" else data

    def cpu(self) -> float:
        """Return the CPU seconds the sandbox process has used."""
        self._conn.send("cpu")
        return float(self._conn.recv())

    def stop(self) -> None:
        """Stop the child process."""
        self._conn.send("stop")
        self._process.join(10)
        if self._process.is_alive():
            self._process.kill()


class InlineSandbox:
    """A sandbox server on the bench's own event loop (to show what sharing the core costs)."""

    def __init__(self, spec: Spec) -> None:
        self.server = spec.server()

    async def start(self) -> None:
        """Start serving on a free port."""
        await self.server.start("127.0.0.1", 0)
        self.base_url, self.file_base_url = self.server.base_url, self.server.file_base_url
        self.zalo_base_url = self.server.zalo_base_url

    def cpu(self) -> float:
        """Return nothing apart: the sandbox's CPU is the bench's own here."""
        return 0.0

    def counters(self, channel: str = "telegram") -> dict[str, Any]:
        """Return the bot's counters (Telegram's or Zalo's)."""
        if channel == "zalo":
            assert self.server.zalo is not None
            return self.server.zalo.bot.counters.to_json()
        return self.server.counters().to_json()

    async def stop(self) -> None:
        """Stop serving."""
        await self.server.stop()


Sandbox = SandboxProcess | InlineSandbox


async def open_sandbox(spec: Spec, *, inline: bool = False, loop: str = "asyncio") -> Sandbox:
    """Start the sandbox of `spec`, in a child process unless asked otherwise."""
    if inline:
        box = InlineSandbox(spec)
        await box.start()
        return box
    return await asyncio.to_thread(SandboxProcess, spec, loop)


async def close_sandbox(box: Sandbox) -> None:
    """Stop a sandbox."""
    if isinstance(box, InlineSandbox):
        await box.stop()
    else:
        await asyncio.to_thread(box.stop)
