"""The demo writes a config, so `reformbot qr`, `directive status` and `apology` work on the
database the simulator shows."""

from __future__ import annotations

import asyncio
import csv
import shlex
from datetime import date, timedelta
from pathlib import Path
from typing import Any

from sqlmodel import col, select
from typer.testing import CliRunner

from bot.cli import demo
from bot.cli.directives import read_file
from bot.cli.main import app
from bot.config import load_settings
from bot.db import create_engine, session_maker
from bot.i18n import t
from bot.models import Apology, Directive, Dossier
from bot.sandbox import DEFAULT_USERNAME
from bot.services.calendar import WorkCalendar
from bot.services.dossiers.apology_slip import docx_text
from bot.services.org.invites import deep_link
from bot.services.ratings.service_points import payload_for_counter
from tests.e2e.conftest import free_port


async def _scalar(db: Path, stmt: Any) -> int:
    """Return one number from the demo's database."""
    engine = create_engine(f"sqlite+aiosqlite:///{db}")
    try:
        async with session_maker(engine)() as s:
            return int((await s.exec(stmt)).one())
    finally:
        await engine.dispose()


async def _example_directive_id(db: Path) -> int:
    """Return the id of the directive the demo issues today."""
    number = read_file(demo.EXAMPLES / "directive.toml").number
    return await _scalar(db, select(Directive.id).where(Directive.number == number))


async def _apology_id(db: Path, code: str) -> int:
    """Return the id of a dossier's apology."""
    return await _scalar(
        db,
        select(Apology.id)
        .join(Dossier, col(Dossier.id) == Apology.dossier_id)
        .where(Dossier.code == code),
    )


async def test_the_demo_prints_the_config_the_other_commands_use(tmp_path, monkeypatch):
    said: list[str] = []
    hinted = asyncio.Event()
    stop = asyncio.Event()

    def say(text: str) -> None:
        said.append(text)
        if "REFORMBOT_CONFIG=" in text:
            hinted.set()

    db = demo.fresh_database(tmp_path / "demo")
    task = asyncio.create_task(
        demo.run_demo(host="127.0.0.1", port=free_port(), db=db, say=say, stop=stop)
    )
    try:
        async with asyncio.timeout(60):
            waiter = asyncio.create_task(hinted.wait())
            await asyncio.wait({task, waiter}, return_when=asyncio.FIRST_COMPLETED)
            if task.done():
                task.result()
        line = next(text for text in said if "REFORMBOT_CONFIG=" in text)
        command = line.rsplit(": ", 1)[1]
        assert line == t("demo.config_hint", "vi", command=command)
        export, assignment = shlex.split(command)
        assert export == "export"
        name, path = assignment.split("=", 1)
        assert name == "REFORMBOT_CONFIG"
        settings = load_settings(path)
        assert settings.database.url == f"sqlite+aiosqlite:///{db.resolve()}"

        monkeypatch.setenv("REFORMBOT_CONFIG", path)
        monkeypatch.chdir(tmp_path)
        runner = CliRunner()

        def cli(*args: str):
            return asyncio.to_thread(runner.invoke, app, list(args), env={"COLUMNS": "300"})

        listed = await cli("directive", "list")
        assert listed.exit_code == 0, listed.output
        title = read_file(demo.EXAMPLES / "directive.toml").title
        assert " ".join(title.split()[:4]) in listed.output
        status = await cli("directive", "status", str(await _example_directive_id(db)))
        assert status.exit_code == 0, status.output
        qr = await cli("qr", "--counter", demo.RATING_COUNTER, "--out", str(tmp_path / "qr"))
        assert qr.exit_code == 0, qr.output
        page = (tmp_path / "qr" / "qr-a4.html").read_text("utf-8")
        assert deep_link(DEFAULT_USERNAME, payload_for_counter(demo.RATING_COUNTER)) in page
        with (demo.EXAMPLES / "dossiers.csv").open(encoding="utf-8-sig") as fh:
            code = next(r[0] for r in csv.reader(fh) if r[-1] == "Đang xử lý")
        new_date = WorkCalendar().next_working_day(date.today() + timedelta(days=120))
        made = await cli(
            "apology", "create", code, "--reason", "Chờ xác minh",
            "--new-date", new_date.strftime("%d/%m/%Y"),
        )  # fmt: skip
        assert made.exit_code == 0, made.output
        slip = tmp_path / "slip.docx"
        apology = await _apology_id(db, code)  # the demo's history has apologies of its own
        printed = await cli("apology", "print", str(apology), "--out", str(slip))
        assert printed.exit_code == 0, printed.output
        assert code in docx_text(slip.read_bytes())
    finally:
        stop.set()
        await task
