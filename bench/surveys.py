"""2,000 members of staff answer a 10-question survey at once through the sandbox, beside echo.

    python -m bench.surveys [--people 2000] [--modes polling webhook] [--repeat 1]
                            [--databases sqlite postgresql]

With REFORMBOT_TEST_POSTGRES_URL set (a server where it may create and drop a database),
reformbot runs on PostgreSQL too, in the same round, against the same echo measurements.

The database is seeded with two units sharing the people, each linked to a Telegram chat, the
10-question questionnaire below and an anonymous campaign launched to both units (its
invitations are withdrawn from the outbox: their delivery is bench/dispatch.py's). Every person
asks `/survey`, presses «Trả lời khảo sát», then answers the ten questions as people do: pressing
a button, typing its number, ticking two options of the multiple-choice one, typing a short text;
each waits for the bot's reply before the next answer. Reformbot runs as shipped (its Application
on a fresh SQLite file), by polling and by webhook, like bench/ratings.py.

Prints per mode: completed surveys per second, answers per second, the p50/p95 reply latency
(from the moment the person's message or press enters the sandbox's user API to the moment the
bot's last reply to it is in the chat), and updates per second as a ratio to a bare
python-telegram-bot echo bot driven the same way in the same run (as many users, each sending as
many texts), measured just before and just after reformbot. The bot, the sandbox and this driver
share one event loop and the machine's cores: read the ratio, not the absolute rates.
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any

from sqlalchemy import func
from sqlalchemy.engine.url import make_url
from sqlmodel import col, select

from bench.figures import Figures
from bench.ratings import (
    FIRST_UID,
    PG_ENV,
    WAIT,
    JsonDict,
    Run,
    _admin,
    button,
    drive,
    drop_database,
    mean,
    measure_echo,
    postgres_server,
    reformbot,
)
from bot import migrate
from bot.db import SessionMaker, create_engine, session_maker
from bot.models import Channel, Contact, Person, PersonRole, Role, SurveyResponse, Unit, UnitKind
from bot.sandbox import Limits, SandboxServer
from bot.services.delivery import outbox
from bot.services.org.access import system_actor
from bot.services.surveys import campaigns, questionnaire

GOAL = 0.5
QUESTIONS: list[dict[str, Any]] = [
    {"type": "yes_no"},
    {"type": "single", "options": ["Hằng ngày", "Hằng tuần", "Thỉnh thoảng", "Chưa"]},
    {"type": "scale", "scale": 5, "low": "Rất kém", "high": "Rất tốt"},
    {"type": "scale", "scale": 10, "low": "Rất kém", "high": "Rất tốt"},
    {"type": "multiple", "options": ["Thiết bị", "Đường truyền", "Hướng dẫn"]},
    {"type": "yes_no"},
    {"type": "single", "options": ["Thuận lợi hơn", "Như cũ", "Khó khăn hơn"]},
    {"type": "scale", "scale": 5, "low": "Rất kém", "high": "Rất tốt"},
    {"type": "text", "optional": True},
    {"type": "scale", "scale": 5, "low": "Rất kém", "high": "Rất tốt"},
]
Step = tuple[str, str, int]  # ("press" | "type", value, replies it brings)


def script(n: int) -> list[Step]:
    """Return person n's answers after the survey's button: pressed and typed, varied."""
    steps: list[Step] = []
    for k, q in enumerate(QUESTIONS):
        press = (n + k) % 2 == 0
        if q["type"] == "yes_no":
            steps.append(("press", "vyes", 1) if press else ("type", "2", 1))
        elif q["type"] == "single":
            pick = 1 + (n + k) % len(q["options"])
            steps.append(("press", f"v{pick}", 1) if press else ("type", str(pick), 1))
        elif q["type"] == "scale":
            point = 1 + (n + k) % q["scale"]
            steps.append(("press", f"v{point}", 1) if press else ("type", str(point), 1))
        elif q["type"] == "multiple":
            if press:  # tick one, then «Xong»: the tick is answered with the list again
                steps += [("press", "o1", 2), ("press", "done", 1)]
            else:
                steps.append(("type", "1, 3", 1))
        else:
            steps.append(("type", "Cần thêm hướng dẫn", 1) if n % 3 else ("press", "skip", 1))
    return steps


async def seed(maker: SessionMaker, people: int) -> int:
    """Store two units, `people` staff with chats, the questionnaire and a launched campaign."""
    now = datetime.now(UTC)
    async with maker() as s:
        units = [
            Unit(
                code=f"U{i}",
                name=f"Đơn vị {i}",
                kind=UnitKind.OFFICE,
                created_at=now,
                updated_at=now,
            )
            for i in (1, 2)
        ]
        s.add_all(units)
        await s.flush()
        for n in range(people):
            person = Person(
                code=f"B{n:05d}",
                full_name=f"Cán bộ {n}",
                unit_id=units[n % 2].id,
                created_at=now,
                updated_at=now,
            )
            s.add(person)
            await s.flush()
            assert person.id is not None
            s.add(PersonRole(person_id=person.id, role=Role.STAFF))
            s.add(
                Contact(
                    channel=Channel.TELEGRAM,
                    external_id=str(FIRST_UID + n),
                    person_id=person.id,
                    created_at=now,
                )
            )
        rows = [
            (k + 1, {"id": f"Q{k + 1}", "text": f"Câu hỏi {k + 1}", **q})
            for k, q in enumerate(QUESTIONS)
        ]
        form = questionnaire.check({"code": "BENCH", "title": "Khảo sát"}, rows).definition
        assert form is not None
        actor = system_actor("bench")
        await questionnaire.save(s, form, actor=actor, now=now)
        draft = campaigns.Draft(
            "Khảo sát",
            campaigns.Audience(units=("U1", "U2")),
            now,
            now + timedelta(days=7),
            "BENCH",
        )
        campaign = await campaigns.launch(s, draft, actor=actor, now=now)
        await s.flush()
        assert campaign.id is not None
        # the invitations' delivery is the dispatcher's (bench/dispatch.py): here people ask
        await outbox.cancel(s, kind=campaigns.KIND_INVITE, ref_id=campaign.id)
        await s.commit()
        assert campaign.id is not None
        return campaign.id


async def fresh_database(
    folder: Path, index: int, server: str | None, people: int
) -> tuple[str, SessionMaker, int]:
    """Create, migrate and seed a new SQLite file or PostgreSQL database; return the campaign."""
    url = f"sqlite+aiosqlite:///{folder}/surveys-{index}.db"
    if server is not None:
        name = f"reformbot_bench_surveys_{uuid.uuid4().hex[:10]}"
        await _admin(server, f'CREATE DATABASE "{name}"')
        url = make_url(server).set(database=name).render_as_string(hide_password=False)
    await migrate.upgrade(url)
    maker = session_maker(create_engine(url))
    return url, maker, await seed(maker, people)


async def exchange(
    server: SandboxServer, uid: int, act: Any, seen: int, replies: int, run: Run
) -> list[JsonDict]:
    """Do one action, wait for the bot's replies to it, record the latency; return the chat."""
    started = time.perf_counter()
    act()
    messages = await server.wait_for_messages(uid, seen + replies, seconds=WAIT)
    run.latencies.append(time.perf_counter() - started)
    run.updates += 1
    return messages


