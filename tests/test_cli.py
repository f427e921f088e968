"""The command line end to end on a SQLite file: import, invite, directives."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from openpyxl import load_workbook
from sqlmodel import func, select
from typer.testing import CliRunner

from bot.cli import app
from bot.db import create_engine, session_maker
from bot.models import Attachment, Directive, Invite, Outbox

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"


@pytest.fixture
def cli(tmp_path, monkeypatch):
    """Run commands against a fresh SQLite file with the example department imported."""
    url = f"sqlite+aiosqlite:///{tmp_path}/cli.db"
    monkeypatch.setenv("REFORMBOT_DATABASE__URL", url)
    monkeypatch.delenv("REFORMBOT_CONFIG", raising=False)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr("bot.cli_common.console.width", 200)
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
    rows = list(load_workbook(xlsx).active.iter_rows(min_row=3, values_only=True))
    assert len(rows) == 12  # 11 commune and ward committees and the Department Office
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
