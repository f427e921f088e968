"""The web dashboard in `reformbot run` and the demo: uvicorn on its own port, in the bot's loop."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import Iterator
from dataclasses import dataclass

import uvicorn

from bot.runtime import Runtime
from bot.startup import StartupFault
from bot.web.app import create_app

log = logging.getLogger(__name__)
KEY = "dashboard"  # where the started server lives in runtime.extra
STARTUP_SECONDS = 10.0


class _Server(uvicorn.Server):
    """uvicorn without its signal handlers: the bot's own stop the whole process."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        """Leave SIGINT and SIGTERM to the bot."""
        yield


@dataclass
class Handle:
    """A running dashboard server."""

    server: uvicorn.Server
    task: asyncio.Task[None]
    url: str

    async def stop(self) -> None:
        """Finish the requests under way and close the port."""
        self.server.should_exit = True
        await self.task


def _listen(host: str, port: int) -> socket.socket:
    """Open the listening socket now, so a busy port fails the start, not a task later."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise StartupFault("run.dashboard_port_busy", {"listen": host, "port": port}) from None
    sock.listen(128)
    sock.setblocking(False)
    return sock


async def start(rt: Runtime) -> Handle:
    """Serve the dashboard on [dashboard] host:port until the handle is stopped."""
    config = rt.settings.dashboard
    app = create_app(rt.settings, rt.maker, rt.clock)
    server = _Server(
        uvicorn.Config(
            app,
            log_config=None,
            access_log=False,
            lifespan="off",
            proxy_headers=True,
            server_header=False,
            timeout_graceful_shutdown=5,
        )
    )
    sock = _listen(config.host, config.port)
    task = asyncio.create_task(server.serve(sockets=[sock]))
    async with asyncio.timeout(STARTUP_SECONDS):
        while not server.started:
            if task.done():
                task.result()
            await asyncio.sleep(0.02)
    url = config.public_url or f"http://{config.host}:{config.port}"
    log.info("dashboard on %s:%s (%s)", config.host, config.port, url)
    return Handle(server, task, url)