async def person(server: SandboxServer, uid: int, n: int, campaign_id: int, run: Run) -> None:
    """Open the survey and answer every question when it comes."""
    messages = await exchange(server, uid, partial(server.send_text, uid, "/survey"), 0, 1, run)
    invite = messages[-1]
    press = partial(server.press_button, uid, invite["message_id"], f"survey:{campaign_id}")
    messages = await exchange(server, uid, press, len(messages), 2, run)  # intro, question 1
    for how, value, replies in script(n):
        last = messages[-1]
        if how == "press":
            act = partial(server.press_button, uid, last["message_id"], button(last, value))
        else:
            act = partial(server.send_text, uid, value)
        messages = await exchange(server, uid, act, len(messages), replies, run)


async def measure_surveys(
    mode: str, people: int, folder: Path, index: int, pg_server: str | None = None
) -> Run:
    """Run reformbot with `people` people each completing the survey."""
    run = Run("reformbot" if pg_server is None else "reformbot-pg", mode)
    url, maker, campaign_id = await fresh_database(folder, index, pg_server, people)
    server = SandboxServer(limits=Limits.off())
    await server.start("127.0.0.1", 0)
    try:
        app = reformbot(server, url, maker)
        uids = [FIRST_UID + i for i in range(people)]
        for uid in uids:
            server.create_user(f"Cán bộ {uid}", user_id=uid)
        await drive(
            app,
            server,
            mode,
            lambda: asyncio.gather(
                *(person(server, uid, n, campaign_id, run) for n, uid in enumerate(uids))
            ),
            run,
        )
        async with maker() as session:
            stmt = select(func.count()).select_from(SurveyResponse)
            run.ratings = (await session.exec(stmt.where(col(SurveyResponse.complete)))).one()
    finally:
        await server.stop()
        await drop_database(url, pg_server, maker)
    return run


