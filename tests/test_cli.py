"""The command line end to end on a SQLite file: import, invite, directives."""

from __future__ import annotations

import asyncio
import csv
import threading
from datetime import date, timedelta
from pathlib import Path

import pytest
from openpyxl import load_workbook
from sqlmodel import func, select
from typer.testing import CliRunner

from bot.cli.main import app
from bot.db import create_engine, session_maker
from bot.i18n import t
from bot.models import Attachment, Directive, Invite, Outbox
from bot.sandbox import DEFAULT_TOKEN, DEFAULT_USERNAME, SandboxServer
from bot.services.calendar import WorkCalendar
from bot.services.dossiers.apology_slip import docx_text
from bot.services.org import invites
from bot.services.reports.xlsx import data_rows
from tests.cli_console import plain_consoles

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"


@pytest.fixture
def cli(tmp_path, monkeypatch):
    """Run commands against a fresh SQLite file with the example department imported."""
    url = f"sqlite+aiosqlite:///{tmp_path}/cli.db"
    monkeypatch.setenv("REFORMBOT_DATABASE__URL", url)
    monkeypatch.delenv("REFORMBOT_CONFIG", raising=False)
    monkeypatch.chdir(tmp_path)
    plain_consoles(monkeypatch)
    runner = CliRunner()

    def invoke(*args: str):
        return runner.invoke(app, list(args))

    assert invoke("import", "units", str(EXAMPLES / "units.csv")).exit_code == 0
    assert invoke("import", "staff", str(EXAMPLES / "staff.csv")).exit_code == 0
    invoke.url = url
    return invoke


def count(url: str, model) -> int:
    async def main() -> int:
        engine = create_engine(url)
        async with session_maker(engine)() as s:
            n = (await s.exec(select(func.count()).select_from(model))).one()
        await engine.dispose()
        return n

    return asyncio.run(main())


def test_invites_for_a_unit_to_csv(cli, tmp_path):
    out = tmp_path / "invites.csv"
    result = cli("invite", "--unit", "UBND.ANPHU", "--username", "sgd_bot", "--out", str(out))
    assert result.exit_code == 0, result.output
    lines = out.read_text(encoding="utf-8-sig").splitlines()
    assert lines[0].startswith("Mã cán bộ,Họ và tên")
    assert all("https://t.me/sgd_bot?start=inv_" in line for line in lines[1:])
    assert count(cli.url, Invite) == len(lines) - 1
    bad = cli("invite", "--unit", "NOPE", "--username", "sgd_bot")
    assert bad.exit_code == 1
    assert "NOPE" in bad.output


def test_directive_dry_run_then_send_then_status(cli, tmp_path):
    file = EXAMPLES / "directive.toml"
    dry = cli("directive", "send", str(file), "--dry-run")
    assert dry.exit_code == 0, dry.output
    assert "Chạy thử" in dry.output
    assert count(cli.url, Directive) == 0
    pdf = tmp_path / "cv125.pdf"
    pdf.write_bytes(b"%PDF-1.4 test")
    sent = cli("directive", "send", str(file), "--attach", str(pdf))
    assert sent.exit_code == 0, sent.output
    assert "Đã phát hành công văn số 125/SGDĐT-VP" in sent.output
    assert count(cli.url, Directive) == 1
    assert count(cli.url, Attachment) == 1
    assert count(cli.url, Outbox) == 0  # nobody has linked a chat account yet: all unreachable
    xlsx = tmp_path / "status.xlsx"
    status = cli("directive", "status", "1", "--xlsx", str(xlsx))
    assert status.exit_code == 0, status.output
    assert "UBND xã Hòa Mỹ" in status.output
    rows = data_rows(load_workbook(xlsx).active)[:-1]  # the last is the totals row
    assert len(rows) == 12  # 11 commune and ward committees and the Department Office
    assert all(
        not row[6] and row[7] for row in rows
    )  # nobody linked: none received, none "not yet"
    assert "Không nhận được" in status.output
    listing = cli("directive", "list")
    assert "125/SGDĐT-VP" in listing.output


