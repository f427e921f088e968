"""`python -m tests.e2e.delivery_bot`: the real bot, with the job runner attached if need be.

The end-to-end delivery tests run this while bot/app.py does not start the job runner itself;
once it does (the runner is then in runtime.extra), this adds nothing and they run `bot run`.
"""

from __future__ import annotations

import asyncio
from typing import Any

from bot import app as bot_app
from bot import logs
from bot.config import load_settings
from bot.db import create_engine, session_maker
from jobs.runner import RUNTIME_KEY, attach


async def main() -> None:
    """Run the bot with the job runner until SIGTERM or SIGINT."""
    settings = load_settings()
    logs.configure(settings.logging)
    engine = create_engine(settings.database.url)
    try:
        app = bot_app.build_application(settings, maker=session_maker(engine))
        inner = app.post_init
        assert inner is not None

        async def post_init(application: Any) -> None:
            await inner(application)
            runtime = application.bot_data["runtime"]
            if RUNTIME_KEY not in runtime.extra:
                await attach(application, runtime).start()

        app.post_init = post_init
        stop = asyncio.Event()
        bot_app.stop_on_signals(stop)
        try:
            await bot_app.serve(app, stop)
        finally:
            runner = app.bot_data["runtime"].extra.get(RUNTIME_KEY)
            if runner is not None:
                await runner.stop()
    finally:
        await engine.dispose()


if __name__ == "__main__":
    asyncio.run(main())