def report(echo: Run, bot: Run) -> float:
    """Print one mode's figures; return reformbot's updates per second as a ratio to the echo."""
    ratio = bot.per_second / echo.per_second
    for run in (echo, bot):
        print(
            f"{run.mode:8} {run.name:12} {run.updates:6} updates in {run.seconds:7.2f} s "
            f"= {run.per_second:6.0f} updates/s; reply p50 {run.quantile(0.5) * 1000:6.0f} ms, "
            f"p95 {run.quantile(0.95) * 1000:6.0f} ms"
        )
    answers = bot.ratings * len(QUESTIONS)
    print(
        f"{bot.mode:8} {bot.name:12} {bot.ratings} surveys ({answers} answers) in "
        f"{bot.seconds:.2f} s = {answers / bot.seconds:.1f} answers/s; "
        f"updates/s = {ratio:.2f} x echo (goal >= {GOAL})"
    )
    return ratio


async def main(people: int, modes: list[str], repeat: int, databases: list[str]) -> None:
    """Measure each mode (echo, reformbot, echo again), `repeat` times; print the figures last."""
    figures = Figures("surveys")
    servers: list[str | None] = [None] if "sqlite" in databases else []
    if (pg := postgres_server()) is not None and "postgresql" in databases:
        servers.append(pg)
    if not servers:
        raise SystemExit(f"no database to measure on (PostgreSQL needs {PG_ENV})")
    with tempfile.TemporaryDirectory() as tmp:
        index = 0
        for round_ in range(1, repeat + 1):
            for mode in modes:
                texts = len(script(0)) + 2  # as many updates as a person sends
                before = await measure_echo(mode, people, texts)
                bots = []
                for server in servers:
                    index += 1
                    bot = await measure_surveys(mode, people, Path(tmp), index, server)
                    if bot.ratings != people:
                        raise SystemExit(f"{bot.ratings} surveys completed, {people} expected")
                    bots.append(bot)
                after = await measure_echo(mode, people, texts)
                echo = mean(before, after)
                for bot in bots:
                    ratio = report(echo, bot)
                    extra: dict[str, Any] = {
                        "mode": mode,
                        "database": "postgresql" if bot.name.endswith("-pg") else "sqlite",
                        "round": round_,
                        "people": people,
                    }
                    answers = bot.ratings * len(QUESTIONS)
                    figures.add("answers_per_second", answers / bot.seconds, **extra)
                    figures.add("reply_p95_seconds", bot.quantile(0.95), **extra)
                    figures.add(
                        "reply_p95_x_echo", bot.quantile(0.95) / echo.quantile(0.95), **extra
                    )
                    figures.add("updates_per_second_x_echo", ratio, f">= {GOAL}", **extra)
    figures.print()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--people", type=int, default=2000)
    parser.add_argument(
        "--modes", nargs="+", default=["polling", "webhook"], choices=["polling", "webhook"]
    )
    parser.add_argument("--repeat", type=int, default=1, help="measure every mode this often")
    parser.add_argument(
        "--databases",
        nargs="+",
        default=["sqlite", "postgresql"],
        choices=["sqlite", "postgresql"],
        help="PostgreSQL needs REFORMBOT_TEST_POSTGRES_URL",
    )
    args = parser.parse_args()
    asyncio.run(main(args.people, args.modes, args.repeat, args.databases))