def test_broken_directive_file_names_the_field(cli, tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text(
        'number = "1/X"\ndate = 2026-12-04\ntitle = ""\nsummary = "x"\n'
        '[target]\nkinds = ["castle"]\n',
        encoding="utf-8",
    )
    result = cli("directive", "send", str(bad))
    assert result.exit_code == 1
    assert "title" in result.output
    assert "target.kinds" in result.output
    unknown = tmp_path / "unknown.toml"
    unknown.write_text(
        'number = "1/X"\ndate = 2026-12-04\ntitle = "t"\nsummary = "x"\n'
        '[target]\nunits = ["NOPE"]\n',
        encoding="utf-8",
    )
    result = cli("directive", "send", str(unknown))
    assert result.exit_code == 1
    assert "Không tìm thấy đơn vị có mã: NOPE" in result.output
    assert count(cli.url, Directive) == 0


def test_task_import_through_the_main_command(cli):
    result = cli("task", "import", str(EXAMPLES / "tasks.csv"))
    assert result.exit_code == 0, result.output
    listing = cli("task", "list", "--unit", "UBND.ANPHU")
    assert listing.exit_code == 0, listing.output
    assert "cải cách hành chính" in listing.output


def test_a_directive_deadline_in_tet_is_refused_or_moved(cli, tmp_path):
    file = tmp_path / "tet.toml"
    file.write_text(
        'number = "9/X"\ndate = 2026-12-04\ntitle = "t"\nsummary = "x"\n'
        "ack_deadline = 2027-02-08T17:00:00+07:00\n[target]\nall = true\n",
        encoding="utf-8",
    )
    for args in ((), ("--dry-run",)):
        refused = cli("directive", "send", str(file), *args)
        assert refused.exit_code == 1
        assert "Ngày 08/02/2027 là ngày nghỉ lễ, Tết (Mùng ba Tết Nguyên Đán)" in refused.output
        assert "--next-working-day để chuyển sang ngày 11/02/2027" in refused.output
    assert count(cli.url, Directive) == 0
    moved = cli("directive", "send", str(file), "--next-working-day")
    assert moved.exit_code == 0, moved.output
    assert "sang ngày làm việc kế tiếp 11/02/2027" in moved.output
    assert count(cli.url, Directive) == 1


@pytest.fixture
def bot_api():
    """A sandbox Bot API on a free port, served from its own thread for the CLI's own loop."""
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    server = SandboxServer()
    asyncio.run_coroutine_threadsafe(server.start(), loop).result(10)
    yield server
    asyncio.run_coroutine_threadsafe(server.stop(), loop).result(10)
    loop.call_soon_threadsafe(loop.stop)
    thread.join(10)
    loop.close()


def test_invite_prints_the_whole_link_on_a_narrow_terminal(cli, monkeypatch):
    plain_consoles(monkeypatch, width=40)
    result = cli("invite", "--person", "CB031", "--username", "so_giao_duc_an_phu_bot")
    assert result.exit_code == 0, result.output
    code = result.output.split("?start=")[1].split()[0]
    assert invites.deep_link("so_giao_duc_an_phu_bot", code) in result.output.splitlines()[-1]
    assert code.startswith("inv_")
    assert len(code) > 20


@pytest.mark.parametrize("command", ["invite", "qr"])
def test_username_is_asked_from_the_bot_api(cli, bot_api, monkeypatch, tmp_path, command):
    monkeypatch.setenv("REFORMBOT_TELEGRAM__TOKEN", DEFAULT_TOKEN)
    monkeypatch.setenv("REFORMBOT_TELEGRAM__API_BASE_URL", bot_api.base_url)
    monkeypatch.delenv("REFORMBOT_TELEGRAM__USERNAME", raising=False)
    if command == "invite":
        result = cli("invite", "--person", "CB031")
        assert f"https://t.me/{DEFAULT_USERNAME}?start=inv_" in result.output
    else:
        assert cli("import", "counters", str(EXAMPLES / "counters.csv")).exit_code == 0
        result = cli("qr", "--counter", "SGD.MOTCUA.Q1", "--out", str(tmp_path / "qr"))
        page = (tmp_path / "qr" / "qr-a4.html").read_text("utf-8")
        assert f"https://t.me/{DEFAULT_USERNAME}?start=rate_c_SGD-MOTCUA-Q1" in page
    assert result.exit_code == 0, result.output


def test_apology_create_refuses_a_day_off_then_moves_it_and_says_to_print(cli, tmp_path):
    assert cli("import", "procedures", str(EXAMPLES / "procedures.csv")).exit_code == 0
    assert cli("import", "dossiers", str(EXAMPLES / "dossiers.csv")).exit_code == 0
    with (EXAMPLES / "dossiers.csv").open(encoding="utf-8-sig") as fh:
        rows = list(csv.reader(fh))
    code, name = next((r[0], r[3]) for r in rows[1:] if r[-1] == "Đang xử lý")
    cal = WorkCalendar()
    saturday = date.today() + timedelta(days=60)
    saturday += timedelta(days=(5 - saturday.weekday()) % 7)
    assert not cal.is_working_day(saturday)
    monday = cal.next_working_day(saturday)
    args = ["apology", "create", code, "--reason", "Chờ xác minh văn bằng"]
    args += ["--new-date", saturday.strftime("%d/%m/%Y")]
    refused = cli(*args)
    assert refused.exit_code == 1
    out = " ".join(refused.output.split())
    next_day = monday.strftime("%d/%m/%Y")
    off = cal.check_working_day(saturday)  # a weekend, or a holiday such as Tết falling on it
    assert off is not None
    assert t(off.key, "vi", **off.params()) in out
    assert t("calendar.cli_move_hint", "vi", next_day=next_day) in out
    done = cli(*args, "--next-working-day")
    assert done.exit_code == 0, done.output
    out = " ".join(done.output.split())
    new_date = f"17:00 {monday.strftime('%d/%m/%Y')}"
    assert t("apology.cli.created", "vi", id=1, code=code, new_date=new_date) in out
    assert " ".join(t("apology.cli.must_print", "vi", id=1, name=name).split()) in out
    slip = tmp_path / "slip.docx"
    assert cli("apology", "print", "1", "--out", str(slip)).exit_code == 0
    assert code in docx_text(slip.read_bytes())


def test_apology_create_refuses_a_bad_date(cli):
    result = cli("apology", "create", "X-1", "--reason", "r", "--new-date", "31/02/2027")
    assert result.exit_code == 2
    assert t("apology.cli.bad_date", "vi", value="31/02/2027") in " ".join(result.output.split())
