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
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any

from sqlalchemy import func
from sqlmodel import col, select

from bench.figures import Figures
from bench.harness import (
    FIRST_UID,
    Run,
    button,
    compare,
    exchange,
    measure_reformbot,
    new_database,
)
from bot.db import SessionMaker
from bot.models import Channel, Contact, Person, PersonRole, Role, SurveyResponse, Unit, UnitKind
from bot.sandbox import SandboxServer
from bot.services.delivery import outbox
from bot.services.org.access import system_actor
from bot.services.surveys import campaigns, questionnaire
from bot.sqlite_driver import long_writes_expected

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
    with long_writes_expected():  # the seed: thousands of rows in one write
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


async def person(campaign_id: int, server: SandboxServer, uid: int, n: int, run: Run) -> None:
    """Open the survey and answer every question when it comes."""
    messages = await exchange(server, uid, partial(server.send_text, uid, "/survey"), 0, run)
    invite = messages[-1]
    press = partial(server.press_button, uid, invite["message_id"], f"survey:{campaign_id}")
    messages = await exchange(server, uid, press, len(messages), run, 2)  # intro, question 1
    for how, value, replies in script(n):
        last = messages[-1]
        if how == "press":
            act = partial(server.press_button, uid, last["message_id"], button(last, value))
        else:
            act = partial(server.send_text, uid, value)
        messages = await exchange(server, uid, act, len(messages), run, replies)


async def measure_surveys(
    people: int, mode: str, folder: Path, index: int, pg_server: str | None = None
) -> Run:
    """Run reformbot with `people` people each completing the survey."""
    url, maker = await new_database(folder, "surveys", index, pg_server)
    campaign_id = await seed(maker, people)
    counted = select(func.count()).select_from(SurveyResponse).where(col(SurveyResponse.complete))
    return await measure_reformbot(
        mode, (url, maker), pg_server, people, "Cán bộ", partial(person, campaign_id), counted
    )


def report(echo: Run, bot: Run) -> float:
    """Print one mode's figures; return reformbot's updates per second as a ratio to the echo."""
    ratio = bot.per_second / echo.per_second
    for run in (echo, bot):
        print(
            f"{run.mode:8} {run.name:12} {run.updates:6} updates in {run.seconds:7.2f} s "
            f"= {run.per_second:6.0f} updates/s; reply p50 {run.quantile(0.5) * 1000:6.0f} ms, "
            f"p95 {run.quantile(0.95) * 1000:6.0f} ms"
        )
    answers = bot.completed * len(QUESTIONS)
    print(
        f"{bot.mode:8} {bot.name:12} {bot.completed} surveys ({answers} answers) in "
        f"{bot.seconds:.2f} s = {answers / bot.seconds:.1f} answers/s; "
        f"updates/s = {ratio:.2f} x echo (goal >= {GOAL})"
    )
    return ratio


async def main(people: int, modes: list[str], repeat: int, databases: list[str]) -> None:
    """Measure each mode (echo, reformbot, echo again), `repeat` times; print the figures last."""
    figures = Figures("surveys")

    def note(round_: int, echo: Run, bot: Run) -> None:
        ratio = report(echo, bot)
        extra = {**bot.labels(round_), "people": people}
        answers = bot.completed * len(QUESTIONS)
        figures.add("answers_per_second", answers / bot.seconds, **extra)
        figures.add("reply_p95_seconds", bot.quantile(0.95), **extra)
        figures.add("reply_p95_x_echo", bot.quantile(0.95) / echo.quantile(0.95), **extra)
        figures.add("updates_per_second_x_echo", ratio, f">= {GOAL}", **extra)

    await compare(
        partial(measure_surveys, people),
        people=people,
        texts=len(script(0)) + 2,  # as many updates as a person sends
        modes=modes,
        repeat=repeat,
        what="surveys completed",
        note=note,
        databases=databases,
    )
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
